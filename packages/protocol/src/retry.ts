/*
 * Time in a task's life: when it may first start (`runAt`), how a failed attempt is retried (its
 * `retry` policy and backoff), and the record each attempt leaves (`history`). Each rule is one
 * "problem" function: the zod schema reports what it returns, and the fast check asks whether it
 * returns nothing, so a message is written once.
 */
import * as z from "zod";
import { MAX_ATTEMPTS, MAX_TIMEOUT_MS } from "./constants.js";
import { describeValue } from "./errors.js";
import { utf8ByteLength } from "./json.js";
import { WORKER_NAME_PATTERN } from "./names.js";

/** The outcomes of an attempt that a retry policy may retry. */
export const RETRYABLE_STATES = ["failed", "timed-out"] as const;
export type RetryableState = (typeof RETRYABLE_STATES)[number];

/** How long to wait before the next attempt. */
export interface Backoff {
  /** `fixed`: `delayMs` every time; `exponential`: `delayMs × 2^(attempt − 1)`. */
  type: "fixed" | "exponential";
  /** The first delay, 0..MAX_BACKOFF_MS. */
  delayMs: number;
  /** No delay is longer; at least `delayMs` (default 5 min, or `delayMs` if that is longer). */
  maxDelayMs?: number;
  /** 0..1: each delay is shortened by a random part of up to this fraction (default 0). */
  jitter?: number;
}

/**
 * Which failed attempts of a task are tried again. The task's `maxAttempts` (default 3) caps every
 * hand-out, a retry or one after a lost worker alike.
 */
export interface RetryPolicy {
  /** The outcomes retried (default `["failed"]`). */
  on?: RetryableState[];
  /** Default: exponential from 1 s, at most 5 min, no jitter. */
  backoff?: Backoff;
  /** A command that exits with one of these codes is not retried (its failure is final). */
  noRetryExitCodes?: number[];
}

/** How an attempt ended: a worker's final state, or `lost` (its worker went away, or gave it back after it started). */
export type AttemptOutcome = "succeeded" | "failed" | "timed-out" | "cancelled" | "lost";

/** One attempt of a task, as its final status's `history` keeps it. */
export interface AttemptRecord {
  attempt: number;
  outcome: AttemptOutcome;
  worker?: string;
  assignedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  signal?: string;
  /** Why it failed, cut to MAX_ATTEMPT_ERROR_BYTES. */
  error?: string;
}

/** A backoff delay is at most 7 days, like a timeout. */
export const MAX_BACKOFF_MS = MAX_TIMEOUT_MS;
/** A policy names at most this many exit codes. */
export const MAX_NO_RETRY_EXIT_CODES = 256;
/** An attempt record's `error` keeps at most this many bytes, so that 100 attempts fit in one node. */
export const MAX_ATTEMPT_ERROR_BYTES = 512;
/** The backoff of a policy that names none. */
export const DEFAULT_BACKOFF: Readonly<Required<Backoff>> = {
  type: "exponential",
  delayMs: 1000,
  maxDelayMs: 5 * 60_000,
  jitter: 0,
};

const ATTEMPT_OUTCOMES: ReadonlySet<string> = new Set([
  "succeeded",
  "failed",
  "timed-out",
  "cancelled",
  "lost",
]);

/** A problem found in a value, with where it lies inside it. */
export interface Problem {
  path: Array<string | number>;
  problem: string;
}

type Obj = Record<string, unknown>;

