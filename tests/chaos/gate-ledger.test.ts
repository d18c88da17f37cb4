import type { TaskStatus } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { chaosLabels, checkGate } from "./gate-ledger.js";

const status = (id: string, assignedAt: number, submittedAt = 0): TaskStatus => ({
  v: 1,
  id,
  state: "succeeded",
  attempt: 1,
  submittedAt,
  assignedAt,
});

const pause = { label: "held", from: 10_000, to: 20_000 };
const limit = { label: "rated", starts: 2, perMs: 1000 };

/** The verdict on `results` under the one pause and the one limit, a leader learning them within 1000 ms. */
const verdictOf = (results: TaskStatus[], labels: Record<string, string[]>) =>
  checkGate({
    results,
    labels: new Map(Object.entries(labels)),
    pauses: [pause],
    limits: [limit],
    learnMs: 1000,
  });

describe("the chaos suite's gate ledger", () => {
  it("passes hand-outs outside pauses and within the limit, and counts those made while the leader learned a pause", () => {
    const verdict = verdictOf(
      [
        status("a", 9_000),
        status("b", 10_500),
        status("c", 20_000, 5_000),
        status("r1", 0),
        status("r2", 500),
        status("r3", 1_000),
        status("r4", 1_500),
      ],
      { a: ["held"], b: ["held"], c: ["held"], r1: ["rated"], r2: ["rated"], r3: ["rated"], r4: ["rated"] },
    );
    expect(verdict.violations).toEqual([]);
    expect(verdict).toMatchObject({ handOutsChecked: 7, whileLearning: 1, heldThrough: 1 });
  });

  it("finds a paused label's hand-out after the leader must have learned the pause, and N+1 hand-outs in one interval", () => {
    const verdict = verdictOf(
      [
        status("late", 11_000),
        status("other", 15_000),
        status("r1", 0),
        status("r2", 400),
        status("r3", 999),
      ],
      { late: ["held", "rated"], r1: ["rated"], r2: ["rated"], r3: ["rated"] },
    );
    expect(verdict.violations).toHaveLength(2);
    expect(verdict.violations[0]).toMatch(/^late: handed out at 11000, 1000 ms into a pause of held/);
    expect(verdict.violations[1]).toMatch(/^rated: 3 hand-outs within 999 ms \(limit 2 per 1000 ms\)/);
  });

  it("labels a fixed share of the chaos tasks", () => {
    const labelled = Array.from({ length: 63 }, (_, n) => chaosLabels(n).labels ?? []);
    expect(labelled.filter((l) => l.includes("held"))).toHaveLength(9);
    expect(labelled.filter((l) => l.includes("rated"))).toHaveLength(7);
  });
});
