import { hostname, userInfo } from "node:os";
import {
  type ConnectionOptions,
  clientConnectOptions,
  connect,
  errors,
  type Logger,
  type ZkClient,
} from "@zkgrid/core";
import {
  encodeCancelRequest,
  type GridGate,
  type GridLayout,
  gridLayout,
  MAX_CANCEL_IDS,
  MAX_NODE_BYTES,
  packByBytes,
  type EncodedSubmitBatch,
  type TaskStatus,
  isValidReplyAddress,
  newReplyAddress,
  REPLY_LIVE_NODE,
  taskIdProblem,
} from "@zkgrid/protocol";
import { ScheduleClient } from "./schedules.js";
import { DirectTasks, KEEP_ANSWERS } from "./direct.js";
import { GridClosedError, InvalidTaskError, WaitTimeoutError } from "./errors.js";
import {
  changeGate,
  checkGateLabel,
  checkStartLimit,
  type GateOptions,
  gateBy,
  type PauseOptions,
  readGate,
  withLimit,
  withoutLimit,
  withoutPause,
  withPause,
} from "./grid-gate.js";
import { ForeignResults } from "./foreign-results.js";
import { ReplyRoute } from "./reply-route.js";
import { type FeedLogger, ResultFeed } from "./result-feed.js";
import { SubmitPipeline } from "./submit-pipeline.js";
import { type AnyHandlers, type GridTaskInput, type HandlerSignatures, prepareTasks } from "./tasks.js";

/** How to reach a grid when `connectGrid` makes its own ZooKeeper client. */
export interface GridConnectOptions extends ConnectionOptions, GridClientOptions {
  /** `connectGrid` rejects if no session is made by then (default 30 000). */
  connectTimeoutMs?: number;
}

/** Options that hold whoever owns the ZooKeeper client. */
export interface GridClientOptions {
  /** The grid's root path (default `/zkgrid`). */
  root?: string;
  /** Recorded in every batch, for humans (default `user@host`). */
  submitter?: string;
  /** Where the client's log lines go; nothing is printed without it. */
  logger?: Logger;
  /**
   * This client's reply address: its tasks carry it, the leader writes their results to
   * `R/replies/<address>/`, and its waits for them read only that dir, so that what waiting costs
   * depends on its own tasks rather than on every submitter's. Default: a new one
   * (`newReplyAddress()`); `false` sends results to `R/results`. Tasks carry it only while every
   * master says it takes `replyTo` (see docs/protocol.md, "Reply dirs"); otherwise, and from the first
   * master that does not, results go to `R/results`. Throws `InvalidNameError` for an address the
   * protocol refuses.
   */
  replyAddress?: string | false;
  /**
   * Whether a lone task's answer may come on its worker's answer stream, before the worker's write of
   * it to ZooKeeper is synced (see docs/protocol.md, "Answer streams", and docs/guarantees.md). Default
   * true. `false`: every answer is read from ZooKeeper, so it is the one the grid records.
   */
  answerStreams?: boolean;
}

export interface WaitOptions {
  /** Aborting rejects the wait with the signal's reason; the tasks keep running. */
  signal?: AbortSignal;
  /** Rejects with {@link WaitTimeoutError} after this long; the tasks keep running. */
  timeoutMs?: number;
  /** Called with each status as it arrives, before `wait` resolves. */
  onResult?: (status: TaskStatus) => void;
  /**
   * For ids this client submitted: read only result nodes with a higher sequence than this in the
   * place their results go (its reply dir, or `R/results`; `resultBaseline()` reads it). By default,
   * ids it submitted with a generated id start after the baseline taken before they were written, and
   * ids the caller chose (possibly known to the grid already) at `-1`. For ids it did not submit it
   * applies to `R/results`; they are looked for in every reply dir too, from the start.
   */
  since?: number;
}

export interface CancelOptions {
  /** Recorded in the request, for humans (default: the client's `submitter`). */
  by?: string;
}

export interface ResultsOptions {
  signal?: AbortSignal;
  /** As in {@link WaitOptions.since}. */
  since?: number;
}

/**
 * Connects to the grid at `options.connectString` (the client is closed with the grid client), or
 * uses an existing ZooKeeper client (left open by `close()`; paths are relative to its own root).
 * `H` describes the workers' handlers (`typeof handlers` of `defineHandlers(...)`) to type handler tasks.
 */
