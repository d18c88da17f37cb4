/**
 * The zkgrid wire format: payload schemas, names and ids, the znode layout, limits and batching,
 * and how the commands write durations.
 * No ZooKeeper calls happen here; docs/protocol.md is the contract this module implements.
 *
 * ```ts
 * import { decodeSubmitBatch, encodeSubmitBatch, gridLayout, packSubmitBatches } from "@zkgrid/protocol";
 *
 * const layout = gridLayout("/zkgrid");
 * const [batch] = packSubmitBatches([{ id: "hello-1", cmd: "echo hello" }]);
 * const data = encodeSubmitBatch(batch!); // create `${layout.queue}/_c_<uuid>-${layout.queueNodePrefix}` sequentially
 * const decoded = decodeSubmitBatch(data);
 * if (decoded.ok) for (const t of decoded.tasks) console.log(t.ok ? t.task.id : t.error.message);
 * ```
 *
 * @module
 */

export {
  DEFAULT_MAX_ATTEMPTS,
  FINAL_STATES,
  MAX_ATTEMPTS,
  MAX_BATCH_TASKS,
  MAX_JSON_DEPTH,
  MAX_CAPACITY,
  MAX_LABELS,
  MAX_MESSAGE_BYTES,
  MAX_NODE_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_PRIORITY,
  MAX_TASK_BYTES,
  MAX_TIMEOUT_MS,
  MAX_VALUE_DEPTH,
  SCHEMA_VERSION,
  TAIL_BYTES,
  TASK_STATES,
  UPDATE_STATES,
  isFinalState,
} from "./constants.js";
export { InvalidNameError, ProtocolError } from "./errors.js";
export {
  checkAssignment,
  decodeAssignment,
  decodeCancelRequest,
  decodeMasterInfo,
  decodeResultBatch,
  decodeSubmitBatch,
  decodeTask,
  decodeTaskStatus,
  decodeWorkerRegistration,
  decodeWorkerReport,
  encodeAssignment,
  encodeCancelRequest,
  encodeMasterInfo,
  encodeResultBatch,
  encodeSubmitBatch,
  encodeTask,
  encodeTaskStatus,
  encodeWorkerRegistration,
  encodeWorkerReport,
} from "./codec.js";
export { decodeJson, encodedByteLength, headBytes, tailBytes, utf8ByteLength } from "./json.js";
export {
  ENV_NAME_PATTERN,
  LABEL_PATTERN,
  SESSION_ID_PATTERN,
  TASK_ID_PATTERN,
  WORKER_NAME_PATTERN,
  assertSessionId,
  assertTaskId,
  assertWorkerName,
  formatSessionId,
  isValidLabel,
  isValidSessionId,
  isValidTaskId,
  isValidWorkerName,
  labelProblem,
  newBatchId,
  newTaskId,
  sessionIdProblem,
  taskIdProblem,
  workerNameProblem,
} from "./names.js";
export {
  compareSequentialNames,
  gridLayout,
  parseReportDirName,
  parseSequence,
  parseSequentialName,
  rootPathProblem,
  unnamedTaskId,
} from "./layout.js";
export {
  encodeResultBatches,
  encodeSubmitBatches,
  encodeWorkerReports,
  packByBytes,
  packResultBatches,
  packSubmitBatches,
  packWorkerReports,
} from "./batching.js";
export {
  AssignedTaskSchema,
  AssignmentSchema,
  CancelRequestSchema,
  MAX_CANCEL_IDS,
  MasterInfoSchema,
  ResultBatchSchema,
  StatusUpdateSchema,
  SubmitBatchSchema,
  TaskSpecSchema,
  TaskStatusSchema,
  WorkerRegistrationSchema,
  WorkerReportSchema,
} from "./schemas.js";
export { taskLabels, taskMaxAttempts, taskPriority } from "./defaults.js";
export { buildTaskStatus, decodeDirectAnswer, decodeInboxNode, statusFromUpdate } from "./status.js";
export {
  ANSWER_KEY_BYTES,
  MAX_ANSWER_LINE_BYTES,
  MAX_ANSWER_HELLO_BYTES,
  answerKeyProblem,
  encodeAnswerHello,
  newAnswerKey,
  parseAnswerHello,
  withAnswerKey,
} from "./answer-stream.js";
export {
  INBOX_NAME_SEPARATOR,
  MAX_NAMED_BATCH_BYTES,
  inboxNamedBatch,
  inboxNodeId,
  inboxNodeName,
} from "./inbox-name.js";
export { parseDuration } from "./duration.js";
export {
  AttemptHistorySchema,
  DEFAULT_BACKOFF,
  MAX_ATTEMPT_ERROR_BYTES,
  MAX_BACKOFF_MS,
  MAX_NO_RETRY_EXIT_CODES,
  RETRYABLE_STATES,
  RetryPolicySchema,
  isRetried,
  retryDelayMs,
  retryPolicyProblem,
} from "./retry.js";
export {
  CATCH_UP_POLICIES,
  DEFAULT_CATCH_UP_MAX,
  MAX_CATCH_UP,
  MAX_SCHEDULE_BYTES,
  MAX_SCHEDULE_EVERY_MS,
  MIN_SCHEDULE_EVERY_MS,
  OVERLAP_POLICIES,
  RECENT_FIRINGS,
  SCHEDULE_NAME_PATTERN,
  ScheduleSpecSchema,
  ScheduleStateSchema,
  assertScheduleName,
  checkScheduleSpec,
  cronProblem,
  decodeScheduleSpec,
  decodeScheduleState,
  encodeScheduleSpec,
  encodeScheduleState,
  firingTaskId,
  nextSlot,
  parseFiringTaskId,
  scheduleNameProblem,
  slotsBetween,
  timeZoneProblem,
} from "./schedule.js";
export {
  decodeGridGate,
  encodeGridGate,
  formatStartLimit,
  MAX_GATE_LABELS,
  MAX_LIMIT_INTERVAL_MS,
  MAX_LIMIT_STARTS,
  parseStartLimit,
  startLimitProblem,
} from "./gate.js";
export {
  REPLY_ADDRESS_PATTERN,
  REPLY_LIVE_NODE,
  ACCEPTS_REPLY_TO,
  assertReplyAddress,
  isValidReplyAddress,
  masterAcceptsReplyTo,
  newReplyAddress,
  replyAddressProblem,
} from "./reply.js";

export type { FinalState, TaskState, UpdateState } from "./constants.js";
export type { ProtocolIssue } from "./errors.js";
export type { DecodedSubmitBatch, DecodedTask } from "./codec.js";
export type { GridLayout, SequentialName } from "./layout.js";
export type { PackSubmitOptions } from "./batching.js";
export type { EncodedSubmitBatch } from "./batching.js";
export type { AttemptFacts, InboxNode } from "./status.js";
export type { Result } from "./result.js";
export type { AttemptOutcome, AttemptRecord, Backoff, RetryPolicy, RetryableState } from "./retry.js";
export type { GatePause, GateReading, GridGate, StartLimit } from "./gate.js";
export type {
  AssignedTask,
  Assignment,
  CancelRequest,
  MasterInfo,
  ResultBatch,
  StatusUpdate,
  SubmitBatch,
  RequeuedTask,
  SubmitBatchHeader,
  TaskSpec,
  TaskStatus,
  WorkerRegistration,
  AnswerAddress,
  WorkerReport,
} from "./schemas.js";
export type {
  CatchUpPolicy,
  Firing,
  OverlapPolicy,
  ScheduleSpec,
  ScheduleState,
  ScheduleTask,
} from "./schedule.js";
