import type { EventEmitter } from "node:events";
import ZooKeeperAddon from "zookeeper";
import {
  BadArgumentsError,
  ClosedError,
  Code,
  ConnectionLossError,
  errorFromCode,
  SessionExpiredError,
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
interface NativeStat {
  czxid: number;
  mzxid: number;
  pzxid: number;
  ctime: Date | number;
  mtime: Date | number;
  version: number;
  cversion: number;
  aversion: number;
  ephemeralOwner: string;
  dataLength: number;
  numChildren: number;
}
interface NativeAcl {
  perm: number;
  scheme: string;
  auth: string;
}

const Addon = ZooKeeperAddon as unknown as new (config: Record<string, unknown>) => AddonWrapper;

/**
 * The addon closes its handle with -112 ("expired") after this many consecutive reads that
 * returned no complete reply (src/node-zk.cpp, zk_io_cb). Its default of 10 is hit by any reply of a
 * few hundred KiB (the reply arrives in many partial reads), which turns a large getData into a false
 * session expiry. 10 000 covers a 1 MiB reply read in segments of ~100 bytes while still ending the
 * busy loop the counter was made for (yfinkelstein/node-zookeeper#172, #228, #233) within milliseconds.
 */
export const RESPONSE_COUNTER_LIMIT = 10_000;

/** Rejection reason for a call that never reached the server because the handle is unusable. */
export const NOT_ISSUED: unique symbol = Symbol("not issued");

export const ZOO_EPHEMERAL = 1;
export const ZOO_SEQUENCE = 2;

export type SessionSignal =
  | { type: "connect" }
  | { type: "disconnect" }
  | { type: "close"; code: number }
  | { type: "watch"; path: string };

export interface SessionConfig {
  connectString: string;
  sessionTimeoutMs: number;
  serial: number;
  /** Called asynchronously (never inside the addon's callback) for every native event. */
  onSignal: (session: Session, signal: SessionSignal) => void;
}

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
 * One addon handle, i.e. one ZooKeeper session. It guards the addon's sharp edges: close is called at
 * most once and never from inside one of the addon's callbacks; nothing is called on a dead handle;
 * a call the addon refuses synchronously (its callback would never run) is rejected at once.
 */
export class Session {
  readonly serial: number;
  readonly controller = new AbortController();
  /** Hex session id, known from the first "connect". */
  id: string | undefined;
  password: string | undefined;
  /** The transport is connected (as far as the last event or reply tells). */
  up = false;
  /** auth added and root ensured: ops may run. */
  ready = false;
  /** "connected" was announced for this session. */
  announced = false;
  dead = false;
  closeRequested = false;
  authAdded = false;
  settingUp = false;

  readonly #wrapper: AddonWrapper;
  readonly #native: NativeZk;
  readonly #onSignal: SessionConfig["onSignal"];
  #closePromise: Promise<void> | undefined;
  #closedResolve: (() => void) | undefined;
  readonly #closedPromise: Promise<void>;

  constructor(config: SessionConfig) {
    this.serial = config.serial;
    this.#onSignal = config.onSignal;
    this.#closedPromise = new Promise((resolve) => {
      this.#closedResolve = resolve;
    });
    this.#wrapper = new Addon({});
    this.#native = this.#wrapper.native;
    const defer = (signal: SessionSignal) => setImmediate(() => this.#onSignal(this, signal));
    // The addon emits from inside zookeeper_process: only queue here.
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
    for (const type of ["created", "deleted", "changed", "child"]) {
      this.#wrapper.on(type, (_handle: unknown, path: unknown) => {
        if (typeof path === "string") defer({ type: "watch", path });
      });
    }
    const result = this.#native.init({
      connect: config.connectString,
      timeout: config.sessionTimeoutMs,
      debug_level: 0, // the C client and the addon print to stdout/stderr otherwise
      host_order_deterministic: false,
      response_counter_limit: RESPONSE_COUNTER_LIMIT,
    });
    if (result instanceof Error) {
      this.dead = true;
      this.#closedResolve?.();
      throw new BadArgumentsError({ message: `cannot connect to "${config.connectString}"`, cause: result });
    }
  }

  /** Reads the id and password of the session the handle holds (after a "connect"). */
  captureIdentity(): void {
    if (this.dead) return;
    this.id = normalizeSessionId(this.#native.client_id);
    this.password = this.#native.client_password;
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
    this.controller.abort(new ClosedError());
    this.#closePromise = new Promise<void>((resolve) => {
      setImmediate(() => {
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
    if (rc === Code.CONNECTION_LOSS || rc === Code.OPERATION_TIMEOUT) {
      // -7 is the C client giving up on a silent server: the same "outcome unknown" as a loss.
      this.up = false;
      return new ConnectionLossError({
        path,
        message: rc === Code.OPERATION_TIMEOUT ? "connection loss (server timed out)" : undefined,
      });
    }
    if (rc === Code.CLOSING || rc === Code.SESSION_EXPIRED) {
      return this.closeRequested ? new ClosedError({ path }) : new SessionExpiredError({ path });
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
      if ((this.#native as unknown as { state: number }).state === 999) process.stderr.write(`SOCKET CLOSED BY CALL rc=${rc}\n`);
      if (rc !== Code.OK && !settled) {
        // The addon returned synchronously: its callback will never run.
        settled = true;
        reject(rc === Code.INVALID_STATE ? NOT_ISSUED : this.#errorFor(rc, path));
      }
    });
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

  sync(path: string, rel: string): Promise<void> {
    return this.#call(
      rel,
      (cb) => this.#native.a_sync(path, cb),
      () => undefined,
    );
  }

  getAcl(path: string, rel: string): Promise<{ acl: Acl[]; stat: Stat }> {
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
