import { randomUUID } from "node:crypto";
import { connect, type ZkClient } from "@zkgrid/core";
import {
  type AssignedTask,
  decodeAssignment,
  encodeGridGate,
  encodeSubmitBatch,
  encodeWorkerRegistration,
  type GridGate,
  type GridLayout,
  gridLayout,
  type TaskSpec,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, describe, expect, inject, it } from "vitest";
import { type Master, startMaster } from "../src/index.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

interface TestGrid {
  root: string;
  layout: GridLayout;
  zk: ZkClient;
  logs: Array<{ master: string; level: string; msg: string; fields?: Record<string, unknown> }>;
  master(name: string): Promise<Master>;
}

async function grid(): Promise<TestGrid> {
  const connectString = inject("zkConnectString");
  const root = `/test-gate-${randomUUID()}`;
  const layout = gridLayout(root);
  const zk = await connect({ connectString });
  cleanups.push(async () => {
    await zk.deleteRecursive(root);
    await zk.close();
  });
  await zk.ensurePath(root);
  const logs: TestGrid["logs"] = [];
  return {
    root,
    layout,
    zk,
    logs,
    async master(name) {
      const master = await startMaster({
        name,
        connectString,
        root,
        sessionTimeoutMs: 4000,
        logger: (level, msg, fields) =>
          logs.push({ master: name, level, msg, ...(fields ? { fields } : {}) }),
      });
      cleanups.push(() => master.stop());
      return master;
    },
  };
}

/** A worker session of our own: registered, it takes tasks and never reports, so they stay handed out. */
async function fakeWorker(g: TestGrid, name: string, labels: string[] = []): Promise<void> {
  const session = g.zk.sessionId as string;
  await g.zk.ensurePath(g.layout.reportDir(name, session));
  const registration = encodeWorkerRegistration({
    v: 1,
    name,
    host: "test",
    pid: process.pid,
    capacity: 1000,
    labels,
    version: "0.0.0",
    startedAt: Date.now(),
    session,
  });
  await g.zk.create(g.layout.worker(name), registration, "ephemeral");
}

async function handedOut(g: TestGrid, worker: string): Promise<AssignedTask[]> {
  const got = await g.zk.get(g.layout.assign(worker)).catch(() => undefined);
  if (got === undefined) return [];
  const decoded = decodeAssignment(got.data);
  return decoded.ok ? decoded.value.tasks : [];
}

async function queue(g: TestGrid, tasks: TaskSpec[]): Promise<void> {
  await g.zk.ensurePath(g.layout.queue);
  const batch = encodeSubmitBatch({ v: 1, batchId: randomUUID(), submittedAt: Date.now(), tasks });
  await g.zk.create(`${g.layout.queue}/${g.layout.queueNodePrefix}`, batch, "persistent-sequential");
}

/** Writes the gate; resolves with the node's mtime (ZooKeeper's clock of the write). */
async function writeGate(g: TestGrid, gate: GridGate | Buffer): Promise<number> {
  const data = Buffer.isBuffer(gate) ? gate : encodeGridGate(gate);
  if ((await g.zk.exists(g.layout.gate)) === null) await g.zk.create(g.layout.gate, data, "persistent");
  else await g.zk.set(g.layout.gate, data);
  return Number((await g.zk.exists(g.layout.gate))?.mtime);
}

