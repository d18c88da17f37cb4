import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { messageOf } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";
import packageJson from "../package.json" with { type: "json" };
import { runCancelCommand } from "./cli-cancel.js";
import { runScheduleCommand } from "./cli-schedule.js";
import {
  CliUsageError,
  DURATIONS_USAGE,
  GRID_FLAGS_USAGE,
  GRID_OPTIONS,
  type GridTarget,
  gridTarget,
  idList,
  MissingPackageError,
  positiveDuration,
} from "./cli-common.js";
import { runDashboardCommand } from "./cli-dashboard.js";
import { runLimitCommand, runPauseCommand, runResumeCommand } from "./cli-gate.js";
import { ProgressBar } from "./cli-progress.js";
import { runStatusCommand, runTaskCommand, runTasksCommand } from "./cli-status.js";
import { applyTimeFlags, TIME_FLAG_OF_FIELD, TIME_OPTIONS, TIME_USAGE, timeFlagsGiven } from "./cli-time.js";
import { formatDuration } from "./duration.js";
import { formatHistory } from "./status.js";
import { InvalidTaskError, WaitTimeoutError } from "./errors.js";
import { connectGrid, type GridClient } from "./grid-client.js";
import { decodeTaskBytes, parseTaskText, TaskTextError } from "./task-text.js";
import { prepareTasks, type TaskInput } from "./tasks.js";

const PROGRAM = "zkgrid-submit";

export const USAGE = `Usage: ${PROGRAM} [options] < tasks
       ${PROGRAM} --cmd <command> [task flags] [--wait]

Submits tasks to a zkgrid and prints their ids, one per line (with --wait: their results).

Tasks come from stdin or --file, as UTF-8: one JSON object, NDJSON (one task per line, blank lines
ignored), or a JSON array. A task is {"cmd": "..."} or {"handler": "...", "input": ...} with the
optional fields of TaskSpec ("Payloads" in
${fileURLToPath(new URL("../docs/protocol.md", import.meta.url))});
a task without "id" gets a new one, and two
tasks with the same "id" are refused.

One task from flags:
  --cmd <command>         run with /bin/sh -c (or, with --arg, as a program without a shell)
  --arg <arg>             an argument for --cmd; repeatable (--arg=-x for one starting with "-")
  --handler <name>        an in-process handler on the worker, instead of --cmd
  --input <json>          the handler's input, as JSON
  --env <K=V>             an environment variable; repeatable
  --cwd <dir>             working directory (a relative one is inside the task's output folder)
  --timeout <duration>    kill the task after this long
  --max-attempts <n>      how many times the task may be handed out (default 3)
  --label <label>         a label the worker must have; repeatable
  --priority <n>          -1000..1000, higher runs first (default 0)
  --id <id>               the task's id, an idempotency key (default: a new id)
  --meta <k=v>            free metadata, returned with the result; repeatable

${TIME_USAGE}

Input:
  -f, --file <path>       read tasks from a file ("-" for stdin); repeatable

Waiting:
  -w, --wait              wait for every task and print each result as it arrives; the results come
                          back to this run's own reply dir (R/replies/<address>) when every master
                          takes it, so waiting reads only its own tasks' results, however many other
                          submitters there are (without --wait they go to R/results)
      --json              with --wait: print each result as one TaskStatus JSON line
      --wait-timeout <duration>
                          with --wait: give up after this long (the tasks keep running)

${GRID_FLAGS_USAGE}

  -h, --help              print this help
  -V, --version           print the version

${DURATIONS_USAGE}

Exit status: 0 when submitted (with --wait: when every task succeeded); 1 when a task did not
succeed, the wait timed out, or the grid could not be reached; 2 for bad usage or invalid input,
in which case nothing is submitted.

Examples:
  echo '{"cmd":"ps aux"}' | ${PROGRAM}
  ${PROGRAM} --cmd "echo hi" --wait
  ${PROGRAM} --cmd convert --arg in.png --arg out.jpg --label imagemagick
  ${PROGRAM} --file tasks.ndjson --wait --json > results.ndjson
  ${PROGRAM} --cmd ./fetch.sh --retries 4 --backoff exponential:2s --max-backoff 1m --wait
  ${PROGRAM} --cmd "make report" --at 2026-12-05T03:00:00Z

Commands (the same program is also installed as "zkgrid"; "<command> --help" for each):
  submit [options]                      submit tasks, as above (the default command)
  status                                masters and the leader, workers and their load, queue depth
  tasks [--state S] [--worker W] [--limit N]   assigned, running, queued and recent tasks
  task <id>                             one task's status and the tail of its output
  cancel <id>...                        cancel tasks and wait until they end cancelled
  schedule add|list|show|remove|pause|resume   recurring tasks: --cron '0 3 * * *' --tz Europe/Paris,
                                        or --every 30s, with the task flags above; each slot fires once
  dashboard [--port N] [--host H] [--control]  a live web page of the grid, with /metrics
  pause [--label L]                     hand out no task (of label L) until resume; running ones finish
  resume [--label L]                    lift that pause; the queued tasks start again
  limit set <label> <N>/<interval>      at most N starts of the label's tasks per interval, grid-wide
  limit remove <label> | limit list     remove a label's start limit; list the limits
Outside this repository, status, tasks, task, cancel and schedule show need @zkgrid/observer, and dashboard
@zkgrid/dashboard, installed beside @zkgrid/submit (optional peers; submitting needs neither).
`;

