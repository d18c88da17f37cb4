import type { ClientCore } from "./connection.js";
import { createProtected, ensurePath } from "./recipes.js";
import { sleep } from "./sleep.js";
import {
  ClosedError,
  isClosed,
  isConnectionLoss,
  isNoNode,
  isSessionExpired,
  OperationTimeoutError,
  SessionExpiredError,
} from "./errors.js";
import { basenameOf, joinPath, sequenceOf } from "./paths.js";
import type { Handle, Session } from "./session.js";
import type {
  Candidate,
  ConnectionState,
  Data,
  ElectionEvent,
  ElectionOptions,
  LeaderElection,
  Leadership,
  Stat,
} from "./types.js";

interface Subscriber {
  queue: ElectionEvent[];
  waiting: ((r: IteratorResult<ElectionEvent>) => void) | undefined;
  done: boolean;
}

/** What an election reads and deletes through the client (with its retries), and its state. */
export interface ElectionClient {
  readonly state: ConnectionState;
  getChildren(path: string): Promise<string[]>;
  get(path: string): Promise<{ data: Buffer }>;
  delete(path: string, version?: number): Promise<void>;
}

/**
 * The ZooKeeper leader election recipe without herd effect: every candidate is an ephemeral sequential
 * node (a protected create, so a lost reply never leaves a second candidate of ours), the lowest
 * sequence leads, and each other candidate watches only the one just before it.
 */
export class Election implements LeaderElection {
  readonly #core: ClientCore;
  readonly #client: ElectionClient;
  readonly #path: string;
  readonly #data: Data | undefined;
  readonly #stop = new AbortController();
  readonly #subscribers = new Set<Subscriber>();
  readonly #leadingWaiters = new Set<{ resolve: (l: Leadership) => void; reject: (e: unknown) => void }>();
  readonly #cleanups: Array<() => void> = [];
  #leadership: { value: Leadership; controller: AbortController } | undefined;
  #suspended = false;
  #node: string | undefined;
  #nodeSession: Session | undefined;
  #loopDone: Promise<void>;
  #wake: (() => void) | undefined;

