import ZooKeeper from "zookeeper";
import { SessionExpiryError } from "./errors.js";

/** A session's id and password as the `zookeeper` addon shows them (`client_id`, `client_password`). */
export interface SessionCredentials {
  /** Hex session id. */
  id: string;
  /** Hex password (32 characters). */
  password: string;
}

export interface ExpireSessionOptions {
  /** Give up after this long (default 30 000 ms). */
  timeoutMs?: number;
}

/** The part of the addon's handle used here. */
interface RawHandle {
  init(config: object): unknown;
  close(): unknown;
  once(event: "connect", listener: () => void): unknown;
  once(event: "close", listener: (handle: unknown, code: number) => void): unknown;
}

const ZOO_EXPIRED_SESSION_STATE = -112;

/**
 * Makes the server expire a client's session, the standard way (kazoo, Curator's KillSession): attach a
 * second handle to the same session id and password, then close it, which closes the session for good.
 * The original handle then sees its session expire when it reconnects. Resolves once an attach with the
 * same credentials is refused as expired, i.e. the server has really ended the session and its ephemerals.
 */
export async function expireSession(
  connectString: string,
  session: SessionCredentials,
  options: ExpireSessionOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new SessionExpiryError(
        `session 0x${session.id} on ${connectString} still alive after ${timeoutMs} ms`,
      );
    }
    // "attached-and-closed": the close ended the session; the next round confirms it.
    if ((await attachAndClose(connectString, session, remaining)) === "expired") return;
  }
}

function attachAndClose(
  connectString: string,
  session: SessionCredentials,
  timeoutMs: number,
): Promise<"expired" | "attached-and-closed"> {
  return new Promise((resolve, reject) => {
    const handle = new ZooKeeper({
      connect: connectString,
      timeout: 10_000,
      client_id: session.id,
      client_password: session.password,
    }) as unknown as RawHandle;
    // The addon crashes on a second close, so exactly one path may close it.
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      handle.close();
      reject(new SessionExpiryError(`could not attach to session 0x${session.id} on ${connectString}`));
    }, timeoutMs);
    handle.once("connect", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      handle.close();
      resolve("attached-and-closed");
    });
    handle.once("close", (_handle, code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (code === ZOO_EXPIRED_SESSION_STATE) resolve("expired");
      else reject(new SessionExpiryError(`attach to session 0x${session.id} closed with code ${code}`));
    });
    handle.init({});
  });
}
