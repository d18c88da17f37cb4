import { errors, type ZkClient } from "@zkgrid/core";
import {
  decodeResultBatch,
  type GridLayout,
  isFinalState,
  parseSequentialName,
  type TaskStatus,
} from "@zkgrid/protocol";
import { GridClosedError, ResultsPrunedError } from "./errors.js";

/** What a subscriber hears: each wanted id's first final status, then the end (or an error). */
export interface ResultListener {
  status(status: TaskStatus): void;
  /** Every wanted id has its status. */
  done(): void;
  error(err: unknown): void;
}

interface Subscriber {
  readonly pending: Set<string>;
  readonly listener: ResultListener;
  /** Highest result sequence this subscriber has read. */
  cursor: number;
  /**
   * True when every result this subscriber waits for is in a node above its first cursor (a baseline
   * taken before its tasks were written): a node above the cursor pruned before it was read may then
   * have held one of them.
   */
  readonly fromBaseline: boolean;
  pumping: boolean;
  again: boolean;
  ended: boolean;
}

export interface ResultNode {
  readonly sequence: number;
  readonly name: string;
}

/**
 * How long the watch outlives its last subscriber: a client that submits and waits again soon finds
 * the listing current, and neither lists `R/results` for its baseline nor arms a new watch.
 */
const LINGER_MS = 5_000;

/**
 * Result nodes a subscriber reads ahead of the one it is taking statuses from: the reads are sent at
 * once and ZooKeeper answers them in order, so a reader behind a fast leader catches up at the rate of
 * its connection, not of one round trip per node (which fell behind ~570 nodes a second and lost
 * nodes to pruning in the bench's delayed part). At most this many nodes' data are held at once.
 */
const READ_AHEAD = 32;

/** Logs what the feed skips; never throws. */
export type FeedLogger = (level: "warn", msg: string, fields?: Record<string, unknown>) => void;

/**
 * One watch on `R/results` shared by every waiter of a client. Each subscriber reads, in sequence
 * order, every result node newer than its baseline, and takes the first final status of each id it
 * wants (later duplicates, which a leader's crash can leave, are ignored). Subscribers at the same
 * place share each node's read.
 */
