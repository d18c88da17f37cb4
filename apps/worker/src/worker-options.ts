import { isIP } from "node:net";
import { splitHostPort } from "./answer-stream.js";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import type { ConnectionOptions, Logger, ZkClient } from "@zkgrid/core";
import { assertWorkerName, isValidLabel, labelProblem, MAX_CAPACITY } from "@zkgrid/protocol";
import packageJson from "../package.json" with { type: "json" };
import { WorkerOptionError } from "./errors.js";
import type { HandlerMap } from "./handlers.js";
import { ADAPTIVE_PREFETCH_FLOOR, type PrefetchRule } from "./prefetch.js";
import { createLogger } from "@zkgrid/log";

/** The version of this package, as a worker registers it. */
export const VERSION: string = packageJson.version;

export const DEFAULT_CONNECT_STRING = "127.0.0.1:2181";
export const DEFAULT_ROOT = "/zkgrid";
export const DEFAULT_GRACE_MS = 30_000;
export const DEFAULT_KILL_GRACE_MS = 5_000;
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

/**
 * The default cut-off stop, as a share of the session timeout. ZooKeeper's C client reports the
 * connection lost after 2/3 of the timeout without a reply, and the ensemble expires the session after
 * the whole timeout without a packet: a silent cut leaves 1/3 of the timeout between the worker hearing
 * of it and the earliest moment the leader can fence the session. Stopping after 1/4 keeps 1/12 of it
 * (and the leader's own fence and hand-out) as margin.
 */
export const DEFAULT_CUTOFF_STOP_SHARE = 1 / 4;

/** Core's connection options (all but `logger` ignored when `client` is given), and the worker's own. */
export interface WorkerOptions extends Omit<ConnectionOptions, "connectString"> {
  /** The worker's name: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`. Output goes to `<cwd>/<name>/<task-id>/`. */
  name: string;
  /** ZooKeeper servers, default "127.0.0.1:2181". */
  connectString?: string;
  /** The grid's root path, default "/zkgrid". */
  root?: string;
  /**
   * Use this client (connected with the grid's root as its `root`) instead of connecting.
   * The worker does not close it.
   */
  client?: ZkClient;
  /** How many tasks run at once; default the number of CPUs. */
  concurrency?: number;
  /**
   * How many tasks the worker holds beyond `concurrency`, ready to start the moment a slot frees up.
   * The leader then hears of finished tasks in fewer, larger reports, which suits many short tasks. A
   * held task waits behind the running ones even when another worker is idle. Default: adaptive, from
   * 0 up to the larger of `concurrency` and 32 while the queue is deeper than the worker's slots and
   * tasks end faster than the leader refills them, back to 0 when the queue runs short or the worker
   * is idle (see "Prefetch" in docs/operators.md). A number fixes it (0: never hold a task).
   */
  prefetch?: number;
  /** Labels a task may require. */
  labels?: readonly string[];
  /** The working directory; default `process.cwd()`. */
  cwd?: string;
  /** In-process handlers, by the name a task's `handler` gives. */
  handlers?: HandlerMap;
  /** How long `stop()` lets running tasks finish by default; default 30 000. */
  graceMs?: number;
  /** Between SIGTERM and SIGKILL when a task's process group is killed; default 5 000. */
  killGraceMs?: number;
  /**
   * How long the worker may be cut off from every ensemble member (its connection lost) before it stops
   * its running tasks itself, as a cancel does; default a quarter of the session timeout. `0` or `false`:
   * never (a cut-off task then runs on after the leader has handed it out again). A stopped task whose
   * session survives is handed back (`returned`); a new session never reports it.
   */
  cutoffStopMs?: number | false;
  /** How long a name held by another session is waited for; default the session timeout. */
  nameWaitMs?: number;
  /**
   * The Perl that runs the task launcher: a path, or a name looked up on PATH; default "perl". Where it
   * cannot run, and with `false`, tasks are spawned by the worker itself, which loses two things: tasks
   * still running when the worker is killed (SIGKILL, a crash) are not killed with it, and each fork
   * happens in the worker's own process. The worker logs which it uses as it starts.
   */
  perl?: string | false;
  /**
   * Where the worker's answer stream listens (docs/protocol.md, "Answer streams"): `"host:port"`,
   * `"host"` (any free port) or `":port"`. A submitter that puts a task in this worker's inbox asks
   * there for its answer and has it as soon as the task ends, without waiting for the answer's write to
   * ZooKeeper. Default: the local address this host reaches ZooKeeper from, any free port. `false`: no
   * stream (answers come from their nodes only).
   */
  answerAddress?: string | false;
  /** Default: @zkgrid/log's logger on stderr (JSON lines, or readable ones on a terminal). */
  logger?: Logger;
  /** Aborting it stops the worker: while starting, startWorker() rejects with WorkerStoppedError. */
  signal?: AbortSignal;
}

/** The options with every default filled in and every value checked: all the worker reads. */
export interface CompiledWorkerOptions {
  readonly name: string;
  /** How to connect, or the host's client (which the worker then does not close). */
  readonly connection:
    | { readonly client: ZkClient }
    | Readonly<
        Required<Pick<ConnectionOptions, "connectString" | "root">> & Pick<ConnectionOptions, "auth" | "acl">
      >;
  readonly sessionTimeoutMs: number;
  /** The working directory, absolute. */
  readonly baseDir: string;
  readonly concurrency: number;
  readonly prefetch: PrefetchRule;
  readonly labels: readonly string[];
  readonly handlers: HandlerMap;
  readonly graceMs: number;
  readonly killGraceMs: number;
  readonly nameWaitMs: number;
  /** How long the connection may be lost before running tasks are stopped; undefined: never. */
  readonly cutoffStopMs: number | undefined;
  /** A gap longer than this between the freeze detector's ticks means the process was frozen. */
  readonly freezeGapMs: number;
  readonly perl: string | false;
  /** Where the answer stream listens (host undefined: found from the route to ZooKeeper); undefined: none. */
  readonly answers: { readonly host: string | undefined; readonly port: number } | undefined;
  /** The logger, every line marked with `worker`. */
  readonly log: Logger;
  readonly signal: AbortSignal | undefined;
}

