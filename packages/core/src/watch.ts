import type { ClientCore } from "./connection.js";
import {
  isClosed,
  isConnectionLoss,
  isNoNode,
  isSessionExpired,
  OperationTimeoutError,
  UnimplementedError,
} from "./errors.js";
import type { Handle, WatchEventType } from "./session.js";
import type { ChildrenChange, DataChange, Stat, WatchOptions, WatchStream } from "./types.js";

/**
 * Why a watch's own signal aborts: one reason for every watch. `abort()` without one makes a
 * DOMException with its stack, which costs more than the rest of a lone task's wait; nothing outside
 * the watch reads it.
 */
const WATCH_STOPPED = new Error("the watch stopped");

/**
 * A self re-arming watch. Watch events only mark the stream dirty (nothing runs inside the addon's
 * callback); one loop re-reads with a new watch while dirty. Only the latest state is kept, so a slow
 * consumer never builds a backlog: it gets the newest state, diffed against what it saw last.
 */
abstract class ReArmingWatch<S, T> implements WatchStream<T> {
  protected readonly core: ClientCore;
  protected readonly rel: string;
  protected readonly abs: string;
  readonly #controller = new AbortController();
  readonly #cleanups: Array<() => void> = [];
  #dirty = true;
  #wakeLoop: (() => void) | undefined;
  #latest: { state: S } | undefined;
  #delivered: { state: S } | undefined;
  #pending = false;
  #waiters: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> = [];
  #error: { error: unknown } | undefined;
  #done = false;

  readonly #settleMs: number;

  /** Set before the first read (subclass fields are not, when the loop starts in this constructor). */
  protected readonly untilGone: boolean;
  /** Set before the first read: see WatchOptions.perChild. */
  protected readonly perChild: boolean;
  /** The server said it cannot add persistent watches: a perChild stream lists after every change. */
  protected persistentWatchRefused = false;