export const OPTIONS = {
  cmd: { type: "string" },
  arg: { type: "string", multiple: true },
  handler: { type: "string" },
  input: { type: "string" },
  env: { type: "string", multiple: true },
  cwd: { type: "string" },
  timeout: { type: "string" },
  "max-attempts": { type: "string" },
  label: { type: "string", multiple: true },
  priority: { type: "string" },
  id: { type: "string" },
  meta: { type: "string", multiple: true },
  ...TIME_OPTIONS,
  file: { type: "string", short: "f", multiple: true },
  wait: { type: "boolean", short: "w" },
  json: { type: "boolean" },
  "wait-timeout": { type: "string" },
  ...GRID_OPTIONS,
  version: { type: "boolean", short: "V" },
} as const;

export type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true }>>["values"];

/** The flags that describe a task, by the TaskSpec field they fill. */
export const FLAG_OF_FIELD: Record<string, string> = {
  id: "--id",
  cmd: "--cmd",
  args: "--arg",
  handler: "--handler",
  input: "--input",
  env: "--env",
  cwd: "--cwd",
  timeoutMs: "--timeout",
  maxAttempts: "--max-attempts",
  labels: "--label",
  priority: "--priority",
  meta: "--meta",
};

/** What the command reads and writes; a test can pass its own. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Ends a long-running command (`dashboard`); without it, SIGINT and SIGTERM do. */
  signal?: AbortSignal;
}

type Command = (argv: readonly string[], io: CliIo) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  submit: (argv, io) => runSubmitCli(argv, io),
  status: runStatusCommand,
  tasks: runTasksCommand,
  task: runTaskCommand,
  cancel: runCancelCommand,
  schedule: runScheduleCommand,
  dashboard: runDashboardCommand,
  pause: runPauseCommand,
  resume: runResumeCommand,
  limit: runLimitCommand,
};

