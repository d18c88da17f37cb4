import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { startMaster } from "@zkgrid/master";
import {
  decodeSubmitBatch,
  encodeCancelRequest,
  type GridLayout,
  gridLayout,
  inboxNamedBatch,
  inboxNodeId,
  type TaskStatus,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { silentLogger, startWorker, type Worker, type WorkerEvent, type WorkerOptions } from "@zkgrid/worker";
import { describe, expect, it } from "vitest";
import { connectGrid, type GridClient } from "../src/index.js";
import { useLiveGrid } from "./live-grid.js";
import { connectString, randomRoot } from "./helpers.js";

const live = useLiveGrid("zkgrid-direct-");
const { masters, workers, grids } = live;

/** A worker's events, recorded from its start. */
interface Watched {
  worker: Worker;
  events: WorkerEvent[];
  /** Ids listed by any assignment the worker read. */
  assigned(): Set<string>;
  /** The updates the worker reported for `id`, in order. */
  updates(id: string): Array<Extract<WorkerEvent, { type: "update" }>["update"]>;
}

/** A grid under a fresh root: a leading master, in this process, and a client to submit with. */
async function startGrid(): Promise<{ root: string; layout: GridLayout; grid: GridClient; cwd: string }> {
  const root = randomRoot();
  const master = await startMaster({
    name: "m1",
    connectString: connectString(),
    root,
    sessionTimeoutMs: 4_000,
    logger: () => {},
  });
  masters.push(master);
  await master.leading();
  const grid = await connectGrid({ connectString: connectString(), root });
  grids.push(grid);
  const cwd = await mkdtemp(join(live.scratch, "grid-"));
  return { root, layout: gridLayout(root), grid, cwd };
}

/** Starts an in-process worker on the grid under `root` and records its events. */
async function worker(
  root: string,
  cwd: string,
  name: string,
  options: Partial<WorkerOptions> = {},
): Promise<Watched> {
  const events: WorkerEvent[] = [];
  const started = await startWorker({
    name,
    connectString: connectString(),
    root,
    cwd,
    sessionTimeoutMs: 4_000,
    concurrency: 2,
    logger: silentLogger,
    ...options,
  });
  workers.push(started);
  started.on((event) => events.push(event));
  return {
    worker: started,
    events,
    assigned: () => new Set(events.flatMap((e) => (e.type === "assignment" ? e.tasks.map((t) => t.id) : []))),
    updates: (id) => events.flatMap((e) => (e.type === "update" && e.update.id === id ? [e.update] : [])),
  };
}

/** How many times a child was created or deleted under `path` (-1 while it does not exist). */
async function childChanges(path: string): Promise<number> {
  return (await live.zk.exists(path))?.cversion ?? -1;
}

function inboxOf(layout: GridLayout, w: Watched): string {
  return layout.inboxDir(w.worker.name, w.worker.sessionId as string);
}

function only(results: Map<string, TaskStatus>): TaskStatus {
  expect(results.size).toBe(1);
  return [...results.values()][0] as TaskStatus;
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe("GridClient and direct tasks", () => {
  it("a lone task without an id runs from its worker's inbox, never queued nor assigned, and resolves with the status the leader records", async () => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1");
    const inboxBefore = await childChanges(inboxOf(layout, w1));
    const queueBefore = await childChanges(layout.queue);

    const status = only(await grid.submitAndWait({ cmd: "echo direct" }));
    expect(status).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1", exitCode: 0 });
    expect(w1.updates(status.id).at(-1)).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(w1.assigned().has(status.id)).toBe(false);
    expect(await childChanges(inboxOf(layout, w1))).toBeGreaterThan(inboxBefore);
    expect(await childChanges(layout.queue)).toBe(queueBefore);

    const recorded = await waitFor(() => grid.status(status.id), {
      timeoutMs: 30_000,
      message: "the leader to record the direct task's result",
    });
    expect(recorded).toEqual(status);
  });

  it.each([
    // Each sleeps first, so that the node stays unanswered (version 0) while the test reads it.
    ["a small lone task rides in its node's name, with no data", "sleep 0.5; echo small", "in its name"],
    [
      "a lone task over 384 bytes rides in its node's data",
      `sleep 0.5; echo ${"x".repeat(400)}`,
      "in its data",
    ],
  ] as const)("%s, and runs from the inbox", async (_what, cmd, carried) => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1");
    const seen: Array<{ name: string; data: Buffer }> = [];
    const inbox = inboxOf(layout, w1);
    const watch = live.zk.watchChildren(inbox);
    const listed = (async () => {
      for await (const change of watch)
        for (const name of change.added) {
          const got = await live.zk.get(`${inbox}/${name}`).catch(() => undefined);
          if (got !== undefined && got.stat.version === 0) seen.push({ name, data: got.data });
        }
    })();
    try {
      await waitFor(async () => (await childChanges(inbox)) >= 0);
      const status = only(await grid.submitAndWait({ cmd }));
      expect(status).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
      expect(w1.assigned().has(status.id)).toBe(false);
      const node = await waitFor(() => seen.find((n) => inboxNodeId(n.name) === status.id), {
        timeoutMs: 10_000,
        message: "the test's watch to have read the lone task's node",
      });
      const batch = inboxNamedBatch(node.name);
      if (carried === "in its name") {
        expect(node.data.length).toBe(0);
        expect(batch).toBeInstanceOf(Buffer);
        const decoded = decodeSubmitBatch(batch as Buffer);
        expect(decoded.ok && decoded.tasks[0]?.ok && decoded.tasks[0].task).toMatchObject({
          id: status.id,
          cmd,
        });
      } else {
        expect(node.name).toBe(status.id);
        expect(batch).toBeUndefined();
        const decoded = decodeSubmitBatch(node.data);
        expect(decoded.ok && decoded.tasks[0]?.ok && decoded.tasks[0].task).toMatchObject({
          id: status.id,
          cmd,
        });
      }
    } finally {
      watch.stop();
      await listed.catch(() => {});
    }
  });

  it("a task with its own id, two tasks in one call and two submits in one tick go through the queue, not an inbox", async () => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1");
    const inboxBefore = await childChanges(inboxOf(layout, w1));

    const chosen = only(await grid.submitAndWait({ id: "chosen-1", cmd: "echo chosen" }));
    const pair = await grid.submitAndWait([{ cmd: "echo a" }, { cmd: "echo b" }]);
    const tick = await Promise.all([grid.submit({ cmd: "echo c" }), grid.submit({ cmd: "echo d" })]);
    const ticked = await grid.wait(tick.flat());

    const all = [chosen, ...pair.values(), ...ticked.values()];
    expect(all).toHaveLength(5);
    for (const status of all) {
      expect(status).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
      expect(w1.assigned().has(status.id)).toBe(true);
    }
    expect(await childChanges(inboxOf(layout, w1))).toBe(inboxBefore);
  });

  it("a lone task its only worker has no slot for is declined, queued by the leader and still succeeds as attempt 1", async () => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1", { concurrency: 1 });
    const release = join(cwd, "release");
    const [busy] = await grid.submit({ cmd: `while [ ! -e ${release} ]; do sleep 0.05; done` });
    await waitFor(() => w1.worker.running === 1, { timeoutMs: 30_000, message: "the busy task to start" });
    const inboxBefore = await childChanges(inboxOf(layout, w1));

    const [later] = await grid.submit({ cmd: "echo later" });
    const waiting = grid.wait([busy as string, later as string]);
    await waitFor(() => w1.updates(later as string).some((u) => u.state === "returned"), {
      timeoutMs: 30_000,
      message: "w1 to decline the lone task",
    });
    expect(await childChanges(inboxOf(layout, w1))).toBeGreaterThan(inboxBefore);
    writeFileSync(release, "");

    const results = await waiting;
    expect(results.get(busy as string)).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
    expect(results.get(later as string)).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
    expect(w1.updates(later as string)[0]).toMatchObject({ state: "returned", attempt: 1 });
    expect(w1.assigned().has(later as string)).toBe(true);
    expect(await grid.status(later as string)).toEqual(results.get(later as string));
  });

  it("a lone task needing a label no worker has is queued, and runs once a worker with that label starts", async () => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1");
    const inboxBefore = await childChanges(inboxOf(layout, w1));

    const [id] = await grid.submit({ cmd: "echo gpu", labels: ["gpu"] });
    const waiting = grid.wait(id as string);
    expect(await childChanges(inboxOf(layout, w1))).toBe(inboxBefore);
    const w2 = await worker(root, cwd, "w2", { labels: ["gpu"] });

    expect(only(await waiting)).toMatchObject({ id, state: "succeeded", attempt: 1, worker: "w2" });
    expect(w2.assigned().has(id as string)).toBe(true);
    expect(w1.updates(id as string)).toEqual([]);
    expect(await childChanges(inboxOf(layout, w1))).toBe(inboxBefore);
  });

  it("a cancel made right after a lone task is submitted ends it cancelled, and its process is gone", async () => {
    const { root, layout, grid, cwd } = await startGrid();
    const w1 = await worker(root, cwd, "w1");
    const inboxBefore = await childChanges(inboxOf(layout, w1));

    const [id] = await grid.submit({ cmd: "echo $$ > task.pid; exec sleep 30" });
    const waiting = grid.wait(id as string);
    await live.zk.ensurePath(layout.cancel);
    await live.zk.createProtected(
      `${layout.cancel}/${layout.cancelNodePrefix}`,
      encodeCancelRequest({ v: 1, ids: [id as string], requestedAt: Date.now(), by: "test" }),
      "persistent-sequential",
    );

    expect(only(await waiting)).toMatchObject({ id, state: "cancelled", attempt: 1 });
    expect(await childChanges(inboxOf(layout, w1))).toBeGreaterThan(inboxBefore);
    expect(w1.assigned().has(id as string)).toBe(false);
    await waitFor(() => w1.worker.running === 0, {
      timeoutMs: 30_000,
      message: "w1 to have nothing running",
    });
    // The worker may have started it before the cancel arrived, or not at all.
    const pidFile = join(cwd, "w1", id as string, "task.pid");
    if (existsSync(pidFile)) {
      const pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
      await waitFor(() => !isAlive(pid), {
        timeoutMs: 30_000,
        message: "the cancelled task's process to end",
      });
    }
    await waitFor(
      async () => !(await live.zk.getChildren(inboxOf(layout, w1))).some((name) => inboxNodeId(name) === id),
      {
        timeoutMs: 30_000,
        message: "the direct task's node to be deleted",
      },
    );
    expect(await grid.status(id as string)).toMatchObject({ state: "cancelled" });
  });

  it("resultBaseline() stays below the sequence of every result node made after it, also after result nodes were pruned", async () => {
    const { root, layout, cwd } = await startGrid();
    await worker(root, cwd, "w1");
    // Its results go to R/results, where the probes below are made.
    const grid = await connectGrid({ connectString: connectString(), root, replyAddress: false });
    grids.push(grid);
    await grid.submitAndWait({ id: "earlier", cmd: "echo earlier" });
    // Deleted as the leader prunes old results: the parent's cversion counts each delete too.
    for (const name of await live.zk.getChildren(layout.results))
      await live.zk.delete(`${layout.results}/${name}`);
    for (let i = 0; i < 3; i++)
      await live.zk.delete(await live.zk.create(`${layout.results}/probe-`, "", "persistent-sequential"));

    const baseline = await grid.resultBaseline();
    const made = await live.zk.create(`${layout.results}/probe-`, "", "persistent-sequential");
    await live.zk.delete(made);
    expect(Number.parseInt(made.slice(-10), 10)).toBeGreaterThan(baseline);

    const since = await grid.resultBaseline();
    const [id] = await grid.submit({ id: "queued-1", cmd: "echo queued" });
    expect(only(await grid.wait(id as string, { since }))).toMatchObject({ id, state: "succeeded" });

    // A new client has no listing to take its baseline from: it reads the stat.
    const fresh = await connectGrid({ connectString: connectString(), root });
    grids.push(fresh);
    const pair = await fresh.submitAndWait([{ cmd: "echo a" }, { cmd: "echo b" }]);
    expect([...pair.values()].map((s) => s.state)).toEqual(["succeeded", "succeeded"]);
  });
});
