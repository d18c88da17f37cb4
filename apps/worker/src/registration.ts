import {
  isBadVersion,
  isNodeExists,
  isNoNode,
  isRetryable,
  type Logger,
  type SessionBoundClient,
  sleep,
  type Stat,
  type ZkClient,
} from "@zkgrid/core";
import {
  decodeWorkerRegistration,
  encodeWorkerRegistration,
  type WorkerRegistration,
} from "@zkgrid/protocol";
import { type NameHolder, WorkerNameTakenError } from "./errors.js";

export interface ClaimNameOptions {
  client: ZkClient;
  /** `R/workers/<name>`, relative to the client's root. */
  path: string;
  /** `R/reports/<name>@<session>`: created before the registration, so that every report has a home. */
  reportDir: string;
  /** `R/inbox/<name>@<session>`: made with the report dir, so a registered session always has one. */
  inboxDir: string;
  registration: WorkerRegistration;
  /** How long a name held by another session may take to be released (a crashed worker's session timeout). */
  waitMs: number;
  /** Aborts when the session ends. */
  signal: AbortSignal;
  logger: Logger;
}

const RETRY_MS = 200;

function holderOf(stat: Stat, data: Buffer): NameHolder {
  const decoded = decodeWorkerRegistration(data);
  return decoded.ok
    ? { host: decoded.value.host, pid: decoded.value.pid, session: stat.ephemeralOwner }
    : { session: stat.ephemeralOwner };
}

async function readName(client: ZkClient, path: string): Promise<{ stat: Stat; data: Buffer } | null> {
  try {
    return await client.get(path);
  } catch (error) {
    if (isNoNode(error)) return null;
    throw error;
  }
}

/** Resolves once `path` is gone or no longer owned by `owner`, or at `deadline`, or on abort. */
async function waitForRelease(
  client: ZkClient,
  path: string,
  owner: string,
  deadline: number,
  signal: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(Math.max(0, deadline - Date.now()));
  for await (const change of client.watchData(path, { signal: AbortSignal.any([signal, timeout]) })) {
    if (change === null || change.stat.ephemeralOwner !== owner) return;
  }
}

/**
 * Registers the worker on this session: creates its report dir, then the ephemeral `R/workers/<name>`.
 * A name held by another session is waited for up to `waitMs` (a crashed worker's session ends by
 * then); if it is still held, throws `WorkerNameTakenError` naming the holder.
 */
export async function claimWorkerName(options: ClaimNameOptions): Promise<void> {
  const { client, path, reportDir, inboxDir, registration, signal, logger } = options;
  const session = registration.session;
  const data = encodeWorkerRegistration(registration);
  let deadline: number | undefined;
  while (!signal.aborted) {
    try {
      const held = await readName(client, path);
      if (held !== null && held.stat.ephemeralOwner !== session) {
        const holder = holderOf(held.stat, held.data);
        deadline ??= Date.now() + options.waitMs;
        if (Date.now() >= deadline) throw new WorkerNameTakenError(registration.name, holder);
        logger(
          "info",
          `name is held by session ${holder.session}; waiting up to ${deadline - Date.now()} ms`,
          {
            session,
          },
        );
        await waitForRelease(client, path, held.stat.ephemeralOwner, deadline, signal);
        continue;
      }
      await Promise.all([client.ensurePath(reportDir), client.ensurePath(inboxDir)]);
      if (held === null) {
        await client.ensurePath(path.slice(0, path.lastIndexOf("/")));
        try {
          await client.create(path, data, "ephemeral");
        } catch (error) {
          if (isNodeExists(error)) continue;
          throw error;
        }
      }
      // A leader taking over may have fenced the report dir while this session was not yet registered;
      // the session is registered now, so making the dir again is safe.
      if ((await client.exists(reportDir)) === null) await client.ensurePath(reportDir);
      if ((await client.exists(inboxDir)) === null) await client.ensurePath(inboxDir);
      return;
    } catch (error) {
      // A lost reply may hide a create that happened: the next round finds the node owned by this session.
      if (!isRetryable(error)) throw error;
      await sleep(RETRY_MS);
    }
  }
}

/** Deletes `R/workers/<name>` if this session owns it. */
export async function releaseWorkerName(client: ZkClient, path: string, session: string): Promise<void> {
  for (;;) {
    try {
      const stat = await client.exists(path);
      if (stat?.ephemeralOwner === session) await client.delete(path, stat.version);
      return;
    } catch (error) {
      if (isNoNode(error)) return;
      // A capacity rewrite landed between the read and the delete: read it again.
      if (!isBadVersion(error)) throw error;
    }
  }
}

/**
 * Rewrites `R/workers/<name>` (a new capacity) if the registration's session owns it. Returns false
 * if it does not (the session ended, or another holds the name).
 */
export async function rewriteRegistration(
  client: ZkClient | SessionBoundClient,
  path: string,
  registration: WorkerRegistration,
): Promise<boolean> {
  const stat = await client.exists(path);
  if (stat?.ephemeralOwner !== registration.session) return false;
  await client.set(path, encodeWorkerRegistration(registration), stat.version);
  return true;
}
