import type * as z from "zod";
import { SCHEMA_VERSION } from "./constants.js";
import { ProtocolError, type ProtocolIssue, describeValue, formatPath } from "./errors.js";
import { FAST_CHECKS } from "./fast.js";
import type { Result } from "./result.js";

/** Payloads are JSON objects; this also answers "which version?" before any field is looked at. */
function checkEnvelope(value: unknown): ProtocolError | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return new ProtocolError(`expected a JSON object, got ${describeValue(value)}`);
  }
  if (!Object.hasOwn(value, "v")) {
    return new ProtocolError([{ path: "v", problem: `required: the schema version (${SCHEMA_VERSION})` }]);
  }
  const v = (value as { v: unknown }).v;
  if (v !== SCHEMA_VERSION) {
    return new ProtocolError([
      {
        path: "v",
        problem: `unsupported schema version ${describeValue(v)}; this reader knows ${SCHEMA_VERSION}`,
      },
    ]);
  }
  return undefined;
}

function fallbackMessage(iss: z.core.$ZodRawIssue): string {
  if (iss.code === "invalid_type") return `expected ${iss.expected}, got ${describeValue(iss.input)}`;
  return iss.message ?? iss.code;
}

function issuesOf(error: z.ZodError): ProtocolIssue[] {
  const out: ProtocolIssue[] = [];
  for (const iss of error.issues) {
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) out.push({ path: formatPath([...iss.path, key]), problem: iss.message });
    } else out.push({ path: formatPath(iss.path), problem: iss.message });
  }
  return out;
}

export function parseWith<T>(schema: z.ZodType<T>, value: unknown): Result<T> {
  // Valid payloads skip zod; anything the fast check doubts gets zod's full judgement and messages.
  if (FAST_CHECKS.get(schema)?.(value)) return { ok: true, value: value as T };
  const parsed = schema.safeParse(value, { error: fallbackMessage });
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: new ProtocolError(issuesOf(parsed.error), { cause: parsed.error }) };
}

export function parseVersioned<T>(schema: z.ZodType<T>, value: unknown): Result<T> {
  const bad = checkEnvelope(value);
  if (bad) return { ok: false, error: bad };
  return parseWith(schema, value);
}
