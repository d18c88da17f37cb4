import { copyFile, mkdir, rm } from "node:fs/promises";
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

/**
 * An app: its library plus the command (`src/bin.ts`), which needs no type declarations. The command
 * runs as ESM only, so its CommonJS twin is removed. `docs` (file names in the repository's docs/)
 * are copied into the package's own docs/, which ships, so the links in `--help` work once installed;
 * `shims` gives CommonJS code an `import.meta.url`, which those links are found from.
 */
export function appBuild(docs: string[] = []): Options {
  return {
    ...libraryBuild,
    entry: ["src/index.ts", "src/bin.ts"],
    dts: { entry: "src/index.ts" },
    shims: true,
    async onSuccess() {
      await rm("dist/bin.cjs", { force: true });
      await rm("dist/bin.cjs.map", { force: true });
      await mkdir("docs", { recursive: true });
      for (const doc of docs) await copyFile(`../../docs/${doc}`, `docs/${doc}`);
    },
  };
}
