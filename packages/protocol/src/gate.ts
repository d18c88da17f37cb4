import { MAX_NODE_BYTES, SCHEMA_VERSION } from "./constants.js";
import { parseDuration } from "./duration.js";
import { describeValue, ProtocolError, type ProtocolIssue } from "./errors.js";
import { decodeJson, utf8ByteLength } from "./json.js";
import { labelProblem } from "./names.js";
import type { Result } from "./result.js";

/** A start limit allows at most this many starts per interval. */
export const MAX_LIMIT_STARTS = 100_000;
/** A start limit's interval is at most one day. */
export const MAX_LIMIT_INTERVAL_MS = 24 * 60 * 60 * 1000;
/** `pausedLabels` and `limits` name at most this many labels each. */
export const MAX_GATE_LABELS = 1000;

/** A pause: since when, and who asked (free text for operators). */
export interface GatePause {
  at: number;
  by?: string;
}

/** At most `starts` hand-outs of tasks carrying the label in any `perMs` milliseconds, grid-wide. */
export interface StartLimit {
  starts: number;
  perMs: number;
  /** When it was set. */
  at: number;
  by?: string;
}

/**
 * The grid's gate, the one node `R/gate` (absent or empty: nothing paused, no limit). The leader
 * hands out no task while `paused` is set, none carrying a label of `pausedLabels`, and none that
 * would exceed a limit of one of its labels. Written by operators (read, change, write under the
 * version read); read by the leader before its first hand-out.
 */
export interface GridGate {
  v: 1;
  paused?: GatePause;
  pausedLabels?: Record<string, GatePause>;
  limits?: Record<string, StartLimit>;
}

/** A decoded gate: its valid parts, and each part left out with the reason. */
export interface GateReading {
  gate: GridGate;
  ignored: ProtocolIssue[];
}

const GATE_KEYS = ["v", "paused", "pausedLabels", "limits"];

/**
 * Decodes `R/gate`. Fails as a whole only when the node is not a version-1 JSON object; otherwise
 * every malformed part (a bad label, a limit of 0, an unknown key) is left out and named in `ignored`,
 * so one bad entry never lifts or imposes anything else. Empty data is an empty gate.
 */
export function decodeGridGate(data: Uint8Array | string): Result<GateReading> {
  if (data.length === 0) return { ok: true, value: { gate: { v: 1 }, ignored: [] } };
  const json = decodeJson(data);
  if (!json.ok) return json;
  const value = json.value;
  if (!isObject(value)) {
    return { ok: false, error: new ProtocolError(`expected a JSON object, got ${describeValue(value)}`) };
  }
  if (value.v !== SCHEMA_VERSION) {
    const problem = Object.hasOwn(value, "v")
      ? `unsupported schema version ${describeValue(value.v)}; this reader knows ${SCHEMA_VERSION}`
      : `required: the schema version (${SCHEMA_VERSION})`;
    return { ok: false, error: new ProtocolError([{ path: "v", problem }]) };
  }
  return { ok: true, value: judgeGate(value) };
}

/** Validates and encodes a gate; throws `ProtocolError` naming every problem. */
export function encodeGridGate(gate: GridGate): Buffer {
  if (!isObject(gate) || gate.v !== SCHEMA_VERSION) {
    throw new ProtocolError([{ path: "v", problem: `expected ${SCHEMA_VERSION}` }]);
  }
  const { ignored } = judgeGate(gate as unknown as Record<string, unknown>);
  if (ignored.length > 0) throw new ProtocolError(ignored);
  const bytes = Buffer.from(JSON.stringify(gate), "utf8");
  if (bytes.length > MAX_NODE_BYTES) {
    throw new ProtocolError(`encodes to ${bytes.length} bytes; at most ${MAX_NODE_BYTES} fit in one node`);
  }
  return bytes;
}

/** Why `starts` per `perMs` is not a usable start limit, or undefined. */
export function startLimitProblem(starts: unknown, perMs: unknown): string | undefined {
  if (!Number.isInteger(starts) || (starts as number) < 1 || (starts as number) > MAX_LIMIT_STARTS)
    return `starts: expected an integer 1..${MAX_LIMIT_STARTS}, got ${describeValue(starts)}`;
  if (!Number.isInteger(perMs) || (perMs as number) < 1 || (perMs as number) > MAX_LIMIT_INTERVAL_MS)
    return `perMs: expected an interval of 1..${MAX_LIMIT_INTERVAL_MS} ms (one day), got ${describeValue(perMs)}`;
  return undefined;
}

