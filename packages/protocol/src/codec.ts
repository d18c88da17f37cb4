import type * as z from "zod";
import { MAX_JSON_DEPTH, MAX_NODE_BYTES } from "./constants.js";
import { ProtocolError } from "./errors.js";
import { decodeJson, nestingDepth } from "./json.js";
import { isValidTaskId } from "./names.js";
import type { Result } from "./result.js";
import { parseVersioned, parseWith } from "./validate.js";
import {
  type Assignment,
  AssignmentSchema,
  type CancelRequest,
  CancelRequestSchema,
  type MasterInfo,
  MasterInfoSchema,
  type ResultBatch,
  ResultBatchSchema,
  type SubmitBatch,
  type SubmitBatchHeader,
  SubmitBatchEnvelopeSchema,
  SubmitBatchSchema,
  type TaskSpec,
  TaskSpecSchema,
  type TaskStatus,
  TaskStatusSchema,
  type WorkerRegistration,
  WorkerRegistrationSchema,
  type WorkerReport,
  WorkerReportSchema,
} from "./schemas.js";

/** What `decodeSubmitBatch` says about one task of a batch. */
export type DecodedTask =
  | { ok: true; index: number; task: TaskSpec }
  | {
      ok: false;
      index: number;
      /** The task's id if it had a valid one; otherwise name it with `unnamedTaskId(queueNode, index)`. */
      id: string | undefined;
      error: ProtocolError;
    };

export type DecodedSubmitBatch =
  | { ok: true; batch: SubmitBatchHeader; tasks: DecodedTask[] }
  | {
      ok: false;
      error: ProtocolError;
      /**
       * For each entry of `tasks`, its id if it had a valid one (empty when the payload is not an
       * object with a `tasks` array; its `v` does not matter), so that the reader can reject them by name.
       */
      ids: Array<string | undefined>;
    };

type Bytes = Uint8Array | string;

function decodeBytes<T>(schema: z.ZodType<T>, data: Bytes): Result<T> {
  const json = decodeJson(data);
  return json.ok ? parseVersioned(schema, json.value) : json;
}

/** Checks one task (already parsed from JSON). Paths in the error are relative to the task. */
export function decodeTask(value: unknown): Result<TaskSpec> {
  return parseWith(TaskSpecSchema, value);
}

/**
 * Decodes a queue node. The batch fails as a whole only if it is not a version-1 `SubmitBatch`;
 * otherwise each task is judged alone, so one bad task never sinks the rest. Task errors are
 * prefixed with `tasks[<index>]`.
 */
export function decodeSubmitBatch(data: Bytes): DecodedSubmitBatch {
  const json = decodeJson(data);
  if (!json.ok) return { ok: false, error: json.error, ids: [] };
  return submitBatchOf(json.value);
}

/** {@link decodeSubmitBatch} of a value already parsed from JSON (a caller that looked at it first). */
export function submitBatchOf(value: unknown): DecodedSubmitBatch {
  const envelope = parseVersioned(SubmitBatchEnvelopeSchema, value);
  if (!envelope.ok) return { ok: false, error: envelope.error, ids: idsOf(value) };
  const { tasks: rawTasks, ...header } = envelope.value;
  const tasks = rawTasks.map((raw, index): DecodedTask => {
    const decoded = decodeTask(raw);
    if (decoded.ok) return { ok: true, index, task: decoded.value };
    return { ok: false, index, id: idOf(raw), error: decoded.error.under(`tasks[${index}]`) };
  });
  return { ok: true, batch: header as SubmitBatchHeader, tasks };
}

function idOf(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const id = (raw as { id?: unknown }).id;
  return isValidTaskId(id) ? id : undefined;
}

/** The ids of an object's `tasks`, whatever its `v`: each task is refused by name, never silently. */
function idsOf(value: unknown): Array<string | undefined> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [];
  const { tasks } = value as { tasks?: unknown };
  if (!Array.isArray(tasks)) return [];
  return tasks.map(idOf);
}

export function decodeCancelRequest(data: Bytes): Result<CancelRequest> {
  return decodeBytes(CancelRequestSchema, data);
}

export function decodeMasterInfo(data: Bytes): Result<MasterInfo> {
  return decodeBytes(MasterInfoSchema, data);
}

export function decodeWorkerRegistration(data: Bytes): Result<WorkerRegistration> {
  return decodeBytes(WorkerRegistrationSchema, data);
}

export function decodeAssignment(data: Bytes): Result<Assignment> {
  return decodeBytes(AssignmentSchema, data);
}

/** Checks an assignment already parsed from JSON: `decodeAssignment` without the parse. */
export function checkAssignment(value: unknown): Result<Assignment> {
  return parseVersioned(AssignmentSchema, value);
}

export function decodeWorkerReport(data: Bytes): Result<WorkerReport> {
  return decodeBytes(WorkerReportSchema, data);
}

export function decodeResultBatch(data: Bytes): Result<ResultBatch> {
  return decodeBytes(ResultBatchSchema, data);
}

export function decodeTaskStatus(data: Bytes): Result<TaskStatus> {
  return decodeBytes(TaskStatusSchema, data);
}

/** {@link decodeTaskStatus} of a value already parsed from JSON. */
export function taskStatusOf(value: unknown): Result<TaskStatus> {
  return parseVersioned(TaskStatusSchema, value);
}

/** Validates, then encodes as compact UTF-8 JSON; throws `ProtocolError` if invalid or over `maxBytes`. */
function encodeWith<T>(schema: z.ZodType<T>, value: T, maxBytes = MAX_NODE_BYTES): Buffer {
  const parsed = parseVersioned(schema, value);
  if (!parsed.ok) throw parsed.error;
  const text = JSON.stringify(parsed.value);
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length > maxBytes) {
    throw new ProtocolError(`encodes to ${bytes.length} bytes; at most ${maxBytes} fit in one node`);
  }
  // The schemas bound each nested value; this guards the whole against MAX_JSON_DEPTH.
  if (nestingDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new ProtocolError(`nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  return bytes;
}

/** Validates and encodes one task on its own (not a node payload; for sizes and tests). */
export function encodeTask(task: TaskSpec): Buffer {
  const parsed = parseWith(TaskSpecSchema, task);
  if (!parsed.ok) throw parsed.error;
  return Buffer.from(JSON.stringify(parsed.value), "utf8");
}

export function encodeSubmitBatch(batch: SubmitBatch): Buffer {
  return encodeWith(SubmitBatchSchema, batch);
}

export function encodeCancelRequest(request: CancelRequest): Buffer {
  return encodeWith(CancelRequestSchema, request);
}

export function encodeMasterInfo(info: MasterInfo): Buffer {
  return encodeWith(MasterInfoSchema, info);
}

export function encodeWorkerRegistration(registration: WorkerRegistration): Buffer {
  return encodeWith(WorkerRegistrationSchema, registration);
}

export function encodeAssignment(assignment: Assignment): Buffer {
  return encodeWith(AssignmentSchema, assignment);
}

export function encodeWorkerReport(report: WorkerReport): Buffer {
  return encodeWith(WorkerReportSchema, report);
}

export function encodeResultBatch(batch: ResultBatch): Buffer {
  return encodeWith(ResultBatchSchema, batch);
}

export function encodeTaskStatus(status: TaskStatus): Buffer {
  return encodeWith(TaskStatusSchema, status);
}
