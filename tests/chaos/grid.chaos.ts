import { chaosTest } from "./entry.js";
import { ChaosRun } from "./scenario.js";

// The long run: `pnpm test:chaos`; CHAOS_TASKS, CHAOS_ROUNDS, CHAOS_SESSION_TIMEOUT_MS, CHAOS_SEED,
// CHAOS_DIRECT (share of tasks sent straight to a worker's inbox, default 0.1).
chaosTest(
  "through rounds of every fault, thousands of tasks each end exactly once and run again only when their worker was lost",
  (options) => new ChaosRun(options),
  { length: "long", tasks: 3000 },
);
