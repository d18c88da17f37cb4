import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { TestGrid } from "../e2e/grid.js";

// A second implementation, written from docs/protocol.md alone (tests/conformance/*.py, Python with
// Debian's python3-kazoo), plays submitter and worker against the built TypeScript master and worker.

const SCRIPT = join(import.meta.dirname, "conformance.py");
// Debian's python3-kazoo is installed for the system interpreter, not for one on PATH ahead of it.
const PYTHON = process.env.ZKGRID_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const TS_WORKER = "ts1";

function hasKazoo(): boolean {
  return spawnSync(PYTHON, ["-c", "import kazoo"], { stdio: "ignore" }).status === 0;
}

/** Installs python3-kazoo when it is missing and this is root on Debian; never skips: fails instead. */
function ensureKazoo(): void {
  if (hasKazoo()) return;
  const canInstall =
    process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (canInstall) {
    const install = spawnSync(
      "apt-get",
      ["-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends", "python3-kazoo"],
      { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, encoding: "utf8" },
    );
    if (hasKazoo()) return;
    throw new Error(
      `python3-kazoo is missing and apt-get could not install it (exit ${install.status}):\n${install.stderr}`,
    );
  }
  throw new Error(
    `${PYTHON} cannot import kazoo: run scripts/install.sh, or \`apt-get install python3-kazoo\` as root`,
  );
}

let grid: TestGrid;

beforeAll(async () => {
  ensureKazoo();
  grid = new TestGrid(inject("zkConnectString"));
  grid.master("m1");
  // Found through flags, not the environment: a task must not see ZKGRID_CONNECT / ZKGRID_ROOT then.
  grid.worker(TS_WORKER, ["--connect", grid.connectString, "--root", grid.root, "--concurrency", "4"], {
    ZKGRID_CONNECT: undefined,
    ZKGRID_ROOT: undefined,
  });
}, 300_000);

afterAll(async () => {
  await grid?.close();
});

/** Runs the conformance script's groups; resolves with its exit code and everything it printed. */
function runPython(groups: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    PYTHON,
    [
      SCRIPT,
      "--connect",
      grid.connectString,
      "--root",
      grid.root,
      "--ts-worker",
      TS_WORKER,
      "--ts-worker-cwd",
      grid.dir,
      ...groups,
    ],
    { env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PYTHONUNBUFFERED: "1" } },
  );
  let output = "";
  child.stdout.on("data", (b: Buffer) => {
    output += b.toString();
  });
  child.stderr.on("data", (b: Buffer) => {
    output += b.toString();
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, output })));
}

async function expectConformance(group: string): Promise<void> {
  const { code, output } = await runPython([group]);
  expect(code, `conformance.py ${group} failed:\n${output}\n${grid.transcript()}`).toBe(0);
  expect(output).toContain(`group ${group}: passed`);
}

// Each group of conformance.py, and the behaviour it checks.
const GROUPS: Array<[group: string, behaviour: string]> = [
  [
    "queued",
    "submits a queued batch that the TypeScript worker runs with the documented environment, working directory, timeout and statuses",
  ],
  [
    "direct",
    "puts a direct task in the TypeScript worker's inbox and reads the documented answer there and in R/results",
  ],
  ["cancel", "cancels a running and a queued task, and a request naming only unknown ids is deleted"],
  [
    "worker",
    "works as a worker that the TypeScript leader assigns to: running, succeeded, failed, cancelled, direct, declined, and a draining hand-back",
  ],
  [
    "bad-queue",
    "sees unreadable queue nodes rejected under q<seq>.0, and a bad batchId or v reject every task under its own id",
  ],
];

describe("a kazoo client written from docs/protocol.md", () => {
  for (const [group, behaviour] of GROUPS) {
    it(behaviour, () => expectConformance(group), 180_000);
  }
});
