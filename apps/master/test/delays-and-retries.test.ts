import { type RetryPolicy, retryDelayMs, type StatusUpdate, type TaskSpec } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { TaskBook } from "../src/task-book.js";

const task = (id: string, extra: Partial<TaskSpec> = {}): TaskSpec => ({ id, cmd: "true", ...extra });

/** A book whose clock the test moves, and whose jitter dice always roll `random`. */
function bookAt(start: number, random = 0.5) {
  const clock = { now: start };
  const book = new TaskBook({ now: () => clock.now, random: () => random });
  return { book, clock };
}

const ended = (
  id: string,
  attempt: number,
  state: StatusUpdate["state"],
  extra: Partial<StatusUpdate> = {},
) => ({ id, attempt, state, at: 0, startedAt: 0, finishedAt: 0, ...extra }) as StatusUpdate;

/** Hands out what is due at `now` to w1@s1; returns the assigned ids. */
function handOut(book: TaskBook, now: number): string[] {
  book.releaseDue(now);
  book.schedule(now);
  return book.assignmentFor("w1").map((t) => t.id);
}

describe("delayed tasks in the TaskBook", () => {
  it("holds a task whose runAt is ahead, and hands it out only once its time has come", () => {
    const { book, clock } = bookAt(1000);
    book.setWorker("w1", "s1", 4, []);
    book.addQueueNode("q1", 1, [task("later", { runAt: 5000 }), task("now")], 1000);
    expect(book.counts()).toMatchObject({ queued: 1, delayed: 1 });
    expect(book.nextDueAt()).toBe(5000);
    expect(handOut(book, 1000)).toEqual(["now"]);
    clock.now = 4999;
    expect(handOut(book, 4999)).toEqual(["now"]);
    clock.now = 5000;
    expect(handOut(book, 5000)).toEqual(["now", "later"]);
    expect(book.nextDueAt()).toBeUndefined();
  });

  it("keeps a delayed task's queue node until the task is handed out", () => {
    const { book } = bookAt(0);
    book.setWorker("w1", "s1", 4, []);
    book.addQueueNode("q1", 1, [task("a", { runAt: 100 }), task("b")], 0);
    handOut(book, 0);
    expect(book.drainedQueueNodes.has("q1")).toBe(false);
    handOut(book, 100);
    expect(book.drainedQueueNodes.has("q1")).toBe(true);
  });

  it("releases due tasks earliest first, and none early however many wait", () => {
    const { book } = bookAt(0);
    const specs = Array.from({ length: 500 }, (_, i) => task(`t${i}`, { runAt: 1 + ((i * 7919) % 1000) }));
    book.addQueueNode("q1", 1, specs, 0);
    expect(book.counts().delayed).toBe(500);
    let released = 0;
    for (let now = 0; now <= 1000; now += 50) {
      released += book.releaseDue(now);
      const due = specs.filter((s) => (s.runAt ?? 0) <= now).length;
      expect(released).toBe(due);
    }
  });

  it("cancels a delayed task at once: it ends cancelled and is never handed out", () => {
    const { book } = bookAt(0);
    book.setWorker("w1", "s1", 4, []);
    book.addQueueNode("q1", 1, [task("d", { runAt: 100 })], 0);
    const { status } = book.cancel("d", 10);
    expect(status).toMatchObject({ id: "d", state: "cancelled", attempt: 0 });
    expect(handOut(book, 200)).toEqual([]);
    expect(book.nextDueAt()).toBeUndefined();
    expect(book.drainedQueueNodes.has("q1")).toBe(true);
  });
});

