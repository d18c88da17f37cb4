import { errors, type Logger, markErrorClass, type SessionBoundClient, ZkgridError } from "@zkgrid/core";
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

/** One children change as a watch yields it. */
export interface ChildrenChange {
  children: string[];
  added: string[];
  removed: string[];
}

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
 * Consumes a children watch; `handle` runs for each change, and a step is asked for after it. Resolves
 * once the first change (the current state) has been fully handled.
 */
export function followChildren(
  term: Term,
  path: string,
  handle: (c: ChildrenChange) => Promise<void>,
  options: { settleMs?: number; stop?: AbortSignal } = {},
): Promise<void> {
  const signal = options.stop ? AbortSignal.any([term.signal, options.stop]) : term.signal;
  let first = true;
  return new Promise<void>((resolve, reject) => {
    void (async () => {
      try {
        for await (const change of term.client.watchChildren(path, {
          signal,
          settleMs: options.settleMs ?? 0,
        })) {
          await handle(change);
          if (first) {
            first = false;
            resolve();
          }
          term.kick();
        }
        resolve();
      } catch (err) {
        if (first) reject(err);
        else term.fail(err);
      }
    })();
  });
}

/**
 * Keeps a children watch on each `<worker>@<session>` dir under `parent` (report dirs, inboxes): ends
 * the watches of dirs that are gone, starts one for each new dir, and resolves once each new one has
 * been read. A dir gone before its first read is skipped.
 */
export async function followSessionDirs<D extends { stop: AbortController }>(
  term: Term,
  parent: string,
  what: string,
  dirs: Map<string, D>,
  change: { added: string[]; removed: string[] },
  make: (parsed: { worker: string; session: string }, stop: AbortController) => D,
  handler: (name: string, dir: D) => (c: ChildrenChange) => Promise<void>,
  settleMs = 0,
): Promise<void> {
  for (const name of change.removed) {
    dirs.get(name)?.stop.abort();
    dirs.delete(name);
  }
  const firsts: Promise<void>[] = [];
  for (const name of change.added) {
    if (dirs.has(name)) continue;
    const parsed = term.layout.parseReportDir(name);
    if (!parsed) {
      term.log("warn", `unexpected node under ${what}; ignoring it`, { node: name });
      continue;
    }
    const dir = make(parsed, new AbortController());
    dirs.set(name, dir);
    firsts.push(
      followChildren(term, `${parent}/${name}`, handler(name, dir), {
        settleMs,
        stop: dir.stop.signal,
      }).catch((err) => {
        if (!errors.isNoNode(err)) throw err;
      }),
    );
  }
  await Promise.all(firsts);
}

export function bySequence(a: string, b: string): number {
  return (parseSequence(a) ?? 0) - (parseSequence(b) ?? 0);
}

export async function getOrNull(client: SessionBoundClient, path: string) {
  try {
    return await client.get(path);
  } catch (err) {
    if (errors.isNoNode(err)) return null;
    throw err;
  }
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

/** Runs `fn` over items with at most `limit` in flight: pipelined reads without an unbounded burst. */
export async function forEachLimit<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}
