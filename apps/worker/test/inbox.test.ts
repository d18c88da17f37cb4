import { decodeWorkerReport, encodeSubmitBatch, type TaskSpec } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { assigned, gridPerTest, layout } from "./helpers.js";

const grid = gridPerTest();

/** Puts `task` in `worker@session`'s inbox, as a submitter does; returns its node's path. */
async function putDirect(worker: string, session: string, task: TaskSpec): Promise<string> {
  const path = layout.inboxTask(worker, session, task.id);
  const batch = { v: 1 as const, batchId: task.id, submittedAt: Date.now(), tasks: [task] };
  await grid().zk.create(path, encodeSubmitBatch(batch));
  return path;
}

/** The report nodes of `worker@session` with no update in them, with their creation zxids. */
async function emptyReports(worker: string, session: string): Promise<number[]> {
  const dir = layout.reportDir(worker, session);
  const found: number[] = [];
  for (const name of await grid().zk.getChildren(dir)) {
    const { data, stat } = await grid().zk.get(`${dir}/${name}`);
    const report = decodeWorkerReport(data);
    if (report.ok && report.value.updates.length === 0) found.push(stat.czxid);
  }
  return found;
}

describe("direct tasks", () => {
  it("a worker with no free slot writes a direct task back unchanged, and after that a report with no updates, which asks the leader to list its inbox now", async () => {
    const worker = await grid().start("w1", { concurrency: 1 });
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("busy", { cmd: "sleep 30" })]);
    await waitFor(() => worker.running === 1, { timeoutMs: 20_000, message: "the busy task to start" });
    expect(await emptyReports("w1", session)).toEqual([]);

    const path = await putDirect("w1", session, { id: "later", cmd: "true" });
    const declined = await waitFor(
      async () => {
        const node = await grid().zk.get(path);
        return node.stat.version > 0 ? node : undefined;
      },
      { timeoutMs: 20_000, message: "the worker to decline the direct task" },
    );
    expect(declined.stat.version).toBe(1);
    const written = (await grid().zk.get(path)).data;
    expect(written.equals(declined.data)).toBe(true);

    const nudges = await waitFor(
      async () => {
        const found = await emptyReports("w1", session);
        return found.length > 0 ? found : undefined;
      },
      { timeoutMs: 20_000, message: "a report with no updates" },
    );
    expect(nudges).toHaveLength(1);
    // Written after the task was written back: a leader that lists the inbox then reads the decline.
    expect(nudges[0]).toBeGreaterThan(declined.stat.mzxid);
    // The decline is told by the node alone: no update of the task is reported while running.
    expect((await grid().updates("w1", session)).filter((u) => u.id === "later")).toEqual([]);
  });
});
