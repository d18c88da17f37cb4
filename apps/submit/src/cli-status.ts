import { TASK_STATES, type TaskState } from "@zkgrid/protocol";
import type { CliIo } from "./cli.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  openObserver,
  PROGRAM,
  parseCommand,
  positiveInt,
} from "./cli-common.js";
import { formatGridStatus, formatTaskDetail, formatTaskTable } from "./status.js";

export const STATUS_USAGE = `Usage: ${PROGRAM} status [--json] [grid options]

Shows the grid: the masters and which one leads, the live workers and their load, the queue depth
by priority, and how many tasks are assigned and running.

  --json                  print the whole snapshot as one JSON object (the shape of /api/snapshot)

${GRID_USAGE}

Exit status: 0 when the grid could be read, 1 when not, 2 for bad usage.
`;

export const TASKS_USAGE = `Usage: ${PROGRAM} tasks [--state S] [--worker W] [--limit N] [--json] [grid options]

Lists tasks: assigned and running ones (most recently assigned first), then queued ones (highest
priority first), then the latest final ones (newest first; up to 200 are kept).

  --state <state>         only tasks in this state: ${TASK_STATES.join(", ")}
  --worker <name>         only tasks of this worker
  --limit <n>             at most this many (default 100)
  --json                  one TaskView JSON object per line

${GRID_USAGE}

Exit status: 0 when the grid could be read (also when no task matches), 1 when not, 2 for bad usage.
`;

export const TASK_USAGE = `Usage: ${PROGRAM} task <id> [--json] [grid options]

Shows one task: its final status (read from the results, newest first), or where it waits or runs,
with the tails of its output.

  --json                  print it as one TaskView JSON object

${GRID_USAGE}

Exit status: 0 when the task was found, 1 when the grid does not know it (or could not be read),
2 for bad usage.
`;

const JSON_OPTION = { json: { type: "boolean" } } as const;

export async function runStatusCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("status", argv, { ...GRID_OPTIONS, ...JSON_OPTION });
  if (values.help) return help(io, STATUS_USAGE);
  noPositionals("status", positionals);
  const observer = await openObserver(gridTarget(values, io), io);
  if (!observer) return 1;
  try {
    const snapshot = observer.snapshot();
    io.stdout.write(values.json ? `${JSON.stringify(snapshot)}\n` : formatGridStatus(snapshot));
    return 0;
  } finally {
    await observer.close();
  }
}

export async function runTasksCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("tasks", argv, {
    ...GRID_OPTIONS,
    ...JSON_OPTION,
    state: { type: "string" },
    worker: { type: "string" },
    limit: { type: "string" },
  });
  if (values.help) return help(io, TASKS_USAGE);
  noPositionals("tasks", positionals);
  const state = values.state;
  if (state !== undefined && !(TASK_STATES as readonly string[]).includes(state)) {
    throw new CliUsageError(
      `--state: expected one of ${TASK_STATES.join(", ")}, got ${JSON.stringify(state)}`,
    );
  }
  const limit = positiveInt("limit", values.limit) ?? 100;
  const observer = await openObserver(gridTarget(values, io), io);
  if (!observer) return 1;
  try {
    const tasks = observer.tasks({
      limit,
      ...(state === undefined ? {} : { state: state as TaskState }),
      ...(values.worker === undefined ? {} : { worker: values.worker }),
    });
    if (values.json) io.stdout.write(tasks.map((t) => `${JSON.stringify(t)}\n`).join(""));
    else if (tasks.length === 0) io.stderr.write("no task matches\n");
    else io.stdout.write(formatTaskTable(tasks));
    return 0;
  } finally {
    await observer.close();
  }
}

export async function runTaskCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("task", argv, { ...GRID_OPTIONS, ...JSON_OPTION });
  if (values.help) return help(io, TASK_USAGE);
  if (positionals.length !== 1) {
    throw new CliUsageError(`expected one task id, got ${positionals.length}\nTry "${PROGRAM} task --help".`);
  }
  const id = positionals[0]!;
  const observer = await openObserver(gridTarget(values, io), io);
  if (!observer) return 1;
  try {
    const task = await observer.task(id);
    if (!task) {
      io.stderr.write(`${PROGRAM}: no task ${JSON.stringify(id)} in the grid at ${observer.root}\n`);
      return 1;
    }
    io.stdout.write(values.json ? `${JSON.stringify(task)}\n` : formatTaskDetail(task));
    return 0;
  } finally {
    await observer.close();
  }
}

export function help(io: CliIo, usage: string): number {
  io.stdout.write(usage);
  return 0;
}

export function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0) {
    throw new CliUsageError(
      `unexpected argument ${JSON.stringify(positionals[0])}\nTry "${PROGRAM} ${command} --help".`,
    );
  }
}
