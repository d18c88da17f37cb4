import { setMaxListeners } from "node:events";
import {
  ChildFollows,
  type ChildrenChange,
  connect,
  type DataChange,
  errors,
  Follower,
  getOrNull,
  type Logger,
  messageOf,
  clientConnectOptions,
  readEach,
  sleep,
  type ZkClient,
} from "@zkgrid/core";
import {
  type Assignment,
  type AttemptRecord,
  decodeAssignment,
  decodeGridGate,
  decodeInboxNode,
  inboxNodeId,
  decodeMasterInfo,
  decodeResultBatch,
  decodeSubmitBatch,
  decodeWorkerRegistration,
  decodeWorkerReport,
  FINAL_STATES,
  type FinalState,
  type GridGate,
  type GridLayout,
  gridLayout,
  isFinalState,
  isValidReplyAddress,
  isValidTaskId,
  parseSequentialName,
  TASK_STATES,
  type TaskSpec,
  type TaskStatus,
  type WorkerRegistration,
} from "@zkgrid/protocol";
import { ObserverClosedError } from "./errors.js";
import { type ScheduleView, scheduleView } from "./schedule-view.js";
import { viewOfAssigned, viewOfQueued, viewOfStatus } from "./task-view.js";
import { DepthSeries, ThroughputSeries } from "./throughput.js";
import type {
  GridSnapshot,
  MasterView,
  ObserveOptions,
  QueueView,
  TaskCounts,
  TaskQuery,
  TaskView,
  WorkerView,
} from "./types.js";

const DEFAULT_RECENT_LIMIT = 200;
const ACTIVE_LIMIT = 500;
/** Result nodes read back at start: enough to know which queued tasks are already final. */
const BACKFILL_MAX_NODES = 2_000;
const PROBLEM_LIMIT = 20;
/** Final ids remembered for deduplication and queue depth (oldest forgotten first). */
const FINAL_IDS_LIMIT = 200_000;
/** `changes()` yields at most this often. */
const MIN_CHANGE_INTERVAL_MS = 100;
/** Reads in flight per batch of nodes. */
const READ_LANES = 16;
/** A running report for a task no assignment holds is forgotten after this. */
const RUNNING_ORPHAN_MS = 30_000;

interface QueuedEntry {
  spec: TaskSpec;
  submittedAt: number;
  attemptsUsed: number;
  /** Not handed out before this time: its `runAt`, or a retry's backoff. */
  dueAt?: number;
  history?: AttemptRecord[];
}

interface QueueNode {
  czxid: number;
  tasks: QueuedEntry[];
}

interface WorkerNode {
  session: string;
  registration?: WorkerRegistration;
  problem?: string;
}

/** A `<worker>@<session>` dir under `R/reports` or `R/inbox`. */
interface SessionDir {
  worker: string;
  session: string;
}

interface ReportDir extends SessionDir {
  /** Report nodes already read. */
  read: Set<string>;
}

interface InboxDir extends SessionDir {
  /** A data follow per direct task node. */
  nodes: ChildFollows<string>;
  /** Its task nodes that hold a task (not an answer), by task id. */
  tasks: Map<string, DirectTask>;
}

interface DirectTask {
  spec: TaskSpec;
  submittedAt: number;
  /** The node's ctime, which the worker takes as `assignedAt`. */
  assignedAt: number;
  /** Written back unchanged (version ≥ 1): the leader queues it again. */
  declined: boolean;
}

/** A task a worker session holds, from its assignment or its inbox. */
interface HeldTask {
  view: TaskView;
  session: string;
}

interface RunningSeen {
  attempt: number;
  startedAt: number;
  seenAt: number;
}

interface ResultNode {
  name: string;
  seq: number;
}

/** A dir of result nodes: `R/results`, or a reply dir `R/replies/<address>`. */
interface ResultPlace {
  readonly dir: string;
  /** Highest result sequence applied (or present at start). */
  cursor: number;
  started: boolean;
  /** The nodes listed before the first full picture: history, read back by #backfill. */
  atStart: ResultNode[];
}

function resultPlace(dir: string, started: boolean): ResultPlace {
  return { dir, cursor: -1, started, atStart: [] };
}

/**
 * Starts observing a grid and resolves once the first full picture has been read (masters, workers,
 * assignments, queue, reports, inboxes, and results read back far enough to size the queue). The
 * observer only reads: it writes nothing, not even the grid's directories.
 */
export async function observeGrid(options: ObserveOptions): Promise<GridObserver> {
  let client: ZkClient;
  let owns = false;
  if ("client" in options) client = options.client;
  else {
    client = await connect(clientConnectOptions(options));
    owns = true;
  }
  const observer = new GridObserver(client, owns, options);
  try {
    await observer.ready();
  } catch (err) {
    await observer.close();
    throw err;
  }
  return observer;
}

