import {
  CATCH_UP_POLICIES,
  type CatchUpPolicy,
  OVERLAP_POLICIES,
  type OverlapPolicy,
} from "@zkgrid/protocol";
import type { CliIo } from "./cli.js";
import type { GridClient } from "./grid-client.js";
import { FLAG_OF_FIELD, type Flags, joinNegativeNumbers, OPTIONS, taskFromFlags } from "./cli.js";
import { TIME_OPTIONS } from "./cli-time.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  loadObserver,
  PROGRAM,
  parseCommand,
  positiveInt,
  withGrid,
} from "./cli-common.js";
import {
  buildScheduleSpec,
  InvalidScheduleError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  type ScheduleOptions,
  type ScheduleView,
  parseInterval,
} from "./schedules.js";

export const SCHEDULE_USAGE = `Usage: ${PROGRAM} schedule add <name> (--cron <expr> [--tz <zone>] | --every <duration>) [policies] <task flags>
       ${PROGRAM} schedule list [--json]
       ${PROGRAM} schedule show <name> [--json]
       ${PROGRAM} schedule remove|pause|resume <name>

Recurring tasks. The leader fires each slot of a schedule once, as the task <name>.<slot in ms>,
whichever master leads (a slot fires at most once; with --catch-up all, at least once).

When:
  --cron <expr>           a cron expression: 5 fields (minute hour day month weekday), or 6 with
                          seconds first ('* * * * * *' is every second)
  --tz <zone>             the IANA time zone the cron expression is read in (default UTC)
  --every <duration>      a fixed interval instead (at least 1s): slots on its multiples since the epoch

Policies:
  --catch-up <policy>     slots that came due while no leader ran: skip, latest (run the newest once;
                          the default) or all (run each, oldest first)
  --catch-up-max <n>      with --catch-up all: at most this many missed slots (default 10, at most 1000)
  --overlap <policy>      allow (the default), or skip a slot while the previous firing is unfinished
  --paused                add it paused

The task: the task flags of "${PROGRAM} submit" (--cmd, --arg, --handler, --input, --env, --cwd,
--timeout, --max-attempts, --label, --priority, --meta) and its retry flags (--retries, --retry-on,
--backoff, --max-backoff, --jitter, --no-retry-exit-codes), without --id, --delay or --at (each
firing is due at its slot).

  --json                  list, show: print JSON

${GRID_USAGE} Intervals also take h: 1h.

Exit status: 0 when done; 1 when the schedule does not exist or the grid could not be reached; 2 for
bad usage or a bad schedule (a name taken, a bad cron expression or time zone, ...): nothing written.

Examples:
  ${PROGRAM} schedule add nightly --cron '0 3 * * *' --tz Europe/Paris --cmd 'make backup'
  ${PROGRAM} schedule add heartbeat --every 30s --catch-up all --overlap skip --cmd 'curl -fsS http://svc/ping'
  ${PROGRAM} schedule show nightly
`;

