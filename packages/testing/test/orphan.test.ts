import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isProcessRunning, waitFor, withTimeout } from "../src/index.js";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const fixture = join(packageDir, "test", "fixtures", "start-and-wait.ts");

/** Runs the fixture under tsx and resolves with the child and the java pid it reports. */
async function startChild(mode: "wait" | "exit") {
  const child = spawn(process.execPath, ["--import", "tsx", fixture, mode], {
    cwd: packageDir,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const [line] = (await withTimeout(once(lines, "line"), 90_000, "child reporting its java pid")) as [string];
  const { pid } = JSON.parse(line) as { pid: number };
  return { child, javaPid: pid };
}

describe("no orphaned java", () => {
  it("kills the server's java when the process that started it is SIGKILLed", async () => {
    const { child, javaPid } = await startChild("wait");
    expect(isProcessRunning(javaPid)).toBe(true);
    child.kill("SIGKILL");
    await once(child, "exit");
    // The watchdog sees its pipe close and kills java; poll generously, no timing claim.
    expect(await waitFor(() => !isProcessRunning(javaPid), { timeoutMs: 30_000, message: "java gone" })).toBe(
      true,
    );
  });

  it("kills the server's java when the starting process is terminated by SIGTERM", async () => {
    const { child, javaPid } = await startChild("wait");
    child.kill("SIGTERM");
    const [, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
    expect(signal).toBe("SIGTERM");
    expect(await waitFor(() => !isProcessRunning(javaPid), { timeoutMs: 30_000, message: "java gone" })).toBe(
      true,
    );
  });

  it("kills the server's java when the starting process exits without stopping it", async () => {
    const { child, javaPid } = await startChild("exit");
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(0);
    expect(await waitFor(() => !isProcessRunning(javaPid), { timeoutMs: 30_000, message: "java gone" })).toBe(
      true,
    );
  });
});
