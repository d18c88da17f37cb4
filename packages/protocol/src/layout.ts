import { InvalidNameError } from "./errors.js";
import {
  assertSessionId,
  assertTaskId,
  assertWorkerName,
  isValidSessionId,
  isValidWorkerName,
} from "./names.js";
import { assertScheduleName } from "./schedule.js";
import { assertReplyAddress } from "./reply.js";

/** The znode paths of one grid. Every directory is persistent; see docs/protocol.md. */
export interface GridLayout {
  /** The grid's root, e.g. `/zkgrid`. */
  readonly root: string;
  /** `R/masters`: election candidates, `_c_<uuid>-n_<seq>`. */
  readonly masters: string;
  /** Basename prefix of a candidate node, for a protected ephemeral sequential create: `n_`. */
  readonly masterNodePrefix: string;
  /** `R/workers`: one ephemeral node per live worker. */
  readonly workers: string;
  /** `R/workers/<name>`. Throws `InvalidNameError` for a bad name. */
  worker(name: string): string;
  /** `R/queue`: submit batches waiting for the leader. */
  readonly queue: string;
  /** Basename prefix of a queue node, for a protected persistent sequential create: `q`. */
  readonly queueNodePrefix: string;
  /** `R/assign`. */
  readonly assignDir: string;
  /** `R/assign/<name>`. Throws `InvalidNameError` for a bad name. */
  assign(name: string): string;
  /** `R/reports`. */
  readonly reports: string;
  /** `R/reports/<worker>@<session>`. Throws `InvalidNameError` for a bad worker name or session id. */
  reportDir(worker: string, session: string): string;
  /** Splits a child name of `R/reports` or `R/inbox` (`<worker>@<session>`); undefined if it is not one. */
  parseReportDir(name: string): { worker: string; session: string } | undefined;
  /** Basename prefix of a report node (sequential, under a report dir): `r`. */
  readonly reportNodePrefix: string;
  /** `R/inbox`: one dir per worker session that takes direct tasks. */
  readonly inbox: string;
  /** `R/inbox/<worker>@<session>`. Throws `InvalidNameError` for a bad worker name or session id. */
  inboxDir(worker: string, session: string): string;
  /** `R/inbox/<worker>@<session>/<task-id>`. Throws `InvalidNameError` for a bad name or id. */
  inboxTask(worker: string, session: string, taskId: string): string;
  /** `R/results`. */
  readonly results: string;
  /** Basename prefix of a result node (persistent sequential): `r`. */
  readonly resultNodePrefix: string;
  /** `R/cancel`: cancel requests waiting for the leader. */
  readonly cancel: string;
  /** Basename prefix of a cancel request node (persistent sequential, protected): `c`. */
  readonly cancelNodePrefix: string;
  /** `R/schedules`: one node per recurring schedule, written by clients (see docs/protocol.md). */
  readonly schedules: string;
  /** `R/schedules/<name>`. Throws `InvalidNameError` for a bad schedule name. */
  schedule(name: string): string;
  /** `R/firings`: the leader's record of each schedule's decided slots. */
  readonly firings: string;
  /** `R/firings/<name>`. Throws `InvalidNameError` for a bad schedule name. */
  firing(name: string): string;
  /** `R/gate`: one node holding the pauses and start limits (a `GridGate`); absent means none. */
  readonly gate: string;
  /** `R/replies`: one dir per reply address, holding the result nodes of the tasks that carry it. */
  readonly replies: string;
  /** `R/replies/<address>`. Throws `InvalidNameError` for a bad reply address. */
  replyDir(address: string): string;
  /** Every persistent directory, parents first, for creating them at start-up. */
  readonly dirs: readonly string[];
}

/** Why `root` is not a usable root path, or undefined. */
export function rootPathProblem(root: unknown): string | undefined {
  if (typeof root !== "string") return "expected a string";
  if (!root.startsWith("/")) return 'must be absolute (start with "/")';
  if (root === "/") return undefined;
  if (root.endsWith("/")) return 'must not end with "/"';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(root)) return "must not contain control characters";
  const segments = root.slice(1).split("/");
  for (const segment of segments) {
    if (segment === "") return "must not contain an empty segment (//)";
    if (segment === "." || segment === "..") return `must not contain a "${segment}" segment`;
  }
  if (segments[0] === "zookeeper") return "must not be under /zookeeper, which ZooKeeper reserves";
  return undefined;
}

