import { type ChildProcess, spawn } from "node:child_process";
import { constants as fsConstants, mkdirSync } from "node:fs";
import { type FileHandle, mkdir, open, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import {
  type AssignedTask,
  assertTaskId,
  headBytes,
  MAX_MESSAGE_BYTES,
  MAX_OUTPUT_BYTES,
  type StatusUpdate,
  TAIL_BYTES,
  tailBytes,
  utf8ByteLength,
} from "@zkgrid/protocol";
import type { HandlerMap } from "./handlers.js";
import type { Logger } from "./logger.js";

/**
 * Why the worker ends a task early:
 * - `stop`: the worker shuts down; the task is reported `returned` so the leader hands it out again;
 * - `cancel`: the leader took the task out of the assignment; reported `cancelled`;
 * - `session-lost`: the session that was given the task is gone; nothing is reported.
 */
export type KillReason = "stop" | "cancel" | "session-lost";

export interface TaskRunOptions {
  worker: string;
  session: string;
  /** The worker's working directory; output goes to `<baseDir>/<worker>/<task-id>`. */
  baseDir: string;
  handlers: HandlerMap;
  /** Time between SIGTERM and SIGKILL when a process group is killed. */
  killGraceMs: number;
  logger: Logger;
  /** Called once the process is spawned (or the handler called), with the `running` update. */
  onRunning: (update: StatusUpdate) => void;
}

/** The output folder of task `id`: `<baseDir>/<worker>/<id>`; throws if the id is invalid or escapes. */
export function taskOutputDir(baseDir: string, worker: string, id: string): string {
  assertTaskId(id);
  const workerDir = resolve(baseDir, worker);
  const dir = resolve(workerDir, id);
  if (!isStrictlyInside(workerDir, dir)) {
    throw new Error(`task id ${JSON.stringify(id)} leads outside ${workerDir}`);
  }
  return dir;
}

function isStrictlyInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel !== "" && !isAbsolute(rel) && rel.split(sep)[0] !== "..";
}

/** Where a task's process runs: its output folder, a folder inside it, or an absolute path. */
function taskCwd(outputDir: string, cwd: string | undefined): string {
  if (cwd === undefined || cwd === "") return outputDir;
  if (isAbsolute(cwd)) return cwd;
  const dir = resolve(outputDir, cwd);
  if (dir !== outputDir && !isStrictlyInside(outputDir, dir)) {
    throw new Error(`cwd ${JSON.stringify(cwd)} leads outside the task's output folder`);
  }
  return dir;
}

/** Environment variables of the worker that a task does not inherit: they hold its credentials. */
const PRIVATE_ENV = ["ZKGRID_AUTH", "ZKGRID_AUTH_FILE"];

function taskEnv(extra: Record<string, string> | undefined, vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PRIVATE_ENV) delete env[name];
  return { ...env, ...vars, ...extra };
}

function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return headBytes(text, MAX_MESSAGE_BYTES);
}

async function readTail(file: string): Promise<string> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, fsConstants.O_RDONLY);
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, size - length);
    return tailBytes(buffer.subarray(0, bytesRead), TAIL_BYTES);
  } catch {
    return "";
  } finally {
    await handle?.close();
  }
}

/** How a process or handler ended, before the worker's reason for killing it is applied. */
interface Ending {
  exitCode?: number;
  signal?: string;
  error?: string;
  output?: unknown;
  timedOut?: boolean;
}

/**
 * One attempt of one task on this worker: runs it, writes its output folder and produces the final
 * `StatusUpdate` (or null when its result must be dropped because its session is gone).
 */
export class TaskRun {
  readonly id: string;
  readonly attempt: number;
  readonly session: string;
  /** Set when the process was spawned or the handler called. */
  startedAt: number | undefined;
  /** The final update; null when the run was killed because its session was lost. */
  readonly result: Promise<StatusUpdate | null>;

  private killedFor: KillReason | undefined;
  private child: ChildProcess | undefined;
  private readonly abort = new AbortController();
  private readonly options: TaskRunOptions;
  private readonly task: AssignedTask;
  private outputDirRel: string | undefined;

  constructor(task: AssignedTask, options: TaskRunOptions) {
    this.task = task;
    this.id = task.id;
    this.attempt = task.attempt;
    this.session = options.session;
    this.options = options;
    this.result = this.execute();
  }

  /** True once the worker asked the task to end early. */
  get killed(): boolean {
    return this.killedFor !== undefined;
  }

  /** Ends the task early: its process group gets SIGTERM, then SIGKILL; a handler's signal aborts. */
  kill(reason: KillReason): void {
    if (this.killedFor !== undefined) return;
    this.killedFor = reason;
    this.abort.abort(new Error(`task ${reason === "cancel" ? "cancelled" : "given up"} by the worker`));
    this.terminateGroup();
  }

  private log(
    level: "debug" | "info" | "warn" | "error",
    msg: string,
    fields?: Record<string, unknown>,
  ): void {
    this.options.logger(level, msg, { task: this.id, attempt: this.attempt, ...fields });
  }

