/*
 * Hand-written acceptance checks for the payloads on the grid's hot path. Each answers only "is this
 * certainly valid?": true means the zod schema next to it would accept the value unchanged, false
 * means "ask the schema", which then finds the exact problem and its message. So the checks may be
 * stricter than the schemas, never looser, and no message is written twice.
 */
import type * as z from "zod";
import {
  FINAL_STATES,
  MAX_ATTEMPTS,
  MAX_BATCH_TASKS,
  MAX_LABELS,
  MAX_MESSAGE_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_PRIORITY,
  MAX_TASK_BYTES,
  MAX_TIMEOUT_MS,
  MAX_VALUE_DEPTH,
  SCHEMA_VERSION,
  TAIL_BYTES,
  TASK_STATES,
  UPDATE_STATES,
} from "./constants.js";
import { encodedByteLength, jsonValueProblem, surelyEncodesWithin, utf8ByteLength } from "./json.js";
import {
  ENV_NAME_PATTERN,
  LABEL_PATTERN,
  SESSION_ID_PATTERN,
  TASK_ID_PATTERN,
  WORKER_NAME_PATTERN,
} from "./names.js";
import { isHistory, isRetryPolicy } from "./retry.js";
import { isValidReplyAddress } from "./reply.js";
import {
  AssignedTaskSchema,
  AssignmentSchema,
  ResultBatchSchema,
  StatusUpdateSchema,
  SubmitBatchEnvelopeSchema,
  SubmitBatchSchema,
  TaskSpecSchema,
  TaskStatusSchema,
  WorkerReportSchema,
} from "./schemas.js";

type Obj = Record<string, unknown>;
type Check = (value: unknown) => boolean;

