import { type ClientCore, Connection } from "./connection.js";
import { Election } from "./election.js";
import { SessionExpiredError } from "./errors.js";
import { NodeOperations } from "./operations.js";
import { validatePath } from "./paths.js";
import { keepRunning } from "./recipes.js";
import { normalizeSessionId, Session } from "./session.js";
import type {
  Acl,
  ChildrenChange,
  ConnectionEvent,
  ConnectionEventType,
  ConnectionState,
  ConnectOptions,
  CreateMode,
  Data,
  DataChange,
  ElectionOptions,
  KeepRunningContext,
  LeaderElection,
  Stat,
  WatchOptions,
  WatchStream,
} from "./types.js";

/**
 * The client's public face: node operations, watches and recipes, each delegated to the module that
 * owns it (operations.ts, recipes.ts, election.ts), all running on one connection (connection.ts).
 */

/**
 * Connects to ZooKeeper and resolves with a client once the first session is established (its
 * `root` created, its `auth` added). Rejects with ConnectionLossError after `connectTimeoutMs`.
 */
export async function connect(options: ConnectOptions): Promise<ZkClient> {
  const client = new ZkClient(options);
  await client[START]();
  return client;
}

const START = Symbol("start");

/**
 * A ZooKeeper client whose sessions are replaced transparently: when one expires, the client says so
 * (`expired`, then `connected`) and makes a new one. Get one with `connect()`.
 *
 * Retry policy when a reply is lost with the connection (ConnectionLoss):
 * - reads (`exists`, `get`, `getChildren`, `getAcl`, `sync`) are repeated after the reconnect;
 * - `set`, `delete` and `setAcl` are repeated too; a conditional `set` that then meets BadVersion checks
 *   whether the node holds exactly its write at `version + 1` (then it succeeded), a `delete` that then
 *   meets NoNode succeeded;
 * - `createProtected` lists the parent and returns its own node if the lost create happened;
 * - a plain `create` is not repeated: it rejects with ConnectionLossError (its outcome is unknown);
 *   nor is `setOnce`, for a write that must not overtake the requests sent before it.
 * An operation of one request (all but `createProtected` after a lost reply, `ensurePath` and
 * `deleteRecursive`) called while a session is ready is sent at once, so such calls are sent in the
 * order made, and ZooKeeper applies one session's requests in the order sent. A repeat after a
 * connection loss is sent anew: it may go after requests called later.
 * An operation is tied to the session it was first sent on: if that session expires before a reply,
 * it rejects with SessionExpiredError (except a persistent `createProtected`, which goes on on the next
 * session). Operations issued while suspended or between sessions wait for a connection, at most
 * `opTimeoutMs` (then OperationTimeoutError). `boundTo()` gives a view whose operations never leave
 * one session.
 *
 * A session is reported `expired` only when a server refused it: the addon's own "expired" close (a
 * poll counter, see RESPONSE_COUNTER_LIMIT) is disabled, since it ends the session on the server.
 */
export class ZkClient {
  readonly #connection: Connection;
  readonly #ops: NodeOperations;

  /** Use `connect()`. */
  constructor(options: ConnectOptions) {
    this.#connection = new Connection(options);
    this.#ops = new NodeOperations(this.#connection, undefined);
  }

  /** @internal */
  [START](): Promise<void> {
    return this.#connection.start();
  }

  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Hex id of the current session (as in `Stat.ephemeralOwner`), undefined between sessions. */
  get sessionId(): string | undefined {
    return this.#connection.sessionId;
  }

  /** The current session's id and password (hex), e.g. for a test that expires it. */
  sessionCredentials(): { id: string; password: string } | undefined {
    return this.#connection.sessionCredentials();
  }

  /** The servers this client connects to: its connect string as given (`host:port,...`). */
  get servers(): string {
    return this.#connection.connectString;
  }

  /** The root every path is relative to ("/" if none). */
  get root(): string {
    return this.#connection.chroot.root;
  }

  /** Listens to one event type ("*" for all); returns the unsubscribe function. */
  on<K extends ConnectionEventType>(
    type: K,
    listener: (ev: Extract<ConnectionEvent, { type: K }>) => void,
  ): () => void;
  on(type: "*", listener: (ev: ConnectionEvent) => void): () => void;
  on(type: ConnectionEventType | "*", listener: (ev: never) => void): () => void {
    return this.#connection.on(type, listener);
  }

  /** Connection events as an async iterable; ends after "closed", on `return()` or on abort. */
  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<ConnectionEvent> {
    return this.#connection.events(options);
  }

  /** Resolves when the client is closed. */
  closed(): Promise<void> {
    return this.#connection.closed();
  }

  /** Closes the session and ends every watch and election. Idempotent, safe at any time. */
  close(): Promise<void> {
    return this.#connection.close();
  }

