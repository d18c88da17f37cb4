/**
 * The recipes built on the connection: a create that survives a lost reply (protected), a path made
 * with its ancestors, the client's ACL put on what it creates, and an action kept running across
 * sessions. Leader election, also a recipe, has its own module (election.ts).
 */
import { randomUUID } from "node:crypto";
import type { ClientCore } from "./connection.js";
import {
  ClosedError,
  isClosed,
  isConnectionLoss,
  isNodeExists,
  isNoNode,
  isSessionExpired,
  OperationTimeoutError,
} from "./errors.js";
import { modeFlags } from "./modes.js";
import { basenameOf, joinPath, parentOf, prefixesOf, validatePath } from "./paths.js";
import { NOT_ISSUED, type Session, ZOO_EPHEMERAL, ZOO_SEQUENCE } from "./session.js";
import { sleep } from "./sleep.js";
import type { CreateMode, Data, KeepRunningContext } from "./types.js";

/**
 * Runs `action` for the current session and again for every new session (after an expiry), e.g. to
 * re-create ephemeral nodes. `ctx.signal` aborts when that session ends. A run that fails with a
 * connection error is retried (with a backoff); SessionExpiredError moves on to the next session.
 * Resolves when an action returns "completed", when `options.signal` aborts, or when the client
 * closes; rejects if an action throws anything else.
 */
export async function keepRunning<C>(
  core: ClientCore,
  client: C,
  // biome-ignore lint/suspicious/noConfusingVoidType: an action that returns nothing is the common case
  action: (ctx: KeepRunningContext<C>) => Promise<void | "completed">,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const outer = options.signal;
  let backoff = 0;
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort(outer?.reason);
  outer?.addEventListener("abort", onOuterAbort, { once: true });
  const offClose = core.onConnection((ev) => {
    if (ev.type === "closed") stop.abort(new ClosedError());
  });
  if (outer?.aborted || core.isClosing()) stop.abort();
  try {
    while (!stop.signal.aborted) {
      let session: Session;
      try {
        session = (await core.waitReady(stop.signal)).session;
      } catch (error) {
        if (stop.signal.aborted || isClosed(error)) return;
        throw error;
      }
      const signal = AbortSignal.any([session.controller.signal, stop.signal]);
      try {
        const result = await action({ client, sessionId: session.id ?? "", signal });
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
          core.log("warn", "keepRunning action hit a connection error; retrying", {
            error: String(error),
            backoffMs: backoff,
          });
          await sleep(backoff, stop.signal);
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

/**
 * Creates `<dir>/_c_<uuid>-<name>`. If the reply is lost with the connection, it lists `<dir>` after
 * the reconnect and returns its own node if the create happened, instead of creating a duplicate.
 * A persistent node whose session expired before the reply is looked for (and created if absent) on
 * the next session; use `boundTo()` for a create that must never outlive its session.
 */
export async function createProtected(...args: ProtectedCreate): Promise<string> {
  const created = await createProtectedNode(...args);
  await protect(args[0], created);
  return created;
}

type ProtectedCreate = [
  core: ClientCore,
  path: string,
  data: Data | undefined,
  mode: CreateMode,
  options: { signal?: AbortSignal; bindTo?: Session | undefined },
];

async function createProtectedNode(...[core, path, data, mode, options]: ProtectedCreate): Promise<string> {
  const flags = modeFlags(mode);
  validatePath(path, { allowTrailingSlash: (flags & ZOO_SEQUENCE) !== 0 });
  const ephemeral = (flags & ZOO_EPHEMERAL) !== 0;
  const dir = path.endsWith("/") && path !== "/" ? path.slice(0, -1) : parentOf(path);
  const prefix = `_c_${randomUUID()}-`;
  const name = prefix + (path.endsWith("/") ? "" : basenameOf(path));
  const target = joinPath(dir, name);
  const absTarget = core.chroot.toServer(target);
  const absDir = core.chroot.toServer(dir);
  const deadline = options.signal ? Number.POSITIVE_INFINITY : Date.now() + core.opTimeoutMs;
  let firstSession: Session | undefined;
  let lastError: unknown;
  for (;;) {
    // An ephemeral node lives and dies with its session: never look for it (or retry) in another one.
    const bound = options.bindTo ?? (ephemeral ? firstSession : undefined);
    const s =
      core.usableNow(bound, options.signal) ??
      (await core.waitFor({ deadline, bound, signal: options.signal, path: target, lastError }));
    if (firstSession) {
      try {
        const { children } = await s.getChildren(absDir, dir, false);
        const mine = children.find((child) => child.startsWith(prefix));
        if (mine !== undefined) {
          core.log("debug", "protected create found its node after a lost reply", { path: target });
          return joinPath(dir, mine);
        }
      } catch (error) {
        if (error === NOT_ISSUED || isConnectionLoss(error)) {
          lastError = error;
          await core.pause(s);
          continue;
        }
        if (isSessionExpired(error) && !ephemeral && !options.bindTo) continue;
        if (!isNoNode(error)) throw error;
      }
    }
    try {
      return core.chroot.fromServer(await s.create(absTarget, target, data, flags));
    } catch (error) {
      if (error === NOT_ISSUED) {
        await core.pause(s);
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
export async function ensurePath(
  core: ClientCore,
  path: string,
  options: { signal?: AbortSignal; bindTo?: Session | undefined },
): Promise<void> {
  validatePath(path);
  const abs = core.chroot.toServer(path);
  if (abs === "/") return;
  const runOptions = {
    bindTo: options.bindTo,
    ...(options.signal ? { deadline: Number.POSITIVE_INFINITY, signal: options.signal } : {}),
  };
  if ((await core.run(path, true, (s) => s.exists(abs, path, false), runOptions)) !== null) return;
  for (const prefix of prefixesOf(abs)) {
    const rel = core.chroot.fromServer(prefix);
    let created = false;
    await core.run(
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
    if (created) await protect(core, rel);
  }
}

/**
 * Puts this client's ACL on a node it has just created (the addon cannot create with an ACL): until
 * then the node has the open ACL. A node already gone (consumed, or an ephemeral of an ended
 * session) needs nothing.
 */
export async function protect(core: ClientCore, path: string): Promise<void> {
  const acl = core.acl;
  if (acl === undefined) return;
  for (;;) {
    try {
      const abs = core.chroot.toServer(path);
      await core.run(path, true, (s) => s.setAcl(abs, path, acl, -1), {});
      return;
    } catch (error) {
      if (isNoNode(error)) return;
      // A persistent node outlives the session it was made on: set it on the next one.
      if (!isSessionExpired(error)) throw error;
    }
  }
}
