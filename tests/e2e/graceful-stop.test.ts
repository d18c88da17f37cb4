import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeSubmitBatch } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, describe, expect, inject, it } from "vitest";
import { sessionOf, TestGrid } from "./grid.js";

let grid: TestGrid | undefined;

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail" && grid) console.error(grid.transcript());
  await grid?.close();
  grid = undefined;
});

function start(): TestGrid {
  grid = new TestGrid(inject("zkConnectString"));
  return grid;
}

function startsIn(marker: string): string[] {
  return existsSync(marker) ? readFileSync(marker, "utf8").split("\n").filter(Boolean) : [];
}

describe("a worker stopped gracefully", () => {
  it("a queued task its grace cut short runs again on an idle worker, without spending an attempt", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1", ["--grace", "2s"]);
    await sessionOf(g, "w1");
    const marker = join(g.dir, "starts.log");
    const task = { id: "long", cmd: `echo "$ZKGRID_WORKER $ZKGRID_TASK_ATTEMPT" >> ${marker}; sleep 8` };
    const sent = await g.submit([], JSON.stringify({ ...task, maxAttempts: 2 }));
    expect(sent.code).toBe(0);
    await waitFor(() => startsIn(marker).length === 1, { timeoutMs: 30_000, message: "the task to start" });
    g.worker("w2");
    await sessionOf(g, "w2");
    w1.kill("SIGTERM");
    expect(await w1.exited).toBe(0);

    const results = await g.waitForResults(["long"], 90_000);
    // The stop's hand-back is not charged: the run on w2 is attempt 1 again, of 2 still available.
    expect(results.get("long")).toMatchObject({ state: "succeeded", worker: "w2", attempt: 1 });
    expect(startsIn(marker)).toEqual(["w1 1", "w2 1"]);
  });

  it("a direct task its grace cut short runs again on an idle worker, without spending an attempt", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1", ["--grace", "2s"]);
    const session = await sessionOf(g, "w1");
    const marker = join(g.dir, "starts.log");
    const zk = await g.zk();
    const task = {
      id: "long-direct",
      cmd: `echo "$ZKGRID_WORKER $ZKGRID_TASK_ATTEMPT" >> ${marker}; sleep 8`,
      maxAttempts: 1,
    };
    await zk.create(
      g.layout.inboxTask("w1", session, task.id),
      encodeSubmitBatch({ v: 1, batchId: randomUUID(), submittedAt: Date.now(), tasks: [task] }),
      "persistent",
    );
    await waitFor(() => startsIn(marker).length === 1, { timeoutMs: 30_000, message: "the task to start" });
    g.worker("w2");
    await sessionOf(g, "w2");
    w1.kill("SIGTERM");
    expect(await w1.exited).toBe(0);

    const results = await g.waitForResults([task.id], 90_000);
    expect(results.get(task.id)).toMatchObject({ state: "succeeded", worker: "w2", attempt: 1 });
    expect(startsIn(marker)).toEqual(["w1 1", "w2 1"]);
  });

  it("a stopping worker takes no new task: one queued while it drains runs on another worker", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1", ["--grace", "6s", "--concurrency", "2"]);
    await sessionOf(g, "w1");
    const marker = join(g.dir, "starts.log");
    const cmd = (id: string, secs: number) =>
      JSON.stringify({
        id,
        cmd: `echo "${id} $ZKGRID_WORKER $ZKGRID_TASK_ATTEMPT" >> ${marker}; sleep ${secs}`,
      });
    // Two tasks: "short" ends while w1 drains, which reports it (and that w1 drains) to the leader.
    expect((await g.submit([], `${cmd("short", 2)}\n${cmd("first", 3)}`)).code).toBe(0);
    await waitFor(() => startsIn(marker).length === 2, { timeoutMs: 30_000, message: "both tasks to start" });
    w1.kill("SIGTERM");
    await waitFor(async () => (await g.results()).some((r) => r.id === "short"), {
      timeoutMs: 30_000,
      message: "the short task's result",
    });
    // w1 still runs "first" and has a free slot, but it is stopping: this task waits for w2.
    expect((await g.submit([], cmd("later", 0))).code).toBe(0);
    g.worker("w2");
    const results = await g.waitForResults(["short", "first", "later"], 90_000);
    expect(results.get("later")).toMatchObject({ state: "succeeded", worker: "w2", attempt: 1 });
    expect(results.get("first")).toMatchObject({ state: "succeeded", worker: "w1", attempt: 1 });
    expect(await w1.exited).toBe(0);
    expect(startsIn(marker).filter((l) => l.startsWith("later"))).toEqual(["later w2 1"]);
  });
});
