import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Master, startMaster } from "@zkgrid/master";
import { waitFor } from "@zkgrid/testing";
import { silentLogger, startWorker, type Worker } from "@zkgrid/worker";
import { afterEach, describe, expect, it } from "vitest";
import { type GridObserver, type GridSnapshot, ObserverClosedError, observeGrid } from "../src/index.js";
import { assigned, connectString, finalStatus, ProtocolWriter } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function writer(): Promise<ProtocolWriter> {
  const w = await ProtocolWriter.create();
  cleanups.push(() => w.close());
  return w;
}

async function observe(root: string): Promise<GridObserver> {
  const observer = await observeGrid({ connectString: connectString(), root });
  cleanups.push(() => observer.close());
  return observer;
}

/** Polls the observer's snapshot until `check` holds; returns that snapshot. */
function until(
  observer: GridObserver,
  check: (s: GridSnapshot) => boolean,
  message: string,
): Promise<GridSnapshot> {
  return waitFor(
    () => {
      const s = observer.snapshot();
      return check(s) ? s : undefined;
    },
    { timeoutMs: 20_000, message },
  );
}

describe("observeGrid against nodes written as the protocol says", () => {
  it("shows the leader first among the masters, each worker's load, and queue depth by priority", async () => {
    const g = await writer();
    await g.dirs();
    const first = await g.master("m1");
    await g.master("m2");
    const w1 = await g.worker("w1", 4, ["gpu"]);
    await g.worker("w2", 2);
    await g.assign("w1", w1.session, [assigned("a1"), assigned("a2")]);
    await g.queue([
      { id: "q-low", cmd: "true", priority: -5 },
      { id: "q-high", cmd: "true", priority: 7 },
      { id: "q-mid", cmd: "true" },
    ]);
    await g.queue([{ id: "q-high-2", cmd: "true", priority: 7 }]);

    const observer = await observe(g.root);
    const s = observer.snapshot();
    expect(s.masters.map((m) => [m.name, m.leader])).toEqual([
      ["m1", true],
      ["m2", false],
    ]);
    expect(s.leader).toMatchObject({
      name: "m1",
      node: first.node,
      host: "host-a",
      pid: 4242,
      httpPort: 9100,
    });
    expect(s.workers).toEqual([
      expect.objectContaining({
        name: "w1",
        session: w1.session,
        capacity: 4,
        labels: ["gpu"],
        assigned: 2,
        load: 0.5,
      }),
      expect.objectContaining({ name: "w2", capacity: 2, assigned: 0, load: 0 }),
    ]);
    expect(s.queue).toMatchObject({
      depth: 4,
      nodes: 2,
      byPriority: [
        { priority: 7, count: 2 },
        { priority: 0, count: 1 },
        { priority: -5, count: 1 },
      ],
    });
    expect(s.counts).toMatchObject({ queued: 4, assigned: 2, running: 0, succeeded: 0 });
    expect(s.active.map((t) => [t.id, t.state, t.worker])).toEqual(
      expect.arrayContaining([
        ["a1", "assigned", "w1"],
        ["a2", "assigned", "w1"],
      ]),
    );
    expect(observer.tasks({ state: "queued" }).map((t) => t.id)).toEqual([
      "q-high",
      "q-high-2",
      "q-mid",
      "q-low",
    ]);

    // The leader's candidate goes: the next one leads.
    await first.client.close();
    const after = await until(observer, (x) => x.leader?.name === "m2", "m2 leading");
    expect(after.masters).toHaveLength(1);
  });

  it("counts each task once when results appear (a repeated status is ignored) and fills the throughput series", async () => {
    const g = await writer();
    await g.dirs();
    await g.results([finalStatus("old-1", "succeeded")]);
    const observer = await observe(g.root);
    // What was there before the start is history: in recent, not in the counters.
    expect(observer.snapshot().recent.map((t) => t.id)).toEqual(["old-1"]);
    expect(observer.snapshot().counts.succeeded).toBe(0);

    const seen: GridSnapshot[] = [];
    const controller = new AbortController();
    const consumed = (async () => {
      for await (const s of observer.changes({ signal: controller.signal })) {
        seen.push(s);
        if (s.counts.succeeded + s.counts.failed === 3) controller.abort();
      }
    })();
    await g.results([
      finalStatus("t1", "succeeded"),
      finalStatus("t2", "failed", { exitCode: 3, stderrTail: "boom\n" }),
    ]);
    await g.results([finalStatus("t1", "succeeded"), finalStatus("t3", "succeeded")]);
    await consumed;

    const last = seen.at(-1)!;
    expect(last.counts).toMatchObject({ succeeded: 2, failed: 1 });
    expect(last.recent.map((t) => t.id)).toEqual(["t3", "t2", "t1", "old-1"]);
    expect(last.recent[1]).toMatchObject({
      state: "failed",
      exitCode: 3,
      stderrTail: "boom\n",
      worker: "w1",
    });
    const buckets = last.throughput.buckets;
    expect(buckets).toHaveLength(120);
    expect(buckets.reduce((n, b) => n + b.finished, 0)).toBe(3);
    expect(buckets.reduce((n, b) => n + b.succeeded, 0)).toBe(2);
    expect(last.throughput.perSecond).toBeGreaterThan(0);
  });

  it("does not count as queued the tasks of a queue node that finished before the observer started", async () => {
    const g = await writer();
    await g.dirs();
    await g.queue([
      { id: "done-1", cmd: "true" },
      { id: "done-2", cmd: "true" },
      { id: "waiting", cmd: "true" },
    ]);
    await g.results([finalStatus("done-1", "succeeded")]);
    await g.results([finalStatus("done-2", "cancelled")]);
    const observer = await observe(g.root);
    expect(observer.snapshot().queue.depth).toBe(1);
    expect(observer.tasks({ state: "queued" }).map((t) => t.id)).toEqual(["waiting"]);
    expect(await observer.task("done-2")).toMatchObject({ state: "cancelled" });
  });

  it("task() finds a final status in any result node, an assigned or running task, and a queued one", async () => {
    const g = await writer();
    await g.dirs();
    // More results than `recent` keeps, so the oldest one is only found by reading the nodes.
    await g.results([finalStatus("ancient", "timed-out", { signal: "SIGKILL" })]);
    for (let i = 0; i < 3; i++) await g.results([finalStatus(`filler-${i}`, "succeeded", { worker: "w0" })]);
    const w = await g.worker("w1");
    await g.assign("w1", w.session, [
      assigned("held", 2, { priority: 3, meta: { owner: "me" } }),
      assigned("busy"),
    ]);
    await g.queue([{ id: "later", cmd: "sleep", args: ["1", "two words"], priority: -1, labels: ["gpu"] }]);
    await g.report("w1", w.session, [
      { id: "busy", attempt: 1, state: "running", at: Date.now(), startedAt: 1234 },
    ]);

    const observer = await observeGrid({ connectString: connectString(), root: g.root, recentLimit: 2 });
    cleanups.push(() => observer.close());
    expect(observer.snapshot().recent).toHaveLength(2);
    expect(await observer.task("ancient")).toMatchObject({
      id: "ancient",
      state: "timed-out",
      signal: "SIGKILL",
    });
    expect(await observer.task("held")).toMatchObject({
      state: "assigned",
      attempt: 2,
      worker: "w1",
      priority: 3,
      meta: { owner: "me" },
      command: "echo held",
    });
    expect(await observer.task("busy")).toMatchObject({ state: "running", startedAt: 1234 });
    expect(await observer.task("later")).toMatchObject({
      state: "queued",
      attempt: 0,
      priority: -1,
      command: 'sleep 1 "two words"',
      labels: ["gpu"],
    });
    expect(await observer.task("never-submitted")).toBeUndefined();
    expect(await observer.task("../bad id")).toBeUndefined();

    expect(
      observer
        .tasks({ worker: "w1" })
        .map((t) => t.id)
        .sort(),
    ).toEqual(["busy", "held"]);
    expect(observer.tasks({ worker: "w0" }).map((t) => t.id)).toEqual(["filler-2", "filler-1"]);
    expect(observer.tasks({ state: "running" }).map((t) => t.id)).toEqual(["busy"]);
    expect(observer.tasks({ limit: 1 })).toHaveLength(1);
    expect(observer.snapshot().workers[0]).toMatchObject({ assigned: 2, running: 1, load: 1 });
  });

  it("findTasks() answers many ids at once as task() answers each, leaving out the ids nobody knows", async () => {
    const g = await writer();
    await g.dirs();
    await g.results([
      finalStatus("ancient", "timed-out", { signal: "SIGKILL" }),
      finalStatus("twice", "failed"),
    ]);
    for (let i = 0; i < 3; i++) await g.results([finalStatus(`filler-${i}`, "succeeded")]);
    // A leader's repeated step: the newest node with an id is the one task() reports.
    await g.results([finalStatus("twice", "succeeded")]);
    const w = await g.worker("w1");
    await g.assign("w1", w.session, [assigned("held", 2)]);
    await g.queue([
      { id: "later", cmd: "true", labels: ["gpu"] },
      { id: "held", cmd: "true" },
      ...Array.from({ length: 500 }, (_, i) => ({ id: `many-${i}`, cmd: "true" })),
    ]);

    const observer = await observeGrid({ connectString: connectString(), root: g.root, recentLimit: 2 });
    cleanups.push(() => observer.close());
    const ids = [
      "ancient",
      "twice",
      "filler-2",
      "held",
      "later",
      "many-0",
      "many-499",
      "never-submitted",
      "../bad id",
    ];
    const found = await observer.findTasks([...ids, "later"]);
    expect([...found.keys()].sort()).toEqual(ids.filter((id) => !/never|bad/.test(id)).sort());
    for (const id of ids) expect(found.get(id)).toEqual(await observer.task(id));
    expect(found.get("twice")).toMatchObject({ state: "succeeded" });
    expect(found.get("held")).toMatchObject({ state: "assigned", attempt: 2 });
    expect(found.get("many-499")).toMatchObject({ state: "queued" });
  });

  it("writes nothing: observing a root that does not exist leaves it absent, and sees the grid once it appears", async () => {
    const g = await writer();
    const observer = await observe(g.root);
    expect(observer.snapshot()).toMatchObject({ masters: [], workers: [], queue: { depth: 0 }, recent: [] });
    expect(await g.zk.exists(g.root)).toBeNull();
    await g.dirs();
    await g.worker("late-worker");
    await until(observer, (s) => s.workers.some((w) => w.name === "late-worker"), "late worker");
  });

  it("reports undecodable nodes as problems instead of failing", async () => {
    const g = await writer();
    await g.dirs();
    await g.zk.create(`${g.layout.queue}/q`, '{"v":2}', "persistent-sequential");
    await g.zk.create(`${g.layout.results}/r`, "not json", "persistent-sequential");
    const w = await g.worker("w1", 2);
    const inbox = g.layout.inboxDir("w1", w.session);
    await g.zk.ensurePath(inbox);
    await g.zk.create(`${inbox}/junk`, "not json");
    // Another worker's answer, and a task under another id than its node's name.
    await g.answer(
      await g.direct("w1", w.session, { id: "stolen", cmd: "true" }),
      finalStatus("stolen", "succeeded", { worker: "w9" }),
    );
    await g.zk.create(
      `${inbox}/misnamed`,
      (await g.zk.get(await g.direct("w1", w.session, { id: "x", cmd: "true" }))).data,
    );
    await g.zk.ensurePath(`${g.layout.inbox}/not-a-session/t1`);
    const observer = await observe(g.root);
    const s = observer.snapshot();
    expect(s.queue.depth).toBe(0);
    expect(s.problems.some((p) => p.startsWith("queue node q"))).toBe(true);
    expect(s.problems.some((p) => p.startsWith("result node r"))).toBe(true);
    const dir = `w1@${w.session}`;
    for (const node of ["junk", "stolen", "misnamed"])
      expect(s.problems.some((p) => p.startsWith(`inbox node ${dir}/${node}: `))).toBe(true);
    // Only the one valid direct task is held; the junk is neither held nor final.
    expect(s.active.map((t) => t.id)).toEqual(["x"]);
    expect(s.workers[0]).toMatchObject({ assigned: 1 });
    expect(s.recent).toEqual([]);
    expect(s.counts.succeeded).toBe(0);

    // Junk written while it runs is a problem too.
    await g.zk.set(`${inbox}/x`, "{");
    await until(
      observer,
      (x) => x.problems.some((p) => p.startsWith(`inbox node ${dir}/x: `)),
      "junk answer",
    );
    expect(observer.snapshot().active).toEqual([]);
  });

  it("shows a direct task in a worker's inbox as assigned to that worker and counts it in the worker's load", async () => {
    const g = await writer();
    await g.dirs();
    const w = await g.worker("w1", 2);
    await g.worker("w2", 2);
    const path = await g.direct("w1", w.session, { id: "d1", cmd: "sleep 5", meta: { by: "me" } }, 1_000);
    const ctime = (await g.zk.exists(path))!.ctime;

    const observer = await observe(g.root);
    const s = observer.snapshot();
    expect(s.workers.map((x) => [x.name, x.assigned, x.load])).toEqual([
      ["w1", 1, 0.5],
      ["w2", 0, 0],
    ]);
    expect(s.counts).toMatchObject({ assigned: 1, queued: 0 });
    const expected = {
      id: "d1",
      state: "assigned",
      attempt: 1,
      worker: "w1",
      submittedAt: 1_000,
      assignedAt: ctime,
      command: "sleep 5",
      meta: { by: "me" },
    };
    expect(s.active).toEqual([expect.objectContaining(expected)]);
    expect(await observer.task("d1")).toMatchObject(expected);
    expect(observer.tasks({ worker: "w1" }).map((t) => t.id)).toEqual(["d1"]);

    // Another direct task, put there while the observer runs, is seen too.
    await g.direct("w1", w.session, { id: "d2", cmd: "true" });
    const both = await until(observer, (x) => x.workers[0]?.assigned === 2, "second direct task");
    expect(both.workers[0]).toMatchObject({ name: "w1", load: 1 });
  });

  it("shows a direct task's answer as its final status at once, and counts it once when the leader records it", async () => {
    const g = await writer();
    await g.dirs();
    const w = await g.worker("w1", 2);
    const path = await g.direct("w1", w.session, { id: "d1", cmd: "echo hi" });
    const observer = await observe(g.root);
    expect(observer.snapshot().counts.assigned).toBe(1);

    const answer = finalStatus("d1", "succeeded", { worker: "w1", stdoutTail: "hi\n" });
    await g.answer(path, answer);
    const done = await until(observer, (x) => x.recent.some((t) => t.id === "d1"), "answer seen");
    expect(done.recent[0]).toMatchObject({ id: "d1", state: "succeeded", worker: "w1", stdoutTail: "hi\n" });
    expect(done.counts).toMatchObject({ succeeded: 1, assigned: 0 });
    expect(done.workers[0]).toMatchObject({ assigned: 0, load: 0 });
    expect(await observer.task("d1")).toMatchObject({ state: "succeeded", exitCode: 0 });

    // The leader copies the answer into R/results with another task's result, then deletes the node.
    await g.results([answer, finalStatus("other", "failed")]);
    await g.zk.delete(path);
    const recorded = await until(observer, (x) => x.recent.some((t) => t.id === "other"), "result seen");
    expect(recorded.recent.map((t) => t.id)).toEqual(["other", "d1"]);
    expect(recorded.counts).toMatchObject({ succeeded: 1, failed: 1 });
    expect(recorded.throughput.buckets.reduce((n, b) => n + b.finished, 0)).toBe(2);
    expect(await observer.task("d1")).toMatchObject({ state: "succeeded" });
  });

  it("counts an answer found at start unless the leader had already recorded it", async () => {
    const g = await writer();
    await g.dirs();
    const w = await g.worker("w1", 2);
    const recorded = finalStatus("old", "succeeded");
    await g.answer(await g.direct("w1", w.session, { id: "old", cmd: "true" }), recorded);
    await g.results([recorded]);
    await g.answer(await g.direct("w1", w.session, { id: "new", cmd: "true" }), finalStatus("new", "failed"));

    const observer = await observe(g.root);
    const s = observer.snapshot();
    expect(s.recent.map((t) => [t.id, t.state])).toEqual([
      ["new", "failed"],
      ["old", "succeeded"],
    ]);
    expect(s.counts).toMatchObject({ succeeded: 0, failed: 1, assigned: 0 });
  });

  it("shows a declined direct task as queued, and once its node goes, as wherever the task is then", async () => {
    const g = await writer();
    await g.dirs();
    const w = await g.worker("w1", 2);
    const path = await g.direct("w1", w.session, { id: "d1", cmd: "true", priority: 4 }, 2_000);
    const observer = await observe(g.root);
    expect(await observer.task("d1")).toMatchObject({ state: "assigned" });

    // Written back unchanged: declined.
    await g.answer(path, (await g.zk.get(path)).data);
    const declined = await until(observer, (x) => x.queue.depth === 1, "declined task queued");
    expect(declined.counts).toMatchObject({ queued: 1, assigned: 0 });
    expect(declined.workers[0]).toMatchObject({ assigned: 0 });
    expect(await observer.task("d1")).toMatchObject({
      state: "queued",
      attempt: 0,
      priority: 4,
      submittedAt: 2_000,
    });

    // The leader queues it again, deletes the node, then hands it out.
    await g.queue([{ id: "d1", cmd: "true", priority: 4 }]);
    await g.zk.delete(path);
    await until(observer, (x) => x.queue.nodes === 1, "queue node seen");
    expect(observer.snapshot().queue.depth).toBe(1);
    await g.assign("w1", w.session, [assigned("d1", 1, { priority: 4 })]);
    const handed = await until(observer, (x) => x.counts.assigned === 1, "assigned from the queue");
    expect(handed.queue.depth).toBe(0);
    expect(await observer.task("d1")).toMatchObject({ state: "assigned", worker: "w1" });
  });

  it("after close(), changes() ends and queries throw ObserverClosedError", async () => {
    const g = await writer();
    const observer = await observe(g.root);
    let sawFirst!: () => void;
    const first = new Promise<void>((resolve) => (sawFirst = resolve));
    const iterations = (async () => {
      let n = 0;
      for await (const _ of observer.changes()) {
        n++;
        sawFirst();
      }
      return n;
    })();
    await first;
    await observer.close();
    // The loop ended after the one snapshot it had (it did not hang, and nothing came after close).
    expect(await iterations).toBe(1);
    await expect(observer.task("x")).rejects.toBeInstanceOf(ObserverClosedError);
    expect(() => observer.tasks()).toThrow(ObserverClosedError);
  });
});

