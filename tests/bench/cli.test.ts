import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

// The bench's own tools, as built by `pnpm build` (which `pnpm test` runs first). A bad option is the
// caller's mistake: each tool names it in one line and exits 2, before it starts any server.
const repo = fileURLToPath(new URL("../..", import.meta.url));
const TOOLS = ["run.js", "lone-trace.js", "zk-request-cpu.js"] as const;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function runTool(tool: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [`bench/dist/${tool}`, ...args], {
      cwd: repo,
      timeout: 30_000,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

beforeAll(async () => {
  for (const tool of TOOLS) await stat(`${repo}/bench/dist/${tool}`);
});

describe("the bench's tools", () => {
  for (const tool of TOOLS) {
    it(`${tool} --help prints its usage and exits 0`, async () => {
      const ran = await runTool(tool, ["--help"]);
      expect(ran.code).toBe(0);
      expect(ran.stdout).toMatch(/^Usage: /);
      expect(ran.stderr).toBe("");
    });

    it(`${tool} names an unknown option and exits 2, without a stack`, async () => {
      const ran = await runTool(tool, ["--no-such-option"]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toContain("'--no-such-option'");
      expect(ran.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it("lone-trace refuses a count that is not a whole number", async () => {
    const ran = await runTool("lone-trace.js", ["--count", "ten"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--count: expected an integer of at least 1, got ten");
  });

  it("lone-trace refuses an unknown route", async () => {
    const ran = await runTool("lone-trace.js", ["--only", "direct,sideways"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain("--only: unknown route sideways");
  });

  it("zk-request-cpu refuses runs out of range", async () => {
    const ran = await runTool("zk-request-cpu.js", ["--runs", "0"]);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toContain('--runs must be a whole number 1..20, got "0"');
  });

  for (const tool of ["run.js", "lone-trace.js"]) {
    it(`${tool} refuses a ZKGRID_BENCH_ZK_CPU that is not a CPU of this machine, before any server`, async () => {
      for (const value of ["9999", "-1", "first"]) {
        const ran = await runTool(tool, [], { ZKGRID_BENCH_ZK_CPU: value });
        expect(ran.code).toBe(2);
        expect(ran.stderr).toContain(`ZKGRID_BENCH_ZK_CPU=${value}: expected "all" or a CPU number 0..`);
        expect(ran.stderr).not.toMatch(/\n\s+at /);
        expect(ran.stdout).not.toMatch(/ZooKeeper|warming/);
      }
    });
  }
});
