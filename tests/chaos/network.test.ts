import { afterAll, expect, it } from "vitest";
import { assertBuilt } from "./cluster.js";
import { NetworkChaosRun } from "./network.js";
import { chaosOptions } from "./scenario.js";

// The bounded run of the network faults, part of every `pnpm test` (about a minute and a half): every
// member, master and worker on a network-namespace host of its own. `pnpm test:chaos` runs the long one
// (network.chaos.ts). A machine where the namespaces cannot be made fails here; it never skips.
const run = new NetworkChaosRun({
  ...chaosOptions({ log: (l) => console.log(l) }),
  tasks: 120,
  rounds: 1,
  sessionTimeoutMs: 4000,
});

let passed = false;

afterAll(async () => {
  await run.close({ keepLogs: !passed });
});

it("under an isolated worker, an isolated leading master and a 2 | 1 split of the ensemble, every accepted task ends exactly once", async () => {
  assertBuilt();
  const report = await run.runAndReport(40);
  expect(report.faults.map((f) => f.count)).toEqual([1, 1, 1]);
  expect(report.verdict.tasksChecked).toBe(report.submitted);
  expect(report.verdict.violations).toEqual([]);
  passed = true;
}, 600_000);
