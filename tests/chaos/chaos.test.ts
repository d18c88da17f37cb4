import { afterAll, expect, it } from "vitest";
import { assertBuilt } from "./cluster.js";
import { ChaosRun, chaosOptions } from "./scenario.js";

// The bounded run of the chaos suite, part of every `pnpm test`. `pnpm test:chaos` runs the long one.
// Bounded whatever CHAOS_TASKS and CHAOS_ROUNDS say; CHAOS_SEED still picks the task mix, CHAOS_DIRECT
// the share sent direct.
const run = new ChaosRun({
  ...chaosOptions({ log: (l) => console.log(l) }),
  tasks: 300,
  rounds: 1,
  sessionTimeoutMs: 4000,
});

let passed = false;

afterAll(async () => {
  await run.close({ keepLogs: !passed });
});

it("under killed, paused and restarted masters, workers and ZooKeeper members every accepted task ends exactly once", async () => {
  assertBuilt();
  const report = await run.runAndReport(40);
  expect(report.faults.map((f) => f.count).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(7);
  expect(report.verdict.tasksChecked).toBe(report.submitted);
  expect(report.verdict.violations).toEqual([]);
  passed = true;
}, 600_000);
