import { expect } from "vitest";
import { chaosTest } from "./entry.js";
import { NetworkChaosRun } from "./network.js";

// The bounded run of the network faults, part of every `pnpm test` (about a minute and a half): every
// member, master and worker on a network-namespace host of its own. `pnpm test:chaos` runs the long one
// (network.chaos.ts). A machine where the namespaces cannot be made fails here; it never skips.
chaosTest(
  "under an isolated worker, an isolated leading master and a 2 | 1 split of the ensemble, every accepted task ends exactly once",
  (options) => new NetworkChaosRun(options),
  {
    length: "bounded",
    tasks: 120,
    expectFaults: (faults) => expect(faults.map((f) => f.count)).toEqual([1, 1, 1]),
  },
);