  private async execute(): Promise<StatusUpdate | null> {
    const { spec } = this.task;
    let outputDir: string;
    try {
      outputDir = taskOutputDir(this.options.baseDir, this.options.worker, this.id);
      // A handler gets its folder only when it asks for it (ctx.outputDir): most never do.
      if (spec.handler === undefined) {
        await mkdir(outputDir, { recursive: true });
        this.outputDirRel = `${this.options.worker}/${this.id}`;
      }
    } catch (error) {
      this.log("error", `refused: ${errorMessage(error)}`);
      return this.finish({ error: errorMessage(error) }, undefined);
    }
    if (this.killedFor !== undefined) return this.finish({}, outputDir);
    let ending: Ending;
    try {
      ending =
        spec.handler !== undefined
          ? await this.runHandler(spec.handler, outputDir)
          : await this.runCommand(outputDir);
    } catch (error) {
      ending = { error: errorMessage(error) };
    }
    return this.finish(ending, outputDir);
  }

  private markRunning(): void {
    this.startedAt = Date.now();
    this.options.onRunning({
      id: this.id,
      attempt: this.attempt,
      state: "running",
      at: this.startedAt,
      startedAt: this.startedAt,
      ...(this.outputDirRel === undefined ? {} : { outputDir: this.outputDirRel }),
    });
  }

