import { chaosTest } from "./entry.js";
import { NetworkChaosRun } from "./network.js";

// The long run of the network faults: `pnpm test:chaos`; the same CHAOS_* variables as grid.chaos.ts.
chaosTest(
  "through rounds of partitions, each healed, every task ends exactly once and runs again only after a fence or its worker's own stop",
  (options) => new NetworkChaosRun(options),
  { length: "long", tasks: 1000 },
);