describe("observeGrid with a real master and worker", () => {
  it("sees the leader, the worker, and a task go from queued through assigned to succeeded", async () => {
    const g = await writer();
    const cwd = await mkdtemp(join(tmpdir(), "zkgrid-observer-"));
    cleanups.push(() => rm(cwd, { recursive: true, force: true }));
    const master: Master = await startMaster({
      name: "m1",
      connectString: connectString(),
      root: g.root,
      sessionTimeoutMs: 4_000,
    });
    cleanups.push(() => master.stop());
    await master.leading();
    const observer = await observe(g.root);
    expect(observer.snapshot().leader).toMatchObject({ name: "m1", leader: true });

    // No worker yet: the task waits in the queue.
    await g.queue([{ id: "real-1", cmd: "sleep 1; echo done from real-1" }]);
    await until(observer, (s) => s.queue.depth === 1, "queued task");
    expect(await observer.task("real-1")).toMatchObject({ state: "queued", attempt: 0 });

    const worker: Worker = await startWorker({
      name: "w1",
      connectString: connectString(),
      root: g.root,
      cwd,
      concurrency: 2,
      sessionTimeoutMs: 4_000,
      logger: silentLogger,
    });
    cleanups.push(() => worker.stop({ graceMs: 0 }));
    const held = await until(
      observer,
      (s) => s.active.some((t) => t.id === "real-1") || s.recent.some((t) => t.id === "real-1"),
      "task handed out",
    );
    expect(held.workers).toEqual([expect.objectContaining({ name: "w1", capacity: 2 })]);
    const done = await until(observer, (s) => s.recent.some((t) => t.id === "real-1"), "task finished");
    expect(done.recent.find((t) => t.id === "real-1")).toMatchObject({
      state: "succeeded",
      exitCode: 0,
      worker: "w1",
      attempt: 1,
      stdoutTail: "done from real-1\n",
    });
    expect(done.counts).toMatchObject({ succeeded: 1, queued: 0, assigned: 0, running: 0 });
    expect(done.workers[0]).toMatchObject({ assigned: 0, load: 0 });
  });
});
