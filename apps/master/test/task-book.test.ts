import { type AssignedTask, MAX_NODE_BYTES, type TaskSpec } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { TaskBook } from "../src/task-book.js";

const task = (id: string, extra: Partial<TaskSpec> = {}): TaskSpec => ({ id, cmd: "true", ...extra });

function assigned(book: TaskBook, worker: string): string[] {
  return book.assignmentFor(worker).map((t) => t.id);
}

describe("TaskBook scheduling", () => {
  it("hands out higher priority first and FIFO within a priority", () => {
    const book = new TaskBook();
    book.addQueueNode("q1", 1, [task("a"), task("b", { priority: 5 }), task("c")], 1);
    book.addQueueNode("q2", 2, [task("d", { priority: 5 }), task("e")], 2);
    book.setWorker("w1", "s1", 3, []);
    book.schedule(10);
    expect(assigned(book, "w1")).toEqual(["b", "d", "a"]);
    expect(book.counts()).toEqual({ queued: 2, delayed: 0, assigned: 3, running: 0 });
  });

  it("gives each task to the least loaded worker whose labels cover it", () => {
    const book = new TaskBook();
    book.setWorker("gpu", "s1", 4, ["gpu", "linux"]);
    book.setWorker("plain", "s2", 4, ["linux"]);
    book.addQueueNode("q1", 1, [task("g1", { labels: ["gpu"] }), task("x1"), task("x2"), task("x3")], 1);
    book.schedule(1);
    expect(assigned(book, "gpu")).toContain("g1");
    expect(assigned(book, "plain").length + assigned(book, "gpu").length).toBe(4);
    // Balanced: neither worker holds three of the four.
    expect(Math.abs(assigned(book, "plain").length - assigned(book, "gpu").length)).toBeLessThanOrEqual(1);
  });

  it("keeps a task queued while no live worker has its labels, without blocking others", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    book.addQueueNode("q1", 1, [task("needs-gpu", { labels: ["gpu"] }), task("any")], 1);
    book.schedule(1);
    expect(assigned(book, "w1")).toEqual(["any"]);
    expect(book.counts().queued).toBe(1);
    book.setWorker("g", "s9", 1, ["gpu"]);
    book.schedule(2);
    expect(assigned(book, "g")).toEqual(["needs-gpu"]);
  });

  it("never exceeds a worker's capacity", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    book.addQueueNode(
      "q1",
      1,
      ["a", "b", "c", "d"].map((id) => task(id)),
      1,
    );
    book.schedule(1);
    expect(assigned(book, "w1")).toHaveLength(2);
    const a = book.assignmentFor("w1")[0];
    expect(a?.attempt).toBe(1);
    book.applyUpdate("w1", "s1", { id: a?.id ?? "", attempt: 1, state: "succeeded", at: 5, exitCode: 0 });
    book.schedule(6);
    expect(assigned(book, "w1")).toHaveLength(2);
    expect(book.counts().queued).toBe(1);
  });

  it("keeps each worker's assignment under MAX_NODE_BYTES, and its JSON is the hand-outs as given", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 100, []);
    book.setWorker("w2", "s2", 100, []);
    const big = Array.from({ length: 40 }, (_, i) => task(`big${i}`, { cmd: "x".repeat(60_000) }));
    book.addQueueNode("q1", 1, big, 1);
    book.schedule(7);
    const counts = ["w1", "w2"].map((w) => {
      const json = book.assignmentJson(w);
      expect(Buffer.byteLength(json) + 512).toBeLessThanOrEqual(MAX_NODE_BYTES);
      const tasks = JSON.parse(json) as AssignedTask[];
      expect(tasks).toEqual(book.assignmentFor(w));
      for (const t of tasks) expect(t).toMatchObject({ attempt: 1, assignedAt: 7, submittedAt: 1 });
      return tasks.length;
    });
    // 15 of these fit in one node: 30 are out, the other 10 wait for room.
    expect(counts).toEqual([15, 15]);
    expect(book.counts()).toEqual({ queued: 10, delayed: 0, assigned: 30, running: 0 });

    // Room made by a finished task goes to the next waiting one, on the worker that has it.
    const done = book.assignmentFor("w2")[0];
    book.applyUpdate("w2", "s2", { id: done?.id ?? "", attempt: 1, state: "succeeded", at: 8, exitCode: 0 });
    book.schedule(9);
    expect(book.assignmentFor("w2").map((t) => t.id)).toContain("big30");
    expect(book.counts()).toEqual({ queued: 9, delayed: 0, assigned: 30, running: 0 });
  });

  it("drops a task whose id is already known, so submitting is idempotent", () => {
    const book = new TaskBook();
    expect(book.addQueueNode("q1", 1, [task("same")], 1)).toEqual(["same"]);
    expect(book.addQueueNode("q2", 2, [task("same", { cmd: "echo other" })], 2)).toEqual([]);
    expect(book.drainedQueueNodes.has("q2")).toBe(true);
    book.markFinished("same");
    expect(book.addQueueNode("q3", 3, [task("same")], 3)).toEqual([]);
  });

  it("forgets a finished id once its result node is pruned (memory bounded by the kept nodes)", () => {
    const book = new TaskBook();
    book.addQueueNode("q1", 1, [task("done"), task("live")], 1);
    book.markFinished("done");
    book.forgetFinished(["done", "live"]);
    expect(book.finished.size).toBe(0);
    expect(book.isKnown("live")).toBe(true);
    // Submitted again after its result is gone: it runs again, as after a takeover.
    expect(book.addQueueNode("q2", 2, [task("done")], 2)).toEqual(["done"]);
  });

  it("marks a queue node drained once all its tasks are assigned", () => {
    const book = new TaskBook();
    book.addQueueNode("q1", 1, [task("a"), task("b")], 1);
    book.setWorker("w1", "s1", 1, []);
    book.schedule(1);
    expect(book.drainedQueueNodes.has("q1")).toBe(false);
    book.setWorker("w2", "s2", 1, []);
    book.schedule(2);
    expect(book.drainedQueueNodes.has("q1")).toBe(true);
  });
});

