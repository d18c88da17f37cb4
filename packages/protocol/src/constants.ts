/** The schema version every payload carries as `v`. */
export const SCHEMA_VERSION = 1;

/** No znode's data may exceed this (below ZooKeeper's default 1 MiB `jute.maxbuffer`). */
export const MAX_NODE_BYTES = 900 * 1024;

/** At most this many tasks in one `SubmitBatch`. */
export const MAX_BATCH_TASKS = 1000;

/** A task's compact JSON encoding (UTF-8) may not exceed this. */
export const MAX_TASK_BYTES = 64 * 1024;

/** A handler's `output`, JSON-encoded, may not exceed this; a larger one stays in result.json only. */
export const MAX_OUTPUT_BYTES = 64 * 1024;

/** `stdoutTail` / `stderrTail` hold at most this many bytes: the end of each stream. */
export const TAIL_BYTES = 4096;

/** `error` (in a status update) and `reason` (in a task status) hold at most this many bytes. */
export const MAX_MESSAGE_BYTES = 4096;

/** Arrays and objects in a payload nest at most this deep (the payload itself is level 1). */
export const MAX_JSON_DEPTH = 64;

/** `input`, `meta` and `output` nest at most this deep, so that they fit in every payload that carries them. */
export const MAX_VALUE_DEPTH = 60;

/** How many times a task may be handed out when its spec says nothing. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** `maxAttempts` may be 1..MAX_ATTEMPTS. */
export const MAX_ATTEMPTS = 100;

/** `timeoutMs` may be at most 7 days. */
export const MAX_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;

/** `priority` lies in -MAX_PRIORITY..MAX_PRIORITY. */
export const MAX_PRIORITY = 1000;

/** A task or worker may carry at most this many labels. */
export const MAX_LABELS = 32;

/** A worker's registered capacity (tasks the leader may give it at once) is 1..MAX_CAPACITY. */
export const MAX_CAPACITY = 100_000;

/** Every state a task can be in, as seen by the grid. */
export const TASK_STATES = [
  "queued",
  "delayed",
  "assigned",
  "running",
  "succeeded",
  "failed",
  "timed-out",
  "cancelled",
  "rejected",
] as const;

/** Every state a worker can report in a `StatusUpdate`. */
export const UPDATE_STATES = [
  "running",
  "succeeded",
  "failed",
  "timed-out",
  "cancelled",
  "returned",
] as const;

export type TaskState = (typeof TASK_STATES)[number];
export type UpdateState = (typeof UPDATE_STATES)[number];
export type FinalState = "succeeded" | "failed" | "timed-out" | "cancelled" | "rejected";

/** The states after which nothing more happens to a task. */
export const FINAL_STATES: ReadonlySet<FinalState> = new Set<FinalState>([
  "succeeded",
  "failed",
  "timed-out",
  "cancelled",
  "rejected",
]);

/** True for `succeeded`, `failed`, `timed-out`, `cancelled` and `rejected`; works on update states too. */
export function isFinalState(state: string): state is FinalState {
  return (FINAL_STATES as ReadonlySet<string>).has(state);
}