function isPlainObject(value: unknown): value is Obj {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;

function at(path: Array<string | number>, problem: string): Problem {
  return { path, problem };
}

function got(value: unknown): string {
  return value === undefined ? "nothing" : describeValue(value);
}

/** Keys outside `allowed`, as a problem naming what the object may have. */
function unknownKey(value: Obj, allowed: readonly string[], what: string): Problem | undefined {
  for (const key in value)
    if (!allowed.includes(key)) return at([key], `unknown key (${what} may have: ${allowed.join(", ")})`);
  return undefined;
}

const BACKOFF_KEYS = ["type", "delayMs", "maxDelayMs", "jitter"] as const;

export function backoffProblem(value: unknown): Problem | undefined {
  if (!isPlainObject(value))
    return at([], `expected a backoff ({"type": "fixed" | "exponential", "delayMs": …}), got ${got(value)}`);
  const extra = unknownKey(value, BACKOFF_KEYS, "a backoff");
  if (extra) return extra;
  const { type, delayMs, maxDelayMs, jitter } = value;
  if (type !== "fixed" && type !== "exponential")
    return at(["type"], `expected "fixed" or "exponential", got ${got(type)}`);
  if (!isInt(delayMs, 0, MAX_BACKOFF_MS))
    return at(
      ["delayMs"],
      `expected an integer of milliseconds 0..${MAX_BACKOFF_MS} (7 days), got ${got(delayMs)}`,
    );
  if (maxDelayMs !== undefined) {
    if (!isInt(maxDelayMs, 0, MAX_BACKOFF_MS))
      return at(
        ["maxDelayMs"],
        `expected an integer of milliseconds 0..${MAX_BACKOFF_MS} (7 days), got ${got(maxDelayMs)}`,
      );
    if (maxDelayMs < delayMs)
      return at(["maxDelayMs"], `must be at least delayMs (${delayMs}), got ${maxDelayMs}`);
  }
  if (jitter !== undefined && !(typeof jitter === "number" && jitter >= 0 && jitter <= 1))
    return at(["jitter"], `expected a fraction 0..1, got ${got(jitter)}`);
  return undefined;
}

const POLICY_KEYS = ["on", "backoff", "noRetryExitCodes"] as const;

export function retryPolicyProblem(value: unknown): Problem | undefined {
  if (!isPlainObject(value)) return at([], `expected a retry policy (a JSON object), got ${got(value)}`);
  const extra = unknownKey(value, POLICY_KEYS, "a retry policy");
  if (extra) return extra;
  const { on, backoff, noRetryExitCodes } = value;
  if (on !== undefined) {
    if (!Array.isArray(on) || on.length === 0 || on.length > RETRYABLE_STATES.length)
      return at(["on"], `expected a non-empty array of "failed" and "timed-out", got ${got(on)}`);
    for (const [i, state] of on.entries()) {
      if (!(RETRYABLE_STATES as readonly unknown[]).includes(state))
        return at(["on", i], `expected "failed" or "timed-out", got ${got(state)}`);
      if (on.indexOf(state) !== i) return at(["on", i], `${describeValue(state)} is listed twice`);
    }
  }
  if (backoff !== undefined) {
    const problem = backoffProblem(backoff);
    if (problem) return at(["backoff", ...problem.path], problem.problem);
  }
  if (noRetryExitCodes !== undefined) {
    if (!Array.isArray(noRetryExitCodes) || noRetryExitCodes.length > MAX_NO_RETRY_EXIT_CODES)
      return at(
        ["noRetryExitCodes"],
        `expected an array of at most ${MAX_NO_RETRY_EXIT_CODES} exit codes, got ${got(noRetryExitCodes)}`,
      );
    for (const [i, code] of noRetryExitCodes.entries())
      if (!isInt(code, 1, 255))
        return at(["noRetryExitCodes", i], `expected a non-zero exit code 1..255, got ${got(code)}`);
  }
  return undefined;
}

const RECORD_KEYS = [
  "attempt",
  "outcome",
  "worker",
  "assignedAt",
  "startedAt",
  "finishedAt",
  "exitCode",
  "signal",
  "error",
] as const;

export function attemptRecordProblem(value: unknown): Problem | undefined {
  if (!isPlainObject(value)) return at([], `expected an attempt record (a JSON object), got ${got(value)}`);
  const extra = unknownKey(value, RECORD_KEYS, "an attempt record");
  if (extra) return extra;
  const { attempt, outcome, worker, exitCode, signal, error } = value;
  if (!isInt(attempt, 1, MAX_ATTEMPTS))
    return at(["attempt"], `expected an integer 1..${MAX_ATTEMPTS}, got ${got(attempt)}`);
  if (typeof outcome !== "string" || !ATTEMPT_OUTCOMES.has(outcome))
    return at(["outcome"], `expected one of ${[...ATTEMPT_OUTCOMES].join(", ")}, got ${got(outcome)}`);
  if (worker !== undefined && !(typeof worker === "string" && WORKER_NAME_PATTERN.test(worker)))
    return at(["worker"], `expected a worker name, got ${got(worker)}`);
  for (const key of ["assignedAt", "startedAt", "finishedAt"] as const) {
    const t = value[key];
    if (t !== undefined && !isInt(t, 0, Number.MAX_SAFE_INTEGER))
      return at([key], `expected a time in milliseconds since the epoch, got ${got(t)}`);
  }
  if (exitCode !== undefined && !isInt(exitCode, -2147483648, 2147483647))
    return at(["exitCode"], `expected an exit code (a 32-bit integer), got ${got(exitCode)}`);
  if (signal !== undefined && !(typeof signal === "string" && /^[A-Z][A-Z0-9+]{0,31}$/.test(signal)))
    return at(["signal"], `expected a signal name such as SIGTERM, got ${got(signal)}`);
  if (error !== undefined && !(typeof error === "string" && utf8ByteLength(error) <= MAX_ATTEMPT_ERROR_BYTES))
    return at(["error"], `expected a string of at most ${MAX_ATTEMPT_ERROR_BYTES} bytes, got ${got(error)}`);
  return undefined;
}

export function historyProblem(value: unknown): Problem | undefined {
  if (!Array.isArray(value) || value.length > MAX_ATTEMPTS)
    return at([], `expected an array of at most ${MAX_ATTEMPTS} attempt records, got ${got(value)}`);
  for (const [i, record] of value.entries()) {
    const problem = attemptRecordProblem(record);
    if (problem) return at([i, ...problem.path], problem.problem);
  }
  return undefined;
}

/** A zod schema that reports what `problemOf` finds. */
function judged<T>(problemOf: (value: unknown) => Problem | undefined): z.ZodType<T> {
  return z.custom<T>().superRefine((value, ctx) => {
    const found = problemOf(value);
    if (found) ctx.addIssue({ code: "custom", continue: false, path: found.path, message: found.problem });
  });
}

export const RetryPolicySchema: z.ZodType<RetryPolicy> = judged(retryPolicyProblem);
export const AttemptHistorySchema: z.ZodType<AttemptRecord[]> = judged(historyProblem);

export const isRetryPolicy = (v: unknown): boolean => retryPolicyProblem(v) === undefined;
export const isHistory = (v: unknown): boolean => historyProblem(v) === undefined;

/**
 * Whether an attempt that ended in `state` is tried again under `policy` (attempts left aside):
 * the policy names the state, the command's exit code is not one it refuses, and the worker did not
 * say the handler refused (`noRetry`).
 */
export function isRetried(
  policy: RetryPolicy | undefined,
  state: string,
  exitCode: number | undefined,
  noRetry: boolean | undefined,
): boolean {
  if (policy === undefined || noRetry === true) return false;
  const on: readonly string[] = policy.on ?? ["failed"];
  if (!on.includes(state)) return false;
  return exitCode === undefined || !(policy.noRetryExitCodes ?? []).includes(exitCode);
}

/**
 * The wait before the attempt after attempt `attempt` (1-based) failed: fixed or doubling from
 * `delayMs`, at most `maxDelayMs`, then shortened by up to `jitter` of itself. `random` is 0..1.
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number, random: number = Math.random()): number {
  const backoff = policy.backoff ?? DEFAULT_BACKOFF;
  const max = backoff.maxDelayMs ?? Math.max(DEFAULT_BACKOFF.maxDelayMs, backoff.delayMs);
  const grown =
    backoff.type === "fixed"
      ? backoff.delayMs
      : backoff.delayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40);
  const capped = Math.min(grown, max);
  return Math.round(capped * (1 - (backoff.jitter ?? 0) * Math.min(Math.max(random, 0), 1)));
}
