import {
  decodeInboxNode,
  decodeWorkerReport,
  encodeSubmitBatch,
  encodeWorkerRegistration,
  type TaskSpec,
} from "@zkgrid/protocol";
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
  it("a worker whose start took longer than its freeze gap runs its first direct task at once, rather than declining it as after a pause", async () => {
    // Another session holds the name: the worker waits to register, as a slow start would make it wait.
    const holder = await grid().client();
    await holder.ensurePath(layout.workers);
    const held = { v: 1 as const, name: "w1", host: "other", pid: 1, capacity: 1, labels: [] };
    const registration = { ...held, version: "0.0.0", startedAt: 1, session: holder.sessionId! };
    await holder.create(layout.worker("w1"), encodeWorkerRegistration(registration), "ephemeral");
    const starting = grid().start("w1", { nameWaitMs: 60_000 });
    await waitFor(() => grid().logs.some((l) => l.msg.includes(`held by session ${holder.sessionId}`)));
    // Past the freeze gap (a third of the 4 s session timeout) before the name is free.
    await new Promise((wake) => setTimeout(wake, 2_000));
    await holder.delete(layout.worker("w1"));
    const worker = await starting;

    const path = await putDirect("w1", worker.sessionId!, { id: "first", cmd: "echo first" });
    const answered = await waitFor(
      async () => {
        const node = await grid().zk.get(path);
        return node.stat.version > 0 ? node : undefined;
      },
      { timeoutMs: 20_000, message: "the worker to answer the direct task" },
    );
    const node = decodeInboxNode("first", answered.data, answered.stat.version);
    expect(node.kind === "outcome" ? node.status : node).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(grid().logs.filter((l) => l.msg.startsWith("declined a direct task"))).toEqual([]);
  });

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
