import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TaskStatus } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { type CheckInput, checkRun, type Execution, readExecutions } from "./ledger.js";

const ok = (id: string, attempt: number, worker: string): TaskStatus => ({
  v: 1,
  id,
  state: "succeeded",
  attempt,
  worker,
});
const run = (attempt: number, worker: string, startedAt: number, finished = true): Execution => ({
  attempt,
  worker,
  startedAt,
  finished,
});

function input(over: Partial<CheckInput>): CheckInput {
  return {
    accepted: new Map([["t1", { maxAttempts: 3 }]]),
    results: [ok("t1", 1, "w1")],
    executions: new Map([["t1", [run(1, "w1", 100)]]]),
    losses: [],
    staleWindows: [],
    workers: new Set(["w1", "w2"]),
    ...over,
  };
}

// The chaos suite is only as good as its checker: each guarantee it checks must fail when broken.
describe("the chaos checker", () => {
  it("passes a task that ran once and succeeded once", () => {
    expect(checkRun(input({})).violations).toEqual([]);
  });

  it("flags a missing result, two different results and a result for an unknown task", () => {
    expect(checkRun(input({ results: [] })).violations).toEqual([expect.stringMatching(/no final status/)]);
    const two = checkRun(input({ results: [ok("t1", 1, "w1"), { ...ok("t1", 1, "w1"), state: "failed" }] }));
    expect(two.violations).toEqual([expect.stringMatching(/two different final statuses/)]);
    const same = checkRun(input({ results: [ok("t1", 1, "w1"), ok("t1", 1, "w1")] }));
    expect(same.violations).toEqual([]);
    expect(same.duplicateResults).toBe(1);
    expect(checkRun(input({ results: [ok("t1", 1, "w1"), ok("x", 1, "w1")] })).violations).toEqual([
      expect.stringMatching(/nobody submitted/),
    ]);
  });

  it("flags a result from an attempt the grid had given up, and a success nobody finished", () => {
    const superseded = input({
      results: [ok("t1", 1, "w1")],
      executions: new Map([["t1", [run(1, "w1", 100), run(2, "w2", 200)]]]),
      losses: [{ worker: "w1", at: 150, cause: "SIGSTOP" }],
    });
    expect(checkRun(superseded).violations).toContainEqual(expect.stringMatching(/gave up/));
    expect(checkRun(input({ executions: new Map([["t1", [run(1, "w1", 100, false)]]]) })).violations).toEqual(
      [expect.stringMatching(/never finished/)],
    );
    expect(checkRun(input({ executions: new Map() })).violations).toEqual([
      expect.stringMatching(/never ran it/),
    ]);
  });

  it("holds an answer on a worker's stream to a run of that worker, and to the recorded result unless that worker was lost", () => {
    const direct = new Set(["t1"]);
    const streamed = (status: TaskStatus, worker = "w1") => new Map([["t1", { worker, status }]]);
    const agrees = checkRun(input({ direct, streamed: streamed(ok("t1", 1, "w1")) }));
    expect(agrees.violations).toEqual([]);
    expect(agrees.streamedAnswers).toBe(1);
    expect(agrees.streamedThenRerun).toBe(0);
    // Answered on the stream, then its worker was lost before the node's write: run again, recorded later.
    const executions = new Map([["t1", [run(1, "w1", 100), run(2, "w2", 200)]]]);
    const lost = checkRun(
      input({
        direct,
        streamed: streamed(ok("t1", 1, "w1")),
        results: [ok("t1", 2, "w2")],
        executions,
        losses: [{ worker: "w1", at: 150, cause: "SIGKILL" }],
      }),
    );
    expect(lost.violations).toEqual([]);
    expect(lost.streamedThenRerun).toBe(1);
    // The same without the loss: the stream said one thing and the grid recorded another.
    const differs = checkRun(
      input({ direct, streamed: streamed({ ...ok("t1", 1, "w1"), state: "failed" }) }),
    );
    expect(differs.violations).toEqual([
      expect.stringMatching(/grid recorded succeeded\/1\/w1 and w1 was not lost/),
    ]);
    // An answer for a run that never happened, one naming another worker, one for a queued task.
    expect(
      checkRun(input({ direct, streamed: streamed(ok("t1", 1, "w2"), "w2"), results: [ok("t1", 1, "w1")] }))
        .violations,
    ).toContainEqual(expect.stringMatching(/w2 never ran attempt 1/));
    expect(
      checkRun(input({ direct, streamed: streamed(ok("t1", 1, "w1"), "w2") })).violations,
    ).toContainEqual(expect.stringMatching(/another worker's answer/));
    expect(checkRun(input({ streamed: streamed(ok("t1", 1, "w1")) })).violations).toEqual([
      expect.stringMatching(/not sent direct/),
    ]);
  });

  it("allows a second run only after the first run's worker was lost while holding it", () => {
    const executions = new Map([["t1", [run(1, "w1", 100), run(2, "w2", 200)]]]);
    const results = [ok("t1", 2, "w2")];
    const allowed = checkRun(
      input({ results, executions, losses: [{ worker: "w1", at: 150, cause: "SIGKILL" }] }),
    );
    expect(allowed.violations).toEqual([]);
    expect(allowed.reRun).toBe(1);
    expect(allowed.reRunCauses.get("SIGKILL")).toBe(1);
    expect(allowed.directReRun).toBe(0);
    // A direct task is held to the same rule; its re-runs are also counted apart.
    const direct = checkRun(
      input({
        results,
        executions,
        losses: [{ worker: "w1", at: 150, cause: "SIGKILL" }],
        direct: new Set(["t1"]),
      }),
    );
    expect(direct.violations).toEqual([]);
    expect(direct.directReRun).toBe(1);
    // Lost before the run started: that loss does not explain it.
    const early = checkRun(
      input({ results, executions, losses: [{ worker: "w1", at: 50, cause: "SIGKILL" }] }),
    );
    expect(early.violations).toEqual([expect.stringMatching(/was not lost after it started/)]);
    expect(checkRun(input({ results, executions })).violations).toEqual([
      expect.stringMatching(/was not lost/),
    ]);
  });

  it("flags an attempt run twice and a start inside a stale window", () => {
    const twice = input({ executions: new Map([["t1", [run(1, "w1", 100), run(1, "w2", 120)]]]) });
    expect(checkRun(twice).violations).toContainEqual(expect.stringMatching(/attempt 1 ran 2 times/));
    const stale = input({ staleWindows: [{ worker: "w1", from: 90, to: 110 }] });
    expect(checkRun(stale).violations).toEqual([expect.stringMatching(/after its session had expired/)]);
  });

  it("accepts a task failed after maxAttempts lost or cut-off workers, and nothing else that is not a success", () => {
    const lost: TaskStatus = {
      v: 1,
      id: "t1",
      state: "failed",
      attempt: 3,
      reason: "worker lost after 3 attempts (maxAttempts 3)",
    };
    const runs = [run(1, "w1", 100), run(2, "w2", 200), run(3, "w1", 300)];
    const losses = [
      { worker: "w1", at: 150, cause: "SIGKILL" },
      { worker: "w2", at: 250, cause: "SIGKILL" },
      { worker: "w1", at: 350, cause: "SIGKILL" },
    ];
    const gaveUp = checkRun(input({ results: [lost], executions: new Map([["t1", runs]]), losses }));
    expect(gaveUp.violations).toEqual([]);
    expect(gaveUp.gaveUp).toBe(1);
    // The last attempt's worker cut off past its cutoff stop, its session surviving: it returned the task.
    const returned = { ...lost, reason: "worker returned it after 3 attempts (maxAttempts 3)" };
    const cutOff = checkRun(input({ results: [returned], executions: new Map([["t1", runs]]), losses }));
    expect(cutOff.violations).toEqual([]);
    expect(cutOff.gaveUp).toBe(1);
    // Returned before the last attempt: not a give-up.
    const early = checkRun(
      input({ results: [{ ...returned, attempt: 2 }], executions: new Map([["t1", runs]]), losses }),
    );
    expect(early.violations).toContainEqual(expect.stringMatching(/unexpected final state failed/));
    const failed = checkRun(input({ results: [{ ...ok("t1", 1, "w1"), state: "failed", exitCode: 1 }] }));
    expect(failed.violations).toEqual([expect.stringMatching(/unexpected final state failed/)]);
  });

  it("reads the start and end lines the task command writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "zkgrid-ledger-"));
    writeFileSync(join(dir, "t1"), "s 1 w1 1700000000000\ns 2 w2 1700000000500\ne 2 w2\n");
    expect(readExecutions(dir).get("t1")).toEqual([
      run(1, "w1", 1700000000000, false),
      run(2, "w2", 1700000000500, true),
    ]);
  });
});
