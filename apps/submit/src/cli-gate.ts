import {
  formatStartLimit,
  type GridGate,
  labelProblem,
  MAX_LIMIT_INTERVAL_MS,
  MAX_LIMIT_STARTS,
  parseStartLimit,
  startLimitProblem,
} from "@zkgrid/protocol";
import type { CliIo } from "./cli.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  PROGRAM,
  parseCommand,
  withGrid,
} from "./cli-common.js";
import { help, noPositionals } from "./cli-status.js";

export const PAUSE_USAGE = `Usage: ${PROGRAM} pause [--label <label>] [--by <text>] [grid options]

Pauses the grid, or with --label only the tasks carrying that label: the leader hands out none of
them until "${PROGRAM} resume". Running tasks finish; queued ones keep their place and wait; new ones
queue. The pause lives in ZooKeeper (R/gate), so a new leader keeps it.

  --label <label>         pause only the tasks carrying this label
  --by <text>             who paused, shown by "${PROGRAM} status" (default user@host)

${GRID_USAGE}

Exit status: 0 when the pause is written (or was already in place), 1 when the grid could not be
reached, 2 for bad usage (nothing is written).
`;

export const RESUME_USAGE = `Usage: ${PROGRAM} resume [--label <label>] [grid options]

Lifts the pause of the grid, or with --label that label's pause. The queued tasks start again, in
their order.

  --label <label>         lift only this label's pause

${GRID_USAGE}

Exit status: 0 when the pause is lifted (or there was none), 1 when the grid could not be reached,
2 for bad usage.
`;

export const LIMIT_USAGE = `Usage: ${PROGRAM} limit set <label> <starts>/<interval> [--by <text>] [grid options]
       ${PROGRAM} limit remove <label> [grid options]
       ${PROGRAM} limit list [--json] [grid options]

Start limits per label: at most <starts> tasks carrying the label are handed out in any <interval>,
across the whole grid (the leader counts them). A task with several limited labels needs room under
each. A leader counts the first interval after it learns a limit as full (it cannot know the starts
made before), so after a failover or a new limit the first such starts wait one interval.

  set <label> <limit>     set (or replace) the label's limit: 10/1s, 100/2m, 5/500ms, 10/s
                          (starts 1..${MAX_LIMIT_STARTS}, interval at most ${MAX_LIMIT_INTERVAL_MS / 60_000}m: one day)
  remove <label>          remove the label's limit
  list                    the limits, one per line: label, limit, when set and by whom
  --json                  with list: the limits as one JSON object by label
  --by <text>             with set: who set it (default user@host)

${GRID_USAGE}

Exit status: 0 when done, 1 when the grid could not be reached, 2 for bad usage (nothing is written).
`;

const BY_OPTION = { by: { type: "string" } } as const;
const LABEL_OPTION = { label: { type: "string" } } as const;

export async function runPauseCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("pause", argv, {
    ...GRID_OPTIONS,
    ...LABEL_OPTION,
    ...BY_OPTION,
  });
  if (values.help) return help(io, PAUSE_USAGE);
  noPositionals("pause", positionals);
  const label = checkedLabel("--label", values.label);
  const by = checkedBy(values.by);
  const target = gridTarget(values, io);
  return withGrid(target, io, { prefix: PROGRAM }, async (grid) => {
    const before = await grid.gate();
    const already =
      label === undefined ? before.paused !== undefined : before.pausedLabels?.[label] !== undefined;
    await grid.pause({ ...(label === undefined ? {} : { label }), ...(by === undefined ? {} : { by }) });
    const what = label === undefined ? "the grid" : `label ${label}`;
    io.stdout.write(already ? `${what} was already paused\n` : `paused ${what}\n`);
    return 0;
  });
}

export async function runResumeCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("resume", argv, { ...GRID_OPTIONS, ...LABEL_OPTION });
  if (values.help) return help(io, RESUME_USAGE);
  noPositionals("resume", positionals);
  const label = checkedLabel("--label", values.label);
  const target = gridTarget(values, io);
  return withGrid(target, io, { prefix: PROGRAM }, async (grid) => {
    const before = await grid.gate();
    const was =
      label === undefined ? before.paused !== undefined : before.pausedLabels?.[label] !== undefined;
    const after = await grid.resume(label === undefined ? {} : { label });
    const what = label === undefined ? "the grid" : `label ${label}`;
    io.stdout.write(was ? `resumed ${what}\n` : `${what} was not paused\n`);
    // Lifting the grid's pause leaves label pauses in place: say so, rather than surprise.
    const still = Object.keys(after.pausedLabels ?? {});
    if (label === undefined && still.length > 0)
      io.stdout.write(`still paused: label ${still.join(", label ")}\n`);
    if (label !== undefined && after.paused) io.stdout.write("the grid as a whole is still paused\n");
    return 0;
  });
}

