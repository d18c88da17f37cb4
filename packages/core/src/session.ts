import type { EventEmitter } from "node:events";
import { loadAddon } from "./addon.js";
import {
  BadArgumentsError,
  ClosedError,
  Code,
  ConnectionLossError,
  NoNodeError,
  errorFromCode,
  SessionExpiredError,
  UnimplementedError,
  type ZkError,
} from "./errors.js";
import type { Acl, Stat } from "./types.js";

/** The addon's native handle: one ZooKeeper session at most, dead after close or expiry. */
interface NativeZk {
  init(config: Record<string, unknown>): unknown;
  close(): unknown;
  a_create(path: string, data: Buffer, flags: number, cb: Callback): number;
  a_exists(path: string, watch: boolean, cb: Callback): number;
  a_get(path: string, watch: boolean, cb: Callback): number;
  a_get_children2(path: string, watch: boolean, cb: Callback): number;
  a_set(path: string, data: Buffer, version: number, cb: Callback): number;
  a_delete_(path: string, version: number, cb: Callback): number;
  /** ZooKeeper 3.6's addWatch (mode 0 persistent, 1 recursive): only in an addon @zkgrid/core's install step patched. */
  a_add_watch?(path: string, mode: number, cb: Callback): number;
  a_get_acl(path: string, cb: Callback): number;
  a_set_acl(path: string, version: number, acl: NativeAcl[], cb: Callback): number;
  a_sync(path: string, cb: Callback): number;
  add_auth(scheme: string, auth: string, cb: Callback): number;
  readonly client_id: string;
  readonly client_password: string;
  readonly timeout: number;
}
interface AddonWrapper extends EventEmitter {
  native: NativeZk;
}
type Callback = (rc: number, message: string, ...rest: unknown[]) => void;
/** A Stat as the addon gives it: the times may come as Dates. */
type NativeStat = Omit<Stat, "ctime" | "mtime"> & { ctime: Date | number; mtime: Date | number };
interface NativeAcl {
  perm: number;
  scheme: string;
  auth: string;
}

/**
 * The addon closes its handle with -112 ("expired") after this many consecutive polls that returned
 * no complete reply (src/node-zk.cpp, zk_io_cb), without any server having said so, and it closes it
 * with zookeeper_close(): on a connected handle that sends a close-session request, so the server
 * ends the very session the client was keeping. A connected handle can poll thousands of times a
 * second without a reply (seen after reconnects), so any finite limit can end a healthy session. The
 * C client's own timers still detect a dead server and reconnect, and a server's refusal still
 * closes the handle as expired (main_watcher), so the counter is disabled (the largest int32).
 */
export const RESPONSE_COUNTER_LIMIT = 2_147_483_647;

/** What a ConnectionLossError says when the C client's code was not -4 itself. */
const LOSS_MESSAGES = new Map<number, string>([
  [Code.OPERATION_TIMEOUT, "connection loss (server timed out)"],
  [Code.RUNTIME_INCONSISTENCY, "connection loss (a reply out of order: the connection was dropped)"],
]);

/** Rejection reason for a call that never reached the server because the handle is unusable. */
export const NOT_ISSUED: unique symbol = Symbol("not issued");

export const ZOO_EPHEMERAL = 1;
export const ZOO_SEQUENCE = 2;

export type HandleSignal =
  | { type: "connect" }
  | { type: "disconnect" }
  | { type: "close"; code: number }
  /** The handle was closed because a call broke its socket; its session lives on. */
  | { type: "broken" }
  /** The server refused a request because it requires authentication this client lacks. */
  | { type: "auth-required" }
  | { type: "watch"; path: string; event: WatchEventType };

/** The kinds of watch event the addon emits, each with the path of the node it is about. */
export type WatchEventType = "created" | "deleted" | "changed" | "child";
const WATCH_EVENT_TYPES: readonly WatchEventType[] = ["created", "deleted", "changed", "child"];

/**
 * One ZooKeeper session as the server knows it. It outlives the addon handle that made it: a handle
 * that has to be dropped is replaced by one that resumes the same session (same id and password).
 */
export class Session {
  /** Hex session id, known from the first "connect". */
  id: string | undefined;
  password: string | undefined;
  /** "connected" was announced for this session. */
  announced = false;
  rootEnsured = false;
  /** Expired or closed: never usable again. */
  ended = false;
  /** Aborts when the session ends. */
  readonly controller = new AbortController();

