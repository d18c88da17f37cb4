import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { TAIL_BYTES, tailBytes } from "@zkgrid/protocol";
import type {
  LaunchEnding,
  LaunchListener,
  LaunchRequest,
  TaskLauncher,
  TaskLauncherOptions,
} from "./launcher.js";
import { inheritedEnvironment, signalGroup } from "./process-group.js";

type Failure = NonNullable<LaunchEnding["failure"]>;

/** What spawn() leaves out of its messages ("spawn /x ENOENT"), as strerror() says it. */
const STRERROR: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  ENOEXEC: "Exec format error",
  ENOTDIR: "Not a directory",
};

/** A failure as the Perl launcher reports it: the stage, the errno name and its text. */
function failure(stage: Failure["stage"], error: unknown): Failure {
  const { code = "", message } = error as NodeJS.ErrnoException;
  // fs messages read "ENOENT: no such file or directory, open '/x'".
  const text = /^[A-Z0-9]+: ([^,]+)/.exec(message)?.[1] ?? STRERROR[code] ?? message;
  return { stage, code, text };
}

/** The last TAIL_BYTES of `file`; undefined if it cannot be read or is empty (as the Perl launcher). */
function readTail(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    if (length === 0) return undefined;
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, size - length);
    return read === 0 ? undefined : tailBytes(buffer.subarray(0, read), TAIL_BYTES);
  } finally {
    closeSync(fd);
  }
}

/**
 * Starts task processes from the worker itself, for where Perl is missing (slim and alpine images).
 * Each task runs in its own session and process group, with the same output files, environment,
 * failures and tails as under the Perl launcher (launcher-perl.ts). What is lost: nothing outside the
 * worker watches for its death, so tasks still running when it is killed (SIGKILL, a crash in native
 * code) keep running (a normal exit, even by an uncaught error, still kills them); and each fork
 * happens in the worker's own process.
 */
export class SpawnLauncher implements TaskLauncher {
  readonly mode = "spawn";
  /** Running tasks' process group leaders. */
  private readonly live = new Map<number, ChildProcess>();
  /** The environment every task starts from, as it is when the first task starts. */
  private env: NodeJS.ProcessEnv | undefined;
  private readonly killOnExit = () => {
    for (const pid of this.live.keys()) signalGroup(pid, "SIGKILL");
  };

  constructor(private readonly options: TaskLauncherOptions) {}

  launch(request: LaunchRequest, listener: LaunchListener): void {
    // Like the launcher's child: an error at a stage ends the task with that stage and no process.
    let stage: Failure["stage"] = "mkdir";
    const fds: number[] = [];
    let child: ChildProcess;
    try {
      try {
        mkdirSync(request.outputDir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      stage = "open";
      fds.push(openSync(join(request.outputDir, "stdout.txt"), "w"));
      fds.push(openSync(join(request.outputDir, "stderr.txt"), "w"));
      stage = "chdir";
      // spawn() reports a missing cwd as ENOENT of the program: tell them apart first.
      if (!statSync(request.cwd).isDirectory())
        throw Object.assign(new Error("Not a directory"), { code: "ENOTDIR" });
      stage = "exec";
      this.env ??= inheritedEnvironment();
      const env = { ...this.env };
      for (const [name, value] of request.env) env[name] = value;
      child = spawn(request.file, request.args, {
        cwd: request.cwd,
        env,
        detached: true, // its own session and process group
        stdio: ["ignore", fds[0], fds[1]],
      });
    } catch (error) {
      setImmediate(() => listener.ended({ failure: failure(stage, error) }));
      return;
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    const { pid } = child;
    if (pid === undefined) {
      // Not started: "error" follows, and no "exit".
      child.once("error", (error) => listener.ended({ failure: failure("exec", error) }));
      return;
    }
    child.on("error", () => {}); // after a start, only a failed child.kill(), which is never called
    child.once("exit", (code, signal) => {
      this.forget(pid);
      const ending: LaunchEnding = code === null ? { signal: signal ?? "unknown" } : { exitCode: code };
      const stdoutTail = readTail(join(request.outputDir, "stdout.txt"));
      const stderrTail = readTail(join(request.outputDir, "stderr.txt"));
      if (stdoutTail !== undefined) ending.stdoutTail = stdoutTail;
      if (stderrTail !== undefined) ending.stderrTail = stderrTail;
      listener.ended(ending);
    });
    if (this.live.size === 0) process.on("exit", this.killOnExit);
    this.live.set(pid, child);
    // The group exists already: spawn() returns only once the child has called setsid and exec'd.
    listener.started(pid);
  }

  /** As the Perl launcher does at its end: SIGTERM to every running task, SIGKILL after the grace. */
  async close(): Promise<void> {
    const pids = [...this.live.keys()];
    if (pids.length === 0) return;
    for (const pid of pids) signalGroup(pid, "SIGTERM");
    const exited = Promise.all(
      [...this.live.values()].map((child) => new Promise((resolve) => child.once("exit", resolve))),
    );
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise((resolve) => {
      timer = setTimeout(resolve, this.options.killGraceMs);
    });
    await Promise.race([exited, grace]);
    clearTimeout(timer);
    for (const pid of pids) signalGroup(pid, "SIGKILL");
  }

  private forget(pid: number): void {
    this.live.delete(pid);
    if (this.live.size === 0) process.off("exit", this.killOnExit);
  }
}
