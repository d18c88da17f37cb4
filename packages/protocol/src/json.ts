import { MAX_JSON_DEPTH } from "./constants.js";
import { ProtocolError } from "./errors.js";
import type { Result } from "./result.js";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lossy = new TextDecoder("utf-8");

/**
 * Parses a payload: refuses bytes that are not UTF-8, text that is not JSON, and arrays/objects nested
 * deeper than `MAX_JSON_DEPTH`. The depth is measured before parsing, so hostile nesting costs one scan.
 */
export function decodeJson(data: Uint8Array | string): Result<unknown> {
  let text: string;
  if (typeof data === "string") text = data;
  else {
    try {
      text = utf8.decode(data);
    } catch (cause) {
      return fail(new ProtocolError("not valid UTF-8", { cause }));
    }
  }
  const depth = nestingDepth(text, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) {
    return fail(new ProtocolError(`nested deeper than ${MAX_JSON_DEPTH} levels`));
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return fail(new ProtocolError(`not valid JSON (${detail.slice(0, 200)})`, { cause }));
  }
}

function fail(error: ProtocolError): Result<never> {
  return { ok: false, error };
}

/**
 * The deepest nesting of `[`/`{` outside strings, scanning at most until it passes `limit`.
 * Returns a number above `limit` as soon as the limit is passed.
 */
export function nestingDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** The number of bytes `text` takes in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD). */
export function utf8ByteLength(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** UTF-8 bytes of `JSON.stringify(value)`; undefined for a value JSON cannot hold (or a cycle). */
export function encodedByteLength(value: unknown): number | undefined {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return undefined;
  }
  return text === undefined ? undefined : utf8ByteLength(text);
}

/**
 * Whether `JSON.stringify(value)` surely takes at most `maxBytes` bytes of UTF-8, told without encoding
 * it: an upper bound is summed over the value (a string's UTF-16 unit at most 6 bytes, as an escape; a
 * number at most 32 characters; every key as if kept), stopping once it passes `maxBytes`. False means
 * "not sure", never "too big": then count with {@link encodedByteLength}. A value that is not plain data
 * (a class instance, a `toJSON`, a bigint), nesting deeper than {@link MAX_JSON_DEPTH} or a cycle gives
 * false. The hot-path checks ask this first, so a task is not encoded once more only to be measured.
 */
export function surelyEncodesWithin(value: unknown, maxBytes: number): boolean {
  return bytesBound(value, maxBytes, 0) <= maxBytes;
}

/** An upper bound on the UTF-8 bytes of `JSON.stringify(v)`; above `budget` (or infinite) once unsure. */
function bytesBound(v: unknown, budget: number, depth: number): number {
  switch (typeof v) {
    case "string":
      return 2 + 6 * v.length;
    case "number":
      return 32;
    case "boolean":
    case "undefined":
      return 5;
    case "object": {
      if (v === null) return 4;
      if (depth >= MAX_JSON_DEPTH) return Number.POSITIVE_INFINITY;
      let total = 2;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length && total <= budget; i++)
          total += 1 + bytesBound(v[i], budget - total, depth + 1);
        return total;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return Number.POSITIVE_INFINITY;
      const o = v as Record<string, unknown>;
      if (typeof o.toJSON === "function") return Number.POSITIVE_INFINITY;
      for (const key in o) {
        total += 4 + 6 * key.length + bytesBound(o[key], budget - total, depth + 1);
        if (total > budget) return total;
      }
      return total;
    }
    default:
      // A function or symbol is left out of an object and is null in an array; a bigint cannot be encoded.
      return typeof v === "bigint" ? Number.POSITIVE_INFINITY : 4;
  }
}

/**
 * Why `value` is not plain JSON data, or undefined if it is. Plain data is null, booleans, finite
 * numbers, strings, arrays and plain objects (an object property that is undefined is allowed: JSON
 * drops it), nested at most `maxDepth` levels. Visits at most `maxNodes` values, so shared or cyclic
 * references cannot make it run long.
 */
export function jsonValueProblem(value: unknown, maxDepth: number, maxNodes = 1_000_000): string | undefined {
  let budget = maxNodes;
  const visit = (v: unknown, depth: number): string | undefined => {
    if (--budget < 0) return `has more than ${maxNodes} values`;
    switch (typeof v) {
      case "string":
      case "boolean":
        return undefined;
      case "number":
        return Number.isFinite(v) ? undefined : `contains ${v}, which JSON cannot hold`;
      case "object": {
        if (v === null) return undefined;
        if (depth >= maxDepth) return `nests deeper than ${maxDepth} levels`;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            const item: unknown = v[i];
            if (item === undefined) return "contains undefined in an array";
            const p = visit(item, depth + 1);
            if (p !== undefined) return p;
          }
          return undefined;
        }
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          return "contains an object that is not a plain object (a class instance, Date, Map, ...)";
        }
        for (const key of Object.keys(v)) {
          const item = (v as Record<string, unknown>)[key];
          if (item === undefined) continue;
          const p = visit(item, depth + 1);
          if (p !== undefined) return p;
        }
        return undefined;
      }
      default:
        return `contains ${v === undefined ? "undefined" : `a ${typeof v}`}, which JSON cannot hold`;
    }
  };
  return visit(value, 0);
}

/**
 * The end of `data`: its last `maxBytes` bytes of UTF-8, cut on a character boundary. Bytes that are
 * not UTF-8 become U+FFFD, and the result never exceeds `maxBytes` bytes.
 */
export function tailBytes(data: string | Uint8Array, maxBytes: number): string {
  if (maxBytes <= 0) return "";
  let text: string;
  if (typeof data === "string") text = data;
  else {
    let start = Math.max(0, data.length - maxBytes);
    // Skip continuation bytes (10xxxxxx) so the cut lands on the start of a character.
    while (start < data.length && start > 0 && (data[start]! & 0xc0) === 0x80) start++;
    text = utf8Lossy.decode(data.subarray(start));
  }
  return tailOfString(text, maxBytes);
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;
/** The UTF-8 bytes of a UTF-16 unit that is not half of a pair (a lone surrogate becomes U+FFFD: 3). */
const unitBytes = (unit: number): number => (unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3);

function tailOfString(text: string, maxBytes: number): string {
  // Every UTF-16 unit is at most 3 UTF-8 bytes; only the last maxBytes units can matter.
  if (text.length * 3 <= maxBytes) return text;
  let bytes = 0;
  let i = text.length;
  while (i > 0) {
    const c = text.charCodeAt(i - 1);
    const pair = isLowSurrogate(c) && i >= 2 && isHighSurrogate(text.charCodeAt(i - 2));
    const size = pair ? 4 : unitBytes(c);
    if (bytes + size > maxBytes) break;
    bytes += size;
    i -= pair ? 2 : 1;
  }
  return text.slice(i);
}

/**
 * The start of `text`: at most `maxBytes` bytes of UTF-8, cut on a character boundary, with "…" at the
 * end when something was cut. For messages such as `error` and `reason`.
 */
export function headBytes(text: string, maxBytes: number): string {
  if (utf8ByteLength(text) <= maxBytes) return text;
  const ellipsis = "…"; // 3 bytes
  const budget = maxBytes - 3;
  if (budget < 0) return "";
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    const pair = isHighSurrogate(c) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1));
    const size = pair ? 4 : unitBytes(c);
    if (bytes + size > budget) break;
    bytes += size;
    i += pair ? 2 : 1;
  }
  return text.slice(0, i) + ellipsis;
}