  end(reason: unknown): void {
    this.ended = true;
    this.controller.abort(reason);
  }
}

export interface HandleConfig {
  connectString: string;
  sessionTimeoutMs: number;
  serial: number;
  session: Session;
  /** Called asynchronously (never inside the addon's callback) for every native event. */
  onSignal: (handle: Handle, signal: HandleSignal) => void;
}

/** zookeeper.h: the state nonblocking_send() leaves behind after it closed the socket itself. */
const ZOO_NOTCONNECTED_STATE = 999;

/** Session ids as lower-case hex without leading zeros, the form the addon gives `ephemeralOwner`. */
export function normalizeSessionId(id: string): string {
  try {
    return BigInt(`0x${id}`).toString(16);
  } catch {
    return id.toLowerCase();
  }
}

export function toStat(s: NativeStat): Stat {
  return {
    czxid: s.czxid,
    mzxid: s.mzxid,
    pzxid: s.pzxid,
    ctime: Number(s.ctime),
    mtime: Number(s.mtime),
    version: s.version,
    cversion: s.cversion,
    aversion: s.aversion,
    ephemeralOwner: normalizeSessionId(s.ephemeralOwner),
    dataLength: s.dataLength,
    numChildren: s.numChildren,
  };
}

function toBuffer(data: Uint8Array | string | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  if (typeof data === "string") return Buffer.from(data, "utf8");
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * One addon handle. It guards the addon's sharp edges: close is called at most once and, when we
 * choose the moment, never from inside one of the addon's callbacks; nothing is called on a dead
 * handle; a call the addon refuses synchronously (its callback would never run) is rejected at once.
 */
export class Handle {
  readonly serial: number;
  readonly session: Session;
  /** The transport is connected (as far as the last event or reply tells). */
  up = false;
  /** auth added (and root ensured) on this handle: ops may run. */
  ready = false;
  dead = false;
  closeRequested = false;
  /** Closed to be replaced by a handle on the same session. */
  abandoned = false;
  authAdded = false;
  settingUp = false;

  readonly #wrapper: AddonWrapper;
  readonly #native: NativeZk;
  readonly #onSignal: HandleConfig["onSignal"];
  #closePromise: Promise<void> | undefined;
  #closedResolve: (() => void) | undefined;
  readonly #closedPromise: Promise<void>;

  constructor(config: HandleConfig) {
    this.serial = config.serial;
    this.session = config.session;
    this.#onSignal = config.onSignal;
    this.#closedPromise = new Promise((resolve) => {
      this.#closedResolve = resolve;
    });
    const Addon = loadAddon() as new (config: Record<string, unknown>) => AddonWrapper;
    this.#wrapper = new Addon({});
    this.#native = this.#wrapper.native;
    const defer = (signal: HandleSignal) => setImmediate(() => this.#onSignal(this, signal));
    // The addon emits from inside zookeeper_process: a change of the connection's state is only queued here.
    this.#wrapper.on("connect", () => defer({ type: "connect" }));
    this.#wrapper.on("connecting", () => {
      this.up = false;
      defer({ type: "disconnect" });
    });
    this.#wrapper.on("close", (_handle: unknown, code: unknown) => {
      this.dead = true;
      this.up = false;
      this.#closedResolve?.();
      defer({ type: "close", code: typeof code === "number" ? code : 0 });
    });
    // A watch event only marks its watches dirty (they re-read from a promise's continuation, as a
    // reply's caller does): handled as it arrives, not a turn later behind the rest of the loop.
    for (const event of WATCH_EVENT_TYPES) {
      this.#wrapper.on(event, (_handle: unknown, path: unknown) => {
        if (typeof path === "string") this.#onSignal(this, { type: "watch", path, event });
      });
    }
    const resume = config.session.id !== undefined && config.session.password !== undefined;
    const result = this.#native.init({
      connect: config.connectString,
      timeout: config.sessionTimeoutMs,
      debug_level: 0, // the C client and the addon print to stdout/stderr otherwise
      host_order_deterministic: false,
      response_counter_limit: RESPONSE_COUNTER_LIMIT,
      ...(resume ? { client_id: config.session.id, client_password: config.session.password } : {}),
    });
    if (result instanceof Error) {
      this.dead = true;
      this.#closedResolve?.();
      throw new BadArgumentsError({ message: `cannot connect to "${config.connectString}"`, cause: result });
    }
  }

  /** The id of the session the handle holds (after a "connect"), with its password. */
  identity(): { id: string; password: string } | undefined {
    if (this.dead) return undefined;
    return { id: normalizeSessionId(this.#native.client_id), password: this.#native.client_password };
  }

  get negotiatedTimeoutMs(): number {
    return this.dead ? -1 : this.#native.timeout;
  }

  /**
   * Closes the handle once, outside any addon callback. Resolves when the addon reported the close.
   * The C client blocks the event loop while it says goodbye to a connected server (normally ~1 ms).
   */
  close(): Promise<void> {
    if (this.#closePromise) return this.#closePromise;
    this.closeRequested = true;
    this.#closePromise = new Promise<void>((resolve) => {
      setImmediate(() => {
        this.#closeNative();
        resolve();
      });
    });
    return this.#closePromise;
  }

  /** Resolves once the handle is closed, whoever closed it. */
  whenClosed(): Promise<void> {
    return this.#closedPromise;
  }

  #errorFor(rc: number, path: string | undefined): ZkError {
    if (rc === Code.CONNECTION_LOSS || rc === Code.OPERATION_TIMEOUT || rc === Code.RUNTIME_INCONSISTENCY) {
      // -7 is the C client giving up on a silent server; -2 is it dropping the connection on a reply it
      // cannot match to its request (xid out of order), which fails every call pending on it. Both are
      // the same "outcome unknown" as a loss, and the C client reconnects by itself after each.
      this.up = false;
      return new ConnectionLossError({ path, message: LOSS_MESSAGES.get(rc) });
    }
    if (rc === Code.SESSION_CLOSED_REQUIRE_AUTH) {
      setImmediate(() => this.#onSignal(this, { type: "auth-required" }));
    }
    if (rc === Code.CLOSING || rc === Code.SESSION_EXPIRED) {
      if (this.abandoned) return new ConnectionLossError({ path });
      if (this.closeRequested) return new ClosedError({ path });
      // CLOSING without our close: the addon gave the handle up on its own; the session may live on.
      return rc === Code.CLOSING ? new ConnectionLossError({ path }) : new SessionExpiredError({ path });
    }
    return errorFromCode(rc, path);
  }

  #call<T>(
    path: string | undefined,
    issue: (cb: Callback) => number,
    map: (rest: unknown[]) => T,
  ): Promise<T> {
    if (this.dead || this.closeRequested) return Promise.reject(NOT_ISSUED);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let rc: number;
      const before = this.#state();
      try {
        rc = issue((code, _message, ...rest) => {
          if (settled) return;
          settled = true;
          if (code === Code.OK) {
            try {
              resolve(map(rest));
            } catch (error) {
              reject(error);
            }
          } else {
            reject(this.#errorFor(code, path));
          }
        });
      } catch (error) {
        settled = true;
        reject(new BadArgumentsError({ path, cause: error }));
        return;
      }
      if (before !== ZOO_NOTCONNECTED_STATE && this.#state() === ZOO_NOTCONNECTED_STATE) this.#abandon();
      if (rc !== Code.OK && !settled) {
        // The addon returned synchronously: its callback will never run.
        settled = true;
        reject(rc === Code.INVALID_STATE ? NOT_ISSUED : this.#errorFor(rc, path));
      }
    });
  }

  #state(): number {
    return this.dead ? 0 : (this.#native as unknown as { state: number }).state;
  }

  /**
   * The call could not send and the C client closed the socket itself (nonblocking_send), while the
   * addon's poll may already be re-armed on that fd: libuv would abort() the process when it polls
   * next. Closing the handle now, before control returns to the loop, stops that poll; a new handle
   * then resumes the same session.
   */
  /** Closes the native handle, unless the addon already has, and marks this handle dead. */
  #closeNative(): void {
    if (!this.dead) {
      try {
        this.#native.close();
      } catch {
        // already closed by the addon itself
      }
    }
    this.dead = true;
    this.up = false;
    this.#closedResolve?.();
  }

  #abandon(): void {
    if (this.dead || this.closeRequested) return;
    this.abandoned = true;
    this.closeRequested = true;
    this.#closePromise = Promise.resolve();
    this.#closeNative();
    setImmediate(() => this.#onSignal(this, { type: "broken" }));
  }

  addAuth(scheme: string, credentials: string, onResult: (error: ZkError | undefined) => void): void {
    this.#call(
      undefined,
      (cb) => this.#native.add_auth(scheme, credentials, cb),
      () => undefined,
    ).then(
      () => onResult(undefined),
      (error: unknown) => {
        if (error !== NOT_ISSUED) onResult(error as ZkError);
      },
    );
  }

  create(path: string, rel: string, data: Uint8Array | string | undefined, flags: number): Promise<string> {
    return this.#call(
      rel,
      (cb) => this.#native.a_create(path, toBuffer(data), flags, cb),
      (rest) => rest[0] as string,
    );
  }

  exists(path: string, rel: string, watch: boolean): Promise<Stat | null> {
    return this.#call(
      rel,
      (cb) =>
        this.#native.a_exists(path, watch, (rc, message, ...rest) =>
          // An exists() on a missing node still arms the watch: NONODE is an answer, not an error.
          rc === Code.NO_NODE ? cb(Code.OK, message, null) : cb(rc, message, ...rest),
        ),
      (rest) => (rest[0] ? toStat(rest[0] as NativeStat) : null),
    );
  }

  get(path: string, rel: string, watch: boolean): Promise<{ data: Buffer; stat: Stat }> {
    return this.#call(
      rel,
      (cb) => this.#native.a_get(path, watch, cb),
      (rest) => ({
        stat: toStat(rest[0] as NativeStat),
        data: Buffer.isBuffer(rest[1]) ? rest[1] : Buffer.alloc(0),
      }),
    );
  }

  getChildren(path: string, rel: string, watch: boolean): Promise<{ children: string[]; stat: Stat }> {
    return this.#call(
      rel,
      (cb) => this.#native.a_get_children2(path, watch, cb),
      (rest) => ({
        children: ((rest[0] as string[] | null) ?? []).slice().sort(),
        stat: toStat(rest[1] as NativeStat),
      }),
    );
  }

  set(path: string, rel: string, data: Uint8Array | string, version: number): Promise<Stat> {
    return this.#call(
      rel,
      (cb) => this.#native.a_set(path, toBuffer(data), version, cb),
      (rest) => toStat(rest[0] as NativeStat),
    );
  }

  delete(path: string, rel: string, version: number): Promise<void> {
    return this.#call(
      rel,
      (cb) => this.#native.a_delete_(path, version, cb),
      () => undefined,
    );
  }

  /** Whether this handle can add persistent watches: its addon carries @zkgrid/core's install-step patch. */
  get canAddWatch(): boolean {
    return typeof this.#native.a_add_watch === "function";
  }

  /**
   * Adds a persistent watch on `path` (recursive: on every node under it too), which fires on every
   * change until this handle's connection ends: the server drops it with the connection, so the caller
   * adds it again after each reconnect. Its events come as watch signals for the changed node's path.
   */
  addWatch(path: string, rel: string, recursive: boolean): Promise<void> {
    const add = this.#native.a_add_watch?.bind(this.#native);
    if (add === undefined)
      return Promise.reject(
        new UnimplementedError({ path: rel, message: "this addon cannot add persistent watches" }),
      );
    return this.#call(
      rel,
      (cb) => add(path, recursive ? 1 : 0, cb),
      () => undefined,
    );
  }

  sync(path: string, rel: string): Promise<void> {
    return this.#call(
      rel,
      (cb) => this.#native.a_sync(path, cb),
      () => undefined,
    );
  }

  async getAcl(path: string, rel: string): Promise<{ acl: Acl[]; stat: Stat }> {
    // The addon frees the ACL of a failed getAcl without checking it exists, which crashes the
    // process (SIGSEGV): a missing node is answered here instead. A node deleted between the two
    // calls, or a connection lost while the second is in flight, can still crash it.
    if ((await this.exists(path, rel, false)) === null) throw new NoNodeError({ path: rel });
    return this.#call(
      rel,
      (cb) => this.#native.a_get_acl(path, cb),
      (rest) => ({
        acl: ((rest[0] as Array<{ perms: number; scheme: string; auth: string }> | null) ?? []).map((a) => ({
          perms: a.perms,
          scheme: a.scheme,
          id: a.auth,
        })),
        stat: toStat(rest[1] as NativeStat),
      }),
    );
  }

  setAcl(path: string, rel: string, acl: Acl[], version: number): Promise<void> {
    const native = acl.map((a) => ({ perm: a.perms, scheme: a.scheme, auth: a.id }));
    return this.#call(
      rel,
      (cb) => this.#native.a_set_acl(path, version, native, cb),
      () => undefined,
    );
  }
}

export { toBuffer };
