/** The errors the submitter library throws besides those of `@zkgrid/core` and `@zkgrid/protocol`. */
import type { TaskStatus } from "@zkgrid/protocol";

/**
 * A task that the protocol refuses; `submit()` throws it before anything is written.
 * `index` is the task's position in the submitted list; `field` the offending field's path inside
 * the task (`timeoutMs`, `env["1X"]`), or "" when the whole task is at fault. `source` and `line`
 * say where the task was read from, when it was read from text.
 */
export class InvalidTaskError extends Error {
  override readonly name = "InvalidTaskError";
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
    super(`${where}: ${field ? `${field}: ` : ""}${problem}`, { cause: options.cause });
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
export class SubmitWriteError extends Error {
  override readonly name = "SubmitWriteError";
  readonly written: readonly string[];
  readonly notWritten: readonly string[];

  constructor(written: readonly string[], notWritten: readonly string[], cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`could not write ${notWritten.length} of ${written.length + notWritten.length} tasks: ${why}`, {
      cause,
    });
    this.written = written;
    this.notWritten = notWritten;
  }
}

/** `wait()` gave up after `timeoutMs`; the tasks keep running. Holds what did arrive. */
export class WaitTimeoutError extends Error {
  override readonly name = "WaitTimeoutError";
  readonly pending: readonly string[];
  readonly results: ReadonlyMap<string, TaskStatus>;

  constructor(timeoutMs: number, pending: readonly string[], results: ReadonlyMap<string, TaskStatus>) {
    const n = pending.length;
    super(`gave up waiting after ${timeoutMs} ms: ${n} task${n === 1 ? "" : "s"} still without a result`);
    this.pending = pending;
    this.results = results;
  }
}

/** The grid client was closed before or while a call was in progress. */
export class GridClosedError extends Error {
  override readonly name = "GridClosedError";
  constructor() {
    super("the grid client is closed");
  }
}
