import type * as z from "zod";
import { MAX_BATCH_TASKS, MAX_NODE_BYTES, SCHEMA_VERSION, isFinalState } from "./constants.js";
import { ProtocolError, describeValue } from "./errors.js";
import { utf8ByteLength } from "./json.js";
import { assertSessionId, assertWorkerName, newBatchId } from "./names.js";
import {
  type ResultBatch,
  type StatusUpdate,
  StatusUpdateSchema,
  type SubmitBatch,
  type SubmitBatchHeader,
  type TaskSpec,
  TaskSpecSchema,
  type TaskStatus,
  TaskStatusSchema,
  type WorkerReport,
} from "./schemas.js";
import { parseWith } from "./validate.js";

/**
 * Splits `items`, in order, into groups that each fit in a JSON array of at most `maxBytes` bytes
 * (the items' sizes plus one comma between neighbours) and `maxCount` items. `encodeSize` gives an
 * item's encoded size in bytes. Throws `ProtocolError` (path `[index]`) for an item that fits nowhere.
 */
export function packByBytes<T>(
  items: readonly T[],
  encodeSize: (item: T, index: number) => number,
  maxBytes: number,
  maxCount: number,
): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let used = 0;
  items.forEach((item, index) => {
    const size = encodeSize(item, index);
    if (!(size <= maxBytes)) {
      throw new ProtocolError([
        { path: `[${index}]`, problem: `encodes to ${size} bytes; at most ${maxBytes} fit in one batch` },
      ]);
    }
    const extra = group.length === 0 ? size : size + 1;
    if (group.length > 0 && (used + extra > maxBytes || group.length >= maxCount)) {
      groups.push(group);
      group = [];
      used = 0;
    }
    used += group.length === 0 ? size : size + 1;
    group.push(item);
  });
  if (group.length > 0) groups.push(group);
  return groups;
}

export interface PackSubmitOptions {
  /** Recorded in every batch; default `Date.now()`. */
  submittedAt?: number;
  /** Who submitted, for humans (e.g. `user@host`). */
  submitter?: string;
  /** Makes each batch's id; default `newBatchId`. */
  newBatchId?: () => string;
  /** Default `MAX_NODE_BYTES`. */
  maxBytes?: number;
  /** Default `MAX_BATCH_TASKS`. */
  maxTasks?: number;
  /** The tasks were checked already (each by `decodeTask`): skip checking them again. */
  validated?: boolean;
}

/** Checks every item with `schema`; throws `ProtocolError` naming `<label>[<index>]` for the first bad one. */
function validateAll<T>(schema: z.ZodType<T>, items: readonly T[], label: string): T[] {
  return items.map((item, index) => {
    const parsed = parseWith(schema, item);
    if (!parsed.ok) throw parsed.error.under(`${label}[${index}]`);
    return parsed.value;
  });
}

/**
 * Packs items into envelopes: `makeHeader()` gives each envelope's other fields, and the items go
 * under `key`. Every envelope encodes to at most `maxBytes`.
 */
function packEnvelopes<H extends object, T, K extends string>(
  items: readonly T[],
  key: K,
  makeHeader: () => H,
  maxBytes: number,
  maxCount: number,
): Array<H & Record<K, T[]>> {
  return packEncoded(items, key, makeHeader, maxBytes, maxCount, false).map((packed) => packed.envelope);
}

/** {@link packEnvelopes}, each envelope with its encoding when `encode` (each item is stringified once). */
function packEncoded<H extends object, T, K extends string>(
  items: readonly T[],
  key: K,
  makeHeader: () => H,
  maxBytes: number,
  maxCount: number,
  encode: boolean,
): Array<{ envelope: H & Record<K, T[]>; data?: Buffer }> {
  const texts = items.map((item) => JSON.stringify(item));
  const sizes = texts.map(utf8ByteLength);
  const out: Array<{ envelope: H & Record<K, T[]>; data?: Buffer }> = [];
  let start = 0;
  while (start < items.length) {
    const header = makeHeader();
    const empty = JSON.stringify({ ...header, [key]: [] });
    const budget = maxBytes - utf8ByteLength(empty);
    let used = 0;
    let end = start;
    while (end < items.length && end - start < maxCount) {
      const extra = sizes[end]! + (end === start ? 0 : 1);
      if (used + extra > budget) break;
      used += extra;
      end++;
    }
    if (end === start) {
      throw new ProtocolError([
        {
          path: `${key}[${start}]`,
          problem: `encodes to ${sizes[start]} bytes; with the envelope that is more than the ${maxBytes} that fit in one node`,
        },
      ]);
    }
    const envelope = { ...header, [key]: items.slice(start, end) } as H & Record<K, T[]>;
    // The items go last in the envelope: its JSON is the empty one's with them before "]}".
    if (encode) {
      const data = Buffer.from(`${empty.slice(0, -2)}${texts.slice(start, end).join(",")}]}`, "utf8");
      out.push({ envelope, data });
    } else out.push({ envelope });
    start = end;
  }
  return out;
}

/**
 * Validates `tasks` and splits them, in order, into `SubmitBatch`es that each encode to at most
 * `MAX_NODE_BYTES` and hold at most `MAX_BATCH_TASKS` tasks. Throws `ProtocolError` naming
 * `tasks[<index>]` for an invalid task. No tasks, no batches.
 */
export function packSubmitBatches(
  tasks: readonly TaskSpec[],
  options: PackSubmitOptions = {},
): SubmitBatch[] {
  return packSubmit(tasks, options, false).map((packed) => packed.envelope);
}