describe("retries in the TaskBook", () => {
  const policy: RetryPolicy = { backoff: { type: "fixed", delayMs: 100 } };

  it("puts a failed attempt back, delayed by its backoff, and ends with every attempt in its history", () => {
    const { book, clock } = bookAt(1000);
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("r", { retry: policy })], 1000);
    expect(handOut(book, 1000)).toEqual(["r"]);
    expect(book.applyUpdate("w1", "s1", ended("r", 1, "failed", { exitCode: 1 }))).toBeUndefined();
    expect(book.tasks.get("r")).toMatchObject({ state: "delayed", dueAt: 1100, attemptsUsed: 1 });
    const homeless = book.takeHomeless();
    expect(homeless.map((e) => e.id)).toEqual(["r"]);
    book.rehome("q2", homeless);
    expect(handOut(book, 1099)).toEqual([]);
    clock.now = 1100;
    expect(book.assignmentFor("w1")).toEqual([]);
    book.releaseDue(1100);
    book.schedule(1100);
    expect(book.assignmentFor("w1")).toMatchObject([{ id: "r", attempt: 2, history: [{ attempt: 1 }] }]);
    book.applyUpdate("w1", "s1", ended("r", 2, "failed", { exitCode: 1 }));
    book.rehome("q3", book.takeHomeless());
    clock.now = 1200;
    handOut(book, 1200);
    const status = book.applyUpdate("w1", "s1", ended("r", 3, "succeeded", { exitCode: 0 }));
    expect(status).toMatchObject({ state: "succeeded", attempt: 3 });
    expect(status?.history?.map((a) => [a.attempt, a.outcome, a.exitCode, a.worker])).toEqual([
      [1, "failed", 1, "w1"],
      [2, "failed", 1, "w1"],
      [3, "succeeded", 0, "w1"],
    ]);
  });

  it("stops at maxAttempts: the last failure is final, with its history", () => {
    const { book, clock } = bookAt(0);
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("r", { retry: policy, maxAttempts: 2 })], 0);
    handOut(book, 0);
    book.applyUpdate("w1", "s1", ended("r", 1, "failed", { exitCode: 2 }));
    clock.now = 100;
    handOut(book, 100);
    const status = book.applyUpdate("w1", "s1", ended("r", 2, "failed", { exitCode: 2 }));
    expect(status).toMatchObject({ state: "failed", attempt: 2, exitCode: 2 });
    expect(status?.history).toHaveLength(2);
  });

  it("does not retry an exit code the policy refuses, nor a handler that refused (noRetry)", () => {
    const { book } = bookAt(0);
    book.setWorker("w1", "s1", 2, []);
    const refusing: RetryPolicy = { ...policy, noRetryExitCodes: [3] };
    book.addQueueNode("q1", 1, [task("code", { retry: refusing }), task("h", { retry: policy })], 0);
    handOut(book, 0);
    expect(book.applyUpdate("w1", "s1", ended("code", 1, "failed", { exitCode: 3 }))).toMatchObject({
      state: "failed",
    });
    expect(book.applyUpdate("w1", "s1", ended("h", 1, "failed", { noRetry: true }))).toMatchObject({
      state: "failed",
    });
  });

  it("retries timed-out only when the policy names it, and failed by default", () => {
    const { book } = bookAt(0);
    book.setWorker("w1", "s1", 3, []);
    book.addQueueNode(
      "q1",
      1,
      [
        task("default", { retry: policy }),
        task("both", { retry: { ...policy, on: ["failed", "timed-out"] } }),
        task("timeouts", { retry: { ...policy, on: ["timed-out"] } }),
      ],
      0,
    );
    handOut(book, 0);
    expect(book.applyUpdate("w1", "s1", ended("default", 1, "timed-out"))).toMatchObject({
      state: "timed-out",
    });
    expect(book.applyUpdate("w1", "s1", ended("both", 1, "timed-out"))).toBeUndefined();
    expect(book.applyUpdate("w1", "s1", ended("timeouts", 1, "failed"))).toMatchObject({ state: "failed" });
  });

  it("never retries a task without a policy: a failure stays final", () => {
    const { book } = bookAt(0);
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("plain")], 0);
    handOut(book, 0);
    const status = book.applyUpdate("w1", "s1", ended("plain", 1, "failed", { exitCode: 1 }));
    expect(status).toMatchObject({ state: "failed", attempt: 1 });
    expect(status?.history).toBeUndefined();
  });

  it("counts a lost worker's hand-out as an attempt in the same history", () => {
    const { book, clock } = bookAt(0);
    book.setWorker("w1", "s1", 1, []);
    book.addQueueNode("q1", 1, [task("r", { retry: policy, maxAttempts: 3 })], 0);
    handOut(book, 0);
    book.applyUpdate("w1", "s1", ended("r", 1, "failed", { exitCode: 1 }));
    clock.now = 100;
    handOut(book, 100);
    book.removeWorker("w1");
    expect(book.loseSession("w1", "s1")).toEqual([]);
    book.setWorker("w2", "s2", 1, []);
    book.releaseDue(100);
    book.schedule(100);
    const status = book.applyUpdate("w2", "s2", ended("r", 3, "failed", { exitCode: 1 }));
    expect(status?.history?.map((a) => a.outcome)).toEqual(["failed", "lost", "failed"]);
    expect(status).toMatchObject({ state: "failed", attempt: 3 });
  });

  it("a new leader keeps a retry's due time and history from its queue node", () => {
    const { book, clock } = bookAt(500);
    book.setWorker("w1", "s1", 1, []);
    const history = [{ attempt: 1, outcome: "failed" as const, worker: "w0", exitCode: 1 }];
    book.addQueueNode("q9", 9, [task("r", { retry: policy })], 0, {
      r: { attemptsUsed: 1, submittedAt: 10, notBefore: 800, history },
    });
    expect(book.tasks.get("r")).toMatchObject({ state: "delayed", dueAt: 800, submittedAt: 10 });
    expect(handOut(book, 799)).toEqual([]);
    clock.now = 800;
    expect(handOut(book, 800)).toEqual(["r"]);
    expect(book.assignmentFor("w1")).toMatchObject([{ attempt: 2, history }]);
  });
});

