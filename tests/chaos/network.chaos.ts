import { afterAll, expect, it } from "vitest";
import { assertBuilt } from "./cluster.js";
import { NetworkChaosRun } from "./network.js";
import { chaosOptions } from "./scenario.js";

// The long run of the network faults: `pnpm test:chaos`; the same CHAOS_* variables as grid.chaos.ts.
const run = new NetworkChaosRun(
  chaosOptions({ tasks: 1000, rounds: 3, sessionTimeoutMs: 4000, log: (l) => console.log(l) }),
);

let passed = false;

afterAll(async () => {
  await run.close({ keepLogs: !passed });
});

it("through rounds of partitions, each healed, every task ends exactly once and runs again only after a fence or its worker's own stop", async () => {
  assertBuilt();
  const report = await run.runAndReport(80);
  expect(report.verdict.tasksChecked).toBe(report.submitted);
  expect(report.verdict.violations).toEqual([]);
  passed = true;
}, 7_200_000);
