import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { assigned, Grid } from "./helpers.js";

const run = promisify(execFile);

let grid: Grid;
const mounts: string[] = [];

/** A fresh tmpfs (the tests run as root), unmounted after the test. */
async function tmpfs(options: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "zkgrid-worker-disk-"));
  await run("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
  mounts.push(dir);
  return dir;
}

beforeEach(async () => {
  grid = await Grid.create();
});
afterEach(async () => {
  await grid.cleanup(); // stops the workers, whose lock files are on the mounts
  for (const dir of mounts.splice(0)) {
    await run("umount", [dir]).catch(() => run("umount", ["-l", dir]));
    await rm(dir, { recursive: true, force: true });
  }
});

describe("full and read-only disks", () => {
  it("a task that fills the disk fails with a reason naming the full disk and result.json", async () => {
    const disk = await tmpfs("size=2m");
    const worker = await grid.start("w1", { cwd: disk });
    const session = worker.sessionId!;
    await grid.assign("w1", session, [assigned("t1", { cmd: "head -c 8388608 /dev/zero > big" })]);

    const final = await grid.final("w1", session, "t1");
    const file = join(disk, "w1", "t1", "result.json");
    expect(final).toMatchObject({ state: "failed", exitCode: 1 });
    expect(final.error).toBe(`the disk is full (ENOSPC): could not write ${file}`);
    expect(grid.logs.some((l) => l.level === "error" && l.msg === final.error)).toBe(true);
  });
});