/**
 * Runs `zkgrid <command> ...` (also installed as `zkgrid-submit`): the first argument names the
 * command; without one (flags only, or nothing) it is `submit`. Resolves with the exit status.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // `pnpm start -- status` hands the script its "--" too.
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  const first = args[0];
  if (first === undefined || first.startsWith("-")) return runSubmitCli(argv, io);
  const command = COMMANDS[first];
  if (!command) {
    io.stderr.write(
      `zkgrid: unknown command ${JSON.stringify(first)} (commands: ${Object.keys(COMMANDS).join(", ")})\n` +
        'Try "zkgrid --help".\n',
    );
    return 2;
  }
  try {
    return await command(args.slice(1), io);
  } catch (err) {
    if (!(err instanceof CliUsageError || err instanceof MissingPackageError)) throw err;
    io.stderr.write(`zkgrid ${first}: ${err.message}\n`);
    return err instanceof CliUsageError ? 2 : 1;
  }
}

interface Location {
  source: string;
  line: number;
}

/** Runs the command; resolves with the exit status. */
export async function runSubmitCli(argv: readonly string[], io: CliIo): Promise<number> {
  const fail = (status: number, message: string) => {
    io.stderr.write(`${PROGRAM}: ${message}\n`);
    return status;
  };
  let flags: Flags;
  let tasks: TaskInput[] | undefined;
  let target: GridTarget;
  let waitTimeoutMs: number | undefined;
  try {
    flags = parseFlags(argv);
    if (flags.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (flags.version) {
      io.stdout.write(`${packageJson.version}\n`);
      return 0;
    }
    target = gridTarget(flags, io);
    waitTimeoutMs = positiveDuration("wait-timeout", flags["wait-timeout"]);
    tasks = await readTasks(flags, io);
  } catch (err) {
    if (err instanceof CliUsageError || err instanceof TaskTextError) return fail(2, err.message);
    throw err;
  }
  if (tasks === undefined) {
    // Nothing piped in and nothing named: say how, rather than wait for a terminal's input.
    io.stderr.write(USAGE);
    return 2;
  }

  let grid: GridClient;
  let progress: ProgressBar | undefined;
  try {
    // A waiting run reads only its own results: they come back to a reply dir of its own (the
    // default). Without --wait nobody waits here: results go to R/results, as a later wait expects.
    grid = await connectGrid(flags.wait ? target : { ...target, replyAddress: false });
  } catch (err) {
    return fail(1, `cannot connect to ZooKeeper at ${target.connectString}: ${messageOf(err)}`);
  }
  try {
    const ids = await grid.submit(tasks);
    if (!flags.wait) {
      io.stdout.write(ids.map((id) => `${id}\n`).join(""));
      return 0;
    }
    if (io.stderr.isTTY)
      io.stderr.write(`submitted ${ids.length} task${ids.length === 1 ? "" : "s"}; waiting\n`);
    // Only a person at a terminal gets a bar; a pipe or a log gets the results alone.
    progress = io.stderr.isTTY && ids.length > 1 ? new ProgressBar(io.stderr, ids.length) : undefined;
    const results = await grid.wait(ids, {
      onResult: (status) => {
        progress?.clear();
        io.stdout.write(flags.json ? `${JSON.stringify(status)}\n` : formatStatus(status));
        progress?.add(status);
      },
      ...(waitTimeoutMs === undefined ? {} : { timeoutMs: waitTimeoutMs }),
    });
    progress?.stop();
    return [...results.values()].every((status) => status.state === "succeeded") ? 0 : 1;
  } catch (err) {
    progress?.stop();
    if (!(err instanceof WaitTimeoutError)) return fail(1, messageOf(err));
    return fail(1, `${err.message} (they keep running): ${idList(err.pending)}`);
  } finally {
    await grid.close();
  }
}

/**
 * The tasks from the flags, the files and stdin, each checked against the protocol; undefined when
 * there is nothing to read but a terminal. Throws CliUsageError or TaskTextError naming `file:line`.
 * Ids stay unset where none was given: `submit` makes them, so that `wait` knows they are new.
 */
async function readTasks(flags: Flags, io: CliIo): Promise<TaskInput[] | undefined> {
  if (!flags.wait && (flags.json || flags["wait-timeout"] !== undefined)) {
    throw new CliUsageError(`${flags.json ? "--json" : "--wait-timeout"} needs --wait`);
  }
  const flagTask = taskFromFlags(flags);
  const files = flags.file ?? [];
  if (flagTask === undefined && files.length === 0 && io.stdin.isTTY) return undefined;
  const sources = flagTask === undefined && files.length === 0 ? ["-"] : files;
  if (sources.filter((source) => source === "-").length > 1) {
    throw new CliUsageError('"--file -" (stdin) given twice');
  }

  const inputs: TaskInput[] = flagTask === undefined ? [] : [flagTask];
  const locations: Array<Location | undefined> = flagTask === undefined ? [] : [undefined];
  for (const source of sources) {
    const name = source === "-" ? "stdin" : source;
    for (const { value, line } of parseTaskText(await readSource(source, io), name)) {
      inputs.push(value as TaskInput);
      locations.push({ source: name, line });
    }
  }
  if (inputs.length === 0) {
    throw new CliUsageError(`no tasks in ${sources.map((s) => (s === "-" ? "stdin" : s)).join(", ")}`);
  }
  try {
    prepareTasks(inputs);
    return inputs;
  } catch (err) {
    if (!(err instanceof InvalidTaskError)) throw err;
    const at = locations[err.index];
    const first = duplicateOf(inputs, err);
    if (first !== undefined && at !== undefined) {
      const there = locations[first];
      const where = there === undefined ? "given by --id" : `at ${there.source}:${there.line}`;
      throw new CliUsageError(
        `${at.source}:${at.line}: id: ${JSON.stringify(inputs[err.index]?.id)} is also the id of the task ${where}`,
      );
    }
    if (at !== undefined) throw new CliUsageError(err.at(at.source, at.line).message);
    const flag =
      TIME_FLAG_OF_FIELD[err.field.split("[")[0] ?? ""] ?? FLAG_OF_FIELD[err.field.split(/[.[]/)[0] ?? ""];
    throw new CliUsageError(`${flag ?? "task flags"}: ${err.problem}`);
  }
}

/** For an id given twice, the index of the first task with it (the error is at the second). */
function duplicateOf(inputs: readonly TaskInput[], err: InvalidTaskError): number | undefined {
  const id = inputs[err.index]?.id;
  if (err.field !== "id" || id === undefined) return undefined;
  const first = inputs.findIndex((task) => task.id === id);
  return first < err.index ? first : undefined;
}

function parseFlags(argv: readonly string[]): Flags {
  // `pnpm start -- --cmd x` hands the script its "--" too.
  const args = joinNegativeNumbers(argv[0] === "--" ? argv.slice(1) : argv);
  let flags: Flags;
  try {
    flags = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new CliUsageError(`${messageOf(err)}\nTry "${PROGRAM} --help".`);
  }
  for (const name of ["max-attempts", "priority"] as const) {
    const value = flags[name];
    if (value !== undefined && !/^-?\d+$/.test(value)) {
      throw new CliUsageError(`--${name}: expected an integer, got ${JSON.stringify(value)}`);
    }
  }
  return flags;
}

const VALUE_FLAGS = new Set(
  Object.entries(OPTIONS)
    .filter(([, option]) => option.type === "string")
    .map(([name]) => `--${name}`),
);

/** `--priority -3` as `--priority=-3`: strict parseArgs takes a value starting with "-" for a flag. */
export function joinNegativeNumbers(argv: readonly string[]): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg === "--") return [...args, ...argv.slice(i)];
    if (VALUE_FLAGS.has(arg) && next !== undefined && /^-\d+$/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else args.push(arg);
  }
  return args;
}