describe("TaskBook failures", () => {
  it("hands a lost worker's task out again with the next attempt number", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("t")], 1);
    book.schedule(1);
    book.applyUpdate("w1", "s1", { id: "t", attempt: 1, state: "running", at: 2, startedAt: 2 });
    book.removeWorker("w1");
    expect(book.loseSession("w1", "s1")).toEqual([]);
    const homeless = book.takeHomeless();
    expect(homeless.map((e) => e.id)).toEqual(["t"]);
    book.rehome("q9", homeless);
    book.setWorker("w2", "s2", 1, []);
    book.schedule(3);
    expect(book.assignmentFor("w2")).toMatchObject([{ id: "t", attempt: 2 }]);
    expect(book.drainedQueueNodes.has("q9")).toBe(true);
  });

  it("names each session that comes to hold a task once, and again only after it held none", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    book.setWorker("w2", "s2", 2, []);
    book.addQueueNode("q1", 1, [task("a"), task("b"), task("c")], 1);
    book.schedule(1);
    expect(book.takeNewHolders().sort((x, y) => x.worker.localeCompare(y.worker))).toEqual([
      { worker: "w1", session: "s1" },
      { worker: "w2", session: "s2" },
    ]);
    // Taken: a session that keeps holding tasks, or takes more, is not named again.
    book.addQueueNode("q2", 2, [task("d")], 2);
    book.schedule(2);
    expect(book.takeNewHolders()).toEqual([]);
    // w2 ends every task it held; its next task makes it a holder again.
    const w2 = book.assignmentFor("w2").map((t) => t.id);
    for (const id of w2)
      book.applyUpdate("w2", "s2", { id, attempt: 1, state: "succeeded", at: 3, exitCode: 0 });
    expect(book.holdingSessions()).toEqual([{ worker: "w1", session: "s1" }]);
    book.addQueueNode("q3", 3, [task("e")], 3);
    book.schedule(4);
    expect(book.takeNewHolders()).toEqual([{ worker: "w2", session: "s2" }]);
    // A direct task held by a session that is not registered names it too.
    book.addDirect("w9", "s9", task("f"), 5, 5, { path: "/x", version: 0 });
    expect(book.takeNewHolders()).toEqual([{ worker: "w9", session: "s9" }]);
  });

  it("with many workers, fills none past its capacity, spreads to idle ones first, and keeps the rest queued in order once all are full", () => {
    const book = new TaskBook();
    for (let w = 0; w < 50; w++) book.setWorker(`w${w}`, `s${w}`, 2, w % 2 === 0 ? ["even"] : []);
    const specs = Array.from({ length: 130 }, (_, i) => task(`t${i}`, i < 5 ? { labels: ["even"] } : {}));
    book.addQueueNode("q1", 1, specs, 1);
    book.schedule(1);
    const loads = Array.from({ length: 50 }, (_, w) => assigned(book, `w${w}`).length);
    expect(loads.every((n) => n === 2)).toBe(true);
    // The first 50 went one to each worker (the labelled ones to even workers), before any got a second.
    for (let i = 0; i < 5; i++) expect(book.tasks.get(`t${i}`)?.worker).toMatch(/^w\d*[02468]$/);
    const firstRound = new Set(specs.slice(0, 50).map((t) => book.tasks.get(t.id)?.worker));
    expect(firstRound.size).toBe(50);
    expect(book.counts().queued).toBe(30);
    // A freed slot takes the oldest queued task.
    book.applyUpdate("w7", "s7", {
      id: assigned(book, "w7")[0] as string,
      attempt: 1,
      state: "succeeded",
      at: 2,
      exitCode: 0,
    });
    book.schedule(3);
    expect(assigned(book, "w7")).toContain("t100");
    expect(book.counts().queued).toBe(29);
  });

  it("fails a task once its worker was lost maxAttempts times", () => {
    const book = new TaskBook();
    book.addQueueNode("q1", 1, [task("t", { maxAttempts: 2 })], 1);
    for (const [w, s] of [
      ["w1", "s1"],
      ["w2", "s2"],
    ] as const) {
      book.setWorker(w, s, 1, []);
      book.schedule(1);
      book.removeWorker(w);
      const finals = book.loseSession(w, s);
      if (s === "s2") {
        expect(finals).toHaveLength(1);
        expect(finals[0]).toMatchObject({ id: "t", state: "failed", attempt: 2 });
        expect(finals[0]?.reason).toContain("worker lost after 2 attempts");
      } else {
        expect(finals).toEqual([]);
      }
    }
    expect(book.isKnown("t")).toBe(true);
    expect(book.tasks.has("t")).toBe(false);
  });

  it("keeps the attempt of a task handed back before it started", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("t")], 1);
    book.schedule(1);
    book.applyUpdate("w1", "s1", { id: "t", attempt: 1, state: "returned", at: 2 });
    book.setWorker("w2", "s2", 1, []);
    book.removeWorker("w1");
    book.schedule(3);
    expect(book.assignmentFor("w2")).toMatchObject([{ id: "t", attempt: 1 }]);
  });

  it("a draining session gets no new task, and a task its stop cut short keeps its attempt", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    book.addQueueNode("q1", 1, [task("t", { maxAttempts: 1 })], 1);
    book.schedule(1);
    book.applyUpdate("w1", "s1", { id: "t", attempt: 1, state: "running", at: 2, startedAt: 2 });
    book.markDraining("w1", "s1");
    book.applyUpdate("w1", "s1", { id: "t", attempt: 1, state: "returned", at: 3, startedAt: 2 });
    book.schedule(4);
    expect(assigned(book, "w1")).toEqual([]);
    expect(book.counts().queued).toBe(1);
    book.setWorker("w2", "s2", 1, []);
    book.schedule(5);
    expect(book.assignmentFor("w2")).toMatchObject([{ id: "t", attempt: 1 }]);
  });

  it("a stopping session lost while it holds a task it never started does not spend that attempt", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    book.addQueueNode("q1", 1, [task("late", { maxAttempts: 1 }), task("ran", { maxAttempts: 1 })], 1);
    book.schedule(1);
    book.applyUpdate("w1", "s1", { id: "ran", attempt: 1, state: "running", at: 2, startedAt: 2 });
    book.markDraining("w1", "s1");
    book.removeWorker("w1");
    const finals = book.loseSession("w1", "s1");
    // The one it ran was lost mid-run: that used its only attempt. The other never reached it.
    expect(finals.map((f) => [f.id, f.state])).toEqual([["ran", "failed"]]);
    book.setWorker("w2", "s2", 1, []);
    book.schedule(3);
    expect(book.assignmentFor("w2")).toMatchObject([{ id: "late", attempt: 1 }]);
    expect(book.isDraining("w1", "s1")).toBe(false);
  });

  it("ignores a report from a session that no longer holds the task", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("t")], 1);
    book.schedule(1);
    book.removeWorker("w1");
    book.loseSession("w1", "s1");
    book.setWorker("w1", "s2", 1, []);
    book.schedule(2);
    expect(
      book.applyUpdate("w1", "s1", { id: "t", attempt: 1, state: "succeeded", at: 3, exitCode: 0 }),
    ).toBeUndefined();
    const final = book.applyUpdate("w1", "s2", {
      id: "t",
      attempt: 2,
      state: "succeeded",
      at: 4,
      exitCode: 0,
    });
    expect(final).toMatchObject({ id: "t", state: "succeeded", attempt: 2, worker: "w1", exitCode: 0 });
  });
});

