import { randomUUID } from "node:crypto";
import type { ZkgridError } from "@zkgrid/errors";
import { nodeAcl } from "./acl.js";
import { warnIfUnpatched } from "./addon.js";
import { Election } from "./election.js";
import {
  AuthFailedError,
  AuthRequiredError,
  BadArgumentsError,
  ClosedError,
  Code,
  ConnectionLossError,
  isClosed,
  isConnectionLoss,
  isNodeExists,
  isNoNode,
  isSessionExpired,
  OperationTimeoutError,
  SessionExpiredError,
} from "./errors.js";
import { basenameOf, Chroot, joinPath, normalizeRoot, parentOf, prefixesOf, validatePath } from "./paths.js";
import {
  Handle,
  type HandleSignal,
  NOT_ISSUED,
  normalizeSessionId,
  Session,
  ZOO_EPHEMERAL,
  ZOO_SEQUENCE,
} from "./session.js";
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
  Logger,
  LogLevel,
  Stat,
  WatchOptions,
  WatchStream,
} from "./types.js";
import { modeFlags, NodeOperations } from "./operations.js";

/**
 * What watches and elections need from the client. Not public API.
 * @internal
 */
export interface ClientCore {
  readonly chroot: Chroot;
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  isClosing(): boolean;
  /** Runs `attempt` on a ready session within the op timeout (see ZkClient #run); `bindTo`: only on that session. */
  run<T>(
    rel: string,
    retry: boolean,
    attempt: (h: Handle, retried: boolean) => Promise<T>,
    options: { bindTo: Session | undefined },
  ): Promise<T>;
  /** Runs `attempt` on a ready session, waiting for one as long as `signal` allows (no op timeout). */
  runForever<T>(rel: string, attempt: (h: Handle) => Promise<T>, signal: AbortSignal): Promise<T>;
  /** Waits for a ready session without a deadline; resolves with the handle to use. */
  waitReady(signal: AbortSignal): Promise<Handle>;
  /** `fn` runs (asynchronously) on every watch event for the server path `abs`. */
  onPath(abs: string, fn: () => void): () => void;
  /** Internal listener for connection events; runs before the public ones. */
  onConnection(fn: (ev: ConnectionEvent) => void): () => void;
  /** `fn` runs when close() starts, before the session ends. */
  onClosing(fn: () => void): () => void;
  ensurePath(rel: string, options: { signal?: AbortSignal; bindTo?: Session | undefined }): Promise<void>;
  createProtected(
    rel: string,
    data: Data | undefined,
    mode: CreateMode,
    options: { signal?: AbortSignal; bindTo?: Session | undefined },
  ): Promise<string>;
  /** Puts the client's ACL on a node it has just created (on any session: the node may outlive its own). */
  protect(rel: string): Promise<void>;
}

interface Waiter {
  resolve: (h: Handle) => void;
  reject: (e: unknown) => void;
  bound: Session | undefined;
  path: string | undefined;
  cleanup: () => void;
}

type Listener = (ev: ConnectionEvent) => void;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

