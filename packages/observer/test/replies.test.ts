import { encodeResultBatch, type TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type GridObserver, observeGrid } from "../src/index.js";
import { connectString, finalStatus, ProtocolWriter } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

/** A result node in the reply dir of `address`, as the leader writes it. */
async function reply(g: ProtocolWriter, address: string, results: TaskStatus[]): Promise<void> {
  const dir = g.layout.replyDir(address);
  await g.zk.ensurePath(dir);
  await g.zk.createProtected(
    `${dir}/${g.layout.resultNodePrefix}`,
    encodeResultBatch({ v: 1, epoch: 1, results }),
    "persistent-sequential",
  );
}

describe("the observer reads the results in reply dirs as it reads R/results", () => {
  it("shows results already in reply dirs as history, counts new ones (also in a dir made later) once, and finds any of them by id", async () => {
    const g = await ProtocolWriter.create();
    cleanups.push(() => g.close());
    await g.dirs();
    await g.results([finalStatus("shared-old", "succeeded")]);
    await reply(g, "client-a", [finalStatus("a-old", "succeeded")]);
    const observer: GridObserver = await observeGrid({ connectString: connectString(), root: g.root });
    cleanups.push(() => observer.close());
    expect(
      observer
        .snapshot()
        .recent.map((t) => t.id)
        .sort(),
    ).toEqual(["a-old", "shared-old"]);
    expect(observer.snapshot().counts.succeeded).toBe(0);

    await reply(g, "client-a", [finalStatus("a-1", "succeeded"), finalStatus("a-2", "failed")]);
    await reply(g, "client-b", [finalStatus("b-1", "succeeded")]);
    await reply(g, "client-b", [finalStatus("b-1", "succeeded")]); // a repeat counts once
    await g.results([finalStatus("shared-1", "succeeded")]);
    await waitFor(
      () => {
        const { counts } = observer.snapshot();
        return counts.succeeded === 3 && counts.failed === 1;
      },
      { timeoutMs: 20_000, message: "the new results in every place to be counted" },
    );
    expect(observer.snapshot().counts).toMatchObject({ succeeded: 3, failed: 1 });

    // A fresh observer has none of them in memory: it finds each by reading the result nodes.
    const fresh = await observeGrid({ connectString: connectString(), root: g.root, recentLimit: 1 });
    cleanups.push(() => fresh.close());
    expect(await fresh.task("a-2")).toMatchObject({ state: "failed" });
    const found = await fresh.findTasks(["a-old", "b-1", "shared-old", "nobody"]);
    expect([...found.keys()].sort()).toEqual(["a-old", "b-1", "shared-old"]);
  });
});
