import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connectString } from "./helpers.js";

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
export async function buildIfStale(dir: string, filter: string, entry: string): Promise<void> {
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

/** What a command run to its end printed, and how it exited. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Points a command at the test ZooKeeper and at the grid under `root`. */
export function gridEnv(root: string): NodeJS.ProcessEnv {
  return { ...process.env, ZKGRID_CONNECT: connectString(), ZKGRID_ROOT: root };
}

/**
 * Runs a built command to its end against the grid under `root`, feeding it `input` on stdin. It is
 * in `children` while it runs, so the test's cleanup can kill it.
 */
export function runToEnd(
  bin: string,
  args: string[],
  root: string,
  children: Set<ChildProcess>,
  input: string | Buffer = "",
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: gridEnv(root),
      stdio: ["pipe", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Kills every child still running and waits until each has exited. */
export async function killAll(children: Set<ChildProcess>): Promise<void> {
  const running = [...children].filter((child) => child.exitCode === null && child.signalCode === null);
  const exits = running.map((child) => new Promise((resolve) => child.once("exit", resolve)));
  for (const child of running) child.kill("SIGKILL");
  await Promise.all(exits);
  children.clear();
}