/** The task the flags describe, or undefined when neither --cmd nor --handler is given. */
export function taskFromFlags(flags: Flags): TaskInput | undefined {
  const taskFlags = Object.values(FLAG_OF_FIELD)
    .filter((flag) => flags[flag.slice(2) as keyof Flags] !== undefined)
    .concat(timeFlagsGiven(flags));
  if (flags.cmd === undefined && flags.handler === undefined) {
    if (taskFlags.length > 0) {
      throw new CliUsageError(`${taskFlags[0]} describes a task: give --cmd or --handler with it`);
    }
    return undefined;
  }
  const task: TaskInput = {};
  if (flags.id !== undefined) task.id = flags.id;
  if (flags.cmd !== undefined) task.cmd = flags.cmd;
  if (flags.arg !== undefined) task.args = flags.arg;
  if (flags.handler !== undefined) task.handler = flags.handler;
  if (flags.input !== undefined) {
    try {
      task.input = JSON.parse(flags.input);
    } catch (err) {
      throw new CliUsageError(`--input: invalid JSON: ${messageOf(err)}`);
    }
  }
  if (flags.env !== undefined) task.env = keyValues("--env", flags.env);
  if (flags.cwd !== undefined) task.cwd = flags.cwd;
  if (flags.timeout !== undefined) task.timeoutMs = positiveDuration("timeout", flags.timeout)!;
  if (flags["max-attempts"] !== undefined) task.maxAttempts = Number(flags["max-attempts"]);
  if (flags.label !== undefined) task.labels = flags.label;
  if (flags.priority !== undefined) task.priority = Number(flags.priority);
  if (flags.meta !== undefined) task.meta = keyValues("--meta", flags.meta);
  applyTimeFlags(task, flags);
  return task;
}

function keyValues(flag: string, pairs: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const eq = pair.indexOf("=");
      if (eq <= 0) throw new CliUsageError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
}

/** The text of a source, decoded strictly (bytes that are not UTF-8 are bad input). */
async function readSource(source: string, io: CliIo): Promise<string> {
  if (source === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    return decodeTaskBytes(Buffer.concat(chunks), "stdin");
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(source);
  } catch (err) {
    throw new CliUsageError(`cannot read ${source}: ${messageOf(err)}`);
  }
  return decodeTaskBytes(bytes, source);
}

const TAIL_LINES = 10;

/** `id  state  exit=N  worker  duration`, then the reason and the end of each output stream. */
export function formatStatus(status: TaskStatus): string {
  const exit =
    status.signal !== undefined
      ? `signal=${status.signal}`
      : `exit=${status.exitCode === undefined ? "-" : status.exitCode}`;
  const duration =
    status.startedAt !== undefined && status.finishedAt !== undefined
      ? formatDuration(status.finishedAt - status.startedAt)
      : "-";
  let out = `${status.id}  ${status.state}  ${exit}  ${status.worker ?? "-"}  ${duration}\n`;
  if (status.reason) out += `  reason: ${status.reason}\n`;
  if (status.history !== undefined) out += `  attempts:\n${formatHistory(status.history, "    ")}`;
  if (status.output !== undefined) {
    const json = JSON.stringify(status.output);
    out += `  output: ${json.length > 500 ? `${json.slice(0, 500)}…` : json}\n`;
  }
  out += tailLines(status.stdoutTail, "  | ");
  out += tailLines(status.stderrTail, "  ! ");
  return out;
}

function tailLines(text: string | undefined, prefix: string): string {
  if (!text) return "";
  const lines = text.replace(/\n$/, "").split("\n").slice(-TAIL_LINES);
  return lines.map((line) => `${prefix}${line}\n`).join("");
}