/**
 * A start limit as the commands write it: `<starts>/<interval>`, the interval a duration (`10/1s`,
 * `100/2m`, `5/500ms`) or a bare unit (`10/s` is `10/1s`). Undefined when the text is not one.
 */
export function parseStartLimit(text: string): { starts: number; perMs: number } | undefined {
  const match = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(text);
  if (match === null) return undefined;
  const interval = match[2] as string;
  const perMs = parseDuration(/^(ms|s|m)$/.test(interval) ? `1${interval}` : interval);
  if (perMs === undefined) return undefined;
  return { starts: Number(match[1]), perMs };
}

/** `10/1s`, `100/2m`, `5/500ms`: the form `parseStartLimit` reads. */
export function formatStartLimit(limit: { starts: number; perMs: number }): string {
  const { perMs } = limit;
  const interval =
    perMs % 60_000 === 0 ? `${perMs / 60_000}m` : perMs % 1000 === 0 ? `${perMs / 1000}s` : `${perMs}ms`;
  return `${limit.starts}/${interval}`;
}

function judgeGate(value: Record<string, unknown>): GateReading {
  const ignored: ProtocolIssue[] = [];
  const gate: GridGate = { v: 1 };
  for (const key of Object.keys(value)) {
    if (!GATE_KEYS.includes(key))
      ignored.push({ path: key, problem: `unknown key (a gate may have: ${GATE_KEYS.join(", ")})` });
  }
  if (value.paused !== undefined) {
    const problem = pauseProblem(value.paused);
    if (problem === undefined) gate.paused = value.paused as GatePause;
    else ignored.push({ path: "paused", problem });
  }
  const pausedLabels = judgeLabelMap(value, "pausedLabels", pauseProblem, ignored);
  if (pausedLabels !== undefined) gate.pausedLabels = pausedLabels as Record<string, GatePause>;
  const limits = judgeLabelMap(value, "limits", limitProblem, ignored);
  if (limits !== undefined) gate.limits = limits as Record<string, StartLimit>;
  return { gate, ignored };
}

/** The valid entries of a label-keyed map; undefined when the key is absent or not a map. */
function judgeLabelMap(
  value: Record<string, unknown>,
  key: string,
  problemOf: (entry: unknown) => string | undefined,
  ignored: ProtocolIssue[],
): Record<string, unknown> | undefined {
  const map = value[key];
  if (map === undefined) return undefined;
  if (!isObject(map)) {
    ignored.push({ path: key, problem: `expected an object keyed by label, got ${describeValue(map)}` });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  const labels = Object.keys(map);
  if (labels.length > MAX_GATE_LABELS) {
    ignored.push({ path: key, problem: `expected at most ${MAX_GATE_LABELS} labels, got ${labels.length}` });
    return undefined;
  }
  for (const label of labels) {
    const bad = labelProblem(label);
    const problem =
      bad === undefined ? problemOf(map[label]) : `invalid label ${describeValue(label)}: ${bad}`;
    if (problem === undefined) out[label] = map[label];
    else ignored.push({ path: `${key}.${label}`, problem });
  }
  return out;
}

function pauseProblem(pause: unknown): string | undefined {
  if (!isObject(pause)) return `expected a pause {"at": <ms>, "by"?: <text>}, got ${describeValue(pause)}`;
  return stampProblem(pause, ["at", "by"]);
}

function limitProblem(limit: unknown): string | undefined {
  if (!isObject(limit))
    return `expected a limit {"starts": <n>, "perMs": <ms>, "at": <ms>}, got ${describeValue(limit)}`;
  return startLimitProblem(limit.starts, limit.perMs) ?? stampProblem(limit, ["starts", "perMs", "at", "by"]);
}

/** `at` (required) and `by` (optional), and no key outside `keys`. */
function stampProblem(entry: Record<string, unknown>, keys: readonly string[]): string | undefined {
  const unknown = Object.keys(entry).find((k) => !keys.includes(k));
  if (unknown !== undefined) return `${unknown}: unknown key (may have: ${keys.join(", ")})`;
  if (!Number.isSafeInteger(entry.at) || (entry.at as number) < 0)
    return `at: expected a time in milliseconds since the epoch, got ${describeValue(entry.at)}`;
  const by = entry.by;
  if (by !== undefined && (typeof by !== "string" || by.length === 0 || utf8ByteLength(by) > 256))
    return `by: expected a non-empty string of at most 256 bytes, got ${describeValue(by)}`;
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