const SCHEDULE_OPTIONS = {
  cron: { type: "string" },
  tz: { type: "string" },
  every: { type: "string" },
  "catch-up": { type: "string" },
  "catch-up-max": { type: "string" },
  overlap: { type: "string" },
  paused: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/**
 * The task flags of submit, with its retry flags (read when called: cli.ts imports this module).
 * `--delay` and `--at` are parsed so that they are refused by name: a firing is due at its slot.
 */
function taskOptions() {
  const names = Object.values(FLAG_OF_FIELD)
    .map((flag) => flag.slice(2))
    .filter((name) => name !== "id");
  return {
    ...Object.fromEntries(names.map((name) => [name, OPTIONS[name as keyof typeof OPTIONS]])),
    ...TIME_OPTIONS,
  };
}

export async function runScheduleCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    io.stdout.write(SCHEDULE_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const options = { ...taskOptions(), ...SCHEDULE_OPTIONS, ...GRID_OPTIONS } as typeof SCHEDULE_OPTIONS &
    typeof GRID_OPTIONS;
  const { values, positionals } = parseCommand(`schedule ${sub}`, joinNegativeNumbers(rest), options);
  if (values.help) {
    io.stdout.write(SCHEDULE_USAGE);
    return 0;
  }
  const verbs = ["add", "list", "show", "remove", "pause", "resume"];
  if (!verbs.includes(sub)) {
    throw new CliUsageError(
      `unknown schedule command ${JSON.stringify(sub)} (commands: ${verbs.join(", ")})`,
    );
  }
  const name = positionals[0];
  if (sub === "list") {
    if (positionals.length > 0)
      throw new CliUsageError(`schedule list takes no name, got ${JSON.stringify(name)}`);
  } else {
    if (name === undefined) throw new CliUsageError(`schedule ${sub}: give the schedule's name`);
    if (positionals.length > 1) {
      throw new CliUsageError(`schedule ${sub}: one name only, got ${positionals.length}`);
    }
  }
  if (sub !== "add") {
    const extra = Object.keys(values).find(
      (k) => !(k in GRID_OPTIONS) && !(k === "json" && (sub === "list" || sub === "show")),
    );
    if (extra !== undefined) throw new CliUsageError(`schedule ${sub}: --${extra} is only for schedule add`);
  }
  // Everything is checked before the grid is reached: nothing is written for bad input.
  const add = sub === "add" ? addOptions(name as string, values as Flags & typeof values) : undefined;
  const target = gridTarget(values, io);
  return withGrid(target, io, { prefix: `${PROGRAM} schedule`, refused: refusedSchedule }, async (grid) => {
    const schedules = grid.schedules;
    switch (sub) {
      case "add": {
        const spec = await schedules.add(name as string, add as ScheduleOptions);
        const view = await schedules.get(name as string);
        io.stdout.write(
          `added ${name}${view?.next ? `; next slot ${new Date(view.next).toISOString()}` : ""}${spec.paused ? " (paused)" : ""}\n`,
        );
        return 0;
      }
      case "list": {
        const all = await schedules.list();
        if (values.json) io.stdout.write(all.map((v) => `${JSON.stringify(v)}\n`).join(""));
        else io.stdout.write(all.length === 0 ? "no schedules\n" : all.map(formatLine).join(""));
        return 0;
      }
      case "show":
        return showSchedule(grid, name as string, values.json === true, io);
      case "remove":
        if (!(await schedules.remove(name as string))) throw new ScheduleNotFoundError(name as string);
        io.stdout.write(`removed ${name}\n`);
        return 0;
      default: {
        const spec = await (sub === "pause"
          ? schedules.pause(name as string)
          : schedules.resume(name as string));
        io.stdout.write(`${spec.paused ? "paused" : "resumed"} ${name}\n`);
        return 0;
      }
    }
  });
}

/** A schedule the grid refuses as given (exit status 2): nothing was written. */
function refusedSchedule(err: unknown): boolean {
  return err instanceof ScheduleExistsError || err instanceof InvalidScheduleError;
}

function addOptions(name: string, values: Flags & Record<string, unknown>): ScheduleOptions {
  const v = values as Record<string, string | boolean | undefined>;
  if (v.cron === undefined && v.every === undefined)
    throw new CliUsageError("schedule add: give --cron or --every");
  if (v.cron !== undefined && v.every !== undefined)
    throw new CliUsageError("schedule add: give --cron or --every, not both");
  if (v.tz !== undefined && v.cron === undefined) throw new CliUsageError("--tz: allowed only with --cron");
  if (values.id !== undefined) throw new CliUsageError("--id: a schedule's firings are named <name>.<slot>");
  for (const flag of ["delay", "at"] as const) {
    if (values[flag] !== undefined)
      throw new CliUsageError(`--${flag}: a schedule's firings are due at their slots`);
  }
  const catchUp = choice("catch-up", v["catch-up"] as string | undefined, CATCH_UP_POLICIES) as
    | CatchUpPolicy
    | undefined;
  const overlap = choice("overlap", v.overlap as string | undefined, OVERLAP_POLICIES) as
    | OverlapPolicy
    | undefined;
  const catchUpMax = positiveInt("catch-up-max", v["catch-up-max"] as string | undefined);
  if (catchUpMax !== undefined && catchUp !== "all")
    throw new CliUsageError("--catch-up-max: allowed only with --catch-up all");
  const task = taskFromFlags(values);
  if (task === undefined) throw new CliUsageError("schedule add: give the task, with --cmd or --handler");
  let every: number | undefined;
  if (typeof v.every === "string") {
    every = parseInterval(v.every);
    if (every === undefined) {
      throw new CliUsageError(
        `--every: expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(v.every)}`,
      );
    }
  }
  const options: ScheduleOptions = {
    ...(v.cron === undefined ? {} : { cron: v.cron as string }),
    ...(v.tz === undefined ? {} : { tz: v.tz as string }),
    ...(every === undefined ? {} : { every }),
    task,
    ...(catchUp === undefined ? {} : { catchUp }),
    ...(catchUpMax === undefined ? {} : { catchUpMax }),
    ...(overlap === undefined ? {} : { overlap }),
    ...(v.paused ? { paused: true } : {}),
  };
  try {
    buildScheduleSpec(name, options, Date.now());
  } catch (err) {
    if (!(err instanceof InvalidScheduleError)) throw err;
    throw new CliUsageError(`${flagOf(err.field)}: ${err.problem}`);
  }
  return options;
}

/** The flag for a field of the spec: `cron` → --cron, `task.timeoutMs` → --timeout. */
function flagOf(field: string): string {
  if (field === "name") return "name";
  if (field.startsWith("task.")) return FLAG_OF_FIELD[field.slice(5).split(/[.[]/)[0] ?? ""] ?? "task flags";
  if (field === "task") return "task flags";
  const flags: Record<string, string> = {
    catchUp: "--catch-up",
    catchUpMax: "--catch-up-max",
    everyMs: "--every",
  };
  return flags[field] ?? (field ? `--${field}` : "schedule");
}

function choice<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new CliUsageError(`--${flag}: expected one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function when(view: ScheduleView): string {
  const { spec } = view;
  if (spec.cron !== undefined) return `cron '${spec.cron}' ${spec.tz ?? "UTC"}`;
  return `every ${spec.everyMs}ms`;
}

function formatLine(view: ScheduleView): string {
  const next = view.spec.paused ? "paused" : view.next ? `next ${new Date(view.next).toISOString()}` : "-";
  const last = view.state ? `last ${new Date(view.state.lastSlot).toISOString()}` : "never fired";
  return `${view.name}  ${when(view)}  ${next}  ${last}\n`;
}

async function showSchedule(grid: GridClient, name: string, json: boolean, io: CliIo): Promise<number> {
  const view = await grid.schedules.get(name);
  if (!view) throw new ScheduleNotFoundError(name);
  const ids = (view.state?.recent ?? []).flatMap((f) => (f.task ? [f.task] : []));
  const states = new Map<string, string>();
  if (ids.length > 0) {
    const { observeGrid } = await loadObserver();
    const observer = await observeGrid({ client: grid.zk, root: grid.layout.root });
    try {
      for (const [id, task] of await observer.findTasks(ids)) states.set(id, task.state);
    } finally {
      await observer.close();
    }
  }
  const firings = (view.state?.recent ?? []).map((f) => ({
    ...f,
    ...(f.task ? { state: states.get(f.task) ?? "unknown" } : {}),
  }));
  if (json) {
    io.stdout.write(`${JSON.stringify({ ...view, firings })}\n`);
    return 0;
  }
  const { spec } = view;
  const task =
    spec.task.cmd !== undefined ? `cmd ${JSON.stringify(spec.task.cmd)}` : `handler ${spec.task.handler}`;
  let out = `${name}: ${when(view)}; ${task}\n`;
  out += `  catch-up ${spec.catchUp}${spec.catchUpMax ? ` (max ${spec.catchUpMax})` : ""}, overlap ${spec.overlap}, ${spec.paused ? "paused" : "active"}\n`;
  out += `  created ${new Date(spec.createdAt).toISOString()}${view.next ? `, next slot ${new Date(view.next).toISOString()}` : ""}\n`;
  if (firings.length === 0) out += "  no firings yet\n";
  else {
    out += "  recent firings (slot, task, state):\n";
    for (const f of firings) {
      const slot = new Date(f.slot).toISOString();
      out += f.task ? `    ${slot}  ${f.task}  ${f.state}\n` : `    ${slot}  -  skipped (${f.skipped})\n`;
    }
  }
  io.stdout.write(out);
  return 0;
}