export async function runLimitCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("limit", argv, {
    ...GRID_OPTIONS,
    ...BY_OPTION,
    json: { type: "boolean" },
  });
  if (values.help) return help(io, LIMIT_USAGE);
  const [action, ...rest] = positionals;
  const wrongCount = (expected: string) =>
    new CliUsageError(`limit ${action}: expected ${expected}\nTry "${PROGRAM} limit --help".`);
  if (action !== "list" && values.json) throw new CliUsageError("--json goes with limit list");
  if (action !== "set" && values.by !== undefined) throw new CliUsageError("--by goes with limit set");
  switch (action) {
    case "set": {
      if (rest.length !== 2) throw wrongCount("a label and a limit, e.g. limit set gpu 10/1s");
      const label = checkedLabel("label", rest[0]) as string;
      const limit = checkedLimit(rest[1] as string);
      const by = checkedBy(values.by);
      return withGrid(gridTarget(values, io), io, { prefix: PROGRAM }, async (grid) => {
        await grid.setLimit(label, limit, by === undefined ? {} : { by });
        io.stdout.write(`limit ${label} ${formatStartLimit(limit)}\n`);
        return 0;
      });
    }
    case "remove": {
      if (rest.length !== 1) throw wrongCount("one label");
      const label = checkedLabel("label", rest[0]) as string;
      return withGrid(gridTarget(values, io), io, { prefix: PROGRAM }, async (grid) => {
        const had = (await grid.gate()).limits?.[label] !== undefined;
        await grid.removeLimit(label);
        io.stdout.write(had ? `removed the limit of ${label}\n` : `${label} had no limit\n`);
        return 0;
      });
    }
    case "list": {
      if (rest.length !== 0) throw wrongCount("no more arguments");
      return withGrid(gridTarget(values, io), io, { prefix: PROGRAM }, async (grid) => {
        const limits = await grid.limits();
        if (values.json) io.stdout.write(`${JSON.stringify(limits)}\n`);
        else io.stdout.write(formatLimits(limits));
        return 0;
      });
    }
    default:
      throw new CliUsageError(
        `${action === undefined ? "give an action" : `unknown action ${JSON.stringify(action)}`}: set, remove or list\n` +
          `Try "${PROGRAM} limit --help".`,
      );
  }
}

/** One line per limit: label, limit, when set and by whom; or a line saying there is none. */
export function formatLimits(limits: NonNullable<GridGate["limits"]>): string {
  const labels = Object.keys(limits).sort();
  if (labels.length === 0) return "no start limits\n";
  return labels
    .map((label) => {
      const l = limits[label]!;
      return `${label}  ${formatStartLimit(l)}  set ${new Date(l.at).toISOString()}${l.by ? ` by ${l.by}` : ""}\n`;
    })
    .join("");
}

function checkedLabel(what: string, label: string | undefined): string | undefined {
  if (label === undefined) return undefined;
  const problem = labelProblem(label);
  if (problem !== undefined)
    throw new CliUsageError(`${what}: invalid label ${JSON.stringify(label)}: ${problem}`);
  return label;
}

function checkedLimit(text: string): { starts: number; perMs: number } {
  const limit = parseStartLimit(text);
  if (limit === undefined) {
    throw new CliUsageError(
      `invalid limit ${JSON.stringify(text)}: expected <starts>/<interval>, e.g. 10/1s, 100/2m or 5/500ms`,
    );
  }
  const problem = startLimitProblem(limit.starts, limit.perMs);
  if (problem !== undefined) throw new CliUsageError(`invalid limit ${JSON.stringify(text)}: ${problem}`);
  return limit;
}

function checkedBy(by: string | undefined): string | undefined {
  if (by !== undefined && (by.length === 0 || Buffer.byteLength(by) > 256))
    throw new CliUsageError("--by: expected a non-empty text of at most 256 bytes");
  return by;
}
