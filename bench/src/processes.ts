import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Writable } from "node:stream";

/*
 * Every process the bench starts runs under a watchdog, so none outlives the bench even when the bench is
 * SIGKILLed: `sh` forks a reader of its stdin (a pipe from us) and then execs the command in place, so
 * the child's pid is the command's own. The reader blocks until the pipe closes: a bare EOF means we are
 * gone and it kills the command; the newline we write once the command has exited lets it leave quietly.
 */
const WATCHDOG = `exec 3<&0
( read -r line <&3 || kill -9 $$ ) </dev/null >/dev/null 2>&1 &
exec "$@" 3<&- </dev/null`;

const live = new Set<GuardedProcess>();
let hooksInstalled = false;

/** Kills every process still running (SIGKILL, synchronous): for `exit` and fatal signals. */
export function killAllNow(): void {
  for (const p of live) p.signal("SIGKILL");
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping everything it started\n`);
      killAllNow();
      process.exit(130);
    });
  }
}

export interface SpawnOptions {
  /** stderr (and stdout, unless `pipeStdout`) are appended here. */
  logFile: string;
  /** Keep stdout as a pipe, for waitForLine(); the caller must then read or discard it. */
  pipeStdout?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A child process under the watchdog, with its peak memory readable from /proc while it runs. */
export class GuardedProcess {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private running = true;

  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions,
  ) {
    installExitHooks();
    const log = openSync(options.logFile, "a");
    try {
      this.child = spawn("sh", ["-c", WATCHDOG, `${label}-watchdog`, command, ...args], {
        stdio: ["pipe", options.pipeStdout ? "pipe" : log, log],
        env: options.env ?? process.env,
        cwd: options.cwd,
      });
    } finally {
      closeSync(log);
    }
    this.child.on("error", () => {});
    if (this.child.pid === undefined) throw new Error(`could not spawn ${command}`);
    this.pid = this.child.pid;
    const stdin = this.child.stdin as Writable;
    stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.running = false;
        live.delete(this);
        stdin.end("\n");
        resolve({ code, signal });
      });
    });
    live.add(this);
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Resolves with the first stdout line matching `pattern`; rejects if the process exits first. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    const stdout = this.child.stdout;
    if (stdout === null) return Promise.reject(new Error(`${this.label} has no stdout`));
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: stdout });
      const timer = setTimeout(() => {
        lines.close();
        reject(new Error(`${this.label} printed no line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      lines.on("line", (line) => {
        if (!pattern.test(line)) return;
        clearTimeout(timer);
        lines.close();
        stdout.resume();
        resolve(line);
      });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${this.label} exited (code ${code}, signal ${signal}) before it was ready`));
      });
    });
  }

  /** Drops stdout (so a chatty child never blocks on a full pipe). */
  discardStdout(): void {
    this.child.stdout?.resume();
  }

  /** Peak resident set size in bytes (VmHWM), while the process runs. */
  peakRssBytes(): number | undefined {
    return readStatusKb(this.pid, "VmHWM");
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** A field of /proc/<pid>/status in bytes (the file gives kB), or undefined if unreadable. */
export function readStatusKb(pid: number, field: "VmHWM" | "VmRSS"): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) a process has used, in ms, or undefined if it is gone. `procPath` reads
 * another entry of /proc instead, e.g. `<pid>/task/<tid>` for one thread.
 */
export function cpuTimeMs(pid: number, procPath = String(pid)): number | undefined {
  try {
    const stat = readFileSync(`/proc/${procPath}/stat`, "utf8");
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU time the whole machine spent busy (all CPUs, from /proc/stat), in ms. */
export function machineBusyMs(): number {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    // user nice system idle iowait irq softirq steal …
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return ((user + nice + system + irq + softirq + steal) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/**
 * CPU time used between start() and stop() by groups of processes ("master": [pid], "workers": [pids]);
 * the group "submitter" is this process, and "machine" the whole machine (so what is not ours shows).
 */
export class CpuMeter {
  private startedAt = new Map<string, number>();

  constructor(private readonly groups: Record<string, readonly number[]>) {}

  private read(): Map<string, number> {
    const now = new Map<string, number>();
    now.set("machine", machineBusyMs());
    for (const [group, pids] of Object.entries(this.groups)) {
      let ms = 0;
      for (const pid of pids) ms += cpuTimeMs(pid) ?? 0;
      now.set(group, ms);
    }
    const own = process.cpuUsage();
    now.set("submitter", (own.user + own.system) / 1000);
    return now;
  }

  start(): void {
    this.startedAt = this.read();
  }

  /** ms of CPU per group since start(). */
  stop(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [group, ms] of this.read()) out[group] = ms - (this.startedAt.get(group) ?? 0);
    return out;
  }
}

/** Sums of CpuMeter readings over several timed rounds. */
export class CpuTotals {
  readonly totals: Record<string, number> = {};

  add(reading: Record<string, number>): void {
    for (const [group, ms] of Object.entries(reading)) this.totals[group] = (this.totals[group] ?? 0) + ms;
  }
}
