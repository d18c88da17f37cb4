import { markErrorClass, ZkgridError } from "@zkgrid/errors";

/** One thing wrong with a payload: where (`tasks[3].timeoutMs`, or "" for the whole value) and what. */
export interface ProtocolIssue {
  readonly path: string;
  readonly problem: string;
}

const SHOWN_ISSUES = 3;

/**
 * A payload that cannot be decoded or encoded. `message` reads `<path>: <problem>` for the first few
 * issues, joined by "; " (just `<problem>` when the whole value is at fault).
 */
export class ProtocolError extends ZkgridError {
  static {
    markErrorClass(ProtocolError, "@zkgrid/protocol/ProtocolError");
  }
  override readonly name = "ProtocolError";
  declare readonly code: "INVALID_PAYLOAD";
  readonly issues: readonly ProtocolIssue[];

  constructor(issues: string | readonly ProtocolIssue[], options?: { cause?: unknown }) {
    const list = typeof issues === "string" ? [{ path: "", problem: issues }] : issues;
    super(formatIssues(list), "INVALID_PAYLOAD", options);
    this.issues = list;
  }

  /** The path of the first issue ("" when the whole value is at fault). */
  get path(): string {
    return this.issues[0]?.path ?? "";
  }

  /** The problem of the first issue. */
  get problem(): string {
    return this.issues[0]?.problem ?? "";
  }

  /** The same error with every path placed under `prefix` (e.g. `tasks[3]`). */
  under(prefix: string): ProtocolError {
    if (prefix === "") return this;
    return new ProtocolError(
      this.issues.map((i) => ({ path: joinPath(prefix, i.path), problem: i.problem })),
      { cause: this.cause },
    );
  }
}

/** A worker name, task id or root path that breaks its rule; `message` names the rule. */
export class InvalidNameError extends ZkgridError {
  static {
    markErrorClass(InvalidNameError, "@zkgrid/protocol/InvalidNameError");
  }
  override readonly name = "InvalidNameError";
  declare readonly code: "INVALID_NAME";
  /** What kind of name: "worker name", "task id", "session id", "root path", ... */
  readonly kind: string;
  readonly value: unknown;

  constructor(kind: string, value: unknown, problem: string) {
    super(`invalid ${kind} ${describeValue(value)}: ${problem}`, "INVALID_NAME");
    this.kind = kind;
    this.value = value;
  }
}

function formatIssues(issues: readonly ProtocolIssue[]): string {
  const shown = issues.slice(0, SHOWN_ISSUES).map((i) => (i.path ? `${i.path}: ${i.problem}` : i.problem));
  const more = issues.length - shown.length;
  return shown.join("; ") + (more > 0 ? `; and ${more} more problem${more === 1 ? "" : "s"}` : "");
}

function joinPath(prefix: string, path: string): string {
  if (path === "") return prefix;
  return path.startsWith("[") ? prefix + path : `${prefix}.${path}`;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const MAX_SHOWN_CHARS = 40;

/** `tasks[3].env["1X"]`: identifiers after a dot, other keys quoted, indexes in brackets. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else {
      const key = String(seg);
      if (IDENTIFIER.test(key) && key.length <= MAX_SHOWN_CHARS) out += out === "" ? key : `.${key}`;
      else out += `[${quote(key)}]`;
    }
  }
  return out;
}

/** A short, safe rendering of any value for an error message (long strings are cut). */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "nothing";
    case "string":
      return quote(value);
    case "number":
    case "boolean":
      return String(value);
    case "bigint":
      return `${value}n`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    default:
      if (value === null) return "null";
      if (Array.isArray(value)) return "an array";
      return "an object";
  }
}

function quote(text: string): string {
  if (text.length <= MAX_SHOWN_CHARS) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, MAX_SHOWN_CHARS))}… (${text.length} characters)`;
}
