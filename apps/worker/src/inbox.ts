import {
  isBadVersion,
  isClosed,
  isNoNode,
  isRetryable,
  isSessionExpired,
  type Logger,
  type SessionBoundClient,
} from "@zkgrid/core";

/** A direct task: a node in the session's inbox, answered in place. */
export interface DirectTask {
  /** `R/inbox/<worker>@<session>/<task-id>`, relative to the client's root. */
  readonly path: string;
  /** The version the task was read at: the answer is a conditional write under it. */
  readonly version: number;
  /** The node's data as read: written back unchanged, it declines the task. */
  readonly data: Buffer;
  /** The key its submitter asks for the answer with on the answer stream, if it gave one. */
  readonly answerKey?: string | undefined;
}

const RETRY_MS = 100;

/**
 * Writes a direct task's answer over its node (its final `TaskStatus`, or the task unchanged to
 * decline it), under the version the task was read at and bound to the session that took it. Nothing
 * is written when the node is gone (the leader cancelled the task or fenced the session), was changed
 * by someone else, or the session has ended: the leader then decides the task's fate. Resolves
 * "written" if the answer is there, "dropped" in those cases, and "refused" when ZooKeeper refused the
 * write for another reason (e.g. no write permission on the node): the caller then reports the outcome
 * the usual way.
 */
export async function answerDirect(
  client: SessionBoundClient,
  task: DirectTask,
  data: Buffer,
  id: string,
  log: Logger,
  signal: AbortSignal,
): Promise<"written" | "dropped" | "refused"> {
  let retried = false;
  for (;;) {
    try {
      await client.set(task.path, data, task.version);
      return "written";
    } catch (error) {
      if (isNoNode(error)) {
        log("info", "direct task gone before its answer was written", { task: id });
        return "dropped";
      }
      if (isBadVersion(error)) {
        // After a lost reply the write may have landed: it is ours if the node holds these bytes.
        if (retried) {
          const now = await client.get(task.path).catch(() => undefined);
          if (now?.data.equals(data) && now.stat.version === task.version + 1) return "written";
        }
        log("warn", "direct task changed by another client; its answer is dropped", { task: id });
        return "dropped";
      }
      if (signal.aborted || isSessionExpired(error) || isClosed(error)) return "dropped";
      if (!isRetryable(error)) {
        log("warn", `could not write a direct task's answer: ${String(error)}`, { task: id });
        return "refused";
      }
      retried = true;
      await new Promise((wake) => setTimeout(wake, RETRY_MS));
    }
  }
}
