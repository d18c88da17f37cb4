import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { LongestFirst } from "./tests/order/longest-first.js";

const source = (path: string): string => fileURLToPath(new URL(`${path}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests import the sources, so an in-process import never needs a build.
    alias: {
      "@zkgrid/errors": source("./packages/errors"),
      "@zkgrid/core": source("./packages/core"),
      "@zkgrid/protocol": source("./packages/protocol"),
      "@zkgrid/log": source("./packages/log"),
      "@zkgrid/testing": source("./packages/testing"),
      "@zkgrid/master": source("./apps/master"),
      "@zkgrid/worker": source("./apps/worker"),
      "@zkgrid/submit": source("./apps/submit"),
      "@zkgrid/observer": source("./packages/observer"),
      "@zkgrid/dashboard": source("./packages/dashboard"),
      "@zkgrid/metrics": source("./packages/metrics"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "tests/**/*.test.ts"],
    // One standalone ZooKeeper for the whole run: inject("zkConnectString"). Ensembles are per test.
    globalSetup: ["packages/testing/src/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // A 2-core machine that also runs the ZooKeeper JVMs.
    maxWorkers: 2,
    sequence: { sequencer: LongestFirst },
  },
});
