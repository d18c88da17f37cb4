import { afterAll, expect, it } from "vitest";
import { assertBuilt } from "./cluster.js";
import { type ChaosOptions, type ChaosReport, type ChaosRun, chaosOptions } from "./scenario.js";

/**
 * How long an entry file runs. "bounded": one round, part of every `pnpm test`, whatever CHAOS_TASKS and
 * CHAOS_ROUNDS say (CHAOS_SEED still picks the task mix, CHAOS_DIRECT the share sent direct). "long":
 * three rounds, `pnpm test:chaos`, every CHAOS_* variable applies.
 */
export type ChaosLength = "bounded" | "long";

const LENGTHS = {
  bounded: { rounds: 1, transcriptLines: 40, timeoutMs: 600_000 },
  long: { rounds: 3, transcriptLines: 80, timeoutMs: 7_200_000 },
} as const;

export interface ChaosEntry {
  length: ChaosLength;
  /** At least this many tasks (the long run's default, which CHAOS_TASKS overrides). */
  tasks: number;
  /** Checks of the faults the run injected, beyond the ledger's verdict. */
  expectFaults?: (faults: ChaosReport["faults"]) => void;
}

/**
 * The one test of a chaos entry file: the run `start` makes, judged by its ledger (every accepted task
 * checked, no violation); its logs are kept when it failed.
 */
export function chaosTest(name: string, start: (options: ChaosOptions) => ChaosRun, entry: ChaosEntry): void {
  const { rounds, transcriptLines, timeoutMs } = LENGTHS[entry.length];
  const log = (line: string) => console.log(line);
  const run = start(
    entry.length === "bounded"
      ? { ...chaosOptions({ log }), tasks: entry.tasks, rounds, sessionTimeoutMs: 4000 }
      : chaosOptions({ tasks: entry.tasks, rounds, sessionTimeoutMs: 4000, log }),
  );
  let passed = false;

  afterAll(async () => {
    await run.close({ keepLogs: !passed });
  });

  it(
    name,
    async () => {
      assertBuilt();
      const report = await run.runAndReport(transcriptLines);
      entry.expectFaults?.(report.faults);
      expect(report.verdict.tasksChecked).toBe(report.submitted);
      expect(report.verdict.violations).toEqual([]);
      passed = true;
    },
    timeoutMs,
  );
}
