import { randomUUID } from "node:crypto";
import {
  decodeResultBatch,
  encodeSubmitBatch,
  encodeWorkerReports,
  gridLayout,
  type TaskSpec,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, it } from "vitest";
import { type Master, startMaster } from "../src/index.js";
import { assignmentOf, client, closeClients, standInWorker } from "./stand-ins.js";

const masters: Master[] = [];

afterEach(async () => {
  for (const m of masters.splice(0)) await m.stop();
  await closeClients();
});

// A step writes a finished task's result and the assignment that drops it at once (one round of
// writes): the result node must still be applied first, or a leader dying in between loses the task.
it("a step that finishes one task and hands out the next applies the result node before the assignment that drops the task", async () => {
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const zk = await client();
  for (const dir of layout.dirs) await zk.ensurePath(dir);
  // A worker of capacity 1, played by the test through its nodes.
  const worker = await standInWorker(layout, "w1", 1);
  const tasks = ["first", "second"].map((id): TaskSpec => ({ id, cmd: "true" }));
  await zk.createProtected(
    `${layout.queue}/${layout.queueNodePrefix}`,
    encodeSubmitBatch({ v: 1, batchId: `b-${randomUUID()}`, submittedAt: Date.now(), tasks }),
    "persistent-sequential",
  );
  const holds = async (id: string) =>
    (await assignmentOf(zk, layout, "w1")).tasks.map((t) => t.id).join() === id;

  const master = await startMaster({ name: "m", root, client: await client() });
  masters.push(master);
  await waitFor(() => holds("first"), { timeoutMs: 20_000, message: "the leader assigns the first task" });
  const [report] = encodeWorkerReports("w1", worker.session, [
    { id: "first", attempt: 1, state: "succeeded", exitCode: 0, at: Date.now(), finishedAt: Date.now() },
  ]);
  await worker.zk.create(
    `${layout.reportDir("w1", worker.session)}/${layout.reportNodePrefix}`,
    report,
    "persistent-sequential",
  );
  await waitFor(() => holds("second"), {
    timeoutMs: 20_000,
    message: "the leader hands out the second task in place of the first",
  });

  // The worker never reports "second": nothing writes the assignment again.
  const { stat } = await assignmentOf(zk, layout, "w1");
  let resultCzxid: number | undefined;
  for (const name of await zk.getChildren(layout.results)) {
    const got = await zk.get(`${layout.results}/${name}`);
    const batch = decodeResultBatch(got.data);
    if (batch.ok && batch.value.results.some((r) => r.id === "first")) resultCzxid = got.stat.czxid;
  }
  expect(resultCzxid).toBeDefined();
  expect(stat?.version).toBeGreaterThan(0);
  // The assignment's last write (the one that dropped "first") came after the result's create.
  expect(resultCzxid).toBeLessThan(stat?.mzxid ?? 0);
});
