import {
  ChildFollows,
  type ChildrenChange,
  errors,
  Follower,
  type FollowEvent,
  type Logger,
  markErrorClass,
  type SessionBoundClient,
  ZkgridError,
} from "@zkgrid/core";
import type { GridLayout } from "@zkgrid/protocol";
import { parseSequence } from "@zkgrid/protocol";
import type { TaskBook } from "../task-book.js";

/** Thrown inside a leader's term when ZooKeeper shows another leader has acted (a refused conditional write). */
export class NotLeaderError extends ZkgridError {
  static {
    markErrorClass(NotLeaderError, "@zkgrid/master/NotLeaderError");
  }
  override readonly name = "NotLeaderError";
  declare readonly code: "NOT_LEADER";
  constructor(message: string) {
    super(message, "NOT_LEADER");
  }
}

export { forEachLimit, getOrNull } from "@zkgrid/core";
export type { ChildrenChange };

/**
 * What every part of a leader term shares: the session-bound client, the TaskBook, and the step loop's
 * hooks. Each part reads ZooKeeper on its own, then hands its change of state to `apply`, which the
 * next step runs before it decides anything.
 */
export interface Term {
  /** Bound to the session this term was elected on: ZooKeeper refuses its writes once that ends. */
  readonly client: SessionBoundClient;
  readonly layout: GridLayout;
  readonly book: TaskBook;
  readonly log: Logger;
  readonly epoch: number;
  /** Aborted when the term ends: ends every watch. */
  readonly signal: AbortSignal;
  /** Follows the grid's nodes for this term (see termFollower). */
  readonly follower: Follower;
  readonly counters: { ticks: number; writes: number; finished: number };
  /** Queues a change of state for the next step. */
  apply(change: () => void): void;
  /** Runs every queued change now (the step, and fencing, which must see them first). */
  drain(): void;
  /** Asks for a step (another one, if one runs). */
  kick(): void;
  /** Ends the term after an error that means it may not go on. */
  fail(err: unknown): void;
  /** Handles the error of a step or of a clean-up: ends the term, or retries the step. */
  onStepError(err: unknown): void;
  /** Throws NotLeaderError once the term is over: call before each write. */
  guard(): void;
  isStopped(): boolean;
}

/**
 * A term's follower: a step is asked for after each change it handles, unless `quiet` says the change
 * leaves nothing for a step. An error ends the term; before a follow's first state is handled its
 * promise rejects instead, so that a failed takeover is retried.
 */
export function termFollower(
  client: SessionBoundClient,
  signal: AbortSignal,
  term: { kick(): void; fail(err: unknown): void; quiet?: (event: FollowEvent) => boolean },
): Follower {
  return new Follower(client, {
    signal,
    onError: (err, { first }) => {
      if (!first) term.fail(err);
      return "fail";
    },
    onEvent: (event) => {
      if (!term.quiet?.(event)) term.kick();
    },
  });
}

/**
 * Follows the children of `path` for the term (see termFollower); resolves once the first change
 * (the current state) has been fully handled.
 */
export function followChildren(
  term: Term,
  path: string,
  handle: (c: ChildrenChange) => Promise<void>,
  options: { settleMs?: number; stop?: AbortSignal } = {},
): Promise<void> {
  return term.follower.children(path, handle, {
    settleMs: options.settleMs ?? 0,
    ...(options.stop ? { signal: options.stop } : {}),
  });
}

/**
 * The `<worker>@<session>` dirs under `parent` (report dirs, inboxes), each one's children followed
 * until the dir is gone. A name that is no session dir is logged and passed over; a dir gone before
 * its first read is skipped.
 */
export function sessionDirs<D>(
  term: Term,
  parent: string,
  what: string,
  make: (parsed: { worker: string; session: string }) => D,
  handler: (name: string, dir: D) => (c: ChildrenChange) => Promise<void>,
  settleMs = 0,
): ChildFollows<D> {
  return new ChildFollows<D>({
    open: (name) => {
      const parsed = term.layout.parseReportDir(name);
      if (parsed) return make(parsed);
      term.log("warn", `unexpected node under ${what}; ignoring it`, { node: name });
      return undefined;
    },
    follow: (name, dir, stop) =>
      followChildren(term, `${parent}/${name}`, handler(name, dir), { settleMs, stop }).catch((err) => {
        if (!errors.isNoNode(err)) throw err;
      }),
  });
}

export function bySequence(a: string, b: string): number {
  return (parseSequence(a) ?? 0) - (parseSequence(b) ?? 0);
}

/** The children of `path`, or none if it is gone. */
export async function childrenOrNone(client: SessionBoundClient, path: string): Promise<string[]> {
  try {
    return await client.getChildren(path);
  } catch (err) {
    if (errors.isNoNode(err)) return [];
    throw err;
  }
}