  constructor(core: ClientCore, client: ElectionClient, path: string, options: ElectionOptions) {
    this.#core = core;
    this.#client = client;
    this.#path = path;
    this.#data = options.data;
    const signal = options.signal;
    if (signal) {
      const onAbort = () => void this.stop();
      if (signal.aborted) this.#stop.abort();
      else signal.addEventListener("abort", onAbort, { once: true });
      this.#cleanups.push(() => signal.removeEventListener("abort", onAbort));
    }
    this.#cleanups.push(core.onConnection((ev) => this.#onConnection(ev.type)));
    this.#cleanups.push(
      core.onClosing(() => {
        this.#stop.abort();
        this.#dropLeadership("client closed");
        this.#wake?.();
      }),
    );
    if (core.isClosing()) this.#stop.abort();
    this.#loopDone = this.#run().catch((error: unknown) => {
      core.log("error", "election stopped by an error", { path, error: String(error) });
    });
  }

  get isLeader(): boolean {
    return this.#leadership !== undefined && !this.#suspended;
  }

  get leadership(): Leadership | undefined {
    return this.#leadership?.value;
  }

  leading(): Promise<Leadership> {
    if (this.#leadership && !this.#suspended) return Promise.resolve(this.#leadership.value);
    if (this.#stop.signal.aborted)
      return Promise.reject(new ClosedError({ path: this.#path, message: "election stopped" }));
    return new Promise((resolve, reject) => {
      this.#leadingWaiters.add({ resolve, reject });
    });
  }

  async stop(): Promise<void> {
    if (!this.#stop.signal.aborted) this.#stop.abort();
    this.#dropLeadership("election stopped");
    this.#wake?.();
    await this.#loopDone;
  }

  async candidates(): Promise<Candidate[]> {
    let names: string[];
    try {
      names = await this.#client.getChildren(this.#path);
    } catch (error) {
      if (isNoNode(error)) return [];
      throw error;
    }
    const sorted = this.#sortCandidates(names);
    const result: Candidate[] = [];
    for (const { name, seq } of sorted) {
      const node = joinPath(this.#path, name);
      try {
        const { data } = await this.#client.get(node);
        result.push({ node, seq, data });
      } catch (error) {
        if (!isNoNode(error)) throw error;
      }
    }
    return result;
  }

  [Symbol.asyncIterator](): AsyncIterator<ElectionEvent> {
    const sub: Subscriber = { queue: [], waiting: undefined, done: this.#stop.signal.aborted };
    if (this.#leadership) {
      sub.queue.push({ type: "elected", leadership: this.#leadership.value });
      if (this.#suspended) sub.queue.push({ type: "suspended" });
    }
    if (!sub.done) this.#subscribers.add(sub);
    return {
      next: () => {
        const ev = sub.queue.shift();
        if (ev) return Promise.resolve({ done: false, value: ev });
        if (sub.done) return Promise.resolve({ done: true, value: undefined });
        return new Promise((resolve) => {
          sub.waiting = resolve;
        });
      },
      return: () => {
        sub.done = true;
        sub.queue.length = 0;
        this.#subscribers.delete(sub);
        const w = sub.waiting;
        sub.waiting = undefined;
        w?.({ done: true, value: undefined });
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  // ---- internals -----------------------------------------------------------------------------

  #publish(ev: ElectionEvent): void {
    for (const sub of this.#subscribers) {
      if (sub.waiting) {
        const w = sub.waiting;
        sub.waiting = undefined;
        w({ done: false, value: ev });
      } else {
        sub.queue.push(ev);
      }
    }
  }

  #onConnection(type: string): void {
    if (type === "suspended") {
      if (this.#leadership && !this.#suspended) {
        this.#suspended = true;
        this.#core.log("warn", "leadership in doubt: connection lost", { path: this.#path });
        this.#publish({ type: "suspended" });
      }
    } else if (type === "reconnected") {
      if (this.#leadership && this.#suspended) {
        this.#suspended = false;
        this.#publish({ type: "resumed" });
        this.#resolveLeading();
      }
      this.#wake?.();
    } else if (type === "expired") {
      this.#lose("session expired");
      this.#wake?.();
    } else if (type === "closed") {
      this.#stop.abort();
      this.#wake?.();
    }
  }

  #resolveLeading(): void {
    const l = this.#leadership;
    if (!l || this.#suspended) return;
    for (const w of this.#leadingWaiters) w.resolve(l.value);
    this.#leadingWaiters.clear();
  }

  #elect(seq: number, node: string, session: Session): void {
    if (this.#leadership) return;
    const controller = new AbortController();
    const value: Leadership = { epoch: seq, node, sessionId: session.id ?? "", signal: controller.signal };
    this.#leadership = { value, controller };
    this.#suspended = this.#client.state !== "connected";
    this.#core.log("info", "elected leader", { path: this.#path, epoch: seq, node });
    this.#publish({ type: "elected", leadership: value });
    if (this.#suspended) this.#publish({ type: "suspended" });
    this.#resolveLeading();
  }

  #lose(reason: string): void {
    const l = this.#leadership;
    if (!l) return;
    this.#leadership = undefined;
    this.#suspended = false;
    this.#core.log("warn", "leadership lost", { path: this.#path, epoch: l.value.epoch, reason });
    l.controller.abort(new Error(`leadership lost: ${reason}`));
    this.#publish({ type: "lost" });
  }

  /** Ends leadership without a "lost" event: the iteration is ending anyway. */
  #dropLeadership(reason: string): void {
    const l = this.#leadership;
    if (!l) return;
    this.#leadership = undefined;
    this.#suspended = false;
    l.controller.abort(new Error(reason));
  }

  #sortCandidates(names: string[]): Array<{ name: string; seq: number }> {
    const list: Array<{ name: string; seq: number }> = [];
    for (const name of names) {
      const seq = sequenceOf(name);
      if (seq !== undefined) list.push({ name, seq });
    }
    return list.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Resolves on the next watch event for `abs`, the end of `session`, or a wake-up (reconnect, stop).
   * Registered before the read that arms the watch, so no event can slip between the two.
   */
  #arm(session: Session, abs: string): { changed: Promise<void>; cancel: () => void } {
    let finish: () => void = () => {};
    const changed = new Promise<void>((resolve) => {
      let settled = false;
      finish = () => {
        if (settled) return;
        settled = true;
        off();
        session.controller.signal.removeEventListener("abort", finish);
        if (this.#wake === finish) this.#wake = undefined;
        resolve();
      };
    });
    const off = this.#core.onPath(abs, finish);
    session.controller.signal.addEventListener("abort", finish, { once: true });
    this.#wake = finish;
    if (session.controller.signal.aborted || this.#stop.signal.aborted) finish();
    return { changed, cancel: finish };
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let backoff = 0;
    try {
      while (!stop.aborted) {
        try {
          await this.#campaign();
          backoff = 0;
        } catch (error) {
          if (stop.aborted || isClosed(error)) break;
          if (isSessionExpired(error)) continue;
          if (isConnectionLoss(error) || error instanceof OperationTimeoutError) {
            backoff = Math.min(backoff === 0 ? 100 : backoff * 2, 2_000);
            await sleep(backoff);
            continue;
          }
          throw error;
        }
      }
    } finally {
      await this.#leave();
    }
  }

  /** One session's worth of candidacy: returns when the session ends or our node is gone. */
  async #campaign(): Promise<void> {
    const stop = this.#stop.signal;
    const chroot = this.#core.chroot;
    const session = (await this.#core.waitReady(stop)).session;
    const onThisSession = (h: Handle) => {
      if (h.session !== session) throw new SessionExpiredError({ path: this.#path });
      return h;
    };
    if (this.#node === undefined || this.#nodeSession !== session) {
      this.#node = undefined;
      await ensurePath(this.#core, this.#path, { signal: stop });
      const node = await createProtected(
        this.#core,
        joinPath(this.#path, "n_"),
        this.#data,
        "ephemeral-sequential",
        {
          signal: stop,
          bindTo: session,
        },
      );
      this.#node = node;
      this.#nodeSession = session;
    }
    const node = this.#node;
    const name = basenameOf(node);
    const mySeq = sequenceOf(name)!;
    const absDir = chroot.toServer(this.#path);
    // Persistent nodes under the election path are no candidates (any client can make one, and it
    // would never go away): skipped once seen.
    const notCandidates = new Set<string>();
    while (!stop.aborted && !session.ended) {
      const { children } = await this.#core.runForever(
        this.#path,
        (s) => onThisSession(s).getChildren(absDir, this.#path, false),
        stop,
      );
      const sorted = this.#sortCandidates(children.filter((c) => !notCandidates.has(c)));
      const index = sorted.findIndex((c) => c.name === name);
      if (index < 0) {
        // Our candidate node is gone (deleted by someone): no longer leader; enter again.
        this.#lose("candidate node deleted");
        this.#node = undefined;
        return;
      }
      // The leader watches its own node; everyone else only its predecessor.
      const watched = index === 0 ? node : joinPath(this.#path, sorted[index - 1]!.name);
      const watchedAbs = chroot.toServer(watched);
      const wait = this.#arm(session, watchedAbs);
      let stat: Stat | null;
      try {
        stat = await this.#core.runForever(
          watched,
          (s) => onThisSession(s).exists(watchedAbs, watched, true),
          stop,
        );
      } catch (error) {
        wait.cancel();
        throw error;
      }
      if (stat === null) {
        // Gone between the listing and the watch: look again.
        wait.cancel();
        continue;
      }
      if (index > 0 && stat.ephemeralOwner === "0") {
        this.#core.log("warn", "a persistent node under the election path is not a candidate; skipping it", {
          node: watched,
        });
        notCandidates.add(sorted[index - 1]!.name);
        wait.cancel();
        continue;
      }
      if (index === 0) this.#elect(mySeq, node, session);
      await wait.changed;
    }
  }

  async #leave(): Promise<void> {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    const node = this.#node;
    const session = this.#nodeSession;
    this.#node = undefined;
    this.#dropLeadership("election stopped");
    const stopped = new ClosedError({ path: this.#path, message: "election stopped" });
    for (const w of this.#leadingWaiters) w.reject(stopped);
    this.#leadingWaiters.clear();
    for (const sub of this.#subscribers) {
      sub.done = true;
      const w = sub.waiting;
      sub.waiting = undefined;
      w?.({ done: true, value: undefined });
    }
    this.#subscribers.clear();
    if (node !== undefined && session && !session.ended && !this.#core.isClosing()) {
      try {
        await this.#client.delete(node);
      } catch (error) {
        if (!isNoNode(error) && !isClosed(error)) {
          this.#core.log("warn", "could not delete candidate node", { node, error: String(error) });
        }
      }
    }
  }
}
