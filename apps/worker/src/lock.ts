import { readFile, unlink, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { WorkerLockedError } from "./errors.js";
import { makeFolder } from "./folders.js";

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(file, "utf8"), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A lock file holding the owner's pid (`<cwd>/<name>/.lock`), so that a second worker with the same
 * name and working directory on this machine is refused at once. A lock whose pid is dead is stale
 * and taken over.
 */
export class LocalLock {
  readonly file: string;
  private released = false;

  private constructor(file: string) {
    this.file = file;
  }

  static async acquire(file: string): Promise<LocalLock> {
    await makeFolder(dirname(file));
    for (let tries = 0; ; tries++) {
      try {
        await writeFile(file, `${process.pid}\n`, { flag: "wx" });
        return new LocalLock(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const pid = await readPid(file);
      if (pid !== undefined && isAlive(pid)) throw new WorkerLockedError(file, pid);
      if (tries > 0) throw new WorkerLockedError(file, pid ?? 0);
      await unlink(file).catch(() => {});
    }
  }

  /** Removes the file if it still holds this process's pid. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if ((await readPid(this.file)) === process.pid) await unlink(this.file).catch(() => {});
  }
}
