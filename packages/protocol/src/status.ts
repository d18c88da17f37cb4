import { submitBatchOf, taskStatusOf } from "./codec.js";
import { type FinalState, isFinalState } from "./constants.js";
import { ProtocolError } from "./errors.js";
import { decodeJson } from "./json.js";
import type { StatusUpdate, TaskSpec, TaskStatus } from "./schemas.js";

/** What is known of a task's attempt besides a worker's update: the base of its final status. */
export interface AttemptFacts {
  readonly id: string;
  readonly spec: Pick<TaskSpec, "meta">;
  /** The attempt number (0: never handed out). */
  readonly attemptsUsed: number;
  readonly worker?: string | undefined;
  readonly submittedAt?: number | undefined;
  readonly assignedAt?: number | undefined;
}

/**
 * A final `TaskStatus` from what is known of the attempt and `extra`. Undefined fields are left out; a
 * key given in `extra` wins, even as undefined. The leader and a submitter reading a direct task's
 * outcome build the same status with it.
 */
export function buildTaskStatus(
  facts: AttemptFacts,
  state: TaskStatus["state"],
  extra: Partial<TaskStatus>,
): TaskStatus {
  const status: TaskStatus = { v: 1, id: facts.id, state, attempt: facts.attemptsUsed };
  // Built without `delete` or Object.entries: this runs once per finished task.
  if (facts.worker !== undefined && !("worker" in extra)) status.worker = facts.worker;
  if (facts.submittedAt !== undefined && !("submittedAt" in extra)) status.submittedAt = facts.submittedAt;
  if (facts.assignedAt !== undefined && !("assignedAt" in extra)) status.assignedAt = facts.assignedAt;
  if (facts.spec.meta !== undefined && !("meta" in extra)) status.meta = facts.spec.meta;
  const out = status as unknown as Record<string, unknown>;
  const more = extra as Record<string, unknown>;
  for (const key in more) {
    const value = more[key];
    if (value !== undefined) out[key] = value;
  }
  return status;
}

/**
 * The final status a worker's final update `u` gives its attempt. `startedAt` is the time an earlier
 * `running` update gave, used when `u` leaves it out.
 */
export function statusFromUpdate(
  facts: AttemptFacts,
  u: StatusUpdate & { state: FinalState },
  startedAt?: number,
): TaskStatus {
  return buildTaskStatus(facts, u.state, {
    exitCode: u.exitCode,
    signal: u.signal,
    reason: u.error,
    startedAt: u.startedAt ?? startedAt,
    finishedAt: u.finishedAt ?? u.at,
    outputDir: u.outputDir,
    stdoutTail: u.stdoutTail,
    stderrTail: u.stderrTail,
    output: u.output,
  });
}

/** What a direct task's node (`R/inbox/<worker>@<session>/<task-id>`) holds. */
export type InboxNode =
  /**
   * The task, as its submitter wrote it (a `SubmitBatch` of exactly that one task). At version 0 it
   * waits for its worker; rewritten unchanged (version 1 or more), it was declined and goes to the queue.
   */
  | { kind: "task"; task: TaskSpec; submittedAt: number }
  /** The worker's answer: the task's final status, as the leader records it in `R/results`. */
  | { kind: "outcome"; status: TaskStatus }
  | { kind: "invalid"; error: ProtocolError; id: string };

/**
 * Decodes a direct task's node named `name`. A task node must hold one valid task whose id is `name`,
 * without `requeued`; an answer a final `TaskStatus` of that id at attempt 1. Anything else is `invalid`.
 */
export function decodeInboxNode(name: string, data: Uint8Array): InboxNode {
  // A task node is a SubmitBatch (top-level "tasks"); anything else is read as an answer. Parsed once.
  const json = decodeJson(data);
  if (!json.ok) return { kind: "invalid", error: json.error, id: name };
  const isBatch = typeof json.value === "object" && json.value !== null && "tasks" in json.value;
  if (!isBatch) {
    const decoded = taskStatusOf(json.value);
    if (!decoded.ok) return { kind: "invalid", error: decoded.error, id: name };
    const status = decoded.value;
    if (status.id !== name) return invalid(name, `id: expected "${name}", the node's name`);
    if (!isFinalState(status.state) || status.state === "rejected")
      return invalid(name, `state: a worker's answer is a final state, got "${status.state}"`);
    if (status.attempt !== 1)
      return invalid(name, `attempt: a direct task runs as attempt 1, got ${status.attempt}`);
    return { kind: "outcome", status };
  }
  const batch = submitBatchOf(json.value);
  if (!batch.ok) return { kind: "invalid", error: batch.error, id: name };
  if (batch.batch.requeued !== undefined)
    return invalid(name, "requeued: only the leader writes it, to the queue");
  const first = batch.tasks[0];
  if (batch.tasks.length !== 1 || first === undefined)
    return invalid(name, "tasks: a direct task's node holds exactly one task");
  if (!first.ok) return { kind: "invalid", error: first.error, id: name };
  if (first.task.id !== name) return invalid(name, `tasks[0].id: expected "${name}", the node's name`);
  return { kind: "task", task: first.task, submittedAt: batch.batch.submittedAt };
}

function invalid(id: string, message: string): InboxNode {
  const colon = message.indexOf(": ");
  return {
    kind: "invalid",
    id,
    error: new ProtocolError([{ path: message.slice(0, colon), problem: message.slice(colon + 2) }]),
  };
}
