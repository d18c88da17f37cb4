import { hostname, userInfo } from "node:os";
import { observeGrid } from "@zkgrid/observer";
import {
  encodeCancelRequest,
  isFinalState,
  isValidTaskId,
  MAX_CANCEL_IDS,
  MAX_NODE_BYTES,
  packByBytes,
  type TaskStatus,
  taskIdProblem,
} from "@zkgrid/protocol";
import type { CliIo } from "./cli.js";
import {
  CliUsageError,
  GRID_OPTIONS,
  GRID_USAGE,
  gridTarget,
  messageOf,
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
                          give up waiting after this long (default ${DEFAULT_WAIT_TIMEOUT_MS / 1000}s); the request stays
  --no-wait               write the request and exit
  --json                  print each task's final status as one JSON line

${GRID_USAGE}

Exit status: 0 when every task ended cancelled (or, with --no-wait, the request was written); 1 when
a task is unknown, was already final, finished some other way first, or the wait timed out; 2 for
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
  const target = gridTarget(values, io);
  const ids = [...new Set(positionals)];
  const say = (line: string) => io.stderr.write(`${PROGRAM}: ${line}\n`);

  let grid: GridClient;
  try {
    grid = await connectGrid(target);
  } catch (err) {
    say(`cannot connect to ZooKeeper at ${target.connectString}: ${messageOf(err)}`);
    return 1;
  }
  let status = 0;
  try {
    const layout = grid.layout;
    // Results newer than this are read for the wait: taken before looking, so none is missed.
    const since = await grid.resultBaseline();

    const observer = await observeGrid({ client: grid.zk, root: layout.root });
    const toCancel: string[] = [];
    try {
      for (const id of ids) {
        const task = await observer.task(id);
        if (task === undefined) {
          say(`no task ${JSON.stringify(id)} in the grid at ${layout.root}`);
          status = 1;
        } else if (isFinalState(task.state)) {
          say(`${id} is already ${task.state}; nothing to cancel`);
          if (values.json) io.stdout.write(`${JSON.stringify(task)}\n`);
          status = 1;
        } else toCancel.push(id);
      }
    } finally {
      await observer.close();
    }
    if (toCancel.length === 0) return status;

    await grid.zk.ensurePath(layout.cancel);
    const by = requester();
    for (const chunk of packByBytes(toCancel, (id) => id.length + 3, MAX_NODE_BYTES - 1024, MAX_CANCEL_IDS)) {
      const request = encodeCancelRequest({ v: 1, ids: chunk, requestedAt: Date.now(), by });
      await grid.zk.createProtected(
        `${layout.cancel}/${layout.cancelNodePrefix}`,
        request,
        "persistent-sequential",
      );
    }
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
      await grid.wait(toCancel, { since, timeoutMs, onResult: report });
    } catch (err) {
      if (!(err instanceof WaitTimeoutError)) throw err;
      say(
        `gave up waiting after ${timeoutMs} ms for ${err.pending.join(" ")}; the request stays, and the leader ` +
          "applies it when it can",
      );
      status = 1;
    }
    return status;
  } catch (err) {
    say(messageOf(err));
    return 1;
  } finally {
    await grid.close();
  }
}

function requester(): string {
  let user = "unknown";
  try {
    user = userInfo().username || user;
  } catch {
    // No passwd entry (some containers).
  }
  return `${PROGRAM} cancel by ${user}@${hostname()}`.slice(0, 256);
}
