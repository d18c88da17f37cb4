import { sleep } from "./sleep.js";
import type { ChildrenChange, DataChange, WatchOptions, WatchStream } from "./types.js";

/** What a follow needs of a client: a ZkClient, or a session-bound view of one (its follows end with it). */
export interface Watcher {
  watchChildren(path: string, options?: WatchOptions): WatchStream<ChildrenChange>;
  watchData(path: string, options?: WatchOptions): WatchStream<DataChange | null>;
}

/** An event a follow has handled, tagged with what was followed. */
export type FollowEvent =
  | { type: "children"; path: string; change: ChildrenChange }
  | { type: "data"; path: string; change: DataChange | null };

/**
 * What a failed read or handler means for one follow: `retry` follows again after a backoff (the handler
 * then gets the newest state, diffed against the last one it handled); `end` ends the follow quietly;
 * `fail` ends it with the error, which rejects the follow's promise if its first state was not handled.
 */
export type FollowErrorAction = "retry" | "end" | "fail";

export interface FollowPolicy {
  /** Ends every follow. Errors after it aborted end the follow quietly, unasked. */
  signal: AbortSignal;
  /** Decides per error; `first`: the follow's first state is not handled yet. */
  onError(error: unknown, at: { type: FollowEvent["type"]; path: string; first: boolean }): FollowErrorAction;
  /** Runs after each handled event (never inside a watch callback). */
  onEvent?(event: FollowEvent): void;
}

export interface FollowOptions {
  /** Ends this follow (with the policy's signal). */
  signal?: AbortSignal;
}

/** Backoff between retries of a follow: doubles from the first to the last. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

/**
 * Follows ZooKeeper nodes through self re-arming watches and hands each state to a handler, one at a
 * time (a handler's promise is awaited before the next state is read). What an error means is the
 * caller's policy: a leader ends its term, a read-only observer retries and reports.
 */
export class Follower {
  readonly #client: Watcher;
  readonly #policy: FollowPolicy;

  constructor(client: Watcher, policy: FollowPolicy) {
    this.#client = client;
    this.#policy = policy;
  }

  /**
   * Follows the children of `path` (which may not exist: then `exists` is false and no child is
   * listed). Each change carries `added` and `removed` since the last one handled. Resolves once the
   * first state is handled, or the follow ended before it.
   */
  children(
    path: string,
    handle: (change: ChildrenChange) => unknown,
    options: FollowOptions & { settleMs?: number } = {},
  ): Promise<void> {
    let handled: readonly string[] = [];
    return this.#follow(
      "children",
      path,
      options.signal,
      (signal) => this.#client.watchChildren(path, { signal, settleMs: options.settleMs ?? 0 }),
      async (change) => {
        const rediffed = diffChildren(handled, change);
        await handle(rediffed);
        handled = rediffed.children;
        return { event: { type: "children", path, change: rediffed }, more: true };
      },
    );
  }

  /**
   * Follows the data of `path`, `null` while it does not exist. The follow ends when `handle` returns
   * (or resolves to) `false`, and with `untilGone` once the node is gone. Resolves once the first state
   * is handled, or the follow ended before it.
   */
  data(
    path: string,
    handle: (change: DataChange | null) => unknown,
    options: FollowOptions & { untilGone?: boolean } = {},
  ): Promise<void> {
    const untilGone = options.untilGone === true;
    return this.#follow(
      "data",
      path,
      options.signal,
      (signal) => this.#client.watchData(path, { signal, untilGone }),
      async (change) => {
        const more = (await handle(change)) !== false && !(untilGone && change === null);
        return { event: { type: "data", path, change }, more };
      },
    );
  }

  #follow<T>(
    type: FollowEvent["type"],
    path: string,
    own: AbortSignal | undefined,
    open: (signal: AbortSignal) => WatchStream<T>,
    handle: (value: T) => Promise<{ event: FollowEvent; more: boolean }>,
  ): Promise<void> {
    const signal = own ? AbortSignal.any([this.#policy.signal, own]) : this.#policy.signal;
    return new Promise<void>((resolve, reject) => {
      this.#consume(type, path, signal, open, handle, resolve).then(resolve, reject);
    });
  }

  async #consume<T>(
    type: FollowEvent["type"],
    path: string,
    signal: AbortSignal,
    open: (signal: AbortSignal) => WatchStream<T>,
    handle: (value: T) => Promise<{ event: FollowEvent; more: boolean }>,
    firstHandled: () => void,
  ): Promise<void> {
    let first = true;
    let backoff = RETRY_FIRST_MS;
    while (!signal.aborted) {
      try {
        for await (const value of open(signal)) {
          const { event, more } = await handle(value);
          backoff = RETRY_FIRST_MS;
          this.#policy.onEvent?.(event);
          if (first) {
            first = false;
            firstHandled();
          }
          if (!more) return;
        }
        // The watch ended: aborted, its client closed, or the session it was bound to ended.
        return;
      } catch (error) {
        if (signal.aborted) return;
        const action = this.#policy.onError(error, { type, path, first });
        if (action === "end") return;
        if (action === "fail") throw error;
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, RETRY_MAX_MS);
      }
    }
  }
}

