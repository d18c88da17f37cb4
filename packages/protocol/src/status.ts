import { submitBatchOf, taskStatusOf } from "./codec.js";
import { type FinalState, isFinalState } from "./constants.js";
import { ProtocolError } from "./errors.js";
import { inboxNamedBatch, inboxNodeId } from "./inbox-name.js";
import { decodeJson } from "./json.js";
import type { Result } from "./result.js";
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

/** What a direct task's node (`R/inbox/<worker>@<session>/<name>`, see `inboxNodeName`) holds. */
export type InboxNode =
  /**
   * The task, as its submitter wrote it (a `SubmitBatch` of exactly that one task, in the node's data or
   * its name). At version 0 it waits for its worker; rewritten unchanged (version 1 or more), it was
   * declined and goes to the queue.
   */
  | { kind: "task"; task: TaskSpec; submittedAt: number; answerKey?: string }
  /** The worker's answer: the task's final status, as the leader records it in `R/results`. */
  | { kind: "outcome"; status: TaskStatus }
  | { kind: "invalid"; error: ProtocolError; id: string };

/**
 * Decodes a direct task's node named `name`, holding `data` at `version`. A task node holds one valid
 * task whose id is the name's (`inboxNodeId`), without `requeued`: in its data, or in its name. A name
 * that carries the task is all of it at version 0 (the data then means nothing), and written back with
 * no data (version 1 or more) the task was declined. An answer is a final `TaskStatus` of that id at
 * attempt 1. Anything else is `invalid`.
 */
export function decodeInboxNode(name: string, data: Uint8Array, version: number): InboxNode {
  const id = inboxNodeId(name);
  const named = inboxNamedBatch(name);
  if (named !== undefined) {
    if ("problem" in named) return invalid(id, `name: ${named.problem}`);
    if (version === 0 || data.byteLength === 0) return taskOf(id, decodeJson(named));
  }
  // A task node is a SubmitBatch (top-level "tasks"); anything else is read as an answer. Parsed once.
  const json = decodeJson(data);
  if (!json.ok) return { kind: "invalid", error: json.error, id };
  const isBatch = typeof json.value === "object" && json.value !== null && "tasks" in json.value;
  if (isBatch && named !== undefined)
    return invalid(id, "tasks: a task carried in the node's name is written back with no data");
  if (isBatch) return taskOf(id, json);
  const answer = answerOf(json.value, id);
  return answer.ok ? { kind: "outcome", status: answer.value } : { kind: "invalid", error: answer.error, id };
}

/**
 * Decodes a direct task's answer as a worker's answer stream sends it (a line without its "\n"): the
 * same bytes as the answer it writes over the task's node, a final `TaskStatus` at attempt 1.
 */
export function decodeDirectAnswer(data: Uint8Array): Result<TaskStatus> {
  const json = decodeJson(data);
  return json.ok ? answerOf(json.value, undefined) : json;
}

/** A worker's answer to a direct task (of id `id`, when given): a final status at attempt 1. */
function answerOf(value: unknown, id: string | undefined): Result<TaskStatus> {
  const decoded = taskStatusOf(value);
  if (!decoded.ok) return decoded;
  const status = decoded.value;
  const problem =
    id !== undefined && status.id !== id
      ? `id: expected "${id}", the node's name`
      : !isFinalState(status.state) || status.state === "rejected"
        ? `state: a worker's answer is a final state, got "${status.state}"`
        : status.attempt !== 1
          ? `attempt: a direct task runs as attempt 1, got ${status.attempt}`
          : undefined;
  return problem === undefined ? { ok: true, value: status } : { ok: false, error: protocolError(problem) };
}

/** A direct task node's task, from its parsed `SubmitBatch`. */
function taskOf(id: string, json: Result<unknown>): InboxNode {
  if (!json.ok) return { kind: "invalid", error: json.error, id };
  const batch = submitBatchOf(json.value);
  if (!batch.ok) return { kind: "invalid", error: batch.error, id };
  if (batch.batch.requeued !== undefined)
    return invalid(id, "requeued: only the leader writes it, to the queue");
  const first = batch.tasks[0];
  if (batch.tasks.length !== 1 || first === undefined)
    return invalid(id, "tasks: a direct task's node holds exactly one task");
  if (!first.ok) return { kind: "invalid", error: first.error, id };
  if (first.task.id !== id) return invalid(id, `tasks[0].id: expected "${id}", the node's name`);
  const { submittedAt, answerKey } = batch.batch;
  return answerKey === undefined
    ? { kind: "task", task: first.task, submittedAt }
    : { kind: "task", task: first.task, submittedAt, answerKey };
}

function invalid(id: string, message: string): InboxNode {
  return { kind: "invalid", id, error: protocolError(message) };
}

/** A one-issue ProtocolError from `"<path>: <problem>"`. */
function protocolError(message: string): ProtocolError {
  const colon = message.indexOf(": ");
  return new ProtocolError([{ path: message.slice(0, colon), problem: message.slice(colon + 2) }]);
}
