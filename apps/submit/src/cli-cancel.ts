import { markErrorClass, messageOf, ZkgridError } from "@zkgrid/core";
import type { TaskView } from "@zkgrid/observer";
import { isFinalState, isValidTaskId, type TaskStatus, taskIdProblem } from "@zkgrid/protocol";
import type { CliIo } from "./cli.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  idList,
  loadObserver,
  PROGRAM,
  parseCommand,
  positiveDuration,
} from "./cli-common.js";
import { WaitTimeoutError } from "./errors.js";
import { connectGrid, type GridClient } from "./grid-client.js";

const DEFAULT_WAIT_TIMEOUT_MS = 30_000;

export const CANCEL_USAGE = `Usage: ${PROGRAM} cancel <id>... [--wait-timeout <duration>] [--no-wait] [--json] [grid options]

Asks the leader to cancel tasks: a queued task never runs, a running one is stopped (its process
group is killed). Then waits until each one's final status is "cancelled".

  --wait-timeout <duration>
                          give up after this long, counted from the start of the command (default
                          ${DEFAULT_WAIT_TIMEOUT_MS / 1000}s); a request already written stays
  --no-wait               write the request and exit
  --json                  print each task's final status as one JSON line

${GRID_USAGE}

Exit status: 0 when every task ended cancelled (or, with --no-wait, the request was written); 1 when
a task is unknown, was already final, finished some other way first, or the time ran out; 2 for
bad usage.
`;

export async function runCancelCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand("cancel", argv, {
    ...GRID_OPTIONS,
    json: { type: "boolean" },
    "wait-timeout": { type: "string" },
    "no-wait": { type: "boolean" },
  });
  if (values.help) {
    io.stdout.write(CANCEL_USAGE);
    return 0;
  }
  if (positionals.length === 0)
    throw new CliUsageError(`give the ids of the tasks to cancel\nTry "${PROGRAM} cancel --help".`);
  for (const id of positionals) {
    if (!isValidTaskId(id))
      throw new CliUsageError(`invalid task id ${JSON.stringify(id)}: ${taskIdProblem(id)}`);
  }
  const timeoutMs = positiveDuration("wait-timeout", values["wait-timeout"]) ?? DEFAULT_WAIT_TIMEOUT_MS;
  const deadline = new Deadline(timeoutMs);
  const target = gridTarget(values, io);
  const { observeGrid } = await loadObserver();
  const ids = [...new Set(positionals)];
  const say = (line: string) => io.stderr.write(`${PROGRAM}: ${line}\n`);
  const outOfTime = (doing: string, written: string) =>
    `gave up after ${timeoutMs} ms (--wait-timeout) while ${doing}; ${written}`;

  let grid: GridClient;
  try {
    grid = await deadline.race(connectGrid(target), (late) => void late.close());
  } catch (err) {
    if (err instanceof DeadlineError) say(outOfTime("connecting to ZooKeeper", "nothing was written"));
    else say(`cannot connect to ZooKeeper at ${target.connectString}: ${messageOf(err)}`);
    return 1;
  }
  let status = 0;
  let phase = "reading the grid";
  let written = "nothing was written";
  try {
    const layout = grid.layout;
    // Results newer than this are read for the wait: taken before looking, so none is missed.
    const since = await deadline.race(grid.resultBaseline());
    const observer = await deadline.race(
      observeGrid({ client: grid.zk, root: layout.root }),
      (late) => void late.close(),
    );
    let known: Map<string, TaskView>;
    try {
      phase = "looking up the tasks";
      known = await deadline.race(observer.findTasks(ids));
    } finally {
      await observer.close();
    }
    const toCancel: string[] = [];
    for (const id of ids) {
      const task = known.get(id);
      if (task === undefined) {
        say(`no task ${JSON.stringify(id)} in the grid at ${layout.root}`);
        status = 1;
      } else if (isFinalState(task.state)) {
        say(`${id} is already ${task.state}; nothing to cancel`);
        if (values.json) io.stdout.write(`${JSON.stringify(task)}\n`);
        status = 1;
      } else toCancel.push(id);
    }
    if (toCancel.length === 0) return status;

    phase = "writing the cancel requests";
    written = "some requests may have been written, and the leader applies those";
    await deadline.race(grid.cancel(toCancel));
    if (values["no-wait"]) {
      if (!values.json) io.stdout.write(toCancel.map((id) => `cancel requested ${id}\n`).join(""));
      return status;
    }

    const report = (s: TaskStatus) => {
      if (values.json) io.stdout.write(`${JSON.stringify(s)}\n`);
      if (s.state === "cancelled") {
        if (!values.json) io.stdout.write(`cancelled ${s.id}${s.reason ? ` (${s.reason})` : ""}\n`);
      } else {
        say(`${s.id} finished as ${s.state} before the cancel took effect`);
        status = 1;
      }
    };
    try {
      await grid.wait(toCancel, { since, timeoutMs: deadline.remaining(), onResult: report });
    } catch (err) {
      if (!(err instanceof WaitTimeoutError)) throw err;
      say(
        `gave up waiting after ${timeoutMs} ms for ${idList(err.pending)}; the request stays, and the leader ` +
          "applies it when it can",
      );
      status = 1;
    }
    return status;
  } catch (err) {
    say(err instanceof DeadlineError ? outOfTime(phase, written) : messageOf(err));
    return 1;
  } finally {
    await grid.close();
  }
}

/** The time left to `--wait-timeout`: bounds the whole command, not only the wait. */
class Deadline {
  readonly #at: number;

  constructor(ms: number) {
    this.#at = performance.now() + ms;
  }

  /** Milliseconds left, at least 1 (a wait of 0 would not time out). */
  remaining(): number {
    return Math.max(1, Math.ceil(this.#at - performance.now()));
  }

  /**
   * `work`, or a DeadlineError when the time runs out first; `late` gets what `work` still yields
   * after that, to close it.
   */
  race<T>(work: Promise<T>, late?: (value: T) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(
        () => {
          timedOut = true;
          reject(new DeadlineError());
        },
        Math.max(0, this.#at - performance.now()),
      );
      work.then(
        (value) => {
          clearTimeout(timer);
          if (timedOut) late?.(value);
          else resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}

/** `--wait-timeout` ran out before the command finished. */
class DeadlineError extends ZkgridError {
  static {
    markErrorClass(DeadlineError, "@zkgrid/submit/DeadlineError");
  }
  override readonly name = "DeadlineError";
  declare readonly code: "DEADLINE";
  constructor() {
    super("out of time", "DEADLINE");
  }
}