/** `change` with `added` and `removed` taken against the children last handled (a new watch knows none). */
function diffChildren(handled: readonly string[], change: ChildrenChange): ChildrenChange {
  const before = new Set(handled);
  const after = new Set(change.children);
  return {
    ...change,
    added: change.children.filter((c) => !before.has(c)),
    removed: handled.filter((c) => !after.has(c)),
  };
}

/**
 * One follow per child of a dir, each ended when its child is removed: the per-child bookkeeping
 * (which children are followed, and how to end each) that callers would otherwise keep themselves.
 */
export class ChildFollows<T> implements Iterable<[string, T]> {
  readonly #entries = new Map<string, { value: T; stop: AbortController }>();
  readonly #parent: AbortSignal | undefined;
  readonly #open: (name: string, signal: AbortSignal) => T | undefined;
  readonly #follow: (name: string, value: T, signal: AbortSignal) => Promise<void>;
  readonly #forget: ((name: string, value: T) => void) | undefined;

  constructor(options: {
    /** The entry of a new child, or undefined to pass it over; `signal` aborts when its follow ends. */
    open: (name: string, signal: AbortSignal) => T | undefined;
    /** Starts following a child until `signal` aborts; resolves once its first state is handled. */
    follow: (name: string, value: T, signal: AbortSignal) => Promise<void>;
    /** A child removed from the listing: its follow is ended, its entry dropped. */
    forget?: (name: string, value: T) => void;
    /** Ends every child's follow. */
    signal?: AbortSignal;
  }) {
    this.#open = options.open;
    this.#follow = options.follow;
    this.#forget = options.forget;
    this.#parent = options.signal;
  }

  /**
   * Ends the follows of the `removed` children, starts one for each `added` child not followed yet,
   * and resolves once each new one has handled its first state.
   */
  async update(change: { added: readonly string[]; removed: readonly string[] }): Promise<void> {
    for (const name of change.removed) {
      const entry = this.#entries.get(name);
      if (!entry) continue;
      entry.stop.abort();
      this.#entries.delete(name);
      this.#forget?.(name, entry.value);
    }
    const firsts: Promise<void>[] = [];
    for (const name of change.added) {
      if (this.#entries.has(name)) continue;
      const stop = new AbortController();
      const signal = this.#parent ? AbortSignal.any([this.#parent, stop.signal]) : stop.signal;
      const value = this.#open(name, signal);
      if (value === undefined) continue;
      this.#entries.set(name, { value, stop });
      firsts.push(this.#follow(name, value, signal));
    }
    await Promise.all(firsts);
  }

  get(name: string): T | undefined {
    return this.#entries.get(name)?.value;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Ends a child's follow; its entry stays until the child is removed or `delete`d. */
  stop(name: string): void {
    this.#entries.get(name)?.stop.abort();
  }

  /** Ends a child's follow and drops its entry (`forget` is not called). */
  delete(name: string): void {
    this.stop(name);
    this.#entries.delete(name);
  }

  /** Ends every child's follow. */
  stopAll(): void {
    for (const entry of this.#entries.values()) entry.stop.abort();
  }

  *values(): IterableIterator<T> {
    for (const entry of this.#entries.values()) yield entry.value;
  }

  *[Symbol.iterator](): Iterator<[string, T]> {
    for (const [name, entry] of this.#entries) yield [name, entry.value];
  }
}
