import { setImmediate as nextTick } from "node:timers/promises";
import { type ZkClient, errors } from "@zkgrid/core";
import { type EncodedSubmitBatch, gridLayout, type TaskSpec } from "@zkgrid/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubmitWriteError } from "../src/errors.js";
import { type QueueWriter, SubmitPipeline } from "../src/submit-pipeline.js";
import { connectTestClient, randomRoot, readQueue } from "./helpers.js";

let zk: ZkClient;

beforeAll(async () => {
  zk = await connectTestClient();
});

afterAll(async () => {
  await zk?.close();
});

const task = (id: string): TaskSpec => ({ id, cmd: `echo ${id}` });

/** Writes each batch to the real queue, first waiting for `gate` when one is set. */
function queueWriter(queue: string, hold?: Promise<void>): QueueWriter & { writes: number } {
  const writer = {
    writes: 0,
    resultBaseline: async () => 41,
    writeBatch: async ({ batch, data }: EncodedSubmitBatch) => {
      writer.writes++;
      if (writer.writes === 1) await hold;
      const target = batch.tasks.some((t) => t.id.startsWith("lost")) ? `${queue}-missing` : queue;
      await zk.create(`${target}/q`, data, "persistent-sequential");
    },
  };
  return writer;
}

describe("the submit pipeline", () => {
  it("gathers the submits made while a write is in flight into the next write", async () => {
    const layout = gridLayout(randomRoot());
    await zk.ensurePath(layout.queue);
    let release!: () => void;
    const writer = queueWriter(layout.queue, new Promise<void>((resolve) => (release = resolve)));
    const pipeline = new SubmitPipeline(writer);

    const first = pipeline.push([task("a")]);
    await nextTick();
    expect(writer.writes).toBe(1); // "a" is being written and held there
    const later: Array<Promise<number>> = [];
    for (const id of ["b", "c", "d"]) {
      later.push(pipeline.push([task(id)]));
      await nextTick(); // each arrives in its own turn of the event loop
    }
    release();
    expect(await Promise.all([first, ...later])).toEqual([41, 41, 41, 41]);

    const nodes = await readQueue(zk, layout);
    expect(nodes.map((node) => node.tasks.map((t) => t.id))).toEqual([["a"], ["b", "c", "d"]]);
    expect(writer.writes).toBe(2);
  });

  it("tells each submit which of its tasks reached the queue when a batch cannot be written", async () => {
    const layout = gridLayout(randomRoot());
    await zk.ensurePath(layout.queue);
    const pipeline = new SubmitPipeline(queueWriter(layout.queue), () => ({ maxTasks: 2 }));

    // One round, in batches of two: [ok-1, ok-2] is written, [lost-1, ok-3] fails, and [ok-4] is
    // not tried, so that nothing overtakes what failed.
    const mixed = pipeline.push([task("ok-1"), task("ok-2"), task("lost-1"), task("ok-3")]).catch((e) => e);
    const after = pipeline.push([task("ok-4")]).catch((e: unknown) => e);
    const err = (await mixed) as SubmitWriteError;
    expect(err).toBeInstanceOf(SubmitWriteError);
    expect(err.written).toEqual(["ok-1", "ok-2"]);
    expect(err.notWritten).toEqual(["lost-1", "ok-3"]);
    expect(errors.isNoNode(err.cause)).toBe(true);
    expect(await after).toMatchObject({ written: [], notWritten: ["ok-4"] });

    const written = (await readQueue(zk, layout)).flatMap((node) => node.tasks.map((t) => t.id));
    expect(written).toEqual(["ok-1", "ok-2"]);

    // The pipeline goes on with the next round.
    await expect(pipeline.push([task("ok-5")])).resolves.toBe(41);
  });
});
