import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkerOptionError } from "../src/index.js";
import { assigned, Grid, startWorkerBin } from "./helpers.js";

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

  it("a worker whose working directory is read-only says EROFS and names the directory", async () => {
    const disk = await tmpfs("ro,size=1m");
    const started = grid.start("w1", { cwd: disk });
    await expect(started).rejects.toBeInstanceOf(WorkerOptionError);
    await expect(started).rejects.toThrow(
      `cwd: cannot create ${join(disk, "w1")}: ${disk} is on a read-only file system (EROFS)`,
    );
    // Nothing was registered.
    expect(await grid.registration("w1")).toBeNull();
  });

  it("the bin refuses a read-only --cwd with exit 2 and the same message", async () => {
    const disk = await tmpfs("ro,size=1m");
    const { code, stderr } = await startWorkerBin(grid, ["w1", "--cwd", disk]).exited;
    expect(code).toBe(2);
    expect(stderr).toContain(
      `zkgrid-worker: cwd: cannot create ${join(disk, "w1")}: ${disk} is on a read-only file system (EROFS)\n`,
    );
    expect(stderr).not.toContain("ENOENT");
  });

  it("a missing folder on a read-only disk names the read-only folder that exists", async () => {
    const disk = await tmpfs("ro,size=1m");
    const started = grid.start("w1", { cwd: join(disk, "deeper", "still") });
    await expect(started).rejects.toThrow(
      `cwd: cannot create ${join(disk, "deeper", "still", "w1")}: ${disk} is on a read-only file system (EROFS)`,
    );
    await expect(readFile(join(disk, "deeper"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