/** Every N+1 consecutive hand-outs span at least `perMs`: no window of `perMs` holds more than N. */
function widestBurst(times: number[], perMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j < sorted.length && (sorted[j] as number) < (sorted[i] as number) + perMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

const pause = { at: 1, by: "test" };

describe("the leader's gate", () => {
  it("a paused grid hands nothing out, even from a leader that starts paused; after resume the queued tasks go out", async () => {
    const g = await grid();
    await writeGate(g, { v: 1, paused: pause });
    const master = await g.master("m1");
    await master.leading();
    await fakeWorker(g, "w");
    await queue(g, [
      { id: "a", cmd: "true" },
      { id: "b", cmd: "true" },
      { id: "c", cmd: "true" },
    ]);
    await waitFor(() => master.stats()?.queued === 3 && master.stats()?.workers === 1, {
      timeoutMs: 20_000,
      message: "the leader to know the worker and the tasks",
    });
    // A step runs on every change; a few more changes make sure steps ran while paused.
    await queue(g, [{ id: "d", cmd: "true" }]);
    await waitFor(() => master.stats()?.queued === 4, { timeoutMs: 20_000 });
    expect(await handedOut(g, "w")).toEqual([]);

    const resumedAt = await writeGate(g, { v: 1 });
    await waitFor(async () => (await handedOut(g, "w")).length === 4, { timeoutMs: 20_000 });
    const tasks = await handedOut(g, "w");
    expect(tasks.map((t) => t.id).sort()).toEqual(["a", "b", "c", "d"]);
    for (const t of tasks) expect(t.assignedAt).toBeGreaterThanOrEqual(resumedAt);
    expect(g.logs.some((l) => l.msg.startsWith("grid resumed"))).toBe(true);
  });

  it("a label pause holds only the tasks carrying that label", async () => {
    const g = await grid();
    const master = await g.master("m1");
    await master.leading();
    await fakeWorker(g, "w", ["gpu", "cpu"]);
    await writeGate(g, { v: 1, pausedLabels: { gpu: pause } });
    await waitFor(() => g.logs.some((l) => l.msg.startsWith("label paused")), { timeoutMs: 20_000 });
    await queue(g, [
      { id: "gpu-only", cmd: "true", labels: ["gpu"] },
      { id: "cpu-only", cmd: "true", labels: ["cpu"] },
      { id: "plain", cmd: "true" },
      { id: "both", cmd: "true", labels: ["cpu", "gpu"] },
    ]);
    await waitFor(async () => (await handedOut(g, "w")).length === 2, { timeoutMs: 20_000 });
    expect(master.stats()?.queued).toBe(2);
    expect((await handedOut(g, "w")).map((t) => t.id).sort()).toEqual(["cpu-only", "plain"]);

    const resumedAt = await writeGate(g, { v: 1 });
    await waitFor(async () => (await handedOut(g, "w")).length === 4, { timeoutMs: 20_000 });
    for (const t of await handedOut(g, "w"))
      if (t.id === "gpu-only" || t.id === "both") expect(t.assignedAt).toBeGreaterThanOrEqual(resumedAt);
  });

  it("a new leader keeps the pause of the one before", async () => {
    const g = await grid();
    const m1 = await g.master("m1");
    await m1.leading();
    const m2 = await g.master("m2");
    await fakeWorker(g, "w");
    await writeGate(g, { v: 1, paused: pause });
    await waitFor(() => g.logs.some((l) => l.master === "m1" && l.msg.startsWith("grid paused")), {
      timeoutMs: 20_000,
    });
    await queue(g, [
      { id: "x", cmd: "true" },
      { id: "y", cmd: "true" },
    ]);
    await waitFor(() => m1.stats()?.queued === 2, { timeoutMs: 20_000 });
    await m1.stop();
    await m2.leading();
    await waitFor(() => m2.stats()?.queued === 2 && m2.stats()?.workers === 1, { timeoutMs: 20_000 });
    await queue(g, [{ id: "z", cmd: "true" }]);
    await waitFor(() => m2.stats()?.queued === 3, { timeoutMs: 20_000 });
    expect(await handedOut(g, "w")).toEqual([]);

    const resumedAt = await writeGate(g, { v: 1 });
    await waitFor(async () => (await handedOut(g, "w")).length === 3, { timeoutMs: 20_000 });
    for (const t of await handedOut(g, "w")) expect(t.assignedAt).toBeGreaterThanOrEqual(resumedAt);
  });

  it("a start limit allows at most N hand-outs in any interval; a task with two limited labels needs room under both", async () => {
    const g = await grid();
    const master = await g.master("m1");
    await master.leading();
    await fakeWorker(g, "w", ["a", "b"]);
    const perMs = 400;
    const setAt = await writeGate(g, {
      v: 1,
      limits: { a: { starts: 2, perMs, at: 1 }, b: { starts: 1, perMs, at: 1 } },
    });
    const tasks: TaskSpec[] = [
      ...Array.from({ length: 5 }, (_, i) => ({ id: `a${i}`, cmd: "true", labels: ["a"] })),
      ...Array.from({ length: 3 }, (_, i) => ({ id: `ab${i}`, cmd: "true", labels: ["a", "b"] })),
      { id: "free", cmd: "true" },
    ];
    await queue(g, tasks);
    await waitFor(async () => (await handedOut(g, "w")).length === tasks.length, {
      timeoutMs: 30_000,
      message: "every task handed out",
    });
    const out = await handedOut(g, "w");
    const times = (label: string) =>
      out.filter((t) => t.spec.labels?.includes(label)).map((t) => t.assignedAt);
    expect(times("a")).toHaveLength(8);
    expect(widestBurst(times("a"), perMs)).toBeLessThanOrEqual(2);
    expect(widestBurst(times("b"), perMs)).toBeLessThanOrEqual(1);
    // The first interval after the leader learned a limit counts as full.
    for (const t of [...times("a"), ...times("b")]) expect(t).toBeGreaterThanOrEqual(setAt + perMs);
    // An unlimited task does not wait for the limited ones.
    expect(out.find((t) => t.id === "free")?.assignedAt).toBeLessThan(Math.min(...times("a")));
  });

  it("a malformed gate, or a malformed part of one, is ignored with a logged reason and the leader stays up", async () => {
    const g = await grid();
    const master = await g.master("m1");
    await master.leading();
    await fakeWorker(g, "w", ["gpu"]);
    await writeGate(g, Buffer.from("{not json"));
    await waitFor(() => g.logs.some((l) => l.msg.startsWith("gate node unreadable")), { timeoutMs: 20_000 });
    // One bad entry is dropped; the good one holds.
    await writeGate(
      g,
      Buffer.from(
        JSON.stringify({
          v: 1,
          paused: true,
          pausedLabels: { gpu: { at: 1 }, "bad label": { at: 1 } },
          limits: { cpu: { starts: 0, perMs: 1000, at: 1 } },
          extra: 1,
        }),
      ),
    );
    await waitFor(() => g.logs.filter((l) => l.msg.startsWith("part of the gate node ignored")).length >= 4, {
      timeoutMs: 20_000,
    });
    const paths = g.logs.filter((l) => l.msg.startsWith("part of the gate")).map((l) => l.fields?.path);
    expect(paths).toEqual(
      expect.arrayContaining(["paused", "pausedLabels.bad label", "limits.cpu", "extra"]),
    );
    await queue(g, [
      { id: "plain", cmd: "true" },
      { id: "held", cmd: "true", labels: ["gpu"] },
    ]);
    await waitFor(async () => (await handedOut(g, "w")).length === 1, { timeoutMs: 20_000 });
    expect((await handedOut(g, "w")).map((t) => t.id)).toEqual(["plain"]);
    expect(master.role).toBe("leader");
  });
});
