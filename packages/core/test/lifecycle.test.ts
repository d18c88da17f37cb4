import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePorts } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { sharedConnectString, testRoot } from "./helpers.js";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/exit-after-close.ts", import.meta.url));

/** Runs the fixture; resolves with its exit code and output, or "hung" if it is still alive after 30 s. */
function runFixture(args: string[]): Promise<{ code: number | null; out: string; hung: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", fixture, ...args], {
      cwd: packageDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.stderr.on("data", (chunk) => {
      out += chunk;
    });
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, hung });
    });
  });
}

describe("process lifecycle", () => {
  it("a process exits by itself once its client is closed, with watches, keepRunning and an election running", async () => {
    const result = await runFixture([sharedConnectString(), testRoot(), "normal"]);
    expect(result.hung).toBe(false);
    expect(result.out).toBe("closed\n");
    expect(result.code).toBe(0);
  });

  it("a process whose connect() never reached a server exits by itself", async () => {
    const [port] = await freePorts(1);
    const result = await runFixture([`127.0.0.1:${port}`, "/", "never-connected"]);
    expect(result.hung).toBe(false);
    expect(result.out).toBe("connect failed: ConnectionLossError\n");
    expect(result.code).toBe(0);
  });
});