describe("TaskBook direct tasks", () => {
  const node = (id: string) => ({ path: `/g/inbox/w1@s1/${id}`, version: 0 });

  it("counts a direct task against its worker's capacity, outside its assignment", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 2, []);
    expect(book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"))).toBe(true);
    book.addQueueNode("q1", 1, [task("a"), task("b")], 1);
    book.schedule(10);
    expect(assigned(book, "w1")).toEqual(["a"]);
    expect(book.counts()).toEqual({ queued: 1, delayed: 0, assigned: 2, running: 0 });
  });

  it("drops a direct task under an id the grid knows", () => {
    const book = new TaskBook();
    book.addQueueNode("q1", 1, [task("a")], 1);
    expect(book.addDirect("w1", "s1", task("a"), 1, 2, node("a"))).toBe(false);
    book.markFinished("x");
    expect(book.addDirect("w1", "s1", task("x"), 1, 2, node("x"))).toBe(false);
  });

  it("a direct task read before its worker's registration still takes that worker's capacity", () => {
    const book = new TaskBook();
    book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"));
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("a")], 1);
    book.schedule(10);
    expect(assigned(book, "w1")).toEqual([]);
  });

  it("a declined direct task is queued with its attempt unused, and its node is no longer its record", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"));
    expect(book.applyUpdate("w1", "s1", { id: "d1", attempt: 1, state: "returned", at: 3 })).toBeUndefined();
    expect(book.tasks.get("d1")).toMatchObject({ state: "queued", attemptsUsed: 0 });
    expect(book.tasks.get("d1")?.direct).toBeUndefined();
    expect(book.takeHomeless().map((e) => e.id)).toEqual(["d1"]);
  });

  it("a lost session's direct task is handed out again as attempt 2, or fails past maxAttempts", () => {
    const book = new TaskBook();
    book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"));
    book.addDirect("w1", "s1", task("d2", { maxAttempts: 1 }), 1, 2, node("d2"));
    const finals = book.loseSession("w1", "s1");
    expect(finals.map((s) => [s.id, s.state, s.attempt])).toEqual([["d2", "failed", 1]]);
    book.setWorker("w2", "s2", 4, []);
    book.schedule(10);
    expect(book.assignmentFor("w2")).toMatchObject([{ id: "d1", attempt: 2 }]);
  });

  it("cancelling a direct task asks for its node's deletion; a deletion before any answer ends it cancelled", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"));
    expect(book.cancel("d1", 5)).toEqual({ direct: node("d1") });
    expect(book.cancel("d1", 6)).toEqual({});
    expect(book.cancelledDirect("d1", 7)).toMatchObject({
      id: "d1",
      state: "cancelled",
      attempt: 1,
      worker: "w1",
    });
    expect(book.isKnown("d1")).toBe(true);
    expect(book.tasks.has("d1")).toBe(false);
  });

  it("a direct task answered after a cancel was asked keeps its answer", () => {
    const book = new TaskBook();
    book.setWorker("w1", "s1", 1, []);
    book.addDirect("w1", "s1", task("d1"), 1, 2, node("d1"));
    book.cancel("d1", 5);
    const status = book.applyUpdate("w1", "s1", {
      id: "d1",
      attempt: 1,
      state: "succeeded",
      at: 6,
      exitCode: 0,
    });
    expect(status).toMatchObject({ state: "succeeded", exitCode: 0 });
  });
});
