import { randomUUID } from "node:crypto";
import { connect } from "@zkgrid/core";
import {
  decodeAssignment,
  encodeSubmitBatch,
  encodeWorkerRegistration,
  encodeWorkerReport,
  gridLayout,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, inject, it } from "vitest";
import { startMaster } from "../src/index.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

it("a direct task its worker declined is read as soon as that worker's report with no updates asks for it, and is handed out through the queue as attempt 1", async () => {
  const connectString = inject("zkConnectString");
  const root = `/test-declines-${randomUUID()}`;
  const layout = gridLayout(root);
  const zk = await connect({ connectString });
  cleanups.push(async () => {
    await zk.deleteRecursive(root);
    await zk.close();
  });
  for (const dir of layout.dirs) await zk.ensurePath(dir);
  // The test plays worker w1: its registration, report dir and inbox on this client's session.
  const session = zk.sessionId as string;
  await zk.ensurePath(layout.reportDir("w1", session));
  await zk.ensurePath(layout.inboxDir("w1", session));
  const registration = {
    v: 1 as const,
    name: "w1",
    host: "test",
    pid: process.pid,
    capacity: 4,
    labels: [],
    version: "0.0.0",
    startedAt: Date.now(),
    session,
  };
  await zk.create(layout.worker("w1"), encodeWorkerRegistration(registration), "ephemeral");

  const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  const master = await startMaster({
    name: "m",
    connectString,
    root,
    sessionTimeoutMs: 4000,
    logger: (_level, msg, fields) => logs.push({ msg, ...(fields ? { fields } : {}) }),
  });
  cleanups.push(() => master.stop());
  await waitFor(() => master.isLeader, {
    timeoutMs: 20_000,
    message: "the master to lead",
  });

  // A submitter puts a task in w1's inbox; w1 writes it back unchanged (declines), then asks for the
  // listing with an empty report, as the worker does.
  const task = { id: "declined-1", cmd: "true" };
  const path = layout.inboxTask("w1", session, task.id);
  const data = encodeSubmitBatch({ v: 1, batchId: task.id, submittedAt: Date.now(), tasks: [task] });
  await zk.create(path, data);
  await zk.set(path, data, 0);
  await zk.create(
    `${layout.reportDir("w1", session)}/r`,
    encodeWorkerReport({ v: 1, worker: "w1", session, updates: [] }),
    "persistent-sequential",
  );

  const handedOut = await waitFor(
    async () => {
      const got = await zk.get(layout.assign("w1")).catch(() => null);
      if (got === null) return undefined;
      const decoded = decodeAssignment(got.data);
      return decoded.ok ? decoded.value.tasks.find((t) => t.id === task.id) : undefined;
    },
    { timeoutMs: 20_000, message: "the declined task to be handed out through the queue" },
  );
  expect(handedOut).toMatchObject({ id: task.id, attempt: 1 });
  // Read because w1 asked, not by the inbox's listing (which marks what it read, so that the
  // worker's request would find nothing new to read).
  const asked = logs.filter((l) => l.msg === "inbox listed at its worker's request");
  expect(asked.map((l) => l.fields?.tasks)).toEqual([[task.id]]);
  await waitFor(async () => (await zk.exists(path)) === null, {
    timeoutMs: 20_000,
    message: "the leader to delete the declined task's node",
  });
});
