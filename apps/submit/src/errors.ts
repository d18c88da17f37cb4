/** The errors the submitter library throws besides those of `@zkgrid/core` and `@zkgrid/protocol`. */
import { markErrorClass, messageOf, ZkgridError } from "@zkgrid/core";
import type { TaskStatus } from "@zkgrid/protocol";

/**
 * A task that the protocol refuses; `submit()` throws it before anything is written.
 * `index` is the task's position in the submitted list; `field` the offending field's path inside
 * the task (`timeoutMs`, `env["1X"]`), or "" when the whole task is at fault. `source` and `line`
 * say where the task was read from, when it was read from text.
 */
export class InvalidTaskError extends ZkgridError {
  static {
    markErrorClass(InvalidTaskError, "@zkgrid/submit/InvalidTaskError");
  }
  override readonly name = "InvalidTaskError";
  declare readonly code: "INVALID_TASK";
  readonly index: number;
  readonly field: string;
  readonly problem: string;
  readonly source: string | undefined;
  readonly line: number | undefined;

  constructor(
    index: number,
    field: string,
    problem: string,
    options: { source?: string; line?: number; cause?: unknown } = {},
  ) {
    const where = options.source === undefined ? `task ${index}` : `${options.source}:${options.line ?? "?"}`;
    super(`${where}: ${field ? `${field}: ` : ""}${problem}`, "INVALID_TASK", { cause: options.cause });
    this.index = index;
    this.field = field;
    this.problem = problem;
    this.source = options.source;
    this.line = options.line;
  }

  /** The same error, placed at `source:line` (e.g. `tasks.ndjson:3`). */
  at(source: string, line: number): InvalidTaskError {
    return new InvalidTaskError(this.index, this.field, this.problem, { source, line, cause: this.cause });
  }
}

/**
 * Writing a batch of tasks to the queue failed. `written` lists the ids of this call's tasks that did
 * reach the queue (they will run), `notWritten` those that did not; `cause` is the ZooKeeper error.
 */
export class SubmitWriteError extends ZkgridError {
  static {
    markErrorClass(SubmitWriteError, "@zkgrid/submit/SubmitWriteError");
  }
  override readonly name = "SubmitWriteError";
  declare readonly code: "SUBMIT_WRITE_FAILED";

  constructor(
    readonly written: readonly string[],
    readonly notWritten: readonly string[],
    cause: unknown,
  ) {
    const why = messageOf(cause);
    const total = written.length + notWritten.length;
    super(`could not write ${notWritten.length} of ${total} tasks: ${why}`, "SUBMIT_WRITE_FAILED", { cause });
  }
}

/** `wait()` gave up after `timeoutMs`; the tasks keep running. Holds what did arrive. */
export class WaitTimeoutError extends ZkgridError {
  static {
    markErrorClass(WaitTimeoutError, "@zkgrid/submit/WaitTimeoutError");
  }
  override readonly name = "WaitTimeoutError";
  declare readonly code: "WAIT_TIMEOUT";

  constructor(
    timeoutMs: number,
    readonly pending: readonly string[],
    readonly results: ReadonlyMap<string, TaskStatus>,
  ) {
    const n = pending.length;
    const tasks = `${n} task${n === 1 ? "" : "s"}`;
    super(`gave up waiting after ${timeoutMs} ms: ${tasks} still without a result`, "WAIT_TIMEOUT");
  }
}

/**
 * A result node that a wait still had to read was pruned first: the leader keeps only the newest
 * `--keep-results` nodes, and this client fell that far behind. Results of the waited tasks may be
 * lost with it, so the wait ends with this error rather than waiting for ever. `node` is the pruned
 * node's path; `pending` the ids the wait had not yet heard of.
 */
export class ResultsPrunedError extends ZkgridError {
  static {
    markErrorClass(ResultsPrunedError, "@zkgrid/submit/ResultsPrunedError");
  }
  override readonly name = "ResultsPrunedError";
  declare readonly code: "RESULTS_PRUNED";

  constructor(
    readonly node: string,
    readonly pending: readonly string[],
  ) {
    const n = pending.length;
    super(
      `result node ${node} was pruned before this client read it: the results of ${n} waited task${n === 1 ? "" : "s"} may be lost with it (the master keeps the newest --keep-results nodes)`,
      "RESULTS_PRUNED",
    );
  }
}

/** The grid client was closed before or while a call was in progress. */
export class GridClosedError extends ZkgridError {
  static {
    markErrorClass(GridClosedError, "@zkgrid/submit/GridClosedError");
  }
  override readonly name = "GridClosedError";
  declare readonly code: "GRID_CLOSED";
  constructor() {
    super("the grid client is closed", "GRID_CLOSED");
  }
}

/**
 * A pause or start limit the grid refuses (a bad label, a limit out of range); the gate calls throw
 * it before anything is written. `field` names the argument (`label`, `starts`, `perMs`, `by`).
 */
export class InvalidGateError extends ZkgridError {
  static {
    markErrorClass(InvalidGateError, "@zkgrid/submit/InvalidGateError");
  }
  override readonly name = "InvalidGateError";
  declare readonly code: "INVALID_GATE";
  readonly field: string;
  readonly problem: string;

  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`, "INVALID_GATE");
    this.field = field;
    this.problem = problem;
  }
}