export async function connectGrid<H extends HandlerSignatures = AnyHandlers>(
  options: GridConnectOptions,
): Promise<GridClient<H>>;
export async function connectGrid<H extends HandlerSignatures = AnyHandlers>(
  client: ZkClient,
  options?: GridClientOptions,
): Promise<GridClient<H>>;
export async function connectGrid<H extends HandlerSignatures = AnyHandlers>(
  target: GridConnectOptions | ZkClient,
  options: GridClientOptions = {},
): Promise<GridClient<H>> {
  // Not `instanceof`: the caller's ZkClient may come from another copy of @zkgrid/core (ESM vs CJS).
  if (!("connectString" in target)) return new GridClient<H>(target, options, false);
  const layout = gridLayout(target.root);
  const zk = await connect(clientConnectOptions(target));
  return new GridClient<H>(zk, { ...target, root: layout.root }, true);
}

/**
 * Submits tasks to a grid and waits for their results. Submits made while a write is in flight share
 * the next write; waiters share one watch on the results.
 */
export class GridClient<H extends HandlerSignatures = AnyHandlers> {
  /** The znode paths of this grid. */
  readonly layout: GridLayout;
  /** The ZooKeeper client underneath. */
  readonly zk: ZkClient;
  readonly #ownsClient: boolean;
  readonly #submitter: string;
  readonly #pipeline: SubmitPipeline;
  readonly #feed: ResultFeed;
  /** Ids this client sent with results to `R/results`, until delivered. */
  readonly #shared = new Set<string>();
  /** Waits on ids this client did not send: `R/results` and every reply dir. */
  readonly #foreign: ForeignResults;
  /**
   * With a reply address: the feed of its reply dir, the ids this client sent there (until delivered),
   * and whether the grid's masters take `replyTo`.
   */
  readonly #reply:
    | { address: string; dir: string; feed: ResultFeed; mine: Set<string>; route: ReplyRoute }
    | undefined;
  /** The session whose live node is in the reply dir. */
  #replyLiveSession: string | undefined;
  /** Stops re-making the live node on each new session. */
  #offNewSession: (() => void) | undefined;
  readonly #direct: DirectTasks;
  /** Ids of lone tasks this client named itself, being written: they may go to a worker directly. */
  readonly #lone = new Set<string>();
  /** The result baseline of each generated id this client wrote, until its result is delivered. */
  readonly #baselines = new Map<string, number>();
  /**
   * A baseline in `R/results` of each lone task sent to an inbox with a reply address, until its
   * result is delivered: a leader that reads the worker's answer before the task cannot know the
   * address, and records the result there.
   */
  readonly #directBaselines = new Map<string, Promise<number>>();
  #schedules: ScheduleClient | undefined;
  #queueReady = false;
  /** The last baseline read in each place, and when (see #writeBaseline). */
  readonly #recentBaselines = new Map<string, { value: Promise<number>; at: number }>();
  #closing: Promise<void> | undefined;

  /**
   * This client's reply address (see {@link GridClientOptions.replyAddress}), unless it opted out; its
   * tasks carry it while the grid's masters take `replyTo`.
   */
  get replyAddress(): string | undefined {
    return this.#reply?.address;
  }