/** The paths of a grid rooted at `root` (default `/zkgrid`). Throws `InvalidNameError` for a bad root. */
export function gridLayout(root = "/zkgrid"): GridLayout {
  const problem = rootPathProblem(root);
  if (problem !== undefined) throw new InvalidNameError("root path", root, problem);
  const under = (name: string) => (root === "/" ? `/${name}` : `${root}/${name}`);
  const masters = under("masters");
  const workers = under("workers");
  const queue = under("queue");
  const assignDir = under("assign");
  const reports = under("reports");
  const results = under("results");
  const cancel = under("cancel");
  const inbox = under("inbox");
  const schedules = under("schedules");
  const firings = under("firings");
  const replies = under("replies");
  const inboxDir = (worker: string, session: string) => {
    assertWorkerName(worker);
    assertSessionId(session);
    return `${inbox}/${worker}@${session}`;
  };
  return {
    root,
    masters,
    masterNodePrefix: "n_",
    workers,
    worker(name) {
      assertWorkerName(name);
      return `${workers}/${name}`;
    },
    queue,
    queueNodePrefix: "q",
    assignDir,
    assign(name) {
      assertWorkerName(name);
      return `${assignDir}/${name}`;
    },
    reports,
    reportDir(worker, session) {
      assertWorkerName(worker);
      assertSessionId(session);
      return `${reports}/${worker}@${session}`;
    },
    parseReportDir: parseReportDirName,
    reportNodePrefix: "r",
    inbox,
    inboxDir,
    inboxTask(worker, session, taskId) {
      assertTaskId(taskId);
      return `${inboxDir(worker, session)}/${taskId}`;
    },
    results,
    resultNodePrefix: "r",
    cancel,
    cancelNodePrefix: "c",
    schedules,
    schedule(name) {
      assertScheduleName(name);
      return `${schedules}/${name}`;
    },
    firings,
    firing(name) {
      assertScheduleName(name);
      return `${firings}/${name}`;
    },
    gate: under("gate"),
    replies,
    replyDir(address) {
      assertReplyAddress(address);
      return `${replies}/${address}`;
    },
    dirs: [
      ...(root === "/" ? [] : [root]),
      masters,
      workers,
      queue,
      assignDir,
      reports,
      results,
      cancel,
      inbox,
      schedules,
      firings,
      replies,
    ],
  };
}

/** Splits `<worker>@<session>`; undefined unless both halves are valid. */
export function parseReportDirName(name: string): { worker: string; session: string } | undefined {
  const at = name.indexOf("@");
  if (at < 0) return undefined;
  const worker = name.slice(0, at);
  const session = name.slice(at + 1);
  if (!isValidWorkerName(worker) || !isValidSessionId(session)) return undefined;
  return { worker, session };
}

/** The parts of a sequential node's name: `_c_<uuid>-` (if protected), the basename prefix, the number. */
export interface SequentialName {
  /** The uuid of a protected create, or undefined. */
  readonly protectedId: string | undefined;
  /** What the creator asked for, e.g. `q` (without the protected prefix). */
  readonly prefix: string;
  /** The sequence number ZooKeeper appended. */
  readonly sequence: number;
}

const PROTECTED = /^_c_([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})-/;
// ZooKeeper appends a signed 32-bit counter printed as %010d (negative after it overflows).
const SEQUENCE = /(-\d{9,10}|\d{10})$/;

/** Parses a sequential node's basename (not a full path); undefined if it has no 10-digit suffix. */
export function parseSequentialName(name: string): SequentialName | undefined {
  const prot = PROTECTED.exec(name);
  const rest = prot ? name.slice(prot[0].length) : name;
  const seq = SEQUENCE.exec(rest);
  if (!seq) return undefined;
  return { protectedId: prot?.[1], prefix: rest.slice(0, seq.index), sequence: Number(seq[1]) };
}

/** The sequence number at the end of a sequential node's name (a `_c_<uuid>-` prefix is allowed). */
export function parseSequence(name: string): number | undefined {
  return parseSequentialName(name)?.sequence;
}

/** Orders sequential node names by their sequence number (names without one sort last, by name). */
export function compareSequentialNames(a: string, b: string): number {
  const sa = parseSequence(a);
  const sb = parseSequence(b);
  if (sa !== undefined && sb !== undefined) return sa - sb;
  if (sa !== undefined) return -1;
  if (sb !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The id under which the grid rejects a task of a queue node that had no valid id of its own:
 * the node's name without the protected prefix, a dot, and the task's index (`q0000000012.3`).
 */
export function unnamedTaskId(queueNodeName: string, index: number): string {
  const prot = PROTECTED.exec(queueNodeName);
  return `${prot ? queueNodeName.slice(prot[0].length) : queueNodeName}.${index}`;
}
