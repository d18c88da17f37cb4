import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const repo = fileURLToPath(new URL("../../..", import.meta.url));

/** The built commands, as users run them. */
export const bins = {
  submit: join(repo, "apps/submit/dist/bin.js"),
  master: join(repo, "apps/master/dist/bin.js"),
  worker: join(repo, "apps/worker/dist/bin.js"),
};

/**
 * Builds a package only when one of its sources is newer than its dist: other test files run the
 * same dist files, and a build empties dist/ first.
 */
async function buildIfStale(dir: string, filter: string, entry: string): Promise<void> {
  const built = await stat(join(repo, dir, "dist", entry)).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const sources = await readdir(join(repo, dir, "src"));
  const inputs = [...sources.map((name) => join(repo, dir, "src", name)), join(repo, dir, "package.json")];
  const newest = Math.max(...(await Promise.all(inputs.map(async (path) => (await stat(path)).mtimeMs))));
  if (newest > built) await promisify(execFile)("pnpm", ["--filter", filter, "build"], { cwd: repo });
}

/** The zkgrid command and what it runs on, plus the master and worker commands. */
export async function buildBins(): Promise<void> {
  await buildIfStale("packages/observer", "@zkgrid/observer", "index.js");
  await buildIfStale("packages/dashboard", "@zkgrid/dashboard", "index.js");
  await buildIfStale("apps/master", "@zkgrid/master", "bin.js");
  await buildIfStale("apps/worker", "@zkgrid/worker", "bin.js");
  await buildIfStale("apps/submit", "@zkgrid/submit", "bin.js");
}
