import { mkdirSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";

const WHY: Record<string, string> = {
  EROFS: "is on a read-only file system (EROFS)",
  EACCES: "is not writable by this user (EACCES)",
  EPERM: "may not be written (EPERM)",
  ENOSPC: "is on a full disk (ENOSPC)",
  EDQUOT: "is on a disk whose quota is used up (EDQUOT)",
  ENOTDIR: "is not a directory (ENOTDIR)",
};

/** `mkdir -p` that names the real problem (see {@link explainMkdirFailure}). */
export async function makeFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw explainMkdirFailure(dir, error);
  }
}

/** The synchronous {@link makeFolder}. */
export function makeFolderSync(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw explainMkdirFailure(dir, error);
  }
}

/**
 * Node's recursive mkdir reports ENOENT when the real cause is elsewhere (EROFS on a read-only file
 * system, for one): this finds the deepest folder that exists, makes its child without `recursive`
 * to learn the real error, and returns an error naming that folder and the real code.
 */
export function explainMkdirFailure(dir: string, error: unknown): unknown {
  if ((error as NodeJS.ErrnoException).code !== "ENOENT") return error;
  let child = dir;
  let parent = dirname(dir);
  while (parent !== child) {
    try {
      if (!statSync(parent).isDirectory()) break;
    } catch {
      child = parent;
      parent = dirname(parent);
      continue;
    }
    try {
      mkdirSync(child);
      return error; // made it after all: the ENOENT came from a folder removed meanwhile
    } catch (real) {
      const code = (real as NodeJS.ErrnoException).code ?? "";
      if (code === "ENOENT" || code === "EEXIST") return error;
      const why = WHY[code] ?? `cannot be written (${code})`;
      return Object.assign(new Error(`cannot create ${dir}: ${parent} ${why}`, { cause: real }), {
        code,
        path: parent,
      });
    }
  }
  return error;
}
