import { writeFileSync } from "node:fs";
import { isAbsolute, join, normalize, relative, resolve, sep } from "node:path";
import { type Logger, messageOf } from "@zkgrid/core";
import {
  type AssignedTask,
  assertTaskId,
  headBytes,
  MAX_MESSAGE_BYTES,
  MAX_OUTPUT_BYTES,
  type StatusUpdate,
  utf8ByteLength,
} from "@zkgrid/protocol";
import { makeFolder, makeFolderSync } from "./folders.js";
import type { HandlerContext, HandlerMap } from "./handlers.js";
import type { LaunchEnding, TaskLauncher } from "./launcher.js";
import { signalGroup } from "./process-group.js";
import { UnrecoverableError } from "./unrecoverable.js";

/**
 * Why the worker ends a task early:
 * - `stop`: the worker shuts down; the task is reported `returned` so the leader hands it out again;
 * - `cancel`: the leader took the task out of the assignment; reported `cancelled`;
 * - `session-lost`: the session that was given the task is gone; nothing is reported.
 */
export type KillReason = "stop" | "cancel" | "session-lost" | "cut-off";

export interface TaskRunOptions {
  worker: string;
  session: string;
  /** The worker's working directory; output goes to `<baseDir>/<worker>/<task-id>`. */
  baseDir: string;
  handlers: HandlerMap;
  /** Starts command tasks' processes. */
  launcher: TaskLauncher;
  /** Time between SIGTERM and SIGKILL when a process group is killed. */
  killGraceMs: number;
  logger: Logger;
  /** Called once the process is spawned (or the handler called), with the `running` update. */
  onRunning: (update: StatusUpdate) => void;
}

/** The last base found absolute and normal: a worker asks with the same one for every task. */
let normalBase: string | undefined;

