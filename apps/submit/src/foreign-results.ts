import type { ZkClient } from "@zkgrid/core";
import { type GridLayout, isValidReplyAddress, type TaskStatus } from "@zkgrid/protocol";
import { type FeedLogger, ResultFeed, type ResultListener } from "./result-feed.js";

interface ForeignWait {
  readonly pending: Set<string>;
  readonly listener: ResultListener;
  /** This wait's subscription in each reply dir, by address. */
  readonly inDirs: Map<string, () => void>;
}

/**
 * Finds the results of ids this client did not submit (another client's, an earlier process's, a
 * `zkgrid submit` without `--wait`), wherever the leader routed them: `R/results` and every reply dir,
 * including dirs that appear while the wait lasts. Only such waits pay for it: while one is open, the
 * client follows `R/replies` and reads every result node of every reply dir (all of them, since a
 * foreign id may already be final), as a wait with `since: -1` reads all of `R/results`.
 */
export class ForeignResults {
  readonly #zk: ZkClient;
  readonly #layout: GridLayout;
  readonly #shared: ResultFeed;
  readonly #log: FeedLogger;
  readonly #waits = new Set<ForeignWait>();
  /** The reply addresses in the last listing of `R/replies`. */
  #listed = new Set<string>();
  /** One feed per listed reply dir that an open wait reads, shared by the open waits. */
  readonly #feeds = new Map<string, ResultFeed>();
  #follow: AbortController | undefined;

  constructor(zk: ZkClient, layout: GridLayout, shared: ResultFeed, log: FeedLogger) {
    this.#zk = zk;
    this.#layout = layout;
    this.#shared = shared;
    this.#log = log;
  }

  /**
   * Delivers the first final status of each of `ids` found in `R/results` after `since` (default:
   * every node) or in any reply dir. Returns a function that cancels the subscription.
   */
  subscribe(ids: Iterable<string>, since: number | undefined, listener: ResultListener): () => void {
    const pending = new Set(ids);
    const inDirs = new Map<string, () => void>();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.#waits.delete(wait);
      inShared();
      for (const cancel of inDirs.values()) cancel();
      if (this.#waits.size === 0) this.#stopFollow();
    };
    // A status from any place settles its id for every place.
    const heard: ResultListener = {
      status: (status: TaskStatus) => {
        if (ended || !pending.delete(status.id)) return;
        listener.status(status);
        if (pending.size === 0) {
          end();
          listener.done();
        }
      },
      done: () => {},
      error: (err) => {
        if (ended) return;
        end();
        listener.error(err);
      },
    };
    const wait: ForeignWait = { pending, listener: heard, inDirs };
    const inShared = this.#shared.subscribe([...pending], since ?? -1, heard);
    if (pending.size === 0) return () => {};
    this.#waits.add(wait);
    for (const address of this.#listed) this.#join(wait, address);
    this.#follow ??= this.#startFollow();
    return end;
  }

  /** Ends every open wait with the feeds' `GridClosedError`. */
  close(): void {
    this.#stopFollow();
  }

  #join(wait: ForeignWait, address: string): void {
    if (wait.inDirs.has(address) || wait.pending.size === 0) return;
    let feed = this.#feeds.get(address);
    if (feed === undefined) {
      const dir = {
        results: this.#layout.replyDir(address),
        resultNodePrefix: this.#layout.resultNodePrefix,
      };
      feed = new ResultFeed(this.#zk, dir, this.#log);
      this.#feeds.set(address, feed);
    }
    wait.inDirs.set(address, feed.subscribe([...wait.pending], -1, wait.listener));
  }

  #startFollow(): AbortController {
    const follow = new AbortController();
    const stream = this.#zk.watchChildren(this.#layout.replies, { signal: follow.signal });
    void (async () => {
      try {
        for await (const { children } of stream) {
          if (follow.signal.aborted) break;
          this.#listed = new Set(children.filter((name) => isValidReplyAddress(name)));
          for (const [address, feed] of this.#feeds) {
            if (this.#listed.has(address)) continue;
            // The dir went (its results aged out): nothing more can come from it.
            for (const wait of this.#waits) {
              wait.inDirs.get(address)?.();
              wait.inDirs.delete(address);
            }
            feed.close();
            this.#feeds.delete(address);
          }
          for (const wait of [...this.#waits]) for (const address of this.#listed) this.#join(wait, address);
        }
      } catch (err) {
        if (follow.signal.aborted) return;
        for (const wait of [...this.#waits]) wait.listener.error(err);
      }
    })();
    return follow;
  }

  #stopFollow(): void {
    this.#follow?.abort();
    this.#follow = undefined;
    this.#listed = new Set();
    const feeds = [...this.#feeds.values()];
    this.#feeds.clear();
    for (const feed of feeds) feed.close();
  }
}
