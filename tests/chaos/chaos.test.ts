import { expect } from "vitest";
import { chaosTest } from "./entry.js";
import { ChaosRun } from "./scenario.js";

// The bounded run of the chaos suite, part of every `pnpm test`. `pnpm test:chaos` runs the long one.
chaosTest(
  "under killed, paused and restarted masters, workers and ZooKeeper members every accepted task ends exactly once",
  (options) => new ChaosRun(options),
  {
    length: "bounded",
    tasks: 300,
    expectFaults: (faults) =>
      expect(faults.map((f) => f.count).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(7),
  },
);