  /** `options`: WatchOptions without the signal (a bound view's watch gets its session's too). */
  constructor(core: ClientCore, rel: string, signal: AbortSignal | undefined, options: WatchOptions) {
    const settleMs = options.settleMs ?? 0;
    this.#settleMs = Number.isFinite(settleMs) && settleMs > 0 ? settleMs : 0;
    this.untilGone = options.untilGone === true;
    this.perChild = options.perChild === true;
    this.core = core;
    this.rel = rel;
    this.abs = core.chroot.toServer(rel);
    if (core.isClosing() || signal?.aborted) {
      this.#done = true;
      return;
    }
    this.#cleanups.push(core.onPath(this.abs, () => this.#markDirty()));
    this.#cleanups.push(
      core.onConnection((ev) => {
        // A new session has no watches, nor has a new handle resuming ours (after a broken call): re-read.
        if (ev.type === "connected" || ev.type === "reconnected") this.#markDirty();
        else if (ev.type === "closed") this.stop();
      }),
    );
    if (signal) {
      const onAbort = () => this.stop();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#cleanups.push(() => signal.removeEventListener("abort", onAbort));
    }
    void this.#loop();
  }

  /** Reads the current state and leaves a watch that fires on its next change. */
  protected abstract read(s: Handle): Promise<S>;
  protected abstract same(a: S, b: S): boolean;
  protected abstract toValue(previous: S | undefined, next: S): T;

  /** `cleanup` runs when the stream ends. */
  protected onStop(cleanup: () => void): void {
    if (this.#done) cleanup();
    else this.#cleanups.push(cleanup);
  }

  /**
   * Applies a change an event describes to the latest state read, as the next read would see it:
   * `change` returns the new state, or undefined for none. Nothing is applied before the first read or
   * while a read is due (it will see the change), and an in-flight read's result replaces what was.
   */
  protected amend(change: (state: S) => S | undefined): void {
    if (this.#done || this.#dirty || this.#latest === undefined) return;
    const state = change(this.#latest.state);
    if (state !== undefined) this.#offer(state);
  }

  /** `state` is the latest: delivered (or kept for the next `next()`) unless it is what was delivered. */
  #offer(state: S): void {
    this.#latest = { state };
    this.#pending = this.#delivered === undefined || !this.same(this.#delivered.state, state);
    if (this.#pending) this.#deliver();
  }

  #markDirty(): void {
    this.#dirty = true;
    const wake = this.#wakeLoop;
    this.#wakeLoop = undefined;
    wake?.();
  }

  async #loop(): Promise<void> {
    while (!this.#done) {
      if (!this.#dirty) {
        await new Promise<void>((resolve) => {
          this.#wakeLoop = resolve;
        });
        continue;
      }
      if (this.#settleMs > 0 && this.#latest !== undefined) {
        // Let more changes arrive: they are read with this one.
        const signal = this.#controller.signal;
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const timer = setTimeout(done, this.#settleMs);
          signal.addEventListener("abort", done, { once: true });
        });
        if (this.#done) return;
      }
      this.#dirty = false;
      let state: S;
      try {
        state = await this.core.runForever(this.rel, (s) => this.read(s), this.#controller.signal);
      } catch (error) {
        if (this.#done) return;
        if (isClosed(error)) {
          this.stop();
          return;
        }
        if (isSessionExpired(error) || isConnectionLoss(error) || error instanceof OperationTimeoutError) {
          this.#dirty = true;
          continue;
        }
        this.#fail(error);
        return;
      }
      if (this.#done) return;
      this.#offer(state);
    }
  }

  #take(): T {
    const latest = this.#latest!;
    const value = this.toValue(this.#delivered?.state, latest.state);
    this.#delivered = latest;
    this.#pending = false;
    return value;
  }

  #deliver(): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ done: false, value: this.#take() });
  }

  #fail(error: unknown): void {
    this.core.log("error", "watch stopped by an error", { path: this.rel, error: String(error) });
    this.#error = { error };
    const waiters = this.#waiters.splice(0);
    this.#finish();
    const first = waiters.shift();
    if (first) {
      this.#error = undefined;
      first.reject(error);
    }
    for (const w of waiters) w.resolve({ done: true, value: undefined });
  }

  #finish(): void {
    this.#done = true;
    this.#pending = false;
    this.#controller.abort(WATCH_STOPPED);
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    const wake = this.#wakeLoop;
    this.#wakeLoop = undefined;
    wake?.();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#error) {
      const { error } = this.#error;
      this.#error = undefined;
      return Promise.reject(error);
    }
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    if (this.#pending && this.#waiters.length === 0)
      return Promise.resolve({ done: false, value: this.#take() });
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  stop(): void {
    if (this.#done) return;
    this.#finish();
    for (const w of this.#waiters.splice(0)) w.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

interface ChildrenState {
  exists: boolean;
  children: string[];
  stat: Stat | null;
}

export class ChildrenWatch extends ReArmingWatch<ChildrenState, ChildrenChange> {
  constructor(core: ClientCore, rel: string, signal: AbortSignal | undefined, options: WatchOptions) {
    super(core, rel, signal, options);
    if (this.perChild) this.onStop(core.onChildEvent(this.abs, (name, event) => this.#onChild(name, event)));
  }

  protected async read(s: Handle): Promise<ChildrenState> {
    // Added again on every read: the server drops a persistent watch when the connection ends, and a
    // read follows every reconnect. A listing after it misses no change, and one the events also tell
    // of is applied once.
    let persistent = this.perChild && !this.persistentWatchRefused && s.canAddWatch;
    if (persistent) {
      try {
        await s.addWatch(this.abs, this.rel, true);
      } catch (error) {
        if (!(error instanceof UnimplementedError)) throw error;
        this.core.log("warn", "the server cannot add persistent watches; listing after every change", {
          path: this.rel,
        });
        this.persistentWatchRefused = true;
        persistent = false;
      }
    }
    for (;;) {
      try {
        const { children, stat } = await s.getChildren(this.abs, this.rel, !persistent);
        return { exists: true, children, stat };
      } catch (error) {
        if (!isNoNode(error)) throw error;
      }
      // getChildren leaves no watch on a missing node; exists() does, and fires when it is created (as
      // the persistent watch does, for the node itself).
      if ((await s.exists(this.abs, this.rel, !persistent)) === null)
        return { exists: false, children: [], stat: null };
    }
  }

  /** A persistent watch's event for a child: added or removed from the latest listing, in order. */
  #onChild(name: string, event: WatchEventType): void {
    if (event !== "created" && event !== "deleted") return;
    this.amend((state) => {
      if (!state.exists) return undefined;
      const at = sortedIndex(state.children, name);
      const present = state.children[at] === name;
      if (present === (event === "created")) return undefined;
      // A copy: a state once delivered is what the next change is diffed against.
      const children = state.children.slice();
      if (event === "created") children.splice(at, 0, name);
      else children.splice(at, 1);
      return { exists: true, children, stat: state.stat };
    });
  }

  protected same(a: ChildrenState, b: ChildrenState): boolean {
    if (a.exists !== b.exists || a.stat?.czxid !== b.stat?.czxid) return false;
    if (a.children.length !== b.children.length) return false;
    return a.children.every((child, i) => child === b.children[i]);
  }

  protected toValue(previous: ChildrenState | undefined, next: ChildrenState): ChildrenChange {
    const { added, removed } = diffSorted(previous?.children ?? [], next.children);
    return { children: [...next.children], added, removed, exists: next.exists, stat: next.stat };
  }
}

/** Where `name` is, or would go, in the sorted `names`. */
function sortedIndex(names: readonly string[], name: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((names[mid] as string) < name) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * What `after` adds to `before` and removes from it, both sorted (as `getChildren` returns them): one
 * walk, without a set of either (a listing of a busy dir is thousands of names, diffed per change).
 */
export function diffSorted(
  before: readonly string[],
  after: readonly string[],
): { added: string[]; removed: string[] } {
  const added: string[] = [];
  const removed: string[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length && j < after.length) {
    const a = before[i] as string;
    const b = after[j] as string;
    if (a === b) {
      i++;
      j++;
    } else if (a < b) {
      removed.push(a);
      i++;
    } else {
      added.push(b);
      j++;
    }
  }
  for (; i < before.length; i++) removed.push(before[i] as string);
  for (; j < after.length; j++) added.push(after[j] as string);
  return { added, removed };
}

export class DataWatch extends ReArmingWatch<DataChange | null, DataChange | null> {
  protected async read(s: Handle): Promise<DataChange | null> {
    for (;;) {
      try {
        return await s.get(this.abs, this.rel, true);
      } catch (error) {
        if (!isNoNode(error)) throw error;
      }
      // untilGone: a missing node is the end; no watch is left waiting for it to come back.
      if (this.untilGone) return null;
      if ((await s.exists(this.abs, this.rel, true)) === null) return null;
    }
  }

  protected same(a: DataChange | null, b: DataChange | null): boolean {
    if (a === null || b === null) return a === b;
    return a.stat.czxid === b.stat.czxid && a.stat.mzxid === b.stat.mzxid;
  }

  protected toValue(_previous: DataChange | null | undefined, next: DataChange | null): DataChange | null {
    return next;
  }
}