/** The output folder of task `id`: `<baseDir>/<worker>/<id>`; throws if the id is invalid or escapes. */
export function taskOutputDir(baseDir: string, worker: string, id: string): string {
  assertTaskId(id);
  // The common case, without path arithmetic: an absolute, normal base and a valid id, which is one
  // path segment other than "." and "..".
  if (
    baseDir === normalBase ||
    (isAbsolute(baseDir) && !baseDir.endsWith(sep) && normalize(baseDir) === baseDir)
  ) {
    normalBase = baseDir;
    return `${baseDir}${sep}${worker}${sep}${id}`;
  }
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

function errorMessage(error: unknown): string {
  const text = messageOf(error);
  return headBytes(text, MAX_MESSAGE_BYTES);
}

/** The ending of a run that threw `error`; an UnrecoverableError also refuses a retry. */
function thrown(error: unknown): Ending {
  return error instanceof UnrecoverableError
    ? { error: errorMessage(error), noRetry: true }
    : { error: errorMessage(error) };
}

/** True for a promise or any other value with a `then` method (which `await` would follow). */
function isThenable(value: unknown): boolean {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** How a process or handler ended, before the worker's reason for killing it is applied. */
interface Ending {
  exitCode?: number;
  signal?: string;
  error?: string;
  output?: unknown;
  timedOut?: boolean;
  /** The handler threw an UnrecoverableError: the failure is final, whatever the retry policy. */
  noRetry?: boolean;
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
  /** The process group leader of a command task, once it runs. */
  private pid: number | undefined;
  private exited = false;
  /** A command task's output tails, when its process ran. */
  private tails: { stdout: string; stderr: string } | undefined;
  /** Made when a handler first reads `ctx.signal`: most never do. */
  private abortController: AbortController | undefined;
  /** Why the task must end early, as its signal's abort reason. */
  private abortReason: Error | undefined;
  /** Stops waiting for a handler; set while one runs. */
  private giveUpHandler: ((ending: Ending) => void) | undefined;
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
    this.abortWith(new Error(`task ${reason === "cancel" ? "cancelled" : "given up"} by the worker`), {});
    this.terminateGroup();
  }

  /** The signal a handler gets; aborted already if the task was told to end before it asked. */
  get signal(): AbortSignal {
    if (this.abortController === undefined) {
      this.abortController = new AbortController();
      if (this.abortReason !== undefined) this.abortController.abort(this.abortReason);
    }
    return this.abortController.signal;
  }

  private abortWith(reason: Error, ending: Ending): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.giveUpHandler?.(ending); // before abort(): the ending must not depend on its listeners
    this.abortController?.abort(reason);
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
      // A handler gets its folder only when it asks for it (ctx.outputDir): most never do. A command's
      // folder is made by the launcher's child, just before it opens stdout.txt there.
      if (spec.handler === undefined) this.outputDirRel = `${this.options.worker}/${this.id}`;
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
      // A handler that throws before it returns a promise ends here.
      ending = thrown(error);
    }
    return this.finish(ending, outputDir);
  }

  /** Makes a handler's output folder the first time it asks for it (most never do). */
  handlerFolder(outputDir: string): string {
    if (this.outputDirRel === undefined) {
      makeFolderSync(outputDir);
      this.outputDirRel = `${this.options.worker}/${this.id}`;
    }
    return outputDir;
  }

  private markRunning(): void {
    this.startedAt = Date.now();
    const update: StatusUpdate = {
      id: this.id,
      attempt: this.attempt,
      state: "running",
      at: this.startedAt,
      startedAt: this.startedAt,
    };
    if (this.outputDirRel !== undefined) update.outputDir = this.outputDirRel;
    this.options.onRunning(update);
  }

  private async runCommand(outputDir: string): Promise<Ending> {
    const { spec } = this.task;
    if (spec.cmd === undefined) return { error: "the task has neither cmd nor handler" };
    const cwd = taskCwd(outputDir, spec.cwd);
    // The launcher creates the output folder itself; a folder inside it is made here.
    if (cwd !== outputDir && !isAbsolute(spec.cwd ?? "")) await makeFolder(cwd);
    if (this.killedFor !== undefined) return {};

    const [file, args]: [string, string[]] =
      spec.args === undefined ? ["/bin/sh", ["-c", spec.cmd]] : [spec.cmd, spec.args];
    const env: Array<[string, string]> = [
      ["ZKGRID_TASK_ID", this.id],
      ["ZKGRID_TASK_ATTEMPT", String(this.attempt)],
      ["ZKGRID_WORKER", this.options.worker],
      ["ZKGRID_OUTPUT_DIR", outputDir],
      ...Object.entries(spec.env ?? {}),
    ];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const ending = await new Promise<LaunchEnding>((resolveEnding) => {
      this.options.launcher.launch(
        { outputDir, cwd, file, args, env },
        {
          started: (pid) => {
            if (this.exited) return;
            this.pid = pid;
            this.markRunning();
            this.log("debug", `started pid ${pid}`);
            if (this.killedFor !== undefined) this.terminateGroup();
            else if (spec.timeoutMs !== undefined) {
              timer = setTimeout(() => {
                timedOut = true;
                this.log("warn", `timed out after ${spec.timeoutMs} ms, killing its process group`);
                this.terminateGroup();
              }, spec.timeoutMs);
            }
          },
          ended: (launched) => {
            this.exited = true;
            clearTimeout(timer);
            resolveEnding(launched);
          },
        },
      );
    });
    this.tails = { stdout: ending.stdoutTail ?? "", stderr: ending.stderrTail ?? "" };
    const { failure } = ending;
    if (failure === undefined) {
      return ending.exitCode === undefined
        ? { signal: ending.signal ?? "unknown", timedOut }
        : { exitCode: ending.exitCode, timedOut };
    }
    // No process ran the program: it did not start.
    this.startedAt = undefined;
    return { error: failureMessage(failure, file, cwd, outputDir), timedOut };
  }

  private terminateGroup(): void {
    const pid = this.pid;
    if (pid === undefined || this.exited) return;
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
    const call = (handler as (input: unknown, ctx: unknown) => unknown)(
      spec.input,
      handlerContext(this, outputDir),
    );
    // A handler that returned a value, not a promise, has ended: nothing to race against a timeout
    // or a kill (neither can come while it runs).
    if (!isThenable(call)) return { output: call };
    let timer: NodeJS.Timeout | undefined;
    try {
      // A handler cannot be killed: on timeout or kill the worker stops waiting for it. One promise
      // that either settles, rather than a race of two.
      return await new Promise<Ending>((resolveEnding) => {
        this.giveUpHandler = resolveEnding;
        if (this.abortReason !== undefined) resolveEnding({});
        if (spec.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            this.log("warn", `timed out after ${spec.timeoutMs} ms`);
            this.abortWith(new Error(`timed out after ${spec.timeoutMs} ms`), { timedOut: true });
          }, spec.timeoutMs);
        }
        Promise.resolve(call).then(
          (output) => resolveEnding({ output }),
          (error: unknown) => resolveEnding(thrown(error)),
        );
      });
    } finally {
      clearTimeout(timer);
      this.giveUpHandler = undefined;
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
    // Field by field, not with conditional spreads: this runs once per task.
    const update: StatusUpdate = { id: this.id, attempt: this.attempt, state, at: finishedAt };
    if (this.startedAt !== undefined) update.startedAt = this.startedAt;
    update.finishedAt = finishedAt;
    if (ending.exitCode !== undefined) update.exitCode = ending.exitCode;
    if (ending.signal !== undefined) update.signal = ending.signal;
    if (error !== undefined) update.error = error;
    if (this.outputDirRel !== undefined) update.outputDir = this.outputDirRel;
    if (ending.noRetry === true && state === "failed") update.noRetry = true;
    if (this.tails !== undefined) {
      update.stdoutTail = this.tails.stdout;
      update.stderrTail = this.tails.stderr;
    }
    if (output !== undefined) update.output = output;
    // result.json: for commands, and for handlers that used their folder or whose output is too large.
    if (outputDir !== undefined && (this.outputDirRel !== undefined || fullOutput !== undefined)) {
      if (this.outputDirRel === undefined) {
        await makeFolder(outputDir);
        this.outputDirRel = `${this.options.worker}/${this.id}`;
        update.outputDir = this.outputDirRel;
      }
      const problem = this.writeResultFile(outputDir, update, fullOutput);
      // The status is then the only record of how the task ended, and a full disk often explains it
      // (a task's own "no space" message could not be written to stderr.txt either).
      if (problem !== undefined)
        update.error = headBytes(
          update.error === undefined ? problem : `${update.error}; ${problem}`,
          MAX_MESSAGE_BYTES,
        );
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
    if (this.killedFor === "stop" || this.killedFor === "cut-off") return "returned";
    if (this.killedFor === "cancel") return "cancelled";
    if (ending.timedOut) return "timed-out";
    if (error !== undefined || ending.signal !== undefined) return "failed";
    return ending.exitCode === undefined || ending.exitCode === 0 ? "succeeded" : "failed";
  }

  /** Writes result.json; returns why it could not, for the task's status. */
  private writeResultFile(outputDir: string, update: StatusUpdate, fullOutput: unknown): string | undefined {
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
    const file = join(outputDir, "result.json");
    const text = `${JSON.stringify(result, null, 2)}\n`;
    // A small file: one blocking write costs less than three round trips through the thread pool.
    try {
      try {
        writeFileSync(file, text);
      } catch (error) {
        // The launcher had not made the folder: the task ended before its process started.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        makeFolderSync(outputDir);
        writeFileSync(file, text);
      }
    } catch (error) {
      const problem = resultFileProblem(file, error);
      this.log("error", problem);
      return problem;
    }
    return undefined;
  }
}

