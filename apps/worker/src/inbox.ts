import { isBadVersion, isNoNode, isRetryable, type SessionBoundClient } from "@zkgrid/core";
import { encodeWorkerReport, type StatusUpdate } from "@zkgrid/protocol";
import type { Logger } from "./logger.js";

/** A direct task: a node in the session's inbox, answered in place. */
export interface DirectTask {
  /** `R/inbox/<worker>@<session>/<task-id>`, relative to the client's root. */
  readonly path: string;
  /** The version the task was read at: the answer is a conditional write under it. */
  readonly version: number;
}

const RETRY_MS = 100;

/**
 * Writes a direct task's answer (one final or `returned` update) over its node, under the version the
 * task was read at and bound to the session that took it. It is not written when the node is gone
 * (the leader cancelled the task or fenced the session) or was changed by someone else, nor once the
 * session has ended: the leader then decides the task's fate. Resolves true if the answer is there.
 */
export async function answerDirect(
  client: SessionBoundClient,
  task: DirectTask,
  report: { worker: string; session: string; update: StatusUpdate },
  log: Logger,
  signal: AbortSignal,
): Promise<boolean> {
  const data = encodeWorkerReport({
    v: 1,
    worker: report.worker,
    session: report.session,
    updates: [report.update],
  });
  let retried = false;
  for (;;) {
    try {
      await client.set(task.path, data, task.version);
      return true;
    } catch (error) {
      if (isNoNode(error)) {
        log("info", "direct task gone before its answer was written", { task: report.update.id });
        return false;
      }
      if (isBadVersion(error)) {
        // After a lost reply the write may have landed: it is ours if the node holds these bytes.
        if (retried) {
          const now = await client.get(task.path).catch(() => undefined);
          if (now?.data.equals(data)) return true;
        }
        log("warn", "direct task changed by another client; its answer is dropped", {
          task: report.update.id,
        });
        return false;
      }
      if (!isRetryable(error) || signal.aborted) return false;
      retried = true;
      await new Promise((wake) => setTimeout(wake, RETRY_MS));
    }
  }
}