/**
 * A live, read-only picture of a grid kept up to date by ZooKeeper watches. Use `observeGrid()`.
 */
export class GridObserver {
  /** The grid's root. */
  readonly root: string;
  readonly layout: GridLayout;
  readonly #zk: ZkClient;
  readonly #ownsClient: boolean;
  readonly #log: Logger;
  readonly #recentLimit: number;
  readonly #stop = new AbortController();
  readonly #since = Date.now();
  readonly #ready: Promise<void>;
  #closing: Promise<void> | undefined;

  #version = 0;
  readonly #wakers = new Set<() => void>();
  #cached: { version: number; at: number; snapshot: GridSnapshot } | undefined;

  readonly #masters = new Map<string, Omit<MasterView, "leader">>();
  /** Follows every node the observer reads: it keeps following across reconnects, and only reports. */
  readonly #follower: Follower;
  readonly #workers = new Map<string, WorkerNode>();
  readonly #workerFollows: ChildFollows<string>;
  readonly #assignments = new Map<string, Assignment>();
  readonly #assignFollows: ChildFollows<string>;
  readonly #queue = new Map<string, QueueNode>();
  readonly #reportDirs: ChildFollows<ReportDir>;
  readonly #inboxDirs: ChildFollows<InboxDir>;
  /** Answers seen before the first full picture, applied after the result read-back. */
  #answersAtStart: TaskStatus[] = [];
  readonly #running = new Map<string, RunningSeen>();
  readonly #finalIds = new Set<string>();
  /** Final statuses, newest first. */
  #recent: TaskView[] = [];
  readonly #counts = Object.fromEntries([...FINAL_STATES].map((s) => [s, 0])) as Record<FinalState, number>;
  readonly #throughput = new ThroughputSeries();
  readonly #depth = new DepthSeries();
  readonly #problems: string[] = [];
  /** Why the server refused this client, if it did. */
  #refused: Error | undefined;
  #gate: GridGate = { v: 1 };
  readonly #sharedResults: ResultPlace;
  /** One per reply dir: its own sequences, read like `R/results`. */
  readonly #replyDirs: ChildFollows<ResultPlace>;
  #isReady = false;

