import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const source = (path: string): string =>
  fileURLToPath(new URL(`../../${path}/src/index.ts`, import.meta.url));

// `pnpm test:chaos`: the long chaos run (tests/chaos/*.chaos.ts). It starts its own ensemble.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  resolve: {
    alias: {
      "@zkgrid/core": source("packages/core"),
      "@zkgrid/protocol": source("packages/protocol"),
      "@zkgrid/testing": source("packages/testing"),
    },
  },
  test: {
    include: ["tests/chaos/**/*.chaos.ts"],
    testTimeout: 7_200_000,
    hookTimeout: 300_000,
    pool: "forks",
    maxWorkers: 1,
  },
});
