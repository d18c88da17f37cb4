import type { ChildProcess } from "node:child_process";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import packageJson from "../package.json" with { type: "json" };
import { buildIfStale, killAll, runToEnd } from "./built-bins.js";
import { randomRoot } from "./helpers.js";

const repo = fileURLToPath(new URL("../../..", import.meta.url));
const OPERATOR_PACKAGES = ["@zkgrid/observer", "@zkgrid/dashboard"];

/**
 * An install of @zkgrid/submit with only what it depends on: its dist and package.json, beside
 * @zkgrid/core and @zkgrid/protocol (linked to the workspace's), and no observer or dashboard.
 */
let consumer: string;
let installed: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  await buildIfStale("apps/submit", "@zkgrid/submit", "bin.js");
  consumer = await mkdtemp(join(tmpdir(), "zkgrid-submit-alone-"));
  installed = join(consumer, "node_modules/@zkgrid/submit");
  await mkdir(installed, { recursive: true });
  await cp(join(repo, "apps/submit/dist"), join(installed, "dist"), { recursive: true });
  await cp(join(repo, "apps/submit/package.json"), join(installed, "package.json"));
  for (const name of ["core", "protocol"]) {
    await symlink(join(repo, "packages", name), join(consumer, "node_modules/@zkgrid", name));
  }
}, 300_000);

afterEach(async () => {
  await killAll(children);
});

afterAll(async () => {
  if (consumer) await rm(consumer, { recursive: true, force: true });
});

/** Runs `node <args>` in the consumer's directory. */
async function nodeIn(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: consumer });
  return stdout;
}

describe("what @zkgrid/submit pulls in", () => {
  it("depends on core and protocol only; the observer and the dashboard are optional peers for the zkgrid commands", () => {
    expect(Object.keys(packageJson.dependencies).sort()).toEqual(["@zkgrid/core", "@zkgrid/protocol"]);
    const peers = packageJson as unknown as {
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    expect(Object.keys(peers.peerDependencies ?? {}).sort()).toEqual([...OPERATOR_PACKAGES].sort());
    for (const name of OPERATOR_PACKAGES) expect(peers.peerDependenciesMeta?.[name]?.optional).toBe(true);
  });

  it("the library loads, as ESM and as CommonJS, where neither the observer nor the dashboard is installed", async () => {
    // The control: they really are missing here.
    await expect(nodeIn(["--input-type=module", "-e", 'await import("@zkgrid/observer")'])).rejects.toThrow(
      /Cannot find package '@zkgrid\/observer'/,
    );
    const esm = await nodeIn([
      "--input-type=module",
      "-e",
      'const m = await import("@zkgrid/submit"); console.log(typeof m.connectGrid, typeof m.GridClient.prototype.cancel)',
    ]);
    expect(esm).toBe("function function\n");
    const cjs = await nodeIn([
      "-e",
      'const m = require("@zkgrid/submit"); console.log(typeof m.connectGrid, Object.keys(require.cache).filter((p) => /observer|dashboard/.test(p)).length)',
    ]);
    expect(cjs).toBe("function 0\n");
  });

  it("zkgrid-submit submits there, and an operator command says which package to install", async () => {
    const root = randomRoot();
    const bin = join(installed, "dist/bin.js");
    const submitted = await runToEnd(bin, ["--cmd", "true", "--id", "alone-1"], root, children);
    expect(submitted).toMatchObject({ code: 0, stdout: "alone-1\n", stderr: "" });
    const status = await runToEnd(bin, ["status"], root, children);
    expect(status.code).toBe(1);
    expect(status.stderr).toBe(
      `zkgrid status: needs @zkgrid/observer, which is not installed: add it beside @zkgrid/submit (npm install @zkgrid/observer@${packageJson.version})\n`,
    );
    const dashboard = await runToEnd(bin, ["dashboard"], root, children);
    expect(dashboard.code).toBe(1);
    expect(dashboard.stderr).toMatch(/^zkgrid dashboard: needs @zkgrid\/dashboard, which is not installed/);
  });
});
