import { afterAll, expect, it } from "vitest";
import { assertBuilt } from "./cluster.js";
import { ChaosRun, chaosOptions } from "./scenario.js";

// The long run: `pnpm test:chaos`; CHAOS_TASKS, CHAOS_ROUNDS, CHAOS_SESSION_TIMEOUT_MS, CHAOS_SEED,
// CHAOS_DIRECT (share of tasks sent straight to a worker's inbox, default 0.1).
const run = new ChaosRun(
  chaosOptions({ tasks: 3000, rounds: 3, sessionTimeoutMs: 4000, log: (l) => console.log(l) }),
);

let passed = false;

afterAll(async () => {
  await run.close({ keepLogs: !passed });
});

it("through rounds of every fault, thousands of tasks each end exactly once and run again only when their worker was lost", async () => {
  assertBuilt();
  const report = await run.runAndReport(80);
  expect(report.verdict.tasksChecked).toBe(report.submitted);
  expect(report.verdict.violations).toEqual([]);
  passed = true;
}, 7_200_000);
