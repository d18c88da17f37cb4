import { spawn } from "node:child_process";

/**
 * Runs `sh -c true`: what a zkgrid shell task costs to start, and what the BullMQ baseline's shell jobs
 * and the spawn ceiling run to match it. Rejects unless it exits 0.
 */
export function runTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", "true"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`sh exited with ${code}`))));
  });
}