  /**
   * Runs `action` for the current session and again for every new session (after an expiry), e.g. to
   * re-create ephemeral nodes. `ctx.signal` aborts when that session ends. A run that fails with a
   * connection error is retried (with a backoff); SessionExpiredError moves on to the next session.
   * Resolves when an action returns "completed", when `options.signal` aborts, or when the client
   * closes; rejects if an action throws anything else.
   */
  keepRunning(
    // biome-ignore lint/suspicious/noConfusingVoidType: an action that returns nothing is the common case
    action: (ctx: KeepRunningContext<ZkClient>) => Promise<void | "completed">,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    return keepRunning(this.#connection, this, action, options);
  }

  // ---- operations ----------------------------------------------------------------------------

  /** Creates a node; returns its path (relative to the root), with the sequence number if sequential. */
  create(path: string, data?: Data, mode: CreateMode = "persistent"): Promise<string> {
    return this.#ops.create(path, data, mode);
  }

  /**
   * Creates `<dir>/_c_<uuid>-<name>`. If the reply is lost with the connection, it lists `<dir>` after
   * the reconnect and returns its own node if the create happened, instead of creating a duplicate.
   * A persistent node whose session expired before the reply is looked for (and created if absent) on
   * the next session; use `boundTo()` for a create that must never outlive its session.
   */
  createProtected(path: string, data?: Data, mode: CreateMode = "persistent"): Promise<string> {
    return this.#ops.createProtected(path, data, mode);
  }

  /** Creates `path` and its missing ancestors as persistent nodes; fine if they exist. */
  ensurePath(path: string): Promise<void> {
    return this.#ops.ensurePath(path);
  }

  /** The node's Stat, or null if it does not exist. */
  exists(path: string): Promise<Stat | null> {
    return this.#ops.exists(path);
  }

  get(path: string): Promise<{ data: Buffer; stat: Stat }> {
    return this.#ops.get(path);
  }

  /** Child names, sorted. */
  getChildren(path: string): Promise<string[]> {
    return this.#ops.getChildren(path);
  }

  /**
   * Writes data if the node's version is `version` (-1: any version). After a lost reply, a
   * conditional write that meets BadVersion succeeded if the node holds exactly its data at `version + 1`.
   */
  set(path: string, data: Data, version = -1): Promise<Stat> {
    return this.#ops.set(path, data, version);
  }

  /**
   * `set`, never sent again: after a lost reply it rejects with ConnectionLossError, and the write may
   * or may not have happened. For a write that must be applied after the requests called before it
   * (ZooKeeper applies one session's requests in order): a repeat could go after later ones.
   */
  setOnce(path: string, data: Data, version = -1): Promise<Stat> {
    return this.#ops.setOnce(path, data, version);
  }

  /** Deletes the node if its version is `version` (-1: any version). */
  delete(path: string, version = -1): Promise<void> {
    return this.#ops.delete(path, version);
  }

  /** Deletes the node and everything below it; fine if it does not exist. */
  deleteRecursive(path: string): Promise<void> {
    return this.#ops.deleteRecursive(path);
  }

  /** Makes this client's server catch up with the leader for `path`. */
  sync(path: string): Promise<void> {
    return this.#ops.sync(path);
  }

  setAcl(path: string, acl: Acl[], version = -1): Promise<void> {
    return this.#ops.setAcl(path, acl, version);
  }

  getAcl(path: string): Promise<{ acl: Acl[]; stat: Stat }> {
    return this.#ops.getAcl(path);
  }

  /**
   * A view of this client that works only on the session `sessionId` (as in `sessionId`,
   * `Leadership.sessionId`): the same operations, but each one is sent only while that session is the
   * current one, and its retries after a connection loss stay on it. Once that session has ended, every
   * operation rejects with SessionExpiredError, before or after it was sent, and none is ever repeated
   * on a later session. Its watches end with the session. A write through the view therefore lands,
   * if at all, before ZooKeeper ended the session: what others do after they saw it end (an ephemeral
   * node gone, a new leader elected) is never overtaken by it.
   */
  boundTo(sessionId: string): SessionBoundClient {
    const current = this.#connection.currentSession;
    const id = normalizeSessionId(sessionId);
    if (current?.id === id) {
      return new SessionBoundClient(this.#connection, current, id);
    }
    // Not the current session: it has ended (sessions are only replaced on expiry) or was never ours.
    const gone = new Session();
    gone.id = id;
    gone.end(new SessionExpiredError());
    return new SessionBoundClient(this.#connection, gone, id);
  }

  // ---- watches and recipes -------------------------------------------------------------------

  /**
   * Children of `path` as they change. The first value has every child in `added`; later values carry
   * what changed since the previous value the consumer took (a slow consumer gets the latest state with
   * the net changes, never a backlog). While the node is absent: `exists: false`, `children: []`.
   * Survives reconnects and session expiry (re-reads then). Ends on `stop()`, `return()`, abort or close.
   */
  watchChildren(path: string, options: WatchOptions = {}): WatchStream<ChildrenChange> {
    return this.#ops.watchChildren(path, options);
  }

  /** The node's data as it changes, `null` while it does not exist. Same guarantees as watchChildren. */
  watchData(path: string, options: WatchOptions = {}): WatchStream<DataChange | null> {
    return this.#ops.watchData(path, options);
  }

  /**
   * Joins a leader election under `path` (ephemeral sequential `_c_<uuid>-n_` candidates, each watching
   * only its predecessor). Re-enters with every new session until `stop()` or the signal aborts.
   */
  election(path: string, options: ElectionOptions = {}): LeaderElection {
    validatePath(path);
    return new Election(this.#connection, this, path, options);
  }
}

/**
 * A view of a ZkClient bound to one session (see `ZkClient.boundTo`). It has the client's node
 * operations and watches; each fails with SessionExpiredError once that session has ended, and none
 * is ever run on another session.
 */
export class SessionBoundClient extends NodeOperations {
  /** The session every operation of this view is bound to (hex). */
  readonly sessionId: string;
  readonly #session: Session;

  /** @internal use ZkClient.boundTo() */
  constructor(core: ClientCore, session: Session, sessionId: string) {
    super(core, session);
    this.#session = session;
    this.sessionId = sessionId;
  }

  /** False once the session has ended: from then on every operation rejects with SessionExpiredError. */
  get live(): boolean {
    return !this.#session.ended;
  }
}
