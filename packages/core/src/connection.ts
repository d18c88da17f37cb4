import type { ZkgridError } from "@zkgrid/errors";
import { nodeAcl } from "./acl.js";
import { warnIfUnpatched } from "./addon.js";
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
  isSessionExpired,
  OperationTimeoutError,
  SessionExpiredError,
} from "./errors.js";
import { Chroot, normalizeRoot, prefixesOf } from "./paths.js";
import { Handle, type HandleSignal, NOT_ISSUED, Session, type WatchEventType } from "./session.js";
import { sleep } from "./sleep.js";
import type {
  Acl,
  ConnectionEvent,
  ConnectionEventType,
  ConnectionState,
  ConnectOptions,
  Logger,
  LogLevel,
} from "./types.js";

/**
 * The connection state machine: one ZooKeeper handle at a time, the session it carries, the state
 * (`connected`, `suspended`, `expired`, `closed`) and its events, and the waiting and retrying of
 * operations across reconnects and expiries. The operations, watches and recipes run on it through
 * `ClientCore`. Not public API.
 */

/**
 * What operations, watches, elections and the recipes need from the connection. Not public API.
 * @internal
 */
export interface ClientCore {
  readonly chroot: Chroot;
  /** Set on every node this client creates; undefined: nodes keep the open ACL. */
  readonly acl: Acl[] | undefined;
  readonly opTimeoutMs: number;
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  isClosing(): boolean;
  /** Runs `attempt` on a ready session within the op timeout (see Connection.run); `bindTo`: only on that session. */
  run<T>(
    rel: string | undefined,
    retry: boolean,
    attempt: (h: Handle, retried: boolean) => Promise<T>,
    options: { deadline?: number; signal?: AbortSignal; bindTo?: Session | undefined },
  ): Promise<T>;
  /** Runs `attempt` on a ready session, waiting for one as long as `signal` allows (no op timeout). */
  runForever<T>(rel: string, attempt: (h: Handle) => Promise<T>, signal: AbortSignal): Promise<T>;
  /** Waits for a ready session without a deadline; resolves with the handle to use. */
  waitReady(signal: AbortSignal): Promise<Handle>;
  /** Waits for a ready session (on `bound` only, if given) until `deadline`. */
  waitFor(options: WaitOptions): Promise<Handle>;
  /**
   * The handle an op can be sent on at once, or undefined when `waitFor` must decide (it waits for a
   * session, or refuses: closing, aborted, a bound session gone). Every op path takes it before
   * `waitFor`, so that calls made in one turn go out in the order made, before the turn ends.
   */
  usableNow(bound: Session | undefined, signal: AbortSignal | undefined): Handle | undefined;
  /** After a call the handle refused: give its pending events a chance to arrive. */
  pause(h: Handle): Promise<void>;
  /**
   * `fn` runs on every watch event for the server path `abs`, as the event arrives: inside the addon's
   * callback, so it only marks or resolves something, and never calls the addon itself.
   */
  onPath(abs: string, fn: () => void): () => void;
  /**
   * `fn` runs on every watch event for a child of the server path `abs` (only a persistent recursive
   * watch sends those), with the child's name and the event's kind; inside the addon's callback, as
   * onPath's listeners.
   */
  onChildEvent(abs: string, fn: (name: string, event: WatchEventType) => void): () => void;
  /** Internal listener for connection events; runs before the public ones. */
  onConnection(fn: (ev: ConnectionEvent) => void): () => void;
  /** `fn` runs when close() starts, before the session ends. */
  onClosing(fn: () => void): () => void;
}

export interface WaitOptions {
  deadline: number;
  bound?: Session | undefined;
  signal?: AbortSignal | undefined;
  path?: string | undefined;
  lastError?: unknown;
}

interface Waiter {
  resolve: (h: Handle) => void;
  reject: (e: unknown) => void;
  bound: Session | undefined;
  path: string | undefined;
  cleanup: () => void;
}

type Listener = (ev: ConnectionEvent) => void;

function parseAuth(auth: string | string[] | undefined): string[] {
  const list = auth === undefined ? [] : Array.isArray(auth) ? auth : [auth];
  for (const credential of list) {
    if (typeof credential !== "string" || credential.indexOf(":") <= 0) {
      throw new BadArgumentsError({ message: 'auth must be digest credentials "user:password"' });
    }
  }
  return list;
}