/** An integer option of at least `min` (1 or 0), or `fallback` when it is not given. */
function intOption(name: string, value: number | undefined, fallback: number, min: 0 | 1 = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min)
    throw new WorkerOptionError(name, min === 1 ? "must be a positive integer" : "must be an integer ≥ 0");
  return value;
}

/** A duration in ms of at least 0, or `fallback` when it is not given. */
export function durationOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new WorkerOptionError(name, "must be a duration ≥ 0 in ms");
  return value;
}

/**
 * Fills in the defaults of `options` and checks them, in one place (as Temporal's compileWorkerOptions):
 * throws `WorkerOptionError` (or `InvalidNameError` for the name) naming the option.
 */
export function compileWorkerOptions(options: WorkerOptions): CompiledWorkerOptions {
  assertWorkerName(options.name);
  const name = options.name;
  const concurrency = intOption("concurrency", options.concurrency, availableParallelism());
  if (concurrency > MAX_CAPACITY)
    throw new WorkerOptionError("concurrency", `must be at most ${MAX_CAPACITY}`);
  const fixed = intOption("prefetch", options.prefetch, -1, 0);
  if (concurrency + fixed > MAX_CAPACITY)
    throw new WorkerOptionError("prefetch", `concurrency + prefetch must be at most ${MAX_CAPACITY}`);
  const prefetch: PrefetchRule =
    fixed >= 0
      ? { kind: "fixed", tasks: fixed }
      : {
          kind: "adaptive",
          max: Math.min(MAX_CAPACITY - concurrency, Math.max(concurrency, ADAPTIVE_PREFETCH_FLOOR)),
        };
  const labels = [...new Set(options.labels ?? [])];
  for (const label of labels) {
    if (!isValidLabel(label)) throw new WorkerOptionError("labels", `${label}: ${labelProblem(label)}`);
  }
  const sessionTimeoutMs = intOption(
    "sessionTimeoutMs",
    options.sessionTimeoutMs,
    DEFAULT_SESSION_TIMEOUT_MS,
  );
  const cutoffStopMs =
    options.cutoffStopMs === false
      ? 0
      : durationOption(
          "cutoffStopMs",
          options.cutoffStopMs,
          Math.round(sessionTimeoutMs * DEFAULT_CUTOFF_STOP_SHARE),
        );
  if (options.perl === "") throw new WorkerOptionError("perl", "must be a path, a name on PATH, or false");
  const logger = options.logger ?? createLogger({ name: "worker" });
  return {
    name,
    connection:
      options.client !== undefined
        ? { client: options.client }
        : {
            connectString: options.connectString ?? DEFAULT_CONNECT_STRING,
            root: options.root ?? DEFAULT_ROOT,
            ...(options.auth === undefined ? {} : { auth: options.auth }),
            ...(options.acl === undefined ? {} : { acl: options.acl }),
          },
    sessionTimeoutMs,
    baseDir: resolve(options.cwd ?? process.cwd()),
    concurrency,
    prefetch,
    labels,
    handlers: options.handlers ?? {},
    graceMs: durationOption("graceMs", options.graceMs, DEFAULT_GRACE_MS),
    killGraceMs: durationOption("killGraceMs", options.killGraceMs, DEFAULT_KILL_GRACE_MS),
    // ZooKeeper ends a dead holder's session up to a tick after its timeout, counted from when it last
    // heard from it: waiting only the timeout can give up a moment before the name is free.
    nameWaitMs: durationOption("nameWaitMs", options.nameWaitMs, 2 * sessionTimeoutMs),
    cutoffStopMs: cutoffStopMs === 0 ? undefined : cutoffStopMs,
    freezeGapMs: sessionTimeoutMs / 3,
    perl: options.perl ?? "perl",
    answers: answerAddressOption(options.answerAddress),
    log: (level, msg, fields) => logger(level, msg, { worker: name, ...fields }),
    signal: options.signal,
  };
}

/** The `answerAddress` option, checked: undefined for `false`, else a host (or undefined) and a port. */
function answerAddressOption(value: string | false | undefined): CompiledWorkerOptions["answers"] {
  if (value === false) return undefined;
  if (value === undefined) return { host: undefined, port: 0 };
  const problem = answerAddressProblem(value);
  if (problem !== undefined)
    throw new WorkerOptionError("answerAddress", `${JSON.stringify(value)}: ${problem}`);
  const { host, port } = splitHostPort(value, 0);
  return { host: host === "" ? undefined : host, port };
}

/** Why `value` is not an answer stream address (`host:port`, `host`, `:port`), or undefined if it is. */
export function answerAddressProblem(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return 'must be "host:port", "host" or ":port"';
  const { host, port } = splitHostPort(value, 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return "the port must be an integer 0..65535";
  if (host !== "" && isIP(host) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$/.test(host))
    return "the host must be an IP address or a host name";
  return undefined;
}
