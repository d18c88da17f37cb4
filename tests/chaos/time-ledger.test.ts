import type { AttemptRecord, TaskStatus } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import type { Execution } from "./ledger.js";
import { TimeLedger } from "./time-ledger.js";

const run = (attempt: number, worker: string, startedAt: number): Execution => ({
  attempt,
  worker,
  startedAt,
  finished: true,
});
const attempt = (n: number, outcome: AttemptRecord["outcome"], worker = "w1"): AttemptRecord => ({
  attempt: n,
  outcome,
  worker,
});
/** A result that succeeded as attempt `n`. */
const succeeded = (id: string, n: number, rest: Partial<TaskStatus> = {}): TaskStatus => ({
  v: 1,
  id,
  state: "succeeded",
  attempt: n,
  ...rest,
});

describe("the time ledger of the chaos suite", () => {
  // roll 0 makes a delayed task due 500 ms after `now`; roll 0.07 a retried one (share 0.05).
  const ledger = () => new TimeLedger("/exec", 0.05);

  it("passes a delayed task that started after its runAt and a retry whose every run is in its history", () => {
    const l = ledger();
    const delayed = l.maybe("d", 0, 1000);
    const retried = l.maybe("r", 0.07, 1000);
    expect(delayed?.runAt).toBe(1500);
    expect(retried?.retry).toBeDefined();
    const results = [
      succeeded("d", 1, { worker: "w1" }),
      succeeded("r", 4, {
        worker: "w1",
        history: [
          attempt(1, "failed"),
          attempt(2, "lost", "w2"),
          attempt(3, "failed"),
          attempt(4, "succeeded"),
        ],
      }),
    ];
    const executions = new Map([
      ["d", [run(1, "w1", 1500)]],
      ["r", [run(1, "w1", 1100), run(2, "w2", 1400), run(3, "w1", 1700), run(4, "w1", 2000)]],
    ]);
    expect(l.check(results, executions)).toEqual([]);
  });

  it("flags a delayed task that started early and a retry whose history misses a run", () => {
    const l = ledger();
    l.maybe("d", 0, 1000);
    l.maybe("r", 0.07, 1000);
    const results = [
      succeeded("d", 1, { worker: "w1" }),
      succeeded("r", 3, { history: [attempt(1, "failed"), attempt(3, "succeeded")] }),
    ];
    const executions = new Map([
      ["d", [run(1, "w1", 1499)]],
      ["r", [run(1, "w1", 1100), run(2, "w2", 1400), run(3, "w1", 1700)]],
    ]);
    const violations = l.check(results, executions);
    expect(violations).toContain("d (delayed): started 1 ms before its runAt");
    expect(violations).toContain("r (retried): result is attempt 3 but its history holds 2 attempts");
    expect(violations).toContain("r (retried): attempt 2 ran on w2 but is not in its history");
  });
});
