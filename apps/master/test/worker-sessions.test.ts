import { randomUUID } from "node:crypto";
import type { SessionBoundClient, ZkClient } from "@zkgrid/core";
import {
  encodeSubmitBatch,
  encodeWorkerRegistration,
  encodeWorkerReport,
  gridLayout,
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

/**
 * The client given to the master, with the `get` of each leader term counted by path: the leader's
 * reads go through the session-bound view that `boundTo` makes.
 */
function recordingReads(zk: ZkClient, reads: Map<string, number>): ZkClient {
  const countGets = (bound: SessionBoundClient): SessionBoundClient =>
    new Proxy(bound, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (key === "get")
          return (path: string) => {
            reads.set(path, (reads.get(path) ?? 0) + 1);
            return target.get(path);
          };
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return new Proxy(zk, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (key === "boundTo") return (sessionId: string) => countGets(target.boundTo(sessionId));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

it("a worker joining makes the leader read its own registration only, not every worker's again", async () => {
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const reads = new Map<string, number>();
  const master = await startMaster({
    name: "m1",
    root,
    client: recordingReads(await client(), reads),
  });
  masters.push(master);
  await master.leading();

  // One session holds every registration: each join is its own change to R/workers.
  const workers = await client();
  const names = Array.from({ length: 20 }, (_, i) => `w${i}`);
  for (const [i, name] of names.entries()) {
    const registration = encodeWorkerRegistration({
      v: 1,
      name,
      host: "host-w",
      pid: 77,
      capacity: 1,
      labels: [],
      version: "0.1.0",
      startedAt: Date.now(),
      session: workers.sessionId ?? "",
    });
    await workers.create(layout.worker(name), registration, "ephemeral");
    await waitFor(() => master.stats()?.workers === i + 1, { timeoutMs: 20_000 });
  }

  for (const name of names) expect(reads.get(layout.worker(name)), name).toBe(1);
});

/** The tasks of `worker`'s assignment node (none while it has no node). */
async function assigned(zk: ZkClient, layout: ReturnType<typeof gridLayout>, worker: string) {
  return (await assignmentOf(zk, layout, worker)).tasks;
}

it("a worker session that ends while nothing else changes is fenced: its task runs elsewhere as attempt 2, its report dir is deleted", async () => {
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const master = await startMaster({ name: "m1", root, client: await client() });
  masters.push(master);
  await master.leading();
  const a = await standInWorker(layout, "wa", 1);
  const b = await standInWorker(layout, "wb", 1);
  await waitFor(() => master.stats()?.workers === 2, { timeoutMs: 20_000 });

  const zk = await client();
  const submit = (id: string) =>
    zk.create(
      `${layout.queue}/${layout.queueNodePrefix}`,
      encodeSubmitBatch({
        v: 1,
        batchId: randomUUID(),
        submittedAt: Date.now(),
        tasks: [{ id, cmd: "true" }],
      }),
      "persistent-sequential",
    );
  await submit("t1");
  let holder = a;
  let other = b;
  await waitFor(
    async () => {
      if ((await assigned(zk, layout, b.name)).some((t) => t.id === "t1")) [holder, other] = [b, a];
      return (await assigned(zk, layout, holder.name)).some((t) => t.id === "t1");
    },
    { timeoutMs: 20_000, message: "t1 to be assigned" },
  );
  // Steps that change no session: the leader checks only sessions that took their first task.
  await submit("t2");
  await waitFor(async () => (await assigned(zk, layout, other.name)).some((t) => t.id === "t2"), {
    timeoutMs: 20_000,
    message: "t2 to go to the other worker",
  });

  // The holder's session ends: its registration goes, its report dir stays behind.
  await holder.zk.close();
  // The other worker finishes t2, so that it has room for t1 again.
  await zk.create(
    `${layout.reportDir(other.name, other.session)}/${layout.reportNodePrefix}`,
    encodeWorkerReport({
      v: 1,
      worker: other.name,
      session: other.session,
      updates: [{ id: "t2", attempt: 1, state: "succeeded", at: Date.now(), exitCode: 0 }],
    }),
    "persistent-sequential",
  );
  await waitFor(
    async () =>
      (await assigned(zk, layout, other.name)).some((t) => t.id === "t1" && t.attempt === 2) &&
      (await zk.exists(layout.reportDir(holder.name, holder.session))) === null,
    {
      timeoutMs: 30_000,
      message: "t1 handed out again as attempt 2 and the dead session's report dir deleted",
    },
  );
});