describe("retryDelayMs", () => {
  it("is fixed, or doubles from delayMs, never above maxDelayMs, and jitter only shortens it", () => {
    expect(retryDelayMs({ backoff: { type: "fixed", delayMs: 250 } }, 5)).toBe(250);
    const exp: RetryPolicy = { backoff: { type: "exponential", delayMs: 100, maxDelayMs: 1000 } };
    expect([1, 2, 3, 4, 5, 6].map((a) => retryDelayMs(exp, a, 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    const jittered: RetryPolicy = { backoff: { type: "fixed", delayMs: 1000, jitter: 0.5 } };
    expect(retryDelayMs(jittered, 1, 0)).toBe(1000);
    expect(retryDelayMs(jittered, 1, 1)).toBe(500);
    expect(retryDelayMs({}, 1, 0)).toBe(1000);
  });
});

describe("a new leader reading a retried task twice", () => {
  it("keeps the attempts of its requeued copy, whichever of its queue nodes it reads first", () => {
    for (const order of ["original first", "requeued first"] as const) {
      const { book } = bookAt(1000);
      book.setWorker("w1", "s1", 4, []);
      const original = () =>
        book.addQueueNode("q1", 1, [task("r", { retry: {} }), task("d", { runAt: 9999 })], 0);
      const requeued = () =>
        book.addQueueNode("q7", 7, [task("r", { retry: {} })], 0, {
          r: {
            attemptsUsed: 1,
            submittedAt: 0,
            notBefore: 500,
            history: [{ attempt: 1, outcome: "failed" }],
          },
        });
      if (order === "original first") {
        original();
        requeued();
      } else {
        requeued();
        original();
      }
      book.schedule(1000);
      expect(book.assignmentFor("w1"), order).toMatchObject([
        { id: "r", attempt: 2, history: [{ attempt: 1 }] },
      ]);
      // The original node still holds the delayed task; the requeued one is drained.
      expect(book.drainedQueueNodes.has("q7"), order).toBe(true);
      expect(book.drainedQueueNodes.has("q1"), order).toBe(false);
    }
  });
});
