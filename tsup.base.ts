import type { Options } from "tsup";

/** What every package publishes: ESM and CommonJS for Node 20, with type declarations and source maps. */
export const libraryBuild: Options = {
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
};

/** An app: its library plus the command (`src/bin.ts`), which needs no type declarations. */
export const appBuild: Options = {
  ...libraryBuild,
  entry: ["src/index.ts", "src/bin.ts"],
  dts: { entry: "src/index.ts" },
};