/** See the module comment. One per ZkClient. */
export class Connection implements ClientCore {
  readonly #connectString: string;
  readonly #sessionTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly opTimeoutMs: number;
  readonly #auth: string[];
  readonly acl: Acl[] | undefined;
  readonly #logger: Logger | undefined;
  readonly #connectSignal: AbortSignal | undefined;
  readonly chroot: Chroot;

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
  /** True from waking waiters until their ops have gone out (see usableNow). */
  #waking = false;
  readonly #pathListeners = new Map<string, Set<() => void>>();
  readonly #childListeners = new Map<string, Set<(name: string, event: WatchEventType) => void>>();

  get connectString(): string {
    return this.#connectString;
  }

  constructor(options: ConnectOptions) {
    if (!options || typeof options.connectString !== "string" || options.connectString === "") {
      throw new BadArgumentsError({ message: "connectString is required" });
    }
    this.#connectString = options.connectString;
    this.#sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.opTimeoutMs = options.opTimeoutMs ?? 2 * this.#sessionTimeoutMs;
    this.#auth = parseAuth(options.auth);
    this.acl = nodeAcl(this.#auth, options.acl);
    this.#logger = options.logger;
    this.#connectSignal = options.signal;
    this.chroot = new Chroot(normalizeRoot(options.root));
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
  }

  /** Opens the first session; rejects (and closes) if none is ready within connectTimeoutMs. */
  async start(): Promise<void> {
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
      warnIfUnpatched((level, msg, fields) => this.log(level, msg, fields));
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
    return this.chroot.root;
  }

  /** Listens to one event type ("*" for all); returns the unsubscribe function. */
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
    const unsubscribe = this.on("*", (ev: ConnectionEvent) => {
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
        this.log("error", "close hook threw", { error: String(hookError) });
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
      this.log("info", "closing session", { sessionId: handle.session.id });
      handle.session.end(new ClosedError());
      await handle.close();
    }
    this.#emit({ type: "closed" });
    this.#pathListeners.clear();
    this.#childListeners.clear();
    this.#resolveClosed();
  }

  /** The current session, if it is announced and has not ended. */
  get currentSession(): Session | undefined {
    const s = this.#handle?.session;
    return s?.announced && !s.ended ? s : undefined;
  }

  isClosing(): boolean {
    return this.#closing;
  }

  runForever<T>(rel: string, attempt: (h: Handle) => Promise<T>, signal: AbortSignal): Promise<T> {
    return this.run(rel, true, (s) => attempt(s), { deadline: Number.POSITIVE_INFINITY, signal });
  }

  waitReady(signal: AbortSignal): Promise<Handle> {
    return this.waitFor({ deadline: Number.POSITIVE_INFINITY, signal });
  }

  onConnection(fn: (ev: ConnectionEvent) => void): () => void {
    this.#internalListeners.add(fn);
    return () => this.#internalListeners.delete(fn);
  }

  onClosing(fn: () => void): () => void {
    this.#closingHooks.add(fn);
    return () => this.#closingHooks.delete(fn);
  }

  // ---- session machinery ---------------------------------------------------------------------

  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
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
        this.log("error", "connection listener threw", { event: ev.type, error: String(error) });
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
    this.log("debug", session.id ? "resuming session on a new handle" : "connecting", {
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
        this.log("warn", "connection broke during a call; resuming the session on a new handle", {
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
          this.log("error", "authentication failed; closing the client", { sessionId: session.id });
          this.#fail(new AuthFailedError());
          return;
        }
        session.end(new SessionExpiredError());
        if (session.announced) {
          this.#state = "expired";
          this.log("warn", "session expired; making a new one", {
            sessionId: session.id,
            code: signal.code,
          });
          this.#emit({ type: "expired", sessionId: session.id ?? "" });
        } else {
          this.log("warn", "handle closed before its session was ready; retrying", { code: signal.code });
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
        this.log("error", "the server requires authentication; closing the client", {
          sessionId: session.id,
        });
        this.#fail(new AuthRequiredError());
        return;
      case "watch": {
        const fns = this.#pathListeners.get(signal.path);
        if (fns) for (const fn of [...fns]) fn();
        if (this.#childListeners.size > 0) {
          const slash = signal.path.lastIndexOf("/");
          const parent = slash <= 0 ? "/" : signal.path.slice(0, slash);
          const children = this.#childListeners.get(parent);
          if (children) {
            const name = signal.path.slice(slash + 1);
            for (const fn of [...children]) fn(name, signal.event);
          }
        }
        return;
      }
    }
  }

  #suspend(session: Session): void {
    if (session.announced && this.#state === "connected") {
      this.#state = "suspended";
      this.log("warn", "connection lost; session may still be alive", { sessionId: session.id });
      this.#emit({ type: "suspended" });
    }
  }

  #reconnected(h: Handle): void {
    this.#state = "connected";
    this.log("info", "reconnected", { sessionId: h.session.id, handle: h.serial });
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
            if (error) this.log("error", "add_auth failed", { error: String(error) });
          });
        }
      }
      const root = this.chroot.root;
      if (root !== "/" && !session.rootEnsured) {
        for (const prefix of prefixesOf(root)) {
          if ((await h.exists(prefix, prefix, false)) !== null) continue;
          try {
            await h.create(prefix, prefix, undefined, 0);
            if (this.acl) await h.setAcl(prefix, prefix, this.acl, -1);
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
      this.log("error", "session setup failed", { error: String(error) });
      this.#fail(error as ZkgridError);
    } finally {
      h.settingUp = false;
    }
  }

  #announce(h: Handle): void {
    h.session.announced = true;
    this.#unreadySessions = 0;
    this.#state = "connected";
    this.log("info", "session established", { sessionId: h.session.id, timeoutMs: h.negotiatedTimeoutMs });
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
    if (this.#waiters.size === 0) return;
    for (const w of [...this.#waiters]) this.#settleWaiter(w);
    // The woken ops go out as their awaits resume; a call made before then waits its turn behind them.
    this.#waking = true;
    queueMicrotask(() => {
      this.#waking = false;
    });
  }

  waitFor(options: WaitOptions): Promise<Handle> {
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
  async pause(h: Handle): Promise<void> {
    if (!h.dead) h.up = false;
    await sleep(10);
  }

  usableNow(bound: Session | undefined, signal: AbortSignal | undefined): Handle | undefined {
    if (this.#closing || this.#waking || this.#waiters.size > 0 || signal?.aborted) return undefined;
    const h = this.#handle;
    if (bound && (bound.ended || bound !== h?.session)) return undefined;
    return this.#isUsable(h) ? h : undefined;
  }

  /**
   * Runs `attempt` on a usable session. With `retry`, a ConnectionLoss waits for the reconnect and
   * tries again on the same session; the op is bound to the first session it was sent on, or from the
   * start to `bindTo`. With a session ready, the first attempt is sent before `run` returns: an op goes
   * out in the order it was called, ahead of whatever the caller does next in the same turn (a
   * lone task's answer is not held back by the bookkeeping after it).
   */
  async run<T>(
    path: string | undefined,
    retry: boolean,
    attempt: (h: Handle, retried: boolean) => Promise<T>,
    options: { deadline?: number; signal?: AbortSignal; bindTo?: Session | undefined } = {},
  ): Promise<T> {
    const deadline = options.deadline ?? Date.now() + this.opTimeoutMs;
    let bound = options.bindTo;
    let sent = false;
    let lastError: unknown;
    for (;;) {
      const s =
        this.usableNow(bound, options.signal) ??
        (await this.waitFor({ deadline, bound, signal: options.signal, path, lastError }));
      try {
        return await attempt(s, sent);
      } catch (error) {
        if (error === NOT_ISSUED) {
          await this.pause(s);
          continue;
        }
        sent = true;
        bound = s.session;
        if (retry && isConnectionLoss(error) && !this.#closing) {
          lastError = error;
          this.log("debug", "retrying after connection loss", { path });
          continue;
        }
        throw error;
      }
    }
  }

  onPath(abs: string, fn: () => void): () => void {
    return listen(this.#pathListeners, abs, fn);
  }

  onChildEvent(abs: string, fn: (name: string, event: WatchEventType) => void): () => void {
    return listen(this.#childListeners, abs, fn);
  }
}

/** Adds `fn` to the listeners of `key`; returns what removes it (and the key, once it has none). */
function listen<F>(listeners: Map<string, Set<F>>, key: string, fn: F): () => void {
  let set = listeners.get(key);
  if (!set) {
    set = new Set();
    listeners.set(key, set);
  }
  set.add(fn);
  return () => {
    const current = listeners.get(key);
    if (!current) return;
    current.delete(fn);
    if (current.size === 0) listeners.delete(key);
  };
}
