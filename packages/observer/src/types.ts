import type { ConnectionOptions, ConnectionState, Logger, ZkClient } from "@zkgrid/core";
import type { FinalState, GridGate, TaskState, TaskStatus } from "@zkgrid/protocol";

/** Observe through a client you own (left open by `close()`). */
export interface ObserveWithClient {
  client: ZkClient;
  /** The grid's root, relative to the client's own root (default `/zkgrid`). */
  root?: string;
  logger?: Logger;
}

/** Connect a client of the observer's own (closed by `close()`). */
export interface ObserveWithConnect extends ConnectionOptions {
  /** The grid's root (default `/zkgrid`). */
  root?: string;
  /** `observeGrid` rejects if no session is made by then (default 30 000). */
  connectTimeoutMs?: number;
}

export type ObserveOptions = (ObserveWithClient | ObserveWithConnect) & {
  /** How many final statuses `recent` keeps (default 200). */
  recentLimit?: number;
};

/** One election candidate. The lowest sequence leads. */
export interface MasterView {
  /** The candidate node's name under `R/masters`. */
  node: string;
  /** Its sequence number: the epoch of its term when it leads. */
  seq: number;
  leader: boolean;
  name?: string;
  host?: string;
  pid?: number;
  startedAt?: number;
  httpPort?: number;
  /** Why the node's data could not be read as a MasterInfo. */
  problem?: string;
}

/** One live worker (a node under `R/workers`) with what its assignment and its inbox hold. */
export interface WorkerView {
  name: string;
  /** The session that owns the registration (hex). */
  session: string;
  host?: string;
  pid?: number;
  version?: string;
  labels: string[];
  /** How many tasks it runs at once; 0 when the registration is unreadable. */
  capacity: number;
  startedAt?: number;
  /** Tasks it holds on this session: those in its assignment and the direct tasks in its inbox. */
  assigned: number;
  /** Of those, how many it has been seen reporting as running (best effort, see TaskView.state). */
  running: number;
  /** assigned / capacity, 0..1 (above 1 only while an assignment outlives a capacity change). */
  load: number;
  /** Why the registration could not be read. */
  problem?: string;
}

export interface QueueView {
  /**
   * Distinct task ids in `R/queue` that are neither held by a worker nor known to be final. The
   * leader deletes a queue node only once all of its tasks are assigned or final, so a node can hold
   * finished tasks: the observer subtracts those it saw in `R/results` (at start it reads back result
   * nodes as far as the oldest queue node, at most 2000 of them). A task whose result lies further back
   * still counts, until its queue node goes. A direct task its worker declined counts from then on (the
   * leader queues it again). Delayed tasks are in it too (`counts.delayed` says how many).
   */
  depth: number;
  /** Queue nodes present. */
  nodes: number;
  /** Depth per priority, highest priority first. */
  byPriority: Array<{ priority: number; count: number }>;
  /** The first submission time among the queued tasks. */
  oldestSubmittedAt?: number;
  /** The highest depth seen per throughput bucket, oldest first, since the observer started (at most 10 min). */
  history: Array<{ start: number; depth: number }>;
}

/** Finished tasks per bucket, oldest bucket first. */
export interface ThroughputView {
  bucketMs: number;
  windowMs: number;
  buckets: Array<{ start: number; finished: number; succeeded: number }>;
  /** Finished tasks per second over the last minute. */
  perSecond: number;
}

/**
 * What the observer knows of one task: its status as the protocol records it (without the schema
 * version), and what its spec tells when that is at hand.
 */
export interface TaskView extends Omit<TaskStatus, "v"> {
  /**
   * `queued` (in a queue node, or a direct task its worker declined), `delayed` (in a queue node, its
   * `runAt` or a retry's backoff still ahead: see `dueAt`), `assigned` (in a worker's
   * assignment, or a direct task in its inbox), `running` (assigned, and the worker was seen reporting
   * it running: report nodes live only until the leader applies them, so a running task can show as
   * `assigned`; a direct task never does), or a final state from `R/results` or a worker's answer in
   * its inbox.
   */
  state: TaskState;
  /** The attempt it is on; 0 for a queued task never handed out. */
  attempt: number;
  /** `cmd` with its `args`, or `handler:<name>`, when the task's spec is at hand (not for final ones). */
  command?: string;
  priority?: number;
  /** The labels a worker must have, when the spec is at hand and names any. */
  labels?: string[];
  /** For a `delayed` task: when it may be handed out (its `runAt`, or a retry's backoff). */
  dueAt?: number;
}

/** Every task state with a count. */
export type TaskCounts = Record<TaskState, number>;

/** The grid as the observer sees it; plain data (JSON-serialisable). */
export interface GridSnapshot {
  /** When this snapshot was built (ms since the epoch). */
  at: number;
  /** When the observer started: the final-state counters and the throughput count from here. */
  since: number;
  root: string;
  connection: ConnectionState;
  leader?: MasterView;
  /** Candidates, leader first. */
  masters: MasterView[];
  workers: WorkerView[];
  queue: QueueView;
  /**
   * `queued` = queue depth, `assigned`/`running` from the assignments and inboxes now, and for each
   * final state how many results (or answers in inboxes) appeared since the observer started
   * (deduplicated by task id).
   */
  counts: TaskCounts;
  /** Assigned and running tasks, most recently assigned first (at most 500). */
  active: TaskView[];
  /**
   * The latest final statuses, newest first (some read back at start; at most `recentLimit`). A direct
   * task's answer is here as soon as the observer sees it, before the leader records it.
   */
  recent: TaskView[];
  throughput: ThroughputView;
  /**
   * The grid's gate (`R/gate`) as the leader applies it: the grid's pause, paused labels and start
   * limits; `{ v: 1 }` when nothing is paused or limited. Malformed parts are left out (and named in
   * `problems`).
   */
  gate: GridGate;
  /** The latest nodes the observer could not decode, newest last (at most 20). */
  problems: string[];
}

/** Filters for `GridObserver.tasks()`. */
export interface TaskQuery {
  state?: TaskState;
  worker?: string;
  /** Default 100. */
  limit?: number;
}

export type { FinalState };