/**
 * A handler's `HandlerContext`: an object whose `signal` and `outputDir` are made when first read (a
 * handler that never reads them costs no AbortController and no folder). An object literal with
 * getters, not a class: spreading it (`{ ...ctx }`) copies both, as the type's plain properties
 * promise. V8 builds such a literal in ~1.2 µs a task; a class instance took ~0.02 but lost both
 * fields to a spread.
 */
function handlerContext(run: TaskRun, outputDir: string): HandlerContext {
  return {
    taskId: run.id,
    attempt: run.attempt,
    get signal() {
      return run.signal;
    },
    get outputDir() {
      return run.handlerFolder(outputDir);
    },
  };
}

/** Why result.json could not be written, naming the file and, for ENOSPC and EDQUOT, the full disk. */
function resultFileProblem(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOSPC") return `the disk is full (ENOSPC): could not write ${file}`;
  if (code === "EDQUOT") return `the disk quota is used up (EDQUOT): could not write ${file}`;
  return `could not write ${file}: ${errorMessage(error)}`;
}

/** Why a command's program did not run, as the task's `error`. */
function failureMessage(
  failure: NonNullable<LaunchEnding["failure"]>,
  file: string,
  cwd: string,
  outputDir: string,
): string {
  const why = failure.code === "" ? failure.text : `${failure.code} (${failure.text})`;
  let message: string;
  switch (failure.stage) {
    case "chdir":
      message =
        failure.code === "ENOENT" || failure.code === "ENOTDIR"
          ? `cwd ${cwd} is not a directory`
          : `could not enter cwd ${cwd}: ${why}`;
      break;
    case "mkdir":
    case "open":
      message = `could not write the output folder ${outputDir}: ${why}`;
      break;
    case "launcher":
      message = why;
      break;
    default:
      message = `could not start ${file}: ${why}`;
  }
  return headBytes(message, MAX_MESSAGE_BYTES);
}
