import { readFileSync } from "node:fs";

/**
 * True while the process `pid` runs; a zombie (dead, not yet reaped by its parent) counts as gone, so a
 * test can wait for a killed process to end. Linux only (it reads `/proc`).
 */
export function isProcessRunning(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
