export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/**
 * How a zkgrid program or library reaches ZooKeeper: the options every connecting part of the grid
 * shares (the client's `connect()`, the observer, the master, the worker, the submitter).
 */
export interface ConnectionOptions {
  /** "127.0.0.1:2181,127.0.0.1:2182" */
  connectString: string;
  /** Every path is relative to this node ("/" means the root itself). */
  root?: string;
  /** Requested session timeout; the server may clamp it (default 10 000). */
  sessionTimeoutMs?: number;
  /** Digest credentials "user:password", added on every new session before anything else runs. */
  auth?: string | string[];
  /**
   * Extra entries for the ACL set on every node created (right after the create; see `nodeAcl`). With
   * `auth` or `acl` given, each created node gets ALL for every `auth` credential plus these; with
   * neither, nodes keep ZooKeeper's open ACL.
   */
  acl?: readonly Acl[];
  /** Where log lines go; nothing is printed without it. */
  logger?: Logger;
}

export interface ConnectOptions extends ConnectionOptions {
  /** Every path given to the client is relative to this node ("/" means the root itself). Created if absent. */
  root?: string;
  /** connect() rejects with ConnectionLossError if no session is established by then (default 30 000). */
  connectTimeoutMs?: number;
  /** An operation waiting for a connection gives up after this (default 2 x sessionTimeoutMs). */
  opTimeoutMs?: number;
  /** Aborting it before the first session gives up connecting (connect() rejects with ClosedError). */
  signal?: AbortSignal;
}

export type ConnectionState = "connected" | "suspended" | "expired" | "closed";

export type ConnectionEvent =
  /** A new session: the first one, and the one made after each expiry. */
  | { type: "connected"; sessionId: string }
  /** The connection is lost; the session may still be alive. */
  | { type: "suspended" }
  /** The same session is back. */
  | { type: "reconnected"; sessionId: string }
  /** That session is gone (with its ephemeral nodes and watches); a new one is being made. */
  | { type: "expired"; sessionId: string }
  | { type: "closed" };

export type ConnectionEventType = ConnectionEvent["type"];

export interface Stat {
  czxid: number;
  mzxid: number;
  pzxid: number;
  /** ms since the epoch */
  ctime: number;
  /** ms since the epoch */
  mtime: number;
  version: number;
  cversion: number;
  aversion: number;
  /** Session id of the owner in lower-case hex (as `ZkClient.sessionId`), "0" for a persistent node. */
  ephemeralOwner: string;
  dataLength: number;
  numChildren: number;
}

export type CreateMode = "persistent" | "ephemeral" | "persistent-sequential" | "ephemeral-sequential";

/** One ACL entry: `perms` is a sum of `Perms` values; `id` is e.g. "anyone" or "user:base64(sha1)". */
export interface Acl {
  perms: number;
  scheme: string;
  id: string;
}

export type Data = Uint8Array | string;

export interface ChildrenChange {
  /** Current children, sorted. */
  children: string[];
  /** Children present now that were not in the previously yielded value (all of them at first). */
  added: string[];
  /** Children in the previously yielded value that are gone now. */
  removed: string[];
  /** False while the watched node itself does not exist. */
  exists: boolean;
  /** Stat of the watched node, null while it does not exist. */
  stat: Stat | null;
}

export interface DataChange {
  data: Buffer;
  stat: Stat;
}

/** An async iterator that re-arms itself; `stop()` (or `return()`) ends it. */
export interface WatchStream<T> extends AsyncIterableIterator<T> {
  stop(): void;
}

export interface WatchOptions {
  signal?: AbortSignal;
  /**
   * After a change, wait this long (ms) before reading again. Changes meanwhile are read together: one
   * read instead of several, at the price of later news. The first read is never delayed. Default 0.
   */
  settleMs?: number;
  /**
   * `watchData` only: a missing node ends the watch's interest in it. It yields `null` and arms nothing
   * (no watch waits for the node to be created again); stop the stream then. For nodes that are made
   * once and deleted once, so that each deleted one leaves no watch behind.
   */
  untilGone?: boolean;
  /**
   * `watchChildren` only: learn of each child created or deleted from its own event (a persistent
   * recursive watch, ZooKeeper 3.6's addWatch), without listing the node again after every change: a
   * change reaches the stream one request sooner. The node is listed once when the watch starts and
   * after each reconnect. The server then sends an event for every change anywhere under the node (a
   * child's data, a grandchild), which the stream reads past, so it suits a node whose children change
   * seldom. Where the addon lacks @zkgrid/core's install-step patch, or the server lacks addWatch, the
   * stream lists the node after each change as without it. A stream keeps the same promise either way.
   */
  perChild?: boolean;
}

export interface Leadership {
  /** The sequence number of the leader's candidate node: grows with every new leader. */
  epoch: number;
  /** Path of the candidate node, relative to the client's root. */
  node: string;
  sessionId: string;
  /** Aborts when leadership is lost (or the election is stopped). */
  signal: AbortSignal;
}

export type ElectionEvent =
  | { type: "elected"; leadership: Leadership }
  /** Connection lost: leadership is in doubt, stop acting until "resumed". */
  | { type: "suspended" }
  /** The same session is back and the candidate still leads. */
  | { type: "resumed" }
  /** Session expired or candidate node gone: no longer leader. */
  | { type: "lost" };

export interface Candidate {
  /** Path relative to the client's root. */
  node: string;
  seq: number;
  data: Buffer;
}

export interface LeaderElection extends AsyncIterable<ElectionEvent> {
  /** True while this candidate leads and its connection is up (false while suspended). */
  readonly isLeader: boolean;
  /** Set from "elected" until "lost" (kept while suspended). */
  readonly leadership: Leadership | undefined;
  /** Resolves when (or if already) elected and not suspended. */
  leading(): Promise<Leadership>;
  /** Leaves the election: deletes the candidate node and ends every iteration. */
  stop(): Promise<void>;
  /** Current candidates, leader first. */
  candidates(): Promise<Candidate[]>;
}

export interface ElectionOptions {
  data?: Data;
  signal?: AbortSignal;
}

export interface KeepRunningContext<C> {
  client: C;
  sessionId: string;
  /** Aborts when this session ends (expiry or close) or when the keepRunning signal aborts. */
  signal: AbortSignal;
}