function isPlainObject(value: unknown): value is Obj {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A plain object whose keys are all in `allowed`. */
function closed(value: unknown, allowed: ReadonlySet<string>): value is Obj {
  if (!isPlainObject(value)) return false;
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}

const isInt = (v: unknown, min: number, max: number): boolean =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
const isTime = (v: unknown): boolean => isInt(v, 0, Number.MAX_SAFE_INTEGER);
const optTime = (v: unknown): boolean => v === undefined || isTime(v);

/** A string of at most `maxBytes` UTF-8 bytes (counted only when the length alone cannot tell). */
function fitsBytes(v: string, maxBytes: number): boolean {
  return v.length * 3 <= maxBytes || utf8ByteLength(v) <= maxBytes;
}

function isText(v: unknown, nonEmpty: boolean, maxBytes: number, allowNul = false): boolean {
  return (
    typeof v === "string" &&
    (!nonEmpty || v.length > 0) &&
    (allowNul || !v.includes("\0")) &&
    fitsBytes(v, maxBytes)
  );
}

const optText = (v: unknown, nonEmpty: boolean, maxBytes: number, allowNul = false): boolean =>
  v === undefined || isText(v, nonEmpty, maxBytes, allowNul);

const isTaskId = (v: unknown): boolean =>
  typeof v === "string" && TASK_ID_PATTERN.test(v) && !v.includes("..");
const isWorkerName = (v: unknown): boolean => typeof v === "string" && WORKER_NAME_PATTERN.test(v);
const isSessionId = (v: unknown): boolean => typeof v === "string" && SESSION_ID_PATTERN.test(v);
const isSignal = (v: unknown): boolean => typeof v === "string" && /^[A-Z][A-Z0-9+]{0,31}$/.test(v);

function isLabels(v: unknown): boolean {
  if (!Array.isArray(v) || v.length > MAX_LABELS) return false;
  for (const l of v) if (typeof l !== "string" || !LABEL_PATTERN.test(l)) return false;
  return true;
}

/** Whether `v` encodes to at most `maxBytes`: measured only when the bound cannot tell. */
const encodesWithin = (v: unknown, maxBytes: number): boolean =>
  surelyEncodesWithin(v, maxBytes) || (encodedByteLength(v) ?? Number.POSITIVE_INFINITY) <= maxBytes;

function isJsonData(v: unknown, maxBytes?: number): boolean {
  if (v === null || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (typeof v !== "string" && jsonValueProblem(v, MAX_VALUE_DEPTH) !== undefined) return false;
  return maxBytes === undefined || encodesWithin(v, maxBytes);
}

function isRelativePath(v: unknown): boolean {
  return isText(v, true, 4096) && !(v as string).startsWith("/") && !hasDotDotSegment(v as string);
}

const hasDotDotSegment = (path: string): boolean => path.includes("..") && path.split("/").includes("..");

function isEnv(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  for (const key in v) {
    const item = v[key];
    if (!ENV_NAME_PATTERN.test(key) || typeof item !== "string" || item.includes("\0")) return false;
  }
  return true;
}

function isStringArray(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (const s of v) if (typeof s !== "string" || s.includes("\0")) return false;
  return true;
}

const TASK_KEYS = new Set([
  "id",
  "cmd",
  "args",
  "handler",
  "input",
  "env",
  "cwd",
  "timeoutMs",
  "maxAttempts",
  "labels",
  "priority",
  "meta",
  "runAt",
  "retry",
  "replyTo",
]);

export function isTaskSpec(v: unknown): boolean {
  if (!closed(v, TASK_KEYS) || !isTaskId(v.id)) return false;
  const { cmd, args, handler, input, env, cwd, timeoutMs, maxAttempts, labels, priority, meta } = v;
  if ((cmd === undefined) === (handler === undefined)) return false;
  if (cmd !== undefined && !isText(cmd, true, Number.POSITIVE_INFINITY)) return false;
  if (handler !== undefined && !isText(handler, true, 256)) return false;
  if (args !== undefined && (cmd === undefined || !isStringArray(args))) return false;
  if (input !== undefined && (handler === undefined || !isJsonData(input))) return false;
  if (env !== undefined && !isEnv(env)) return false;
  if (cwd !== undefined) {
    if (!isText(cwd, true, 4096)) return false;
    if (!(cwd as string).startsWith("/") && hasDotDotSegment(cwd as string)) return false;
  }
  if (timeoutMs !== undefined && !isInt(timeoutMs, 1, MAX_TIMEOUT_MS)) return false;
  if (maxAttempts !== undefined && !isInt(maxAttempts, 1, MAX_ATTEMPTS)) return false;
  if (labels !== undefined && !isLabels(labels)) return false;
  if (priority !== undefined && !isInt(priority, -MAX_PRIORITY, MAX_PRIORITY)) return false;
  if (meta !== undefined && !(isPlainObject(meta) && isJsonData(meta))) return false;
  if (!optTime(v.runAt) || (v.retry !== undefined && !isRetryPolicy(v.retry))) return false;
  if (v.replyTo !== undefined && !isValidReplyAddress(v.replyTo)) return false;
  return encodesWithin(v, MAX_TASK_BYTES);
}

const REQUEUED_KEYS = new Set(["attemptsUsed", "submittedAt", "notBefore", "history"]);

function isRequeued(v: unknown): boolean {
  if (!isPlainObject(v)) return false;
  for (const id in v) {
    const r = v[id];
    if (!isTaskId(id) || !closed(r, REQUEUED_KEYS)) return false;
    if (!isInt(r.attemptsUsed, 0, MAX_ATTEMPTS) || !isTime(r.submittedAt)) return false;
    if (!optTime(r.notBefore) || (r.history !== undefined && !isHistory(r.history))) return false;
  }
  return true;
}

const BATCH_KEYS = new Set(["v", "batchId", "submittedAt", "submitter", "tasks", "requeued"]);

function isBatchEnvelope(v: unknown): v is Obj {
  return (
    closed(v, BATCH_KEYS) &&
    v.v === SCHEMA_VERSION &&
    isTaskId(v.batchId) &&
    isTime(v.submittedAt) &&
    optText(v.submitter, true, 256) &&
    (v.requeued === undefined || isRequeued(v.requeued)) &&
    Array.isArray(v.tasks) &&
    v.tasks.length <= MAX_BATCH_TASKS
  );
}

const isSubmitBatch = (v: unknown): boolean => isBatchEnvelope(v) && (v.tasks as unknown[]).every(isTaskSpec);

const ASSIGNED_KEYS = new Set(["id", "attempt", "assignedAt", "submittedAt", "spec", "history"]);

export function isAssignedTask(v: unknown): boolean {
  return (
    closed(v, ASSIGNED_KEYS) &&
    isTaskId(v.id) &&
    isInt(v.attempt, 1, MAX_ATTEMPTS) &&
    isTime(v.assignedAt) &&
    isTime(v.submittedAt) &&
    isTaskSpec(v.spec) &&
    (v.spec as Obj).id === v.id &&
    (v.history === undefined || isHistory(v.history))
  );
}

const ASSIGNMENT_KEYS = new Set(["v", "epoch", "worker", "session", "tasks"]);

function isAssignment(v: unknown): boolean {
  if (
    !closed(v, ASSIGNMENT_KEYS) ||
    v.v !== SCHEMA_VERSION ||
    !isTime(v.epoch) ||
    !isWorkerName(v.worker) ||
    !isSessionId(v.session) ||
    !Array.isArray(v.tasks)
  ) {
    return false;
  }
  const ids = new Set<unknown>();
  for (const t of v.tasks) {
    if (!isAssignedTask(t)) return false;
    const id = (t as Obj).id;
    if (ids.has(id)) return false;
    ids.add(id);
  }
  return true;
}

/** The fields a StatusUpdate and a TaskStatus share, all optional. */
function hasValidOutcome(v: Obj): boolean {
  return (
    optTime(v.startedAt) &&
    optTime(v.finishedAt) &&
    (v.exitCode === undefined || isInt(v.exitCode, -2147483648, 2147483647)) &&
    (v.signal === undefined || isSignal(v.signal)) &&
    (v.outputDir === undefined || isRelativePath(v.outputDir)) &&
    optText(v.stdoutTail, false, TAIL_BYTES, true) &&
    optText(v.stderrTail, false, TAIL_BYTES, true) &&
    (v.output === undefined || isJsonData(v.output, MAX_OUTPUT_BYTES))
  );
}

const UPDATE_KEYS = new Set([
  "id",
  "attempt",
  "state",
  "at",
  "startedAt",
  "finishedAt",
  "exitCode",
  "signal",
  "error",
  "outputDir",
  "stdoutTail",
  "stderrTail",
  "output",
  "noRetry",
]);
const UPDATE_STATE_SET: ReadonlySet<unknown> = new Set(UPDATE_STATES);

export function isStatusUpdate(v: unknown): boolean {
  return (
    closed(v, UPDATE_KEYS) &&
    isTaskId(v.id) &&
    isInt(v.attempt, 1, MAX_ATTEMPTS) &&
    UPDATE_STATE_SET.has(v.state) &&
    isTime(v.at) &&
    optText(v.error, false, MAX_MESSAGE_BYTES, true) &&
    (v.noRetry === undefined || typeof v.noRetry === "boolean") &&
    hasValidOutcome(v)
  );
}

const REPORT_KEYS = new Set(["v", "worker", "session", "draining", "updates"]);

function isWorkerReport(v: unknown): boolean {
  return (
    closed(v, REPORT_KEYS) &&
    v.v === SCHEMA_VERSION &&
    isWorkerName(v.worker) &&
    isSessionId(v.session) &&
    (v.draining === undefined || typeof v.draining === "boolean") &&
    Array.isArray(v.updates) &&
    v.updates.every(isStatusUpdate)
  );
}

const STATUS_KEYS = new Set([
  "v",
  "id",
  "state",
  "attempt",
  "worker",
  "submittedAt",
  "assignedAt",
  "startedAt",
  "finishedAt",
  "exitCode",
  "signal",
  "reason",
  "outputDir",
  "stdoutTail",
  "stderrTail",
  "output",
  "meta",
  "history",
]);
const TASK_STATE_SET: ReadonlySet<unknown> = new Set(TASK_STATES);

export function isTaskStatus(v: unknown): boolean {
  return (
    closed(v, STATUS_KEYS) &&
    v.v === SCHEMA_VERSION &&
    isTaskId(v.id) &&
    TASK_STATE_SET.has(v.state) &&
    isInt(v.attempt, 0, MAX_ATTEMPTS) &&
    (v.worker === undefined || isWorkerName(v.worker)) &&
    optTime(v.submittedAt) &&
    optTime(v.assignedAt) &&
    optText(v.reason, false, MAX_MESSAGE_BYTES, true) &&
    (v.meta === undefined || (isPlainObject(v.meta) && isJsonData(v.meta))) &&
    (v.history === undefined || isHistory(v.history)) &&
    hasValidOutcome(v)
  );
}

const RESULT_BATCH_KEYS = new Set(["v", "epoch", "results"]);
const FINAL_STATE_SET: ReadonlySet<unknown> = FINAL_STATES;

function isResultBatch(v: unknown): boolean {
  return (
    closed(v, RESULT_BATCH_KEYS) &&
    v.v === SCHEMA_VERSION &&
    isTime(v.epoch) &&
    Array.isArray(v.results) &&
    v.results.every((s: unknown) => isTaskStatus(s) && FINAL_STATE_SET.has((s as Obj).state))
  );
}

/** The acceptance check of each hot-path schema; a schema without one is always asked. */
export const FAST_CHECKS: ReadonlyMap<z.ZodType, Check> = new Map<z.ZodType, Check>([
  [TaskSpecSchema, isTaskSpec],
  [SubmitBatchSchema, isSubmitBatch],
  [SubmitBatchEnvelopeSchema, isBatchEnvelope],
  [AssignedTaskSchema, isAssignedTask],
  [AssignmentSchema, isAssignment],
  [StatusUpdateSchema, isStatusUpdate],
  [WorkerReportSchema, isWorkerReport],
  [TaskStatusSchema, isTaskStatus],
  [ResultBatchSchema, isResultBatch],
]);