  /** Use {@link connectGrid}. */
  constructor(zk: ZkClient, options: GridClientOptions, ownsClient: boolean) {
    this.zk = zk;
    this.layout = gridLayout(options.root);
    this.#ownsClient = ownsClient;
    const submitter = options.submitter ?? defaultSubmitter();
    this.#submitter = submitter;
    this.#pipeline = new SubmitPipeline(
      {
        resultBaseline: () => this.#writeBaseline(),
        writeBatch: (batch) => this.#writeBatch(batch),
      },
      // prepareTasks checked every task already.
      () => ({ submitter, validated: true }),
    );
    const logger = options.logger;
    const feedLog: FeedLogger = (level, msg, fields) => logger?.(level, msg, fields);
    this.#feed = new ResultFeed(zk, this.layout, feedLog);
    this.#foreign = new ForeignResults(zk, this.layout, this.#feed, feedLog);
    if (options.replyAddress !== false) {
      const address = options.replyAddress ?? newReplyAddress();
      const dir = this.layout.replyDir(address);
      const place = { results: dir, resultNodePrefix: this.layout.resultNodePrefix };
      this.#reply = {
        address,
        dir,
        feed: new ResultFeed(zk, place, feedLog),
        mine: new Set(),
        route: new ReplyRoute(zk, this.layout),
      };
      // A write may still see the expired session's id (the client learns of an expiry only when it
      // reconnects), so the live node is made again as soon as the new session is there.
      this.#offNewSession = zk.on("connected", () => {
        if (this.#replyLiveSession === undefined || this.#closing) return;
        this.#ensureReplyDir(dir).catch((err: unknown) =>
          logger?.("warn", "reply dir: live node not made again after a new session", { error: String(err) }),
        );
      });
    }
    this.#direct = new DirectTasks(
      zk,
      this.layout,
      (level, msg, fields) => logger?.(level, msg, fields),
      options.answerStreams ?? true,
    );
  }

  /**
   * Validates every task (throwing `InvalidTaskError` before anything is written, also for two tasks
   * with the same id), gives each task
   * without an id a new one, and writes them to the queue. Resolves with the ids, in order, once
   * every task is in the queue. A lone task given without an id, written alone, goes to a live worker
   * whose labels cover it instead (its inbox), when one is known; `wait` reads its result there.
   */
  async submit(tasks: GridTaskInput<H> | readonly GridTaskInput<H>[]): Promise<string[]> {
    if (this.#closing) throw new GridClosedError();
    const list: readonly GridTaskInput<H>[] = isList(tasks) ? tasks : [tasks];
    const prepared = prepareTasks(list);
    if (prepared.length === 0) return [];
    const reply = (await this.#replyAccepted()) ? this.#reply : undefined;
    const specs = reply ? prepared.map((spec) => ({ ...spec, replyTo: reply.address })) : prepared;
    for (const spec of specs) (reply?.mine ?? this.#shared).add(spec.id);
    // A lone task with an id of this client's making (so unknown to the grid) may skip the queue,
    // if it is written alone; a caller's own id goes through the queue, which drops known ids.
    // A delayed task waits in the leader's memory, and one with a retry policy is retried by it: neither
    // takes the direct path, whose answer is final.
    const only = specs.length === 1 && list[0]?.id === undefined ? specs[0] : undefined;
    const lone =
      only !== undefined && only.runAt === undefined && only.retry === undefined ? only.id : undefined;
    if (lone !== undefined) this.#lone.add(lone);
    let baseline: number;
    try {
      baseline = await this.#pipeline.push(specs);
    } finally {
      if (lone !== undefined) this.#lone.delete(lone);
    }
    // The route turned to R/results while these were written: their baseline may be another place's.
    if ((reply !== undefined) !== this.#replyAcceptedNow()) baseline = -1;
    const ids = specs.map((spec) => spec.id);
    list.forEach((task, index) => {
      if (task.id === undefined) this.#baselines.set(ids[index]!, baseline);
    });
    return ids;
  }

  /**
   * Resolves with the first final status of each id, by id, in the order they arrived. Never
   * resolves for an id the grid does not know; use `timeoutMs` or `signal` to give up. Rejects with
   * `ResultsPrunedError` if a result node it still had to read (one written after the ids' own
   * baseline) was pruned first: their results may be gone with it.
   */
  wait(ids: string | Iterable<string>, options: WaitOptions = {}): Promise<Map<string, TaskStatus>> {
    const wanted = new Set(typeof ids === "string" ? [ids] : ids);
    const results = new Map<string, TaskStatus>();
    const { signal, timeoutMs, onResult } = options;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        unsubscribe();
        if (err === undefined) resolve(results);
        else reject(err);
      };
      const onAbort = () => finish(signal?.reason);
      const unsubscribe = this.#subscribe(wanted, options.since, {
        status: (status) => {
          results.set(status.id, status);
          onResult?.(status);
        },
        done: () => finish(),
        error: (err) => finish(err),
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const pending = [...wanted].filter((id) => !results.has(id));
          finish(new WaitTimeoutError(timeoutMs, pending, results));
        }, timeoutMs);
      }
    });
  }

  /** Submits, then waits for every task (the result baseline is taken before the write). */
  async submitAndWait(
    tasks: GridTaskInput<H> | readonly GridTaskInput<H>[],
    options: WaitOptions = {},
  ): Promise<Map<string, TaskStatus>> {
    return this.wait(await this.submit(tasks), options);
  }

  /** Yields each id's first final status as it arrives; ends when every id has one. */
  async *results(ids: string | Iterable<string>, options: ResultsOptions = {}): AsyncGenerator<TaskStatus> {
    const { signal } = options;
    const arrived: TaskStatus[] = [];
    let ended = false;
    let failure: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    const nudge = () => {
      wake?.();
      wake = undefined;
    };
    const onAbort = () => {
      failure ??= { error: signal?.reason };
      nudge();
    };
    const unsubscribe = this.#subscribe(new Set(typeof ids === "string" ? [ids] : ids), options.since, {
      status: (status) => {
        arrived.push(status);
        nudge();
      },
      done: () => {
        ended = true;
        nudge();
      },
      error: (error) => {
        failure ??= { error };
        nudge();
      },
    });
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const next = arrived.shift();
        if (next !== undefined) yield next;
        else if (failure !== undefined) throw failure.error;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      unsubscribe();
    }
  }

  /**
   * Asks the leader to cancel `ids`: a queued task never runs, a running one is stopped (its process
   * group is killed). Resolves once the requests are written, in as few nodes as the size limits
   * allow, all at once; `wait` then sees each task end, `cancelled` unless it finished some other way
   * first. The leader ignores ids it does not know and tasks already final. Throws
   * `InvalidTaskError` (index and field "id") for an id the protocol refuses, before writing.
   */
  async cancel(ids: Iterable<string>, options: CancelOptions = {}): Promise<void> {
    if (this.#closing) throw new GridClosedError();
    const unique = [...new Set(ids)];
    unique.forEach((id, index) => {
      const problem = taskIdProblem(id);
      if (problem !== undefined) throw new InvalidTaskError(index, "id", problem);
    });
    if (unique.length === 0) return;
    const by = (options.by ?? this.#submitter).slice(0, 256);
    const path = `${this.layout.cancel}/${this.layout.cancelNodePrefix}`;
    await this.zk.ensurePath(this.layout.cancel);
    const chunks = packByBytes(unique, (id) => id.length + 3, MAX_NODE_BYTES - 1024, MAX_CANCEL_IDS);
    // The leader applies each request on its own: their order does not matter.
    await Promise.all(
      chunks.map((chunk) => {
        const request = encodeCancelRequest({ v: 1, ids: chunk, requestedAt: Date.now(), by });
        return this.zk.createProtected(path, request, "persistent-sequential");
      }),
    );
  }

  /**
   * Pauses the whole grid, or with `label` the tasks carrying it: the leader hands out none of them
   * until `resume`; running tasks finish, queued ones wait. Resolves once the pause is written in
   * `R/gate` (a grid or label already paused stays as it is). Throws `InvalidGateError` for a bad
   * label or `by` before writing.
   */
  async pause(options: PauseOptions = {}): Promise<GridGate> {
    if (this.#closing) throw new GridClosedError();
    if (options.label !== undefined) checkGateLabel(options.label);
    const pause = { at: Date.now(), by: gateBy(options.by, this.#submitter) };
    return changeGate(this.zk, this.layout, (gate) => withPause(gate, options.label, pause));
  }

  /** Lifts the grid's pause, or with `label` that label's; resolves once written (a no-op if none). */
  async resume(options: Pick<PauseOptions, "label"> = {}): Promise<GridGate> {
    if (this.#closing) throw new GridClosedError();
    if (options.label !== undefined) checkGateLabel(options.label);
    return changeGate(this.zk, this.layout, (gate) => withoutPause(gate, options.label));
  }

  /**
   * Caps the starts of tasks carrying `label`: at most `starts` hand-outs in any `perMs` milliseconds,
   * grid-wide (a task with several limited labels needs room under each). Replaces the label's
   * limit. Throws `InvalidGateError` for a bad label or limit before writing.
   */
  async setLimit(
    label: string,
    limit: { starts: number; perMs: number },
    options: GateOptions = {},
  ): Promise<GridGate> {
    if (this.#closing) throw new GridClosedError();
    checkGateLabel(label);
    checkStartLimit(limit.starts, limit.perMs);
    const entry = {
      starts: limit.starts,
      perMs: limit.perMs,
      at: Date.now(),
      by: gateBy(options.by, this.#submitter),
    };
    return changeGate(this.zk, this.layout, (gate) => withLimit(gate, label, entry));
  }

  /** Removes `label`'s start limit; resolves once written (a no-op if it has none). */
  async removeLimit(label: string): Promise<GridGate> {
    if (this.#closing) throw new GridClosedError();
    checkGateLabel(label);
    return changeGate(this.zk, this.layout, (gate) => withoutLimit(gate, label));
  }

  /** The gate as written in `R/gate`: the grid's pause, paused labels and start limits. */
  async gate(): Promise<GridGate> {
    if (this.#closing) throw new GridClosedError();
    return readGate(this.zk, this.layout);
  }

  /** The start limits by label (`gate().limits`). */
  async limits(): Promise<NonNullable<GridGate["limits"]>> {
    return (await this.gate()).limits ?? {};
  }

  /**
   * The final status of `id` if the grid has one, else undefined: reads result nodes newest first, in
   * this client's own place, then `R/results`, then every other reply dir (a cost that grows with the
   * number of result nodes).
   */
  async status(id: string): Promise<TaskStatus | undefined> {
    if (this.#closing) throw new GridClosedError();
    const reply = this.#reply;
    const places: Array<{ dir: string; feed: ResultFeed }> = [];
    if (reply?.mine.has(id)) places.push(reply);
    places.push({ dir: this.layout.results, feed: this.#feed });
    for (const address of await this.#childrenOrNone(this.layout.replies)) {
      if (!isValidReplyAddress(address) || (reply?.mine.has(id) && address === reply.address)) continue;
      const dir = this.layout.replyDir(address);
      places.push({
        dir,
        feed: new ResultFeed(this.zk, { results: dir, resultNodePrefix: this.layout.resultNodePrefix }),
      });
    }
    for (const { dir, feed } of places) {
      const found = await feed.findNewest(id, await this.#childrenOrNone(dir));
      if (found !== undefined) return found;
    }
    return undefined;
  }

  async #childrenOrNone(path: string): Promise<string[]> {
    try {
      return await this.zk.getChildren(path);
    } catch (err) {
      if (errors.isNoNode(err)) return [];
      throw err;
    }
  }

  /** The grid's recurring schedules: add, list, get, remove, pause, resume. */
  get schedules(): ScheduleClient {
    this.#schedules ??= new ScheduleClient(this.zk, this.layout, this.#submitter);
    return this.#schedules;
  }

  /**
   * Refuses new calls, finishes the write in flight, ends every wait with `GridClosedError`, and
   * closes the ZooKeeper client if `connectGrid` made it. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#pipeline.close();
      this.#foreign.close();
      this.#feed.close();
      this.#reply?.feed.close();
      this.#reply?.route.close();
      this.#offNewSession?.();
      this.#direct.close();
      if (this.#ownsClient) await this.zk.close();
    })();
    return this.#closing;
  }

  #subscribe(
    wanted: Set<string>,
    since: number | undefined,
    listener: Parameters<ResultFeed["subscribe"]>[2],
  ): () => void {
    // Where each feed's reading starts: `since`, else the lowest baseline of its ids (-1 for an id
    // this client did not generate, which may be known to the grid already).
    const afterOf = (ids: Iterable<string>) => {
      if (since !== undefined) return since;
      let after = Number.POSITIVE_INFINITY;
      for (const id of ids) after = Math.min(after, this.#baselines.get(id) ?? -1);
      return after;
    };
    // Each id's first status wins, from a direct answer or from R/results, whichever comes first.
    const delivered = new Set<string>();
    let ended = false;
    let unsubscribe = () => {};
    const end = (err?: unknown) => {
      if (ended) return;
      ended = true;
      unsubscribe();
      if (err === undefined) listener.done();
      else listener.error(err);
    };
    const deliver = (status: TaskStatus) => {
      if (ended || delivered.has(status.id)) return;
      delivered.add(status.id);
      this.#baselines.delete(status.id);
      this.#directBaselines.delete(status.id);
      this.#reply?.mine.delete(status.id);
      this.#shared.delete(status.id);
      listener.status(status);
      if (delivered.size === wanted.size) end();
    };
    // A direct task's id joins the watch on R/results only if its answer does not come (the worker
    // declined, the task was cancelled or its worker lost): a lone task then costs no listing of it.
    const feedListener = { status: deliver, done: () => {}, error: (err: unknown) => end(err) };
    const subscriptions: Array<() => void> = [];
    unsubscribe = () => {
      for (const cancel of subscriptions.splice(0)) cancel();
    };
    // This client's own tasks are answered where it sent them (its reply dir or R/results), after
    // their baselines there; any other id wherever the leader put it.
    const reply = this.#reply;
    const feedOf = (id: string) =>
      reply?.mine.has(id) ? reply.feed : this.#shared.has(id) ? this.#feed : undefined;
    const subscribeIn = (feed: ResultFeed | undefined, ids: string[]) =>
      feed === undefined
        ? this.#foreign.subscribe(ids, since, feedListener)
        : feed.subscribe(ids, afterOf(ids), feedListener);
    const viaFeed = new Map<ResultFeed | undefined, string[]>();
    // A direct task whose answer this wait missed (the node was gone), an earlier wait took and ended
    // without, or that was dropped from the kept answers: its result may be in R/results too, where a
    // leader that read the answer before the task records it.
    const alsoInResults = (id: string) =>
      void this.#directBaselines.get(id)?.then((after) => {
        if (!ended) subscriptions.push(this.#feed.subscribe([id], after, feedListener));
      });
    for (const id of wanted) {
      const direct = this.#direct.take(id, (status, declined) => {
        if (status !== undefined) deliver(status);
        else if (!ended) {
          subscriptions.push(subscribeIn(feedOf(id), [id]));
          // A declined task was read by the leader, which knows its reply address.
          if (!declined) alsoInResults(id);
        }
      });
      if (direct) continue;
      alsoInResults(id);
      const feed = feedOf(id);
      const ids = viaFeed.get(feed);
      if (ids) ids.push(id);
      else viaFeed.set(feed, [id]);
    }
    for (const [feed, ids] of viaFeed) subscriptions.push(subscribeIn(feed, ids));
    if (wanted.size === 0) queueMicrotask(() => end());
    return () => {
      ended = true;
      unsubscribe();
    };
  }

  /**
   * A sequence at least as high as that of every result node that exists now where this client's
   * results go (its reply dir, or `R/results` without one or while the grid does not take `replyTo`;
   * -1 if there is no such dir yet), and lower than that of any result node created there after this
   * call: a `since` for its own ids. One small read: the dir's stat, not a listing.
   */
  async resultBaseline(): Promise<number> {
    const reply = (await this.#replyAccepted()) ? this.#reply : undefined;
    return placeBaseline(this.zk, reply?.dir ?? this.layout.results);
  }

  /** Whether this client's next tasks carry its reply address. */
  async #replyAccepted(): Promise<boolean> {
    const route = this.#reply?.route;
    if (route === undefined) return false;
    return route.acceptedNow() ?? (await route.accepted());
  }

  #replyAcceptedNow(): boolean {
    return this.#reply?.route.acceptedNow() ?? false;
  }

  /** For a write about to be made: a baseline in the place this client's results go. */
  #writeBaseline(): Promise<number> {
    const reply = this.#replyAcceptedNow() ? this.#reply : undefined;
    return reply === undefined
      ? this.#baselineIn(this.#feed, this.layout.results)
      : this.#baselineIn(reply.feed, reply.dir);
  }

  /** A baseline in `R/results` for a direct task's result; -1 (every node) if it cannot be read. */
  #resultsBaseline(): Promise<number> {
    return this.#baselineIn(this.#feed, this.layout.results).catch(() => -1);
  }

  /**
   * A baseline in `dir` (whose feed is `feed`) for a write about to be made: the live watch's listing
   * when there is one, else one read at most BASELINE_REUSE_MS ago (a result node made after a later
   * write is newer than that read too, and a wait reads at most that much more), else a fresh one.
   */
  #baselineIn(feed: ResultFeed, dir: string): Promise<number> {
    const live = feed.liveBaseline();
    if (live !== undefined) return Promise.resolve(live);
    const now = performance.now();
    const recent0 = this.#recentBaselines.get(dir);
    if (recent0 !== undefined && now - recent0.at < BASELINE_REUSE_MS) return recent0.value;
    const value = placeBaseline(this.zk, dir);
    const recent = { value, at: now };
    this.#recentBaselines.set(dir, recent);
    value.catch(() => {
      if (this.#recentBaselines.get(dir) === recent) this.#recentBaselines.delete(dir);
    });
    return value;
  }

  /**
   * Makes the reply dir and this session's live node in it (the leader deletes no dir holding one),
   * once per session: after a session expiry the next write makes it again.
   */
  async #ensureReplyDir(dir: string): Promise<void> {
    const session = this.zk.sessionCredentials()?.id;
    if (session !== undefined && session === this.#replyLiveSession) return;
    for (let tries = 0; ; tries++) {
      try {
        await this.zk.ensurePath(dir);
        await this.zk.create(`${dir}/${REPLY_LIVE_NODE}`, undefined, "ephemeral");
        break;
      } catch (err) {
        if (errors.isNodeExists(err)) break;
        // The leader deleted the dir (left by an earlier session) between the two: make it again.
        if (!errors.isNoNode(err) || tries > 0) throw err;
      }
    }
    this.#replyLiveSession = session;
  }

  async #writeBatch({ batch, data }: EncodedSubmitBatch): Promise<void> {
    if (this.#reply !== undefined && batch.tasks[0]?.replyTo !== undefined) {
      await this.#ensureReplyDir(this.#reply.dir);
    }
    const only = batch.tasks.length === 1 ? batch.tasks[0] : undefined;
    if (only !== undefined && this.#lone.has(only.id)) {
      // Read before the inbox node is made (a session's requests are applied in the order sent), so
      // below the node of a result the leader records in R/results for want of the task's address.
      const shared = only.replyTo === undefined ? undefined : this.#resultsBaseline();
      const { sent, lostReply } = await this.#direct.write(batch, data);
      // After a lost reply the create may have been answered and recorded before that read: all of
      // R/results then (and a queued copy may be dropped by the leader as known, so that too).
      if (shared !== undefined && (sent || lostReply)) {
        this.#directBaselines.set(only.id, lostReply ? Promise.resolve(-1) : shared);
        // Kept as long as a direct answer nobody has waited for (a client may never wait).
        if (this.#directBaselines.size > KEEP_ANSWERS) {
          const oldest = this.#directBaselines.keys().next().value;
          if (oldest !== undefined) this.#directBaselines.delete(oldest);
        }
      }
      if (sent) return;
    }
    const path = `${this.layout.queue}/${this.layout.queueNodePrefix}`;
    if (!this.#queueReady) {
      await this.zk.ensurePath(this.layout.queue);
      this.#queueReady = true;
    }
    try {
      await this.zk.createProtected(path, data, "persistent-sequential");
    } catch (err) {
      // The queue was removed since (a grid reset): make it again once.
      if (!errors.isNoNode(err)) throw err;
      await this.zk.ensurePath(this.layout.queue);
      await this.zk.createProtected(path, data, "persistent-sequential");
    }
  }
}

/**
 * A sequence at least as high as that of every result node in `dir` now (-1 if there is no `dir`), and
 * lower than that of any result node created there after this call. One small read: the dir's stat.
 */
async function placeBaseline(zk: ZkClient, dir: string): Promise<number> {
  // ZooKeeper numbers a sequential child with the count of children created under its parent so
  // far. The stat's cversion counts deletes too (the server reports 2 x creates - numChildren), so
  // after a prune cversion alone would skip the next results. A server whose cversion counted
  // creates only would make this lower, which only costs reads.
  const stat = await zk.exists(dir);
  return stat === null ? -1 : Math.floor((stat.cversion + stat.numChildren) / 2) - 1;
}

/** How long a result baseline read for one write serves the next ones. */
const BASELINE_REUSE_MS = 1_000;

function isList<T>(value: T | readonly T[]): value is readonly T[] {
  return Array.isArray(value);
}

function defaultSubmitter(): string {
  let user = "unknown";
  try {
    user = userInfo().username || user;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `${user}@${hostname()}`.slice(0, 256);
}