  /** Use `observeGrid()`. */
  constructor(client: ZkClient, ownsClient: boolean, options: ObserveOptions) {
    this.#zk = client;
    this.#ownsClient = ownsClient;
    this.layout = gridLayout(options.root);
    this.root = this.layout.root;
    this.#log = options.logger ?? (() => {});
    this.#recentLimit = options.recentLimit ?? DEFAULT_RECENT_LIMIT;
    // Every watch (one per worker, assignment and report dir) listens on it: no fixed limit fits.
    setMaxListeners(0, this.#stop.signal);
    const offConnection = client.on("*", () => this.#changed());
    this.#stop.signal.addEventListener("abort", offConnection, { once: true });
    this.#follower = new Follower(client, {
      signal: this.#stop.signal,
      onError: (err, { type, path }) => {
        // The server refused this client (its credentials): nothing more can be read. Whichever read
        // hears it first (the others hear that the client closed), the start fails with the cause.
        const cause = errors.isClosed(err) ? err.cause : err;
        if (errors.isAuthFailed(cause)) {
          this.#refused ??= cause;
          this.#problem(`watch of ${path} stopped: ${messageOf(cause)}`);
          return "fail";
        }
        if (errors.isClosed(err)) return "end";
        // A listing's handler reads nodes: a connection error there is retried.
        if (type === "children" && (errors.isRetryable(err) || errors.isOperationTimeout(err))) {
          this.#log("warn", "observer read failed; retrying", { path, error: messageOf(err) });
          return "retry";
        }
        this.#problem(`watch of ${path} stopped: ${messageOf(err)}`);
        return type === "data" ? "end" : "fail";
      },
      onEvent: () => this.#changed(),
    });
    // A data follow per worker and per assignment, not just the child list: a worker that re-registers
    // on a new session replaces its node.
    this.#sharedResults = resultPlace(this.layout.results, false);
    this.#replyDirs = new ChildFollows<ResultPlace>({
      signal: this.#stop.signal,
      // A reply dir made after the first full picture holds only new results.
      open: (name) =>
        isValidReplyAddress(name) ? resultPlace(this.layout.replyDir(name), this.#isReady) : undefined,
      follow: (_name, place, signal) =>
        this.#follower.children(place.dir, (c) => this.#onResults(place, c), { signal }),
    });
    this.#workerFollows = this.#eachChildData(this.layout.workers, (name, change) =>
      this.#onWorker(name, change),
    );
    this.#assignFollows = this.#eachChildData(this.layout.assignDir, (name, change) =>
      this.#onAssignment(name, change),
    );
    this.#reportDirs = this.#sessionDirs(
      this.layout.reports,
      (_name, dir) => ({ ...dir, read: new Set<string>() }),
      (name, dir, c) => this.#onReports(name, dir, c.children),
    );
    this.#inboxDirs = this.#sessionDirs(
      this.layout.inbox,
      (name, dir, signal): InboxDir => {
        const inbox: InboxDir = {
          ...dir,
          tasks: new Map(),
          // A direct task's node is made once and deleted once.
          nodes: this.#eachChildData(
            `${this.layout.inbox}/${name}`,
            (node, change) => this.#onInboxNode(name, inbox, node, change),
            { signal, untilGone: true },
          ),
        };
        return inbox;
      },
      (_name, dir, c) => dir.nodes.update(c),
    );
    this.#ready = this.#start();
    this.#ready.catch(() => {});
  }

  /** Resolves once the first full picture has been read. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The grid as last seen. Cheap to call: rebuilt only after a change (or once a second, for the clock). */
  snapshot(): GridSnapshot {
    const now = Date.now();
    const cached = this.#cached;
    if (cached && cached.version === this.#version && now - cached.at < 1_000) return cached.snapshot;
    const snapshot = this.#build(now);
    this.#cached = { version: this.#version, at: now, snapshot };
    return snapshot;
  }

  /**
   * Snapshots as the grid changes: the current one first, then one after each change, coalesced (at
   * most ~10 per second; a slow consumer gets the newest). Ends on abort or `close()`.
   */
  async *changes(options: { signal?: AbortSignal } = {}): AsyncGenerator<GridSnapshot> {
    const { signal } = options;
    const stopped = () => this.#stop.signal.aborted || signal?.aborted === true;
    await this.#ready;
    let seen = -1;
    let lastYield = 0;
    while (!stopped()) {
      if (this.#version === seen) await this.#nextChange(signal);
      if (stopped()) return;
      const wait = lastYield + MIN_CHANGE_INTERVAL_MS - Date.now();
      if (wait > 0) await sleep(wait, AbortSignal.any([this.#stop.signal, ...(signal ? [signal] : [])]));
      if (stopped()) return;
      seen = this.#version;
      lastYield = Date.now();
      yield this.snapshot();
    }
  }

  /**
   * What the grid knows of one task: its final status from `R/results` or a worker's answer in its
   * inbox (those seen since start from memory, else result nodes read newest first), else
   * assigned/running from the assignments and inboxes, else queued from the queue nodes (or declined
   * in an inbox); undefined if none has it.
   */
  async task(id: string): Promise<TaskView | undefined> {
    this.#assertOpen();
    if (!isValidTaskId(id)) return undefined;
    const recent = this.#recent.find((t) => t.id === id);
    if (recent) return recent;
    if (!this.#finalIds.has(id)) {
      // Every result newer than the start (and back to the oldest queue node) has been read:
      // a task held here and not among them is not final yet.
      const active = this.#activeViews().find((t) => t.id === id);
      if (active) return active;
      const queued = this.#queuedViews().find((t) => t.id === id);
      if (queued) return queued;
    }
    return (await this.#scanResults(new Set([id]))).get(id);
  }

  /**
   * What the grid knows of each of `ids`, as {@link task} says for one, in one pass whatever their
   * number: one walk over the held, queued and recent tasks, then one newest-first read of the
   * result nodes for the ids not found there. Ids the grid does not know are absent from the map.
   */
  async findTasks(ids: Iterable<string>): Promise<Map<string, TaskView>> {
    this.#assertOpen();
    const wanted = new Set<string>();
    for (const id of ids) if (isValidTaskId(id)) wanted.add(id);
    const found = new Map<string, TaskView>();
    for (const t of this.#recent) if (wanted.has(t.id) && !found.has(t.id)) found.set(t.id, t);
    for (const t of [...this.#activeViews(), ...this.#queuedViews()]) {
      // As in task(): a task seen final is not looked for among the held and queued ones.
      if (wanted.has(t.id) && !found.has(t.id) && !this.#finalIds.has(t.id)) found.set(t.id, t);
    }
    const rest = new Set([...wanted].filter((id) => !found.has(id)));
    if (rest.size > 0) for (const [id, view] of await this.#scanResults(rest)) found.set(id, view);
    return found;
  }

  /** Tasks the observer holds: active ones, then queued (highest priority first), then recent final ones. */
  tasks(query: TaskQuery = {}): TaskView[] {
    this.#assertOpen();
    const limit = query.limit ?? 100;
    const state = query.state;
    const pick = (views: TaskView[]) =>
      views.filter(
        (t) =>
          (state === undefined || t.state === state) &&
          (query.worker === undefined || t.worker === query.worker),
      );
    const out: TaskView[] = [];
    if (state === undefined || state === "assigned" || state === "running")
      out.push(...pick(this.#activeViews()));
    if ((state === undefined || state === "queued" || state === "delayed") && query.worker === undefined)
      out.push(...pick(this.#queuedViews()));
    if (state === undefined || isFinalState(state)) out.push(...pick(this.#recent));
    return out.slice(0, limit);
  }

  /** Stops every watch; closes the ZooKeeper client if the observer made it. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      for (const wake of this.#wakers) wake();
      this.#wakers.clear();
      await this.#ready.catch(() => {});
      if (this.#ownsClient) await this.#zk.close();
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------------------------------------
  // Start-up

  async #start(): Promise<void> {
    const { layout } = this;
    const signal = this.#stop.signal;
    const follow = this.#follower;
    await Promise.all([
      follow.children(layout.masters, (c) => this.#onMasters(c)),
      follow.children(layout.workers, (c) => this.#workerFollows.update(c)),
      follow.children(layout.assignDir, (c) => this.#assignFollows.update(c)),
      follow.children(layout.reports, (c) => this.#reportDirs.update(c)),
      follow.children(layout.inbox, (c) => this.#inboxDirs.update(c)),
      follow.children(layout.queue, (c) => this.#onQueue(c)),
      follow.children(layout.results, (c) => this.#onResults(this.#sharedResults, c)),
      follow.children(layout.replies, (c) => this.#replyDirs.update(c)),
      follow.data(layout.gate, (c) => this.#onGate(c)),
    ]).catch((err: unknown) => {
      throw this.#refused ?? err;
    });
    if (this.#refused !== undefined) throw this.#refused;
    if (!signal.aborted) await this.#backfill();
    // After the read-back: an answer the leader had recorded before the start is history, not counted.
    this.#applyResults(this.#answersAtStart.splice(0));
    this.#isReady = true;
    this.#changed();
  }

  /**
   * One data follow per child of `dir`, its state dropped (`handle` gets null) when the child is gone
   * from the listing.
   */
  #eachChildData(
    dir: string,
    handle: (name: string, change: DataChange | null) => void,
    options: { signal?: AbortSignal; untilGone?: boolean } = {},
  ): ChildFollows<string> {
    return new ChildFollows<string>({
      open: (name) => name,
      follow: (name, _, signal) =>
        this.#follower.data(`${dir}/${name}`, (change) => handle(name, change), {
          signal,
          untilGone: options.untilGone === true,
        }),
      forget: (name) => handle(name, null),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** The `<worker>@<session>` dirs under `parent` (`R/reports`, `R/inbox`), each one's children followed. */
  #sessionDirs<T extends SessionDir>(
    parent: string,
    make: (name: string, dir: SessionDir, signal: AbortSignal) => T,
    onChildren: (name: string, dir: T, change: ChildrenChange) => Promise<void>,
  ): ChildFollows<T> {
    return new ChildFollows<T>({
      open: (name, signal) => {
        const parsed = this.layout.parseReportDir(name);
        return parsed ? make(name, parsed, signal) : undefined;
      },
      follow: (name, dir, signal) =>
        this.#follower.children(`${parent}/${name}`, (c) => onChildren(name, dir, c), { signal }),
    });
  }

  /** The gate's valid parts, as the leader applies them. */
  #onGate(change: DataChange | null): void {
    const decoded = change === null ? undefined : decodeGridGate(change.data);
    if (decoded !== undefined && !decoded.ok) this.#problem(`gate node: ${decoded.error.message}`);
    for (const issue of decoded?.ok ? decoded.value.ignored : [])
      this.#problem(`gate node: ${issue.path}: ${issue.problem}`);
    this.#gate = decoded?.ok ? decoded.value.gate : { v: 1 };
  }

  // ---------------------------------------------------------------------------------------------
  // Watch handlers: each takes the full child list and brings its map in line with it.

  async #onMasters({ children }: ChildrenChange): Promise<void> {
    const fresh = newChildren(this.#masters, children);
    await readEach(this.#zk, this.layout.masters, fresh, READ_LANES, (node, got) => {
      const seq = parseSequentialName(node)?.sequence ?? Number.MAX_SAFE_INTEGER;
      const decoded = decodeMasterInfo(got.data);
      if (!decoded.ok) {
        this.#masters.set(node, { node, seq, problem: decoded.error.message });
        return;
      }
      const { v: _v, accepts: _accepts, ...info } = decoded.value;
      this.#masters.set(node, { node, seq, ...info });
    });
  }

  #onWorker(name: string, change: DataChange | null): void {
    if (change === null) {
      this.#workers.delete(name);
      return;
    }
    const decoded = decodeWorkerRegistration(change.data);
    const session = change.stat.ephemeralOwner;
    this.#workers.set(
      name,
      decoded.ok ? { session, registration: decoded.value } : { session, problem: decoded.error.message },
    );
    if (!decoded.ok) this.#problem(`worker ${name}: ${decoded.error.message}`);
  }

  #onAssignment(name: string, change: DataChange | null): void {
    if (change === null) {
      this.#assignments.delete(name);
      return;
    }
    const decoded = decodeAssignment(change.data);
    if (decoded.ok) this.#assignments.set(name, decoded.value);
    else {
      this.#assignments.delete(name);
      this.#problem(`assignment of ${name}: ${decoded.error.message}`);
    }
  }

  async #onQueue({ children }: ChildrenChange): Promise<void> {
    const fresh = newChildren(this.#queue, children);
    await readEach(this.#zk, this.layout.queue, fresh, READ_LANES, (name, got) => {
      const decoded = decodeSubmitBatch(got.data);
      const node: QueueNode = { czxid: got.stat.czxid, tasks: [] };
      if (!decoded.ok) {
        // The leader rejects every task of it: nothing here will wait.
        this.#problem(`queue node ${name}: ${decoded.error.message}`);
      } else {
        const { submittedAt, requeued } = decoded.batch;
        for (const t of decoded.tasks) {
          if (!t.ok) continue; // rejected by the leader, never queued
          const again = requeued?.[t.task.id];
          node.tasks.push({
            spec: t.task,
            submittedAt: again?.submittedAt ?? submittedAt,
            attemptsUsed: again?.attemptsUsed ?? 0,
            ...dueOf(t.task.runAt, again?.notBefore),
            ...(again?.history === undefined ? {} : { history: again.history }),
          });
        }
      }
      this.#queue.set(name, node);
    });
  }

  /**
   * Report nodes live only until the leader applies them, so this sees some and misses others: it
   * is the best-effort source of `running` (a task whose report it missed shows as `assigned`).
   */
  async #onReports(dirName: string, dir: ReportDir, children: string[]): Promise<void> {
    const { read } = dir;
    const fresh = newChildren(read, children);
    await readEach(this.#zk, `${this.layout.reports}/${dirName}`, fresh, READ_LANES, (node, got) => {
      read.add(node);
      const decoded = decodeWorkerReport(got.data);
      if (!decoded.ok) return;
      for (const u of decoded.value.updates) {
        if (u.state !== "running" || this.#finalIds.has(u.id)) continue;
        this.#running.set(u.id, { attempt: u.attempt, startedAt: u.startedAt ?? u.at, seenAt: Date.now() });
      }
    });
  }

  /**
   * A direct task's node: the task while its worker holds it (version 0) or after it declined it
   * (version ≥ 1, queued again by the leader), then the worker's answer, which is the task's result
   * before the leader copies it to `R/results` and deletes the node.
   */
  #onInboxNode(dirName: string, dir: InboxDir, name: string, change: DataChange | null): void {
    // The node's name is its task's id, or the id and the task itself (see inboxNodeName).
    const id = inboxNodeId(name);
    dir.tasks.delete(id);
    if (change === null) return;
    const { version, ctime } = change.stat;
    const node = decodeInboxNode(name, change.data, version);
    if (node.kind === "task") {
      dir.tasks.set(id, {
        spec: node.task,
        submittedAt: node.submittedAt,
        assignedAt: ctime,
        declined: version > 0,
      });
    } else if (node.kind === "invalid") {
      this.#problem(`inbox node ${dirName}/${id}: ${node.error.message}`);
    } else if (node.status.worker !== dir.worker) {
      // The leader drops it too: not this task's result.
      this.#problem(`inbox node ${dirName}/${id}: an answer from worker "${node.status.worker}"`);
    } else if (this.#isReady) {
      this.#applyResults([node.status]);
    } else this.#answersAtStart.push(node.status);
  }

  async #onResults(place: ResultPlace, { children }: ChildrenChange): Promise<void> {
    const nodes = resultNodes(children, this.layout.resultNodePrefix);
    if (!place.started) {
      // The first list: what is here now is history (read back by #backfill), not throughput.
      place.started = true;
      place.atStart = nodes;
      place.cursor = nodes.at(-1)?.seq ?? -1;
      return;
    }
    const fresh = nodes.filter((n) => n.seq > place.cursor);
    for (let i = 0; i < fresh.length; i += READ_LANES) {
      const chunk = fresh.slice(i, i + READ_LANES);
      const reads = await Promise.all(chunk.map((n) => this.#readResults(`${place.dir}/${n.name}`)));
      chunk.forEach((node, k) => {
        this.#applyResults(reads[k]?.statuses ?? []);
        place.cursor = node.seq;
      });
    }
  }

  #applyResults(statuses: readonly TaskStatus[]): void {
    const now = Date.now();
    for (const status of statuses) {
      // The first final status in R/results order counts; a leader's repeated step may add another.
      if (this.#finalIds.has(status.id)) continue;
      this.#rememberFinal(status.id);
      this.#running.delete(status.id);
      const state = status.state as FinalState;
      this.#counts[state] += 1;
      this.#throughput.add(status.finishedAt ?? now, state === "succeeded", now);
      this.#recent.unshift(viewOfStatus(status));
    }
    if (this.#recent.length > this.#recentLimit) this.#recent.length = this.#recentLimit;
  }

  /**
   * Reads the result nodes that were there at start, newest first: the newest statuses fill `recent`,
   * and every id back to the oldest queue node is remembered as final (a queue node may still list
   * tasks that finished, until its last task is assigned).
   */
  async #backfill(): Promise<void> {
    let oldestQueue = Number.POSITIVE_INFINITY;
    for (const node of this.#queue.values()) oldestQueue = Math.min(oldestQueue, node.czxid);
    const older: TaskView[] = [];
    // R/results first, then each reply dir, each newest first.
    for (const place of [this.#sharedResults, ...this.#replyDirs.values()]) {
      await this.#backfillPlace(place, oldestQueue, older);
      if (this.#stop.signal.aborted) return;
    }
    this.#recent.push(...older);
    if (this.#recent.length > this.#recentLimit) this.#recent.length = this.#recentLimit;
  }

  async #backfillPlace(place: ResultPlace, oldestQueue: number, older: TaskView[]): Promise<void> {
    const nodes = place.atStart
      .slice(-BACKFILL_MAX_NODES)
      .reverse()
      .map((n) => `${place.dir}/${n.name}`);
    place.atStart = [];
    for (let i = 0; i < nodes.length; i += READ_LANES) {
      const chunk = nodes.slice(i, i + READ_LANES);
      const reads = await Promise.all(chunk.map((path) => this.#readResults(path)));
      let reachedOldest = false;
      for (const read of reads) {
        if (!read) continue;
        for (const status of [...read.statuses].reverse()) {
          if (this.#finalIds.has(status.id)) continue;
          this.#rememberFinal(status.id);
          this.#running.delete(status.id);
          if (this.#recent.length + older.length < this.#recentLimit) older.push(viewOfStatus(status));
        }
        if (read.czxid < oldestQueue) reachedOldest = true;
      }
      if (reachedOldest && this.#recent.length + older.length >= this.#recentLimit) break;
      if (this.#stop.signal.aborted) return;
    }
  }

  async #readResults(path: string): Promise<{ statuses: TaskStatus[]; czxid: number } | undefined> {
    const got = await getOrNull(this.#zk, path);
    if (!got) return undefined;
    const decoded = decodeResultBatch(got.data);
    if (!decoded.ok) {
      // Named as before for R/results; a reply dir's node by `replies/<address>/<name>`.
      const shared = `${this.layout.results}/`;
      const name = path.startsWith(shared)
        ? path.slice(shared.length)
        : path.slice(this.layout.replies.lastIndexOf("/") + 1);
      this.#problem(`result node ${name}: ${decoded.error.message}`);
      return { statuses: [], czxid: got.stat.czxid };
    }
    return { statuses: decoded.value.results.filter((s) => isFinalState(s.state)), czxid: got.stat.czxid };
  }

  /** The children of `path`, or none if it does not exist. */
  async #childrenOrNone(path: string): Promise<string[]> {
    try {
      return await this.#zk.getChildren(path);
    } catch (err) {
      if (errors.isNoNode(err)) return [];
      throw err;
    }
  }

  /**
   * Reads the result nodes newest first (those of `R/results`, then of each reply dir) until each of
   * `ids` is found or none is left.
   */
  async #scanResults(ids: ReadonlySet<string>): Promise<Map<string, TaskView>> {
    const found = new Map<string, TaskView>();
    const dirs = [this.layout.results];
    for (const address of await this.#childrenOrNone(this.layout.replies)) {
      if (isValidReplyAddress(address)) dirs.push(this.layout.replyDir(address));
    }
    const nodes: string[] = [];
    for (const dir of dirs) {
      const children = await this.#childrenOrNone(dir);
      for (const n of resultNodes(children, this.layout.resultNodePrefix).reverse())
        nodes.push(`${dir}/${n.name}`);
    }
    for (let i = 0; i < nodes.length && found.size < ids.size; i += READ_LANES) {
      this.#assertOpen();
      const reads = await Promise.all(nodes.slice(i, i + READ_LANES).map((path) => this.#readResults(path)));
      for (const read of reads) {
        // The newest node with an id wins, as in task(); within a node its first status.
        for (const status of read?.statuses ?? []) {
          if (ids.has(status.id) && !found.has(status.id)) found.set(status.id, viewOfStatus(status));
        }
      }
    }
    return found;
  }

  // ---------------------------------------------------------------------------------------------
  // Views

  #build(now: number): GridSnapshot {
    const masters = [...this.#masters.values()]
      .sort((a, b) => a.seq - b.seq)
      .map((m, i): MasterView => ({ ...m, leader: i === 0 }));
    const held = this.#heldTasks();
    const active = held.map((h) => h.view);
    // Per worker session: what an older session of a worker holds is not the live one's load.
    const perSession = new Map<string, { assigned: number; running: number }>();
    for (const { view, session } of held) {
      const key = `${view.worker}@${session}`;
      const w = perSession.get(key) ?? { assigned: 0, running: 0 };
      w.assigned += 1;
      if (view.state === "running") w.running += 1;
      perSession.set(key, w);
    }
    const workers = [...this.#workers.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, node]): WorkerView => {
        const reg = node.registration;
        const load = perSession.get(`${name}@${node.session}`);
        const capacity = reg?.capacity ?? 0;
        const view: WorkerView = {
          name,
          session: node.session,
          labels: reg?.labels ?? [],
          capacity,
          assigned: load?.assigned ?? 0,
          running: load?.running ?? 0,
          load: capacity > 0 ? Math.round(((load?.assigned ?? 0) / capacity) * 1000) / 1000 : 0,
        };
        if (reg)
          Object.assign(view, {
            host: reg.host,
            pid: reg.pid,
            version: reg.version,
            startedAt: reg.startedAt,
          });
        if (node.problem) view.problem = node.problem;
        return view;
      });
    const queued = this.#queuedViews();
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as TaskCounts;
    Object.assign(counts, this.#counts);
    counts.delayed = queued.filter((t) => t.state === "delayed").length;
    counts.queued = queued.length - counts.delayed;
    for (const t of active) counts[t.state] += 1;
    const snapshot: GridSnapshot = {
      at: now,
      since: this.#since,
      root: this.root,
      connection: this.#zk.state,
      masters,
      workers,
      queue: this.#queueView(queued, now),
      counts,
      active: active.slice(0, ACTIVE_LIMIT),
      recent: [...this.#recent],
      throughput: this.#throughput.view(now),
      gate: this.#gate,
      problems: [...this.#problems],
    };
    if (masters[0]) snapshot.leader = masters[0];
    return snapshot;
  }

  #activeViews(): TaskView[] {
    return this.#heldTasks().map((h) => h.view);
  }

  /**
   * Tasks in assignments and direct tasks waiting in inboxes that no assignment holds, none seen
   * final, most recently assigned first.
   */
  #heldTasks(): HeldTask[] {
    const tasks: HeldTask[] = [];
    const now = Date.now();
    const held = new Set<string>();
    for (const [worker, assignment] of this.#assignments) {
      for (const task of assignment.tasks) {
        if (this.#finalIds.has(task.id)) continue;
        held.add(task.id);
        const seen = this.#running.get(task.id);
        const view = viewOfAssigned(task, worker, seen?.attempt === task.attempt ? seen : undefined);
        tasks.push({ view, session: assignment.session });
      }
    }
    for (const dir of this.#inboxDirs.values()) {
      for (const [id, t] of dir.tasks) {
        if (t.declined || this.#finalIds.has(id) || held.has(id)) continue;
        held.add(id);
        // A worker never reports `running` for a direct task.
        const task = { id, attempt: 1, submittedAt: t.submittedAt, assignedAt: t.assignedAt, spec: t.spec };
        tasks.push({ view: viewOfAssigned(task, dir.worker, undefined), session: dir.session });
      }
    }
    for (const [id, seen] of this.#running) {
      if (!held.has(id) && now - seen.seenAt > RUNNING_ORPHAN_MS) this.#running.delete(id);
    }
    return tasks.sort((a, b) => (b.view.assignedAt ?? 0) - (a.view.assignedAt ?? 0));
  }

  /**
   * Distinct queued tasks not assigned and not known final, with the declined direct tasks (the
   * leader queues them again): highest priority first, then FIFO.
   */
  #queuedViews(): TaskView[] {
    const now = Date.now();
    const assigned = new Set<string>();
    for (const a of this.#assignments.values()) for (const t of a.tasks) assigned.add(t.id);
    for (const dir of this.#inboxDirs.values())
      for (const [id, t] of dir.tasks) if (!t.declined) assigned.add(id);
    const seen = new Set<string>();
    const views: TaskView[] = [];
    // Creation order, as the leader takes them: nodes are read in parallel, so the map's order is not it.
    const nodes = [...this.#queue.values()].sort((a, b) => a.czxid - b.czxid);
    // A task in several nodes (its first one outlived its hand-out) is the copy with the most attempts, as the leader reads it.
    const best = new Map<string, QueuedEntry>();
    for (const node of nodes) {
      for (const entry of node.tasks) {
        const id = entry.spec.id;
        if (assigned.has(id) || this.#finalIds.has(id)) continue;
        const other = best.get(id);
        if (other === undefined || entry.attemptsUsed > other.attemptsUsed) best.set(id, entry);
      }
    }
    for (const [id, entry] of best) {
      seen.add(id);
      views.push(viewOfQueued(entry.spec, entry.submittedAt, entry.attemptsUsed, entry, now));
    }
    for (const dir of this.#inboxDirs.values()) {
      for (const [id, t] of dir.tasks) {
        if (!t.declined || seen.has(id) || assigned.has(id) || this.#finalIds.has(id)) continue;
        seen.add(id);
        // Its attempt is unused: queued again as never handed out.
        views.push(viewOfQueued(t.spec, t.submittedAt, 0));
      }
    }
    return views.sort(
      (a, b) => (b.priority ?? 0) - (a.priority ?? 0) || (a.submittedAt ?? 0) - (b.submittedAt ?? 0),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  #rememberFinal(id: string): void {
    this.#finalIds.add(id);
    if (this.#finalIds.size > FINAL_IDS_LIMIT) {
      const oldest = this.#finalIds.values().next().value;
      if (oldest !== undefined) this.#finalIds.delete(oldest);
    }
  }

  #changed(): void {
    this.#version += 1;
    for (const wake of this.#wakers) wake();
    this.#wakers.clear();
  }

  #nextChange(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#stop.signal.aborted || signal?.aborted) return resolve();
      const done = () => {
        this.#wakers.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#wakers.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  #problem(message: string): void {
    this.#log("warn", message);
    this.#problems.push(message);
    if (this.#problems.length > PROBLEM_LIMIT) this.#problems.shift();
  }

  /**
   * Every schedule under `R/schedules`, by name, read now (schedules change rarely: not followed),
   * each with the leader's record of its firings; one that does not decode carries its `problem`.
   */
  async schedules(): Promise<ScheduleView[]> {
    this.#assertOpen();
    let names: string[];
    try {
      names = await this.#zk.getChildren(this.layout.schedules);
    } catch (err) {
      if (errors.isNoNode(err)) return [];
      throw err;
    }
    const now = Date.now();
    const views = await Promise.all(
      names.sort().map(async (name) => {
        const dir = this.layout.schedules;
        const [spec, state] = await Promise.all([
          getOrNull(this.#zk, `${dir}/${name}`),
          getOrNull(this.#zk, `${this.layout.firings}/${name}`),
        ]);
        return scheduleView(name, spec?.data, state?.data, now);
      }),
    );
    return views;
  }

  #assertOpen(): void {
    if (this.#stop.signal.aborted) throw new ObserverClosedError();
  }

  #queueView(queued: TaskView[], now: number): QueueView {
    // Before the first full read the depth is partial: not worth a sample.
    if (this.#isReady) this.#depth.record(queued.length, now);
    return queueView(queued, this.#queue.size, this.#depth.view(now));
  }
}

function queueView(queued: TaskView[], nodes: number, history: QueueView["history"]): QueueView {
  const byPriority = new Map<number, number>();
  let oldest: number | undefined;
  for (const t of queued) {
    byPriority.set(t.priority ?? 0, (byPriority.get(t.priority ?? 0) ?? 0) + 1);
    if (t.submittedAt !== undefined && (oldest === undefined || t.submittedAt < oldest))
      oldest = t.submittedAt;
  }
  const view: QueueView = {
    depth: queued.length,
    nodes,
    byPriority: [...byPriority].sort(([a], [b]) => b - a).map(([priority, count]) => ({ priority, count })),
    history,
  };
  if (oldest !== undefined) view.oldestSubmittedAt = oldest;
  return view;
}

/** The result nodes among `children`, in sequence order (with or without the protected prefix). */
function resultNodes(children: readonly string[], prefix: string): ResultNode[] {
  const nodes: ResultNode[] = [];
  for (const name of children) {
    const parsed = parseSequentialName(name);
    if (parsed?.prefix === prefix) nodes.push({ name, seq: parsed.sequence });
  }
  return nodes.sort((a, b) => a.seq - b.seq);
}

/** Drops from `known` what `children` no longer lists; returns the children it does not know yet. */
function newChildren(known: Map<string, unknown> | Set<string>, children: readonly string[]): string[] {
  const present = new Set(children);
  for (const key of known.keys()) if (!present.has(key)) known.delete(key);
  return children.filter((n) => !known.has(n));
}

/** When a task in a queue node may be handed out, if that is given. */
function dueOf(runAt: number | undefined, notBefore: number | undefined): { dueAt?: number } {
  const due = Math.max(runAt ?? 0, notBefore ?? 0);
  return due > 0 ? { dueAt: due } : {};
}