function packSubmit(
  tasks: readonly TaskSpec[],
  options: PackSubmitOptions,
  encode: boolean,
): Array<{ envelope: SubmitBatch; data?: Buffer }> {
  const valid = options.validated ? tasks : validateAll(TaskSpecSchema, tasks, "tasks");
  const submittedAt = options.submittedAt ?? Date.now();
  const makeId = options.newBatchId ?? newBatchId;
  return packEncoded<SubmitBatchHeader, TaskSpec, "tasks">(
    valid,
    "tasks",
    () => ({
      v: SCHEMA_VERSION,
      batchId: makeId(),
      submittedAt,
      ...(options.submitter === undefined ? {} : { submitter: options.submitter }),
    }),
    options.maxBytes ?? MAX_NODE_BYTES,
    options.maxTasks ?? MAX_BATCH_TASKS,
    encode,
  );
}

/** A `SubmitBatch` and its encoding (compact UTF-8 JSON), ready to be written as one node. */
export interface EncodedSubmitBatch {
  batch: SubmitBatch;
  data: Buffer;
}

/**
 * `packSubmitBatches`, each batch with its encoding: every task is encoded once, for its size and its
 * node alike.
 */
export function encodeSubmitBatches(
  tasks: readonly TaskSpec[],
  options: PackSubmitOptions = {},
): EncodedSubmitBatch[] {
  return packSubmit(tasks, options, true).map(({ envelope, data }) => ({
    batch: envelope,
    data: data as Buffer,
  }));
}

/**
 * Validates final task statuses and splits them, in order, into `ResultBatch`es of the given epoch
 * that each encode to at most `maxBytes` (default `MAX_NODE_BYTES`).
 */
export function packResultBatches(
  results: readonly TaskStatus[],
  epoch: number,
  maxBytes = MAX_NODE_BYTES,
): ResultBatch[] {
  return packEnvelopes(
    validFinalStatuses(results),
    "results",
    () => ({ v: SCHEMA_VERSION, epoch }),
    maxBytes,
    Number.MAX_SAFE_INTEGER,
  );
}

/**
 * `packResultBatches`, each batch encoded (compact UTF-8 JSON) for its node: every status is
 * encoded once, for its size and its node alike.
 */
export function encodeResultBatches(
  results: readonly TaskStatus[],
  epoch: number,
  maxBytes = MAX_NODE_BYTES,
): Buffer[] {
  return encodeEnvelopes({ v: SCHEMA_VERSION, epoch }, "results", validFinalStatuses(results), maxBytes);
}

function validFinalStatuses(results: readonly TaskStatus[]): TaskStatus[] {
  const valid = validateAll(TaskStatusSchema, results, "results");
  valid.forEach((status, index) => {
    if (!isFinalState(status.state)) {
      throw new ProtocolError([
        {
          path: `results[${index}].state`,
          problem: `expected a final state, got ${describeValue(status.state)}`,
        },
      ]);
    }
  });
  return valid;
}

/**
 * Packs items, in order, into envelopes `{...header, [key]: [...]}` of at most `maxBytes` each, and
 * returns them encoded. The schemas bound every item's nesting, so the whole needs no depth scan.
 */
function encodeEnvelopes(header: object, key: string, items: readonly unknown[], maxBytes: number): Buffer[] {
  const empty = JSON.stringify({ ...header, [key]: [] });
  const open = empty.slice(0, -2); // everything before "]}"
  const budget = maxBytes - utf8ByteLength(empty);
  const out: Buffer[] = [];
  let group: string[] = [];
  let used = 0;
  const close = () => {
    out.push(Buffer.from(`${open}${group.join(",")}]}`, "utf8"));
    group = [];
    used = 0;
  };
  items.forEach((item, index) => {
    const text = JSON.stringify(item);
    const size = utf8ByteLength(text);
    if (size > budget) {
      throw new ProtocolError([
        {
          path: `${key}[${index}]`,
          problem: `encodes to ${size} bytes; with the envelope that is more than the ${maxBytes} that fit in one node`,
        },
      ]);
    }
    if (group.length > 0 && used + 1 + size > budget) close();
    used += group.length === 0 ? size : size + 1;
    group.push(text);
  });
  if (group.length > 0) close();
  return out;
}

/**
 * Validates status updates and splits them, in order, into `WorkerReport`s that each encode to at
 * most `maxBytes` (default `MAX_NODE_BYTES`).
 */
export function packWorkerReports(
  worker: string,
  session: string,
  updates: readonly StatusUpdate[],
  maxBytes = MAX_NODE_BYTES,
): WorkerReport[] {
  assertWorkerName(worker);
  assertSessionId(session);
  const valid = validateAll(StatusUpdateSchema, updates, "updates");
  return packEnvelopes(
    valid,
    "updates",
    () => ({ v: SCHEMA_VERSION, worker, session }),
    maxBytes,
    Number.MAX_SAFE_INTEGER,
  );
}

/**
 * `packWorkerReports`, each report encoded (compact UTF-8 JSON) for its node: every update is
 * encoded once, for its size and its node alike. `draining` marks every report (see WorkerReport).
 */
export function encodeWorkerReports(
  worker: string,
  session: string,
  updates: readonly StatusUpdate[],
  maxBytes = MAX_NODE_BYTES,
  draining = false,
): Buffer[] {
  assertWorkerName(worker);
  assertSessionId(session);
  const valid = validateAll(StatusUpdateSchema, updates, "updates");
  const header = draining
    ? { v: SCHEMA_VERSION, worker, session, draining: true }
    : { v: SCHEMA_VERSION, worker, session };
  return encodeEnvelopes(header, "updates", valid, maxBytes);
}
