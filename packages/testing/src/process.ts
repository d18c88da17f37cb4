import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, rmSync } from "node:fs";
import type { Writable } from "node:stream";

/*
 * Every server runs under a watchdog so that no JVM outlives the process that started it, even one that
 * was SIGKILLed. `sh` forks a reader of its stdin (a pipe from us) and then execs java in place, so the
 * child's pid is java's own. The reader blocks until the pipe closes: a bare EOF means we are gone and it
 * kills java; the newline we write once java has exited lets it leave quietly (no kill of a reused pid).
 */
const WATCHDOG = `exec 3<&0
( read -r line <&3 || kill -9 $$ ) </dev/null >/dev/null 2>&1 &
exec "$@" 3<&- </dev/null`;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One java process under its watchdog, with stdout and stderr appended to `logFile`. */
export class WatchedProcess {
  readonly pid: number;
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private exit: Exit | undefined;

  constructor(command: string, args: readonly string[], logFile: string) {
    installExitHooks();
    const log = openSync(logFile, "a");
    try {
      this.child = spawn("sh", ["-c", WATCHDOG, "zk-watchdog", command, ...args], {
        stdio: ["pipe", log, log],
      });
    } finally {
      closeSync(log);
    }
    this.child.on("error", () => {});
    if (this.child.pid === undefined) throw new Error(`could not spawn sh to run ${command}`);
    this.pid = this.child.pid;
    const stdin = this.child.stdin as Writable & { unref?: () => void };
    stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        stdin.end("\n");
        resolve(this.exit);
      });
    });
    live.add(this);
    // A forgotten server must not keep the event loop alive; the watchdog kills it when we exit.
    this.child.unref();
    stdin.unref?.();
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exit !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Exited between the check and the kill.
    }
  }

  /** SIGTERM (delivered even when paused), then SIGKILL after `graceMs`. */
  async terminate(graceMs: number): Promise<Exit> {
    this.signal("SIGTERM");
    this.signal("SIGCONT");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    try {
      return await this.waitForExit();
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(): Promise<Exit> {
    this.signal("SIGKILL");
    return this.waitForExit();
  }

  private async waitForExit(): Promise<Exit> {
    // Hold the event loop open only while someone awaits the exit.
    this.child.ref();
    return this.exited;
  }

  /** Synchronous last resort for the exit hooks. */
  killNow(): void {
    this.signal("SIGKILL");
  }
}

const live = new Set<WatchedProcess>();
const removeAtExit = new Set<string>();
let hooksInstalled = false;

/** Removes `dir` when this process exits (it may still be needed for a restart until then). */
export function removeDirAtExit(dir: string): void {
  installExitHooks();
  removeAtExit.add(dir);
}

function cleanUpNow(): void {
  for (const watched of live) watched.killNow();
  for (const dir of removeAtExit) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A JVM still dying may hold files open; tmp cleanup is best effort.
    }
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", cleanUpNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      cleanUpNow();
      // Alone, we keep the default meaning of the signal: die by it. Otherwise the other listener decides.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}
