/**
 * Reading tasks from text: one JSON object, NDJSON (one task per line), a JSON array, or any mix of
 * these one after another (as `jq` prints them). Every task keeps the line it starts on, so an error
 * can name `file:line`.
 */

import { markErrorClass, messageOf, ZkgridError } from "@zkgrid/core";

/** One task read from text, not yet validated. */
export interface LocatedValue {
  /** The parsed JSON value (validated later as a task). */
  value: unknown;
  /** Where it came from, e.g. `tasks.ndjson` or `stdin`. */
  source: string;
  /** 1-based line its text starts on. */
  line: number;
}

/** Text that is not JSON, or JSON that is not a task object, at a known place. */
export class TaskTextError extends ZkgridError {
  static {
    markErrorClass(TaskTextError, "@zkgrid/submit/TaskTextError");
  }
  override readonly name = "TaskTextError";
  declare readonly code: "INVALID_TASK_TEXT";
  constructor(
    readonly source: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${source}:${line}: ${reason}`, "INVALID_TASK_TEXT");
  }
}

const NEWLINE = 0x0a;

/**
 * Decodes the bytes of a task text strictly: a byte that is not UTF-8 is refused rather than
 * replaced with U+FFFD, which would run a command other than the one given (and the leader refuses
 * such bytes too). Throws {@link TaskTextError} naming the line and the byte offset from the start.
 */
export function decodeTaskBytes(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidByte(bytes);
    let line = 1;
    for (let i = 0; i < offset; i++) if (bytes[i] === NEWLINE) line++;
    throw new TaskTextError(source, line, `invalid UTF-8 at byte offset ${offset}`);
  }
}

/** Where strict decoding fails: fed byte by byte, the decoder throws at the first bad one. */
function firstInvalidByte(bytes: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // The start of the sequence being read: a sequence cut short by the end is blamed there.
  let sequenceStart = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    // Not a continuation byte (10xxxxxx): a new sequence starts here.
    if ((byte & 0xc0) !== 0x80) sequenceStart = i;
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      return i;
    }
  }
  return sequenceStart;
}

interface Span {
  start: number;
  end: number;
  line: number;
}

interface TopLevelValue extends Span {
  /** The element spans when the value is an array. */
  items?: Span[];
}

const WHITESPACE = new Set([" ", "\t", "\r", "\n", "\uFEFF"]);

/**
 * Splits text into its top-level JSON values without parsing them, so that each one can be parsed
 * (and blamed) on its own: Node's JSON.parse errors carry no position.
 */
function splitTopLevel(text: string): TopLevelValue[] {
  const values: TopLevelValue[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (WHITESPACE.has(c)) {
      if (c === "\n") line++;
      i++;
      continue;
    }
    const start = i;
    const startLine = line;
    if (c !== "{" && c !== "[") {
      // A scalar or stray text: it ends with its line; JSON.parse judges it.
      while (i < text.length && text[i] !== "\n") i++;
      values.push({ start, end: i, line: startLine });
      continue;
    }
    const isArray = c === "[";
    const items: Span[] = [];
    let depth = 0;
    let inString = false;
    let escaped = false;
    let itemStart = -1;
    let itemLine = 0;
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === "\n") line++;
      if (inString) {
        if (escaped) escaped = false;
        else if (ch === "\\") escaped = true;
        else if (ch === '"') inString = false;
        continue;
      }
      if (isArray && depth === 1 && itemStart < 0 && !WHITESPACE.has(ch) && ch !== "," && ch !== "]") {
        itemStart = i;
        itemLine = line;
      }
      if (ch === '"') {
        inString = true;
      } else if (ch === "{" || ch === "[") {
        depth++;
      } else if (ch === "}" || ch === "]") {
        depth--;
        if (depth === 0) {
          if (itemStart >= 0) items.push({ start: itemStart, end: i, line: itemLine });
          i++;
          break;
        }
      } else if (ch === "," && depth === 1 && isArray && itemStart >= 0) {
        items.push({ start: itemStart, end: i, line: itemLine });
        itemStart = -1;
      }
    }
    values.push(isArray ? { start, end: i, line: startLine, items } : { start, end: i, line: startLine });
  }
  return values;
}

function parseJson(text: string, source: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = messageOf(err);
    throw new TaskTextError(
      source,
      line,
      `invalid JSON: ${why.length > 160 ? `${why.slice(0, 160)}…` : why}`,
    );
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function expectObject(value: unknown, source: string, line: number): LocatedValue {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TaskTextError(source, line, `expected a task object, got ${describe(value)}`);
  }
  return { value, source, line };
}

/**
 * Reads every task in `text`. Arrays are flattened into their elements; blank lines are ignored.
 * Throws {@link TaskTextError} naming the line of the first value that is not valid JSON or not an
 * object.
 */
export function parseTaskText(text: string, source: string): LocatedValue[] {
  const tasks: LocatedValue[] = [];
  for (const top of splitTopLevel(text)) {
    if (!top.items) {
      tasks.push(expectObject(parseJson(text.slice(top.start, top.end), source, top.line), source, top.line));
      continue;
    }
    // Parse the elements one by one to blame the right line, then the whole array to catch what
    // lies between them (a missing comma, a trailing comma, no closing bracket).
    const items = top.items.map((item) => ({
      value: parseJson(text.slice(item.start, item.end), source, item.line),
      line: item.line,
    }));
    parseJson(text.slice(top.start, top.end), source, top.line);
    for (const item of items) tasks.push(expectObject(item.value, source, item.line));
  }
  return tasks;
}