export class ResultFeed {
  readonly #zk: ZkClient;
  readonly #dir: string;
  readonly #prefix: string;
  readonly #log: FeedLogger;
  readonly #subscribers = new Set<Subscriber>();
  #nodes: ResultNode[] = [];
  /** Reads in flight or not yet taken by every subscriber; undefined: the node was gone. */
  #reads = new Map<number, Promise<readonly TaskStatus[] | undefined>>();
  #watch: AbortController | undefined;
  /** True once the current watch has delivered a listing (#nodes is then what it last saw). */
  #listed = false;
  #linger: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    zk: ZkClient,
    layout: Pick<GridLayout, "results" | "resultNodePrefix">,
    log: FeedLogger = () => {},
  ) {
    this.#zk = zk;
    this.#dir = layout.results;
    this.#prefix = layout.resultNodePrefix;
    this.#log = log;
  }

  /**
   * Delivers the first final status of each of `ids` found in result nodes with a sequence above
   * `after`. Returns a function that cancels the subscription.
   */
  subscribe(ids: Iterable<string>, after: number, listener: ResultListener): () => void {
    const sub: Subscriber = {
      pending: new Set(ids),
      listener,
      cursor: after,
      fromBaseline: after >= 0,
      pumping: false,
      again: false,
      ended: false,
    };
    if (this.#closed) {
      queueMicrotask(() => listener.error(new GridClosedError()));
      return () => {};
    }
    if (sub.pending.size === 0) {
      queueMicrotask(() => listener.done());
      return () => {};
    }
    this.#subscribers.add(sub);
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#watch === undefined) this.#startWatch();
    else void this.#pump(sub);
    return () => this.#end(sub);
  }

  /**
   * The status of `id` in the newest result node (of `children`, the names under `R/results`) that
   * has one. Duplicates only come from a leader repeating a step, with the same outcome.
   */
  async findNewest(id: string, children: readonly string[]): Promise<TaskStatus | undefined> {
    const nodes = resultNodes(children, this.#prefix);
    for (let i = nodes.length - 1; i >= 0; i--) {
      const found = (await this.#fetch(nodes[i]!))?.find((status) => status.id === id);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /**
   * The highest sequence of the result nodes in the watch's listing, if a watch is live: every
   * result node created after this call has a higher one (the listing may lag, which only lowers it).
   */
  liveBaseline(): number | undefined {
    if (this.#watch === undefined || !this.#listed) return undefined;
    return this.#nodes.at(-1)?.sequence ?? -1;
  }

  /** Ends every subscription with {@link GridClosedError}. */
  close(): void {
    this.#closed = true;
    for (const sub of [...this.#subscribers]) this.#end(sub, new GridClosedError());
    this.#stopWatch();
  }

  #stopWatch(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    this.#watch?.abort();
    this.#watch = undefined;
    this.#listed = false;
    this.#nodes = [];
  }

  #end(sub: Subscriber, err?: unknown): void {
    if (sub.ended) return;
    sub.ended = true;
    this.#subscribers.delete(sub);
    if (this.#subscribers.size === 0 && this.#watch !== undefined && this.#linger === undefined) {
      if (this.#closed) this.#stopWatch();
      else {
        this.#linger = setTimeout(() => this.#stopWatch(), LINGER_MS);
        this.#linger.unref();
      }
    }
    this.#evictReads();
    if (err !== undefined) sub.listener.error(err);
  }

  #startWatch(): void {
    const watch = new AbortController();
    this.#watch = watch;
    const stream = this.#zk.watchChildren(this.#dir, { signal: watch.signal });
    void (async () => {
      try {
        for await (const change of stream) {
          if (watch.signal.aborted) break; // a newer watch may have replaced this one
          this.#applyChange(change);
          for (const sub of this.#subscribers) void this.#pump(sub);
        }
        // The stream ends normally when the client closes.
        if (!watch.signal.aborted) this.#watchFailed(watch, new GridClosedError());
      } catch (err) {
        if (!watch.signal.aborted) this.#watchFailed(watch, err);
      }
    })();
  }

  /** Updates the listing from a change: only new names are parsed, and sorted only when out of order. */
  #applyChange(change: { children: string[]; added: string[]; removed: string[] }): void {
    if (!this.#listed) {
      this.#nodes = resultNodes(change.children, this.#prefix);
      this.#listed = true;
      return;
    }
    if (change.removed.length > 0) {
      const gone = new Set(change.removed);
      this.#nodes = this.#nodes.filter((node) => !gone.has(node.name));
    }
    const fresh = resultNodes(change.added, this.#prefix);
    if (fresh.length === 0) return;
    const last = this.#nodes.at(-1)?.sequence ?? -1;
    for (const node of fresh) this.#nodes.push(node);
    if (fresh[0]!.sequence <= last) this.#nodes.sort((a, b) => a.sequence - b.sequence);
  }

  #watchFailed(watch: AbortController, err: unknown): void {
    if (this.#watch === watch) this.#stopWatch();
    for (const sub of [...this.#subscribers]) this.#end(sub, err);
  }

  /**
   * Reads, in order, the nodes this subscriber has not read yet, with up to READ_AHEAD reads in
   * flight; one pass at a time per subscriber.
   */
  async #pump(sub: Subscriber): Promise<void> {
    if (sub.pumping) {
      sub.again = true;
      return;
    }
    sub.pumping = true;
    try {
      do {
        sub.again = false;
        const nodes = this.#nodes;
        let next = firstAfter(nodes, sub.cursor);
        let sent = next;
        for (; next < nodes.length; next++) {
          while (sent < nodes.length && sent < next + READ_AHEAD) void this.#read(nodes[sent++]!);
          const node = nodes[next]!;
          const statuses = await this.#read(node);
          if (sub.ended) return;
          if (statuses === undefined && sub.fromBaseline && sub.pending.size > 0) {
            this.#end(sub, new ResultsPrunedError(`${this.#dir}/${node.name}`, [...sub.pending]));
            return;
          }
          sub.cursor = node.sequence;
          for (const status of statuses ?? []) {
            if (sub.pending.delete(status.id)) sub.listener.status(status);
          }
          if (sub.pending.size === 0) {
            this.#end(sub);
            sub.listener.done();
            return;
          }
        }
      } while (sub.again && !sub.ended);
    } catch (err) {
      this.#end(sub, err);
    } finally {
      sub.pumping = false;
      this.#evictReads();
    }
  }

  #read(node: ResultNode): Promise<readonly TaskStatus[] | undefined> {
    let read = this.#reads.get(node.sequence);
    if (read === undefined) {
      read = this.#fetch(node);
      this.#reads.set(node.sequence, read);
      read.catch(() => this.#reads.delete(node.sequence));
    }
    return read;
  }

  /** A node's final statuses; undefined if it was pruned before it could be read. */
  async #fetch(node: ResultNode): Promise<readonly TaskStatus[] | undefined> {
    let data: Buffer;
    try {
      ({ data } = await this.#zk.get(`${this.#dir}/${node.name}`));
    } catch (err) {
      if (errors.isNoNode(err)) return undefined;
      throw err;
    }
    const decoded = decodeResultBatch(data);
    if (!decoded.ok) {
      this.#log("warn", "skipping a result node that does not decode", {
        node: node.name,
        error: decoded.error.message,
      });
      return [];
    }
    return decoded.value.results.filter((status) => isFinalState(status.state));
  }

  /** Keeps a node's statuses only while some subscriber has yet to read it. */
  #evictReads(): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const sub of this.#subscribers) lowest = Math.min(lowest, sub.cursor);
    for (const sequence of this.#reads.keys()) {
      if (sequence <= lowest) this.#reads.delete(sequence);
    }
  }
}

/** The index of the first of `nodes` (in sequence order) with a sequence above `cursor`. */
function firstAfter(nodes: readonly ResultNode[], cursor: number): number {
  let low = 0;
  let high = nodes.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (nodes[mid]!.sequence <= cursor) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The children of `R/results` that are result nodes, in sequence order. */
export function resultNodes(children: readonly string[], prefix: string): ResultNode[] {
  const nodes: ResultNode[] = [];
  for (const name of children) {
    const parsed = parseSequentialName(name);
    if (parsed !== undefined && parsed.prefix === prefix) {
      nodes.push({ sequence: parsed.sequence, name });
    }
  }
  return nodes.sort((a, b) => a.sequence - b.sequence);
}
