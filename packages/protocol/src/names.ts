import { getRandomValues } from "node:crypto";
import { InvalidNameError, describeValue } from "./errors.js";

/** How a kind of name is judged, for {@link nameProblem}. */
export interface NameRule {
  readonly kind: string;
  readonly pattern: RegExp;
  readonly maxLength: number;
  /** Characters allowed after the first, for the message. */
  readonly allowed: string;
  readonly forbidDotDot: boolean;
}

export const WORKER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const TASK_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A ZooKeeper session id as the C client prints it (`%llx`): lower-case hex, no leading zeros. */
export const SESSION_ID_PATTERN = /^[1-9a-f][0-9a-f]{0,15}$/;

const WORKER_NAME: NameRule = {
  kind: "worker name",
  pattern: WORKER_NAME_PATTERN,
  maxLength: 64,
  allowed: 'A-Z a-z 0-9 "_" "." "-"',
  forbidDotDot: false,
};
const TASK_ID: NameRule = {
  kind: "task id",
  pattern: TASK_ID_PATTERN,
  maxLength: 128,
  allowed: 'A-Z a-z 0-9 "_" "." "-"',
  forbidDotDot: true,
};
const LABEL: NameRule = {
  kind: "label",
  pattern: LABEL_PATTERN,
  maxLength: 64,
  allowed: 'A-Z a-z 0-9 "_" "." ":" "-"',
  forbidDotDot: false,
};

/** Why `value` breaks `rule`, naming the first problem (length, first character, a character), or undefined. */
export function nameProblem(rule: NameRule, value: unknown): string | undefined {
  if (typeof value !== "string") return "expected a string";
  if (value.length === 0) return "must not be empty";
  if (value.length > rule.maxLength) {
    return `is ${value.length} characters long; at most ${rule.maxLength} are allowed`;
  }
  if (!/^[A-Za-z0-9]/.test(value)) return "must start with a letter or digit (A-Z a-z 0-9)";
  if (!rule.pattern.test(value)) {
    const bad = [...value.slice(1)].find((c) => !rule.pattern.test(`a${c}`)) ?? "";
    return `contains ${describeValue(bad)}; only ${rule.allowed} are allowed`;
  }
  if (rule.forbidDotDot && value.includes("..")) return 'must not contain ".."';
  return undefined;
}

/** Why `value` is not a valid worker name (`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`), or undefined if it is. */
export function workerNameProblem(value: unknown): string | undefined {
  return nameProblem(WORKER_NAME, value);
}

/** Why `value` is not a valid task id (`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`, no ".."), or undefined. */
export function taskIdProblem(value: unknown): string | undefined {
  return nameProblem(TASK_ID, value);
}

/** Why `value` is not a valid label (`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`), or undefined. */
export function labelProblem(value: unknown): string | undefined {
  return nameProblem(LABEL, value);
}

/** Why `value` is not a session id in ZooKeeper's form (lower-case hex, no leading zeros), or undefined. */
export function sessionIdProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return "expected a string";
  if (!SESSION_ID_PATTERN.test(value)) {
    return "expected lower-case hex without leading zeros or 0x, 1-16 digits, as ZooKeeper prints it";
  }
  return undefined;
}

export function isValidWorkerName(value: unknown): value is string {
  return workerNameProblem(value) === undefined;
}

export function isValidTaskId(value: unknown): value is string {
  return taskIdProblem(value) === undefined;
}

export function isValidLabel(value: unknown): value is string {
  return labelProblem(value) === undefined;
}

export function isValidSessionId(value: unknown): value is string {
  return sessionIdProblem(value) === undefined;
}

/** Throws `InvalidNameError` unless `value` is a valid worker name. */
export function assertWorkerName(value: unknown): asserts value is string {
  const problem = workerNameProblem(value);
  if (problem !== undefined) throw new InvalidNameError("worker name", value, problem);
}

/** Throws `InvalidNameError` unless `value` is a valid task id. */
export function assertTaskId(value: unknown): asserts value is string {
  const problem = taskIdProblem(value);
  if (problem !== undefined) throw new InvalidNameError("task id", value, problem);
}

/** Throws `InvalidNameError` unless `value` is a session id in ZooKeeper's hex form. */
export function assertSessionId(value: unknown): asserts value is string {
  const problem = sessionIdProblem(value);
  if (problem !== undefined) throw new InvalidNameError("session id", value, problem);
}

/**
 * ZooKeeper's session id in the protocol's form: lower-case hex without leading zeros, as the C client
 * prints it and as `ephemeralOwner` reads. Accepts a bigint, a decimal/hex string ("0x1a", "1A") or a
 * number that is a safe integer.
 */
export function formatSessionId(id: bigint | number | string): string {
  let n: bigint;
  try {
    if (typeof id === "string") {
      const t = id.trim().toLowerCase();
      n = BigInt(t.startsWith("0x") ? t : `0x${t}`);
    } else {
      if (typeof id === "number" && !Number.isSafeInteger(id)) throw new RangeError("unsafe integer");
      n = BigInt(id);
    }
  } catch {
    throw new InvalidNameError("session id", id, "not a hex string or integer");
  }
  if (n <= 0n || n >= 1n << 64n) throw new InvalidNameError("session id", id, "out of range 1..2^64-1");
  return n.toString(16);
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_CHARS = 10;
const RANDOM_BYTES = 10;

let lastTime = -1;
const lastRandom = new Uint8Array(RANDOM_BYTES);

/**
 * Random bytes drawn ahead, 256 ids' worth: one `getRandomValues` call costs ~12 µs however few bytes
 * it fills, and a lone task each millisecond would pay it every time.
 */
const pool = new Uint8Array(RANDOM_BYTES * 256);
let poolUsed = pool.length;

/** Fills `lastRandom` with fresh random bytes from the pool. */
function drawRandom(): void {
  if (poolUsed === pool.length) {
    getRandomValues(pool);
    poolUsed = 0;
  }
  lastRandom.set(pool.subarray(poolUsed, poolUsed + RANDOM_BYTES));
  poolUsed += RANDOM_BYTES;
}

/**
 * A new task id: 26 characters of Crockford base32, 48 bits of milliseconds then 80 random bits, like
 * a ULID. Ids made later in this process sort after earlier ones, also within one millisecond and if
 * the clock steps back.
 */
export function newTaskId(): string {
  const now = Date.now();
  if (now > lastTime) {
    lastTime = now;
    drawRandom();
  } else if (!increment(lastRandom)) {
    // 2^80 ids in one millisecond: borrow the next one.
    lastTime += 1;
    drawRandom();
  }
  return encodeTime(lastTime) + encodeRandom(lastRandom);
}

/** A new id for a `SubmitBatch`; the same form as `newTaskId()`. */
export function newBatchId(): string {
  return newTaskId();
}

function increment(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    const b = bytes[i]!;
    if (b < 255) {
      bytes[i] = b + 1;
      return true;
    }
    bytes[i] = 0;
  }
  return false;
}

function encodeTime(ms: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < TIME_CHARS; i++) {
    out = CROCKFORD[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}