function parseAuth(auth: string | string[] | undefined): string[] {
  const list = auth === undefined ? [] : Array.isArray(auth) ? auth : [auth];
  for (const credential of list) {
    if (typeof credential !== "string" || credential.indexOf(":") <= 0) {
      throw new BadArgumentsError({ message: 'auth must be digest credentials "user:password"' });
    }
  }
  return list;
}

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
 * - a plain `create` is not repeated: it rejects with ConnectionLossError (its outcome is unknown).
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
  readonly #connectString: string;
  readonly #sessionTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #opTimeoutMs: number;
  readonly #auth: string[];
  /** Set on every node this client creates; undefined: nodes keep the open ACL. */
  readonly #acl: Acl[] | undefined;
  readonly #logger: Logger | undefined;
  readonly #connectSignal: AbortSignal | undefined;
  readonly #chroot: Chroot;

  #handle: Handle | undefined;
  #serial = 0;
  #unreadySessions = 0;
  #state: ConnectionState = "suspended";
  #closing = false;
  #fatal: ZkgridError | undefined;
  readonly #closedPromise: Promise<void>;
  #resolveClosed!: () => void;
  #firstReady: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void };

  readonly #listeners = new Map<ConnectionEventType | "*", Set<Listener>>();
  readonly #internalListeners = new Set<Listener>();
  readonly #closingHooks = new Set<() => void>();
  readonly #waiters = new Set<Waiter>();
  readonly #pathListeners = new Map<string, Set<() => void>>();
  readonly #core: ClientCore;
  readonly #ops: NodeOperations;

  /** Use `connect()`. */
  constructor(options: ConnectOptions) {
    if (!options || typeof options.connectString !== "string" || options.connectString === "") {
      throw new BadArgumentsError({ message: "connectString is required" });
    }
    this.#connectString = options.connectString;
    this.#sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.#opTimeoutMs = options.opTimeoutMs ?? 2 * this.#sessionTimeoutMs;
    this.#auth = parseAuth(options.auth);
    this.#acl = nodeAcl(this.#auth, options.acl);
    this.#logger = options.logger;
    this.#connectSignal = options.signal;
    this.#chroot = new Chroot(normalizeRoot(options.root));
    this.#closedPromise = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    let resolveReady!: () => void;
    let rejectReady!: (e: unknown) => void;
    const readyPromise = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    readyPromise.catch(() => {});
    this.#firstReady = { promise: readyPromise, resolve: resolveReady, reject: rejectReady };
    this.#core = {
      chroot: this.#chroot,
      log: (level, msg, fields) => this.#log(level, msg, fields),
      isClosing: () => this.#closing,
      run: (rel, retry, attempt, options) => this.#run(rel, retry, attempt, options),
      runForever: (rel, attempt, signal) =>
        this.#run(rel, true, (s) => attempt(s), { deadline: Number.POSITIVE_INFINITY, signal }),
      waitReady: (signal) => this.#waitReady({ deadline: Number.POSITIVE_INFINITY, signal }),
      onPath: (abs, fn) => this.#onPath(abs, fn),
      onConnection: (fn) => {
        this.#internalListeners.add(fn);
        return () => this.#internalListeners.delete(fn);
      },
      onClosing: (fn) => {
        this.#closingHooks.add(fn);
        return () => this.#closingHooks.delete(fn);
      },
      ensurePath: (rel, options) => this.#ensurePath(rel, options),
      createProtected: (rel, data, mode, options) => this.#createProtected(rel, data, mode, options),
      protect: (rel) => this.#protect(rel),
    };
    this.#ops = new NodeOperations(this.#core, undefined);
  }

  /** @internal */
  async [START](): Promise<void> {
    const signal = this.#connectSignal;
    if (signal?.aborted) {
      await this.close();
      throw new ClosedError({ message: "connect aborted", cause: signal.reason });
    }
    const onAbort = () => {
      this.#firstReady.reject(new ClosedError({ message: "connect aborted", cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => {
      this.#firstReady.reject(
        new ConnectionLossError({
          message: `no ZooKeeper session within ${this.#connectTimeoutMs} ms (${this.#connectString})`,
        }),
      );
    }, this.#connectTimeoutMs);
    timer.unref();
    try {
      this.#startHandle(new Session());
      await this.#firstReady.promise;
      warnIfUnpatched((level, msg, fields) => this.#log(level, msg, fields));
    } catch (error) {
      await this.close();
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Hex id of the current session (as in `Stat.ephemeralOwner`), undefined between sessions. */
  get sessionId(): string | undefined {
    const s = this.#handle?.session;
    return s?.announced && !s.ended ? s.id : undefined;
  }

  /** The current session's id and password (hex), e.g. for a test that expires it. */
  sessionCredentials(): { id: string; password: string } | undefined {
    const s = this.#handle?.session;
    if (!s?.announced || s.ended || s.id === undefined || s.password === undefined) return undefined;
    return { id: s.id, password: s.password };
  }

  /** The root every path is relative to ("/" if none). */
  get root(): string {
    return this.#chroot.root;
  }

  /** Listens to one event type ("*" for all); returns the unsubscribe function. */
  on<K extends ConnectionEventType>(
    type: K,
    listener: (ev: Extract<ConnectionEvent, { type: K }>) => void,
  ): () => void;
  on(type: "*", listener: (ev: ConnectionEvent) => void): () => void;
  on(type: ConnectionEventType | "*", listener: (ev: never) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    const fn = listener as Listener;
    set.add(fn);
    return () => {
      set.delete(fn);
    };
  }

  /** Connection events as an async iterable; ends after "closed", on `return()` or on abort. */
  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<ConnectionEvent> {
    const queue: ConnectionEvent[] = [];
    let waiting: ((r: IteratorResult<ConnectionEvent>) => void) | undefined;
    let done = this.#closing;
    const finish = () => {
      if (done) return;
      done = true;
      unsubscribe();
      options.signal?.removeEventListener("abort", finish);
      if (waiting && queue.length === 0) {
        const w = waiting;
        waiting = undefined;
        w({ done: true, value: undefined });
      }
    };
    const unsubscribe = this.on("*", (ev) => {
      if (done) return;
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ done: false, value: ev });
      } else {
        queue.push(ev);
      }
      if (ev.type === "closed") {
        unsubscribe();
        done = true;
      }
    });
    if (options.signal?.aborted) finish();
    else options.signal?.addEventListener("abort", finish, { once: true });
    const iterator: AsyncIterableIterator<ConnectionEvent> = {
      next: () => {
        const ev = queue.shift();
        if (ev) return Promise.resolve({ done: false, value: ev });
        if (done) return Promise.resolve({ done: true, value: undefined });
        return new Promise((resolve) => {
          waiting = resolve;
        });
      },
      return: () => {
        queue.length = 0;
        finish();
        return Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Resolves when the client is closed. */
  closed(): Promise<void> {
    return this.#closedPromise;
  }

  /** Closes the session and ends every watch and election. Idempotent, safe at any time. */
  async close(): Promise<void> {
    if (this.#closing) return this.#closedPromise;
    this.#closing = true;
    this.#state = "closed";
    // Leaders step down before their candidate node can vanish with the session.
    for (const hook of [...this.#closingHooks]) {
      try {
        hook();
      } catch (hookError) {
        this.#log("error", "close hook threw", { error: String(hookError) });
      }
    }
    const error = this.#fatal ?? new ClosedError();
    this.#firstReady.reject(error);
    for (const waiter of [...this.#waiters]) {
      waiter.cleanup();
      waiter.reject(this.#fatal ? new ClosedError({ cause: this.#fatal }) : new ClosedError());
    }
    const handle = this.#handle;
    if (handle) {
      this.#log("info", "closing session", { sessionId: handle.session.id });
      handle.session.end(new ClosedError());
      await handle.close();
    }
    this.#emit({ type: "closed" });
    this.#pathListeners.clear();
    this.#resolveClosed();
  }

  // ---- keep running --------------------------------------------------------------------------

  /**
   * Runs `action` for the current session and again for every new session (after an expiry), e.g. to
   * re-create ephemeral nodes. `ctx.signal` aborts when that session ends. A run that fails with a
   * connection error is retried (with a backoff); SessionExpiredError moves on to the next session.
   * Resolves when an action returns "completed", when `options.signal` aborts, or when the client
   * closes; rejects if an action throws anything else.
   */
  async keepRunning(
    // biome-ignore lint/suspicious/noConfusingVoidType: an action that returns nothing is the common case
    action: (ctx: KeepRunningContext<ZkClient>) => Promise<void | "completed">,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const outer = options.signal;
    let backoff = 0;
    const stop = new AbortController();
    const onOuterAbort = () => stop.abort(outer?.reason);
    outer?.addEventListener("abort", onOuterAbort, { once: true });
    const offClose = this.#core.onConnection((ev) => {
      if (ev.type === "closed") stop.abort(new ClosedError());
    });
    if (outer?.aborted || this.#closing) stop.abort();
    try {
      while (!stop.signal.aborted) {
        let session: Session;
        try {
          session = (await this.#waitReady({ deadline: Number.POSITIVE_INFINITY, signal: stop.signal }))
            .session;
        } catch (error) {
          if (stop.signal.aborted || isClosed(error)) return;
          throw error;
        }
        const signal = AbortSignal.any([session.controller.signal, stop.signal]);
        try {
          const result = await action({ client: this, sessionId: session.id ?? "", signal });
          if (result === "completed") return;
          backoff = 0;
          // Done for this session: run again when a new one replaces it.
          await new Promise<void>((resolve) => {
            if (signal.aborted) resolve();
            else signal.addEventListener("abort", () => resolve(), { once: true });
          });
        } catch (error) {
          if (stop.signal.aborted || isClosed(error)) return;
          if (isSessionExpired(error) || session.ended) continue;
          if (isConnectionLoss(error) || error instanceof OperationTimeoutError) {
            backoff = Math.min(backoff === 0 ? 100 : backoff * 2, 2_000);
            this.#log("warn", "keepRunning action hit a connection error; retrying", {
              error: String(error),
              backoffMs: backoff,
            });
            await sleep(backoff);
            continue;
          }
          throw error;
        }
      }
    } finally {
      outer?.removeEventListener("abort", onOuterAbort);
      offClose();
    }
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

  async #createProtected(
    path: string,
    data: Data | undefined,
    mode: CreateMode,
    options: { signal?: AbortSignal; bindTo?: Session | undefined },
  ): Promise<string> {
    const created = await this.#createProtectedNode(path, data, mode, options);
    await this.#protect(created);
    return created;
  }

  async #createProtectedNode(
    path: string,
    data: Data | undefined,
    mode: CreateMode,
    options: { signal?: AbortSignal; bindTo?: Session },
  ): Promise<string> {
    const flags = modeFlags(mode);
    validatePath(path, { allowTrailingSlash: (flags & ZOO_SEQUENCE) !== 0 });
    const ephemeral = (flags & ZOO_EPHEMERAL) !== 0;
    const dir = path.endsWith("/") && path !== "/" ? path.slice(0, -1) : parentOf(path);
    const prefix = `_c_${randomUUID()}-`;
    const name = prefix + (path.endsWith("/") ? "" : basenameOf(path));
    const target = joinPath(dir, name);
    const absTarget = this.#chroot.toServer(target);
    const absDir = this.#chroot.toServer(dir);
    const deadline = options.signal ? Number.POSITIVE_INFINITY : Date.now() + this.#opTimeoutMs;
    let firstSession: Session | undefined;
    let lastError: unknown;
    for (;;) {
      // An ephemeral node lives and dies with its session: never look for it (or retry) in another one.
      const bound = options.bindTo ?? (ephemeral ? firstSession : undefined);
      const s = await this.#waitReady({ deadline, bound, signal: options.signal, path: target, lastError });
      if (firstSession) {
        try {
          const { children } = await s.getChildren(absDir, dir, false);
          const mine = children.find((child) => child.startsWith(prefix));
          if (mine !== undefined) {
            this.#log("debug", "protected create found its node after a lost reply", { path: target });
            return joinPath(dir, mine);
          }
        } catch (error) {
          if (error === NOT_ISSUED || isConnectionLoss(error)) {
            lastError = error;
            await this.#pause(s);
            continue;
          }
          if (isSessionExpired(error) && !ephemeral && !options.bindTo) continue;
          if (!isNoNode(error)) throw error;
        }
      }
      try {
        return this.#chroot.fromServer(await s.create(absTarget, target, data, flags));
      } catch (error) {
        if (error === NOT_ISSUED) {
          await this.#pause(s);
          continue;
        }
        firstSession ??= s.session;
        if (isConnectionLoss(error) || (isSessionExpired(error) && !ephemeral && !options.bindTo)) {
          lastError = error;
          continue;
        }
        throw error;
      }
    }
  }

  /** Creates `path` and its missing ancestors as persistent nodes; fine if they exist. */
  ensurePath(path: string): Promise<void> {
    return this.#ops.ensurePath(path);
  }

  async #ensurePath(
    path: string,
    options: { signal?: AbortSignal; bindTo?: Session | undefined },
  ): Promise<void> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    if (abs === "/") return;
    const runOptions = {
      bindTo: options.bindTo,
      ...(options.signal ? { deadline: Number.POSITIVE_INFINITY, signal: options.signal } : {}),
    };
    if ((await this.#run(path, true, (s) => s.exists(abs, path, false), runOptions)) !== null) return;
    for (const prefix of prefixesOf(abs)) {
      const rel = this.#chroot.fromServer(prefix);
      let created = false;
      await this.#run(
        rel,
        true,
        async (s, retried) => {
          if ((await s.exists(prefix, rel, false)) !== null) {
            // After a lost reply the node may be our own create.
            created ||= retried;
            return;
          }
          try {
            await s.create(prefix, rel, undefined, 0);
            created = true;
          } catch (error) {
            if (!isNodeExists(error)) throw error;
          }
        },
        runOptions,
      );
      if (created) await this.#protect(rel);
    }
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
    const current = this.#handle?.session;
    const id = normalizeSessionId(sessionId);
    if (current?.announced && !current.ended && current.id === id) {
      return new SessionBoundClient(this.#core, current, id);
    }
    // Not the current session: it has ended (sessions are only replaced on expiry) or was never ours.
    const gone = new Session();
    gone.id = id;
    gone.end(new SessionExpiredError());
    return new SessionBoundClient(this.#core, gone, id);
  }

  /**
   * Puts this client's ACL on a node it has just created (the addon cannot create with an ACL): until
   * then the node has the open ACL. A node already gone (consumed, or an ephemeral of an ended
   * session) needs nothing.
   */
  async #protect(path: string): Promise<void> {
    const acl = this.#acl;
    if (acl === undefined) return;
    for (;;) {
      try {
        await this.setAcl(path, acl);
        return;
      } catch (error) {
        if (isNoNode(error)) return;
        // A persistent node outlives the session it was made on: set it on the next one.
        if (!isSessionExpired(error)) throw error;
      }
    }
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
    return new Election(this.#core, this, path, options);
  }

  // ---- session machinery ---------------------------------------------------------------------

  #log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!this.#logger) return;
    try {
      this.#logger(level, msg, fields);
    } catch {
      // a failing logger must not break the client
    }
  }

  #emit(ev: ConnectionEvent): void {
    const call = (fn: Listener) => {
      try {
        fn(ev);
      } catch (error) {
        this.#log("error", "connection listener threw", { event: ev.type, error: String(error) });
      }
    };
    for (const fn of [...this.#internalListeners]) call(fn);
    for (const fn of [...(this.#listeners.get(ev.type) ?? [])]) call(fn);
    for (const fn of [...(this.#listeners.get("*") ?? [])]) call(fn);
  }

  #startHandle(session: Session): void {
    if (this.#closing) return;
    const serial = ++this.#serial;
    try {
      this.#handle = new Handle({
        connectString: this.#connectString,
        sessionTimeoutMs: this.#sessionTimeoutMs,
        serial,
        session,
        onSignal: (h, signal) => this.#onSignal(h, signal),
      });
    } catch (error) {
      this.#fail(error as ZkgridError);
      return;
    }
    this.#log("debug", session.id ? "resuming session on a new handle" : "connecting", {
      connectString: this.#connectString,
      handle: serial,
      sessionId: session.id,
    });
  }

  #onSignal(h: Handle, signal: HandleSignal): void {
    if (h !== this.#handle || this.#closing) return;
    const session = h.session;
    switch (signal.type) {
      case "connect": {
        const identity = h.identity();
        if (!identity || session.ended) return;
        if (session.id !== undefined && identity.id !== session.id) return; // never: a resume keeps its id
        session.id = identity.id;
        session.password = identity.password;
        h.up = true;
        if (!h.ready) {
          void this.#setup(h);
        } else if (!session.announced) {
          this.#announce(h);
        } else if (this.#state === "suspended") {
          this.#reconnected(h);
        }
        return;
      }
      case "disconnect":
        h.up = false;
        this.#suspend(session);
        return;
      case "broken":
        // A call broke the socket and we closed the handle; the session lives on: resume it.
        this.#log("warn", "connection broke during a call; resuming the session on a new handle", {
          sessionId: session.id,
        });
        this.#suspend(session);
        if (!session.ended) this.#startHandle(session);
        return;
      case "close": {
        h.dead = true;
        h.up = false;
        if (h.closeRequested) return;
        if (signal.code === Code.AUTH_FAILED || signal.code === -113) {
          // -113 is ZOO_AUTH_FAILED_STATE: the server refused our credentials; retrying cannot help.
          this.#log("error", "authentication failed; closing the client", { sessionId: session.id });
          this.#fail(new AuthFailedError());
          return;
        }
        session.end(new SessionExpiredError());
        if (session.announced) {
          this.#state = "expired";
          this.#log("warn", "session expired; making a new one", {
            sessionId: session.id,
            code: signal.code,
          });
          this.#emit({ type: "expired", sessionId: session.id ?? "" });
        } else {
          this.#log("warn", "handle closed before its session was ready; retrying", { code: signal.code });
        }
        this.#wakeWaiters();
        const delay = this.#unreadySessions === 0 ? 0 : Math.min(50 * 2 ** this.#unreadySessions, 2_000);
        this.#unreadySessions++;
        if (delay > 0) {
          setTimeout(() => {
            if (this.#handle === h) this.#startHandle(new Session());
          }, delay).unref();
        } else {
          this.#startHandle(new Session());
        }
        return;
      }
      case "auth-required":
        this.#log("error", "the server requires authentication; closing the client", {
          sessionId: session.id,
        });
        this.#fail(new AuthRequiredError());
        return;
      case "watch": {
        const fns = this.#pathListeners.get(signal.path);
        if (fns) for (const fn of [...fns]) fn();
        return;
      }
    }
  }

  #suspend(session: Session): void {
    if (session.announced && this.#state === "connected") {
      this.#state = "suspended";
      this.#log("warn", "connection lost; session may still be alive", { sessionId: session.id });
      this.#emit({ type: "suspended" });
    }
  }

  #reconnected(h: Handle): void {
    this.#state = "connected";
    this.#log("info", "reconnected", { sessionId: h.session.id, handle: h.serial });
    this.#emit({ type: "reconnected", sessionId: h.session.id ?? "" });
    this.#wakeWaiters();
  }

  async #setup(h: Handle): Promise<void> {
    if (h.settingUp) return;
    h.settingUp = true;
    const session = h.session;
    try {
      if (!h.authAdded) {
        // Per handle; the C client re-sends them after each reconnect of the handle by itself.
        h.authAdded = true;
        for (const credential of this.#auth) {
          h.addAuth("digest", credential, (error) => {
            if (error) this.#log("error", "add_auth failed", { error: String(error) });
          });
        }
      }
      const root = this.#chroot.root;
      if (root !== "/" && !session.rootEnsured) {
        for (const prefix of prefixesOf(root)) {
          if ((await h.exists(prefix, prefix, false)) !== null) continue;
          try {
            await h.create(prefix, prefix, undefined, 0);
            if (this.#acl) await h.setAcl(prefix, prefix, this.#acl, -1);
          } catch (error) {
            if (!isNodeExists(error)) throw error;
          }
        }
        session.rootEnsured = true;
      }
      h.ready = true;
      if (h !== this.#handle || !h.up || h.dead || this.#closing) return;
      if (!session.announced) this.#announce(h);
      else if (this.#state === "suspended") this.#reconnected(h);
    } catch (error) {
      if (error === NOT_ISSUED || isConnectionLoss(error) || isSessionExpired(error) || isClosed(error)) {
        // The next "connect" (or the next handle) runs the setup again.
        return;
      }
      this.#log("error", "session setup failed", { error: String(error) });
      this.#fail(error as ZkgridError);
    } finally {
      h.settingUp = false;
    }
  }

  #announce(h: Handle): void {
    h.session.announced = true;
    this.#unreadySessions = 0;
    this.#state = "connected";
    this.#log("info", "session established", { sessionId: h.session.id, timeoutMs: h.negotiatedTimeoutMs });
    this.#firstReady.resolve();
    this.#emit({ type: "connected", sessionId: h.session.id ?? "" });
    this.#wakeWaiters();
  }

  /** Closes the client because of an error that retrying cannot fix. */
  #fail(error: ZkgridError): void {
    if (this.#closing) return;
    this.#fatal = error;
    this.#firstReady.reject(error);
    void this.close();
  }

  #isUsable(h: Handle | undefined): h is Handle {
    return h?.ready === true && h.session.announced && !h.session.ended && h.up && !h.dead;
  }

  #settleWaiter(w: Waiter): boolean {
    if (this.#closing) {
      w.cleanup();
      w.reject(
        this.#fatal
          ? new ClosedError({ path: w.path, cause: this.#fatal })
          : new ClosedError({ path: w.path }),
      );
      return true;
    }
    if (w.bound && (w.bound.ended || w.bound !== this.#handle?.session)) {
      w.cleanup();
      w.reject(new SessionExpiredError({ path: w.path }));
      return true;
    }
    const h = this.#handle;
    if (this.#isUsable(h)) {
      w.cleanup();
      w.resolve(h);
      return true;
    }
    return false;
  }

  #wakeWaiters(): void {
    for (const w of [...this.#waiters]) this.#settleWaiter(w);
  }

  #waitReady(options: {
    deadline: number;
    bound?: Session | undefined;
    signal?: AbortSignal | undefined;
    path?: string | undefined;
    lastError?: unknown;
  }): Promise<Handle> {
    return new Promise<Handle>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        waiter.cleanup();
        reject(new ClosedError({ path: options.path, message: "aborted", cause: options.signal?.reason }));
      };
      const waiter: Waiter = {
        resolve,
        reject,
        bound: options.bound,
        path: options.path,
        cleanup: () => {
          this.#waiters.delete(waiter);
          if (timer) clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      if (this.#settleWaiter(waiter)) return;
      this.#waiters.add(waiter);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (Number.isFinite(options.deadline)) {
        timer = setTimeout(
          () => {
            waiter.cleanup();
            reject(new OperationTimeoutError({ path: options.path, cause: options.lastError }));
          },
          Math.max(0, options.deadline - Date.now()),
        );
        timer.unref();
      }
    });
  }

  /** After a call the handle refused: give its pending events a chance to arrive. */
  async #pause(h: Handle): Promise<void> {
    if (!h.dead) h.up = false;
    await sleep(10);
  }

  /**
   * Runs `attempt` on a usable session. With `retry`, a ConnectionLoss waits for the reconnect and
   * tries again on the same session; the op is bound to the first session it was sent on, or from the
   * start to `bindTo`.
   */
  async #run<T>(
    path: string | undefined,
    retry: boolean,
    attempt: (h: Handle, retried: boolean) => Promise<T>,
    options: { deadline?: number; signal?: AbortSignal; bindTo?: Session | undefined } = {},
  ): Promise<T> {
    const deadline = options.deadline ?? Date.now() + this.#opTimeoutMs;
    let bound = options.bindTo;
    let sent = false;
    let lastError: unknown;
    for (;;) {
      const s = await this.#waitReady({ deadline, bound, signal: options.signal, path, lastError });
      try {
        return await attempt(s, sent);
      } catch (error) {
        if (error === NOT_ISSUED) {
          await this.#pause(s);
          continue;
        }
        sent = true;
        bound = s.session;
        if (retry && isConnectionLoss(error) && !this.#closing) {
          lastError = error;
          this.#log("debug", "retrying after connection loss", { path });
          continue;
        }
        throw error;
      }
    }
  }

  #onPath(abs: string, fn: () => void): () => void {
    let set = this.#pathListeners.get(abs);
    if (!set) {
      set = new Set();
      this.#pathListeners.set(abs, set);
    }
    set.add(fn);
    return () => {
      const current = this.#pathListeners.get(abs);
      if (!current) return;
      current.delete(fn);
      if (current.size === 0) this.#pathListeners.delete(abs);
    };
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