  private async runCommand(outputDir: string): Promise<Ending> {
    const { spec } = this.task;
    if (spec.cmd === undefined) return { error: "the task has neither cmd nor handler" };
    const cwd = taskCwd(outputDir, spec.cwd);
    if (cwd !== outputDir && !isAbsolute(spec.cwd ?? "")) await mkdir(cwd, { recursive: true });
    const cwdStat = await stat(cwd).catch(() => undefined);
    if (!cwdStat?.isDirectory()) return { error: `cwd ${cwd} is not a directory` };

    const [file, args]: [string, string[]] =
      spec.args === undefined ? ["/bin/sh", ["-c", spec.cmd]] : [spec.cmd, spec.args];
    const env = taskEnv(spec.env, {
      ZKGRID_TASK_ID: this.id,
      ZKGRID_TASK_ATTEMPT: String(this.attempt),
      ZKGRID_WORKER: this.options.worker,
      ZKGRID_OUTPUT_DIR: outputDir,
    });
    // The child writes straight into the files: nothing is buffered here, and a background
    // grandchild that keeps the files open cannot hold up the end of the task.
    const stdout = await open(join(outputDir, "stdout.txt"), "w");
    const stderr = await open(join(outputDir, "stderr.txt"), "w").catch(async (error: unknown) => {
      await stdout.close();
      throw error;
    });
    let child: ChildProcess;
    try {
      // detached: the task leads its own process group, so a kill reaches everything it started.
      child = spawn(file, args, { cwd, env, detached: true, stdio: ["ignore", stdout.fd, stderr.fd] });
    } catch (error) {
      await Promise.all([stdout.close(), stderr.close()]);
      return { error: errorMessage(error) };
    }
    // Listen before anything is awaited: a spawn error is emitted on the next tick.
    const ended = new Promise<Ending>((resolveEnding) => {
      child.once("error", (error) =>
        resolveEnding({ error: `could not start ${file}: ${errorMessage(error)}` }),
      );
      child.once("exit", (code, signal) =>
        resolveEnding(code !== null ? { exitCode: code } : { signal: signal ?? "unknown" }),
      );
    });
    this.child = child;
    await Promise.all([stdout.close(), stderr.close()]);
    if (child.pid === undefined) return ended;
    this.markRunning();
    this.log("debug", `started pid ${child.pid}`);
    if (this.killedFor !== undefined) this.terminateGroup();

    let timedOut = false;
    const timer =
      spec.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            this.log("warn", `timed out after ${spec.timeoutMs} ms, killing its process group`);
            this.terminateGroup();
          }, spec.timeoutMs);
    try {
      const ending = await ended;
      return { ...ending, timedOut };
    } finally {
      clearTimeout(timer);
    }
  }

  private terminateGroup(): void {
    const child = this.child;
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid;
    signalGroup(pid, "SIGTERM");
    // Unconditional: a grandchild that ignores SIGTERM must not outlive its task.
    setTimeout(() => signalGroup(pid, "SIGKILL"), this.options.killGraceMs).unref();
  }

  private async runHandler(name: string, outputDir: string): Promise<Ending> {
    const handler = Object.hasOwn(this.options.handlers, name) ? this.options.handlers[name] : undefined;
    if (handler === undefined) return { error: `no handler named ${JSON.stringify(name)} on this worker` };
    const { spec } = this.task;
    this.markRunning();
    this.log("debug", `calling handler ${name}`);
    const run = this;
    const call = (handler as (input: unknown, ctx: unknown) => unknown)(spec.input, {
      taskId: this.id,
      attempt: this.attempt,
      signal: this.abort.signal,
      get outputDir() {
        if (run.outputDirRel === undefined) {
          mkdirSync(outputDir, { recursive: true });
          run.outputDirRel = `${run.options.worker}/${run.id}`;
        }
        return outputDir;
      },
    });
    let timer: NodeJS.Timeout | undefined;
    // A handler cannot be killed: on timeout or kill the worker stops waiting for it.
    const giveUp = new Promise<Ending>((resolveEnding) => {
      const onAbort = () => resolveEnding({});
      this.abort.signal.addEventListener("abort", onAbort, { once: true });
      if (spec.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.log("warn", `timed out after ${spec.timeoutMs} ms`);
          resolveEnding({ timedOut: true }); // before abort(), whose listener resolves too
          this.abort.abort(new Error(`timed out after ${spec.timeoutMs} ms`));
        }, spec.timeoutMs);
      }
    });
    const settled = Promise.resolve(call).then(
      (output): Ending => ({ output }),
      (error: unknown): Ending => ({ error: errorMessage(error) }),
    );
    try {
      return await Promise.race([settled, giveUp]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async finish(ending: Ending, outputDir: string | undefined): Promise<StatusUpdate | null> {
    const finishedAt = Date.now();
    if (this.killedFor === "session-lost") {
      this.log("warn", "result dropped: its session is gone");
      return null;
    }
    let { error, output } = ending;
    let fullOutput: unknown;
    if (output !== undefined && error === undefined) {
      // What the report carries is the value's JSON form (a Date becomes a string, and so on).
      let json: string | undefined;
      try {
        json = JSON.stringify(output);
      } catch (cause) {
        error = `the handler's output is not JSON-serialisable: ${errorMessage(cause)}`;
      }
      output = json === undefined ? undefined : JSON.parse(json);
      const size = json === undefined ? 0 : utf8ByteLength(json);
      if (size > MAX_OUTPUT_BYTES) {
        error = `the handler's output is ${size} bytes of JSON, more than ${MAX_OUTPUT_BYTES}; it is in result.json`;
        fullOutput = output;
        output = undefined;
      }
    }
    const state = this.finalState(ending, error);
    const update: StatusUpdate = {
      id: this.id,
      attempt: this.attempt,
      state,
      at: finishedAt,
      ...(this.startedAt === undefined ? {} : { startedAt: this.startedAt }),
      finishedAt,
      ...(ending.exitCode === undefined ? {} : { exitCode: ending.exitCode }),
      ...(ending.signal === undefined ? {} : { signal: ending.signal }),
      ...(error === undefined ? {} : { error }),
      ...(this.outputDirRel === undefined ? {} : { outputDir: this.outputDirRel }),
    };
    if (outputDir !== undefined && this.task.spec.handler === undefined && this.child !== undefined) {
      update.stdoutTail = await readTail(join(outputDir, "stdout.txt"));
      update.stderrTail = await readTail(join(outputDir, "stderr.txt"));
    }
    if (output !== undefined) update.output = output;
    // result.json: for commands, and for handlers that used their folder or whose output is too large.
    if (outputDir !== undefined && (this.outputDirRel !== undefined || fullOutput !== undefined)) {
      if (this.outputDirRel === undefined) {
        await mkdir(outputDir, { recursive: true });
        this.outputDirRel = `${this.options.worker}/${this.id}`;
        update.outputDir = this.outputDirRel;
      }
      await this.writeResultFile(outputDir, update, fullOutput);
    }
    const how =
      update.exitCode !== undefined
        ? ` (exit code ${update.exitCode})`
        : update.signal !== undefined
          ? ` (signal ${update.signal})`
          : "";
    this.log(
      state === "succeeded" ? "debug" : "warn",
      `${state}${how}${error === undefined ? "" : `: ${error}`}`,
    );
    return update;
  }

  private finalState(ending: Ending, error: string | undefined): StatusUpdate["state"] {
    if (this.killedFor === "stop") return "returned";
    if (this.killedFor === "cancel") return "cancelled";
    if (ending.timedOut) return "timed-out";
    if (error !== undefined || ending.signal !== undefined) return "failed";
    return ending.exitCode === undefined || ending.exitCode === 0 ? "succeeded" : "failed";
  }

  private async writeResultFile(outputDir: string, update: StatusUpdate, fullOutput: unknown): Promise<void> {
    const startedAt = update.startedAt;
    const result = {
      id: this.id,
      attempt: this.attempt,
      worker: this.options.worker,
      session: this.session,
      state: update.state,
      exitCode: update.exitCode,
      signal: update.signal,
      error: update.error,
      startedAt,
      finishedAt: update.finishedAt,
      durationMs:
        startedAt === undefined || update.finishedAt === undefined
          ? undefined
          : update.finishedAt - startedAt,
      output: fullOutput ?? update.output,
    };
    try {
      await writeFile(join(outputDir, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
    } catch (error) {
      this.log("error", `could not write result.json: ${errorMessage(error)}`);
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
