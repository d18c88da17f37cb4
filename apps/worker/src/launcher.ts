import { spawnSync } from "node:child_process";
import type { Logger } from "@zkgrid/core";
import { PerlLauncher } from "./launcher-perl.js";
import { SpawnLauncher } from "./launcher-spawn.js";

/** What the launcher runs: `file` with `args` (argv[0] is `file`), in `cwd`, output into `outputDir`. */
export interface LaunchRequest {
  /** Created if missing (one level); `stdout.txt` and `stderr.txt` are written there. */
  outputDir: string;
  cwd: string;
  file: string;
  args: readonly string[];
  /** Added to the launcher's environment, in this order. */
  env: ReadonlyArray<readonly [string, string]>;
}

/** How a launched process ended. */
export interface LaunchEnding {
  exitCode?: number;
  signal?: string;
  /** Set when no process ran the task's program: `stage` says what failed. */
  failure?: { stage: "fork" | "mkdir" | "open" | "chdir" | "exec" | "launcher"; code: string; text: string };
  /** The last TAIL_BYTES of each stream when the process ended; undefined if never written. */
  stdoutTail?: string;
  stderrTail?: string;
}

export interface LaunchListener {
  /** The process exists (its pid leads its own process group). Not called if it ends first. */
  started(pid: number): void;
  ended(ending: LaunchEnding): void;
}

/**
 * How the worker starts task processes:
 * - `perl`: through the Perl launcher beside it (launcher-perl.ts), which kills every task when the
 *   worker dies, however it dies, and forks without copying the worker's heap;
 * - `spawn`: from the worker itself (launcher-spawn.ts), where Perl is missing.
 */
export type LauncherMode = "perl" | "spawn";

export interface TaskLauncher {
  readonly mode: LauncherMode;
  launch(request: LaunchRequest, listener: LaunchListener): void;
  /** Ends the launcher once its tasks are done (it kills any still running) and waits for it. */
  close(): Promise<void>;
}

export interface TaskLauncherOptions {
  /** Between SIGTERM and SIGKILL when the launcher kills its tasks because the worker is gone. */
  killGraceMs: number;
  /** Shown in `ps` as `zkgrid-launcher <label>`. */
  label: string;
  logger: Logger;
}

/**
 * The Perl launcher if `perl` (a path, or a name looked up on PATH) runs with the one module the
 * launcher uses, otherwise plain spawning; `perl: false` asks for plain spawning. Logs which it is.
 */
export function createTaskLauncher(options: TaskLauncherOptions & { perl: string | false }): TaskLauncher {
  const { perl, logger } = options;
  if (perl !== false) {
    // Also finds the interpreter's path, for the log line.
    const probe = spawnSync(perl, ["-MPOSIX", "-e", "print $^X"], { encoding: "utf8", timeout: 10_000 });
    if (probe.error === undefined && probe.status === 0) {
      logger("info", `task launcher: perl (${probe.stdout || perl})`);
      return new PerlLauncher({ ...options, perl });
    }
    const why =
      probe.error !== undefined
        ? `${perl} cannot be run (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message})`
        : `${perl} exited with ${probe.status ?? probe.signal}: ${probe.stderr.trim().split("\n")[0] ?? ""}`;
    logger(
      "warn",
      `task launcher: plain spawn, since ${why}; without the Perl launcher, tasks still running when the worker is killed (SIGKILL, a crash) are not killed with it, and each task is forked from the worker's own process`,
    );
  } else {
    logger("info", "task launcher: plain spawn (asked for)");
  }
  return new SpawnLauncher(options);
}
