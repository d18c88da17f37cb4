/*
 * Recurring schedules: the spec a client writes at `R/schedules/<name>`, the state the leader keeps
 * at `R/firings/<name>`, the ids of firings, and the slots a spec has. Cron expressions are read by
 * croner; nothing here parses cron text itself.
 */
import { Cron } from "croner";
import * as z from "zod";
import { MAX_TASK_BYTES, SCHEMA_VERSION } from "./constants.js";
import { describeValue, InvalidNameError, ProtocolError } from "./errors.js";
import { decodeJson, encodedByteLength } from "./json.js";
import type { Result } from "./result.js";
import { decodeTask } from "./codec.js";
import type { TaskSpec } from "./schemas.js";
import { parseVersioned } from "./validate.js";

/** A schedule's name: letters, digits, "_" and "-" (no "."), so that `<name>.<slot>` is a task id. */
export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** `everyMs` lies in MIN_SCHEDULE_EVERY_MS..MAX_SCHEDULE_EVERY_MS (1 s .. 366 days). */
export const MIN_SCHEDULE_EVERY_MS = 1000;
export const MAX_SCHEDULE_EVERY_MS = 366 * 24 * 60 * 60 * 1000;

/** With `catchUp: "all"`, at most this many missed slots fire (`catchUpMax`, default 10). */
export const MAX_CATCH_UP = 1000;
export const DEFAULT_CATCH_UP_MAX = 10;

/** A firings node keeps this many recent firings (`recent`), newest last. */
export const RECENT_FIRINGS = 20;

/** A schedule node's data may not exceed this. */
export const MAX_SCHEDULE_BYTES = MAX_TASK_BYTES + 4096;

export const CATCH_UP_POLICIES = ["skip", "latest", "all"] as const;
export const OVERLAP_POLICIES = ["allow", "skip"] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** The task a schedule fires: a TaskSpec without `id` (each firing's id is `<name>.<slot>`). */
export type ScheduleTask = Omit<TaskSpec, "id">;

/** `R/schedules/<name>`: written by clients, read by the leader. */
export interface ScheduleSpec {
  v: 1;
  /** A cron expression (5 fields, or 6 with seconds first), read in `tz`. Exactly one of cron, everyMs. */
  cron?: string;
  /** An IANA time zone for `cron` (default UTC). */
  tz?: string;
  /** A fixed interval: slots at every multiple of it since the epoch. */
  everyMs?: number;
  task: ScheduleTask;
  /** Slots missed while no leader ran (or before a leader took over): none, the newest, or each. */
  catchUp: CatchUpPolicy;
  /** With `catchUp: "all"`: at most this many missed slots fire, the newest ones (1..MAX_CATCH_UP). */
  catchUpMax?: number;
  /** `skip`: a slot is skipped while the schedule's previous firing is not finished. */
  overlap: OverlapPolicy;
  paused: boolean;
  /** No slot at or before this fires. */
  createdAt: number;
  /** Set on resume: no slot at or before it fires (a paused schedule's slots are skipped). */
  resumedAt?: number;
  /** Who wrote it, free text for operators. */
  by?: string;
}

/** One slot the leader has decided: fired as `task`, or skipped for `skipped`. */
export interface Firing {
  slot: number;
  task?: string;
  skipped?: "overlap" | "catch-up";
}

/** `R/firings/<name>`: written by the leader only, under the version it read. */
export interface ScheduleState {
  v: 1;
  /** The epoch of the leader that wrote it; a leader seeing a newer one is deposed. */
  epoch: number;
  /** The `createdAt` of the spec this state belongs to: a re-added schedule starts afresh. */
  createdAt: number;
  /** Every slot at or before this is decided: fired or skipped, never fired again. */
  lastSlot: number;
  /** The newest decided slots, oldest first (at most RECENT_FIRINGS). */
  recent: Firing[];
}

// ---------------------------------------------------------------------------------------------
// Rules

/** Why `value` is not a valid schedule name, or undefined. */
export function scheduleNameProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return "expected a string";
  if (value.length === 0) return "must not be empty";
  if (value.length > 64) return `is ${value.length} characters long; at most 64 are allowed`;
  if (!SCHEDULE_NAME_PATTERN.test(value)) {
    return 'must start with a letter or digit and hold only A-Z a-z 0-9 "_" "-"';
  }
  return undefined;
}

export function assertScheduleName(value: unknown): asserts value is string {
  const problem = scheduleNameProblem(value);
  if (problem !== undefined) throw new InvalidNameError("schedule name", value, problem);
}

/** Why `tz` is not an IANA time zone this runtime knows, or undefined. */
export function timeZoneProblem(tz: unknown): string | undefined {
  if (typeof tz !== "string" || tz.length === 0 || tz.length > 64) return "expected an IANA time zone name";
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone ${describeValue(tz)} (expected an IANA name such as Europe/Paris or UTC)`;
  }
}

const compiled = new Map<string, Cron>();

/** A croner pattern, kept (the leader asks for the same ones at every firing). */
function cronOf(cron: string, tz: string | undefined): Cron {
  const key = `${tz ?? "UTC"} ${cron}`;
  let c = compiled.get(key);
  if (!c) {
    c = new Cron(cron, { paused: true, timezone: tz ?? "UTC", mode: "auto" } as never);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(key, c);
  }
  return c;
}

/** Why `cron` is not a cron expression croner reads (in `tz`), or one that never fires; undefined if fine. */
export function cronProblem(cron: unknown, tz?: string): string | undefined {
  if (typeof cron !== "string" || cron.trim() === "") return "expected a cron expression such as '0 3 * * *'";
  if (cron.length > 256) return `is ${cron.length} characters long; at most 256 are allowed`;
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `expected 5 fields (minute hour day month weekday) or 6 (seconds first), got ${fields}`;
  }
  try {
    if (cronOf(cron, tz).nextRun(new Date()) === null) return "never fires";
  } catch (err) {
    return `invalid cron expression ${describeValue(cron)}: ${(err as Error).message}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Schemas

function expected(what: string) {
  return (iss: { input?: unknown }): string =>
    iss.input === undefined
      ? `required: expected ${what}`
      : `expected ${what}, got ${describeValue(iss.input)}`;
}

const time = z
  .number({ error: expected("a time in milliseconds since the epoch (an integer ≥ 0)") })
  .int()
  .min(0);

const version = z.literal(SCHEMA_VERSION, {
  error: (iss) =>
    `unsupported schema version ${describeValue(iss.input)}; this reader knows ${SCHEMA_VERSION}`,
});

/** The task fields each firing gets from its schedule, which a schedule's task must not carry. */
const FIRING_FIELDS = [
  ["id", "a schedule's task has no id: each firing gets <name>.<slot>"],
  ["runAt", "a schedule's task has no runAt: each firing is due at its slot"],
] as const;

const scheduleTask = z.custom<ScheduleTask>().superRefine((value, ctx) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: "custom", message: expected("a task (a JSON object)")({ input: value }) });
    return;
  }
  for (const [field, message] of FIRING_FIELDS) {
    if (Object.hasOwn(value, field)) {
      ctx.addIssue({ code: "custom", path: [field], message });
      return;
    }
  }
  // The longest id a firing can have: a 64-character name and a 16-digit slot.
  const decoded = decodeTask({ ...value, id: `${"n".repeat(64)}.${"1".repeat(16)}` });
  if (!decoded.ok) {
    for (const issue of decoded.error.issues) {
      ctx.addIssue({ code: "custom", path: issue.path ? [issue.path] : [], message: issue.problem });
    }
  }
});

export const ScheduleSpecSchema: z.ZodType<ScheduleSpec> = z
  .strictObject(
    {
      v: version,
      cron: z.string({ error: expected("a cron expression") }).optional(),
      tz: z.string({ error: expected("an IANA time zone name") }).optional(),
      everyMs: z
        .number({
          error: expected(`an interval in milliseconds (${MIN_SCHEDULE_EVERY_MS}..${MAX_SCHEDULE_EVERY_MS})`),
        })
        .int()
        .min(MIN_SCHEDULE_EVERY_MS, { error: `must be at least ${MIN_SCHEDULE_EVERY_MS} ms (1s)` })
        .max(MAX_SCHEDULE_EVERY_MS, { error: "must be at most 366 days" })
        .optional(),
      task: scheduleTask,
      catchUp: z.enum(CATCH_UP_POLICIES, { error: expected(`one of ${CATCH_UP_POLICIES.join(", ")}`) }),
      catchUpMax: z
        .number({ error: expected(`an integer 1..${MAX_CATCH_UP}`) })
        .int()
        .min(1)
        .max(MAX_CATCH_UP)
        .optional(),
      overlap: z.enum(OVERLAP_POLICIES, { error: expected(`one of ${OVERLAP_POLICIES.join(", ")}`) }),
      paused: z.boolean({ error: expected("true or false") }),
      createdAt: time,
      resumedAt: time.optional(),
      by: z
        .string({ error: expected("a string") })
        .max(256)
        .optional(),
    },
    {
      error: (iss) =>
        iss.code === "unrecognized_keys"
          ? "unknown key (a schedule may have: v, cron, tz, everyMs, task, catchUp, catchUpMax, overlap, paused, createdAt, resumedAt, by)"
          : iss.code === "invalid_type"
            ? expected("a schedule (a JSON object)")(iss)
            : undefined,
    },
  )
  .superRefine((spec, ctx) => {
    if ((spec.cron === undefined) === (spec.everyMs === undefined)) {
      ctx.addIssue({
        code: "custom",
        message: `expected exactly one of "cron" or "everyMs", got ${spec.cron === undefined ? "neither" : "both"}`,
      });
      return;
    }
    if (spec.tz !== undefined) {
      if (spec.cron === undefined) {
        ctx.addIssue({ code: "custom", path: ["tz"], message: 'allowed only with "cron"' });
        return;
      }
      const problem = timeZoneProblem(spec.tz);
      if (problem !== undefined) {
        ctx.addIssue({ code: "custom", path: ["tz"], message: problem });
        return;
      }
    }
    if (spec.cron !== undefined) {
      const problem = cronProblem(spec.cron, spec.tz);
      if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["cron"], message: problem });
    }
    if (spec.catchUpMax !== undefined && spec.catchUp !== "all") {
      ctx.addIssue({ code: "custom", path: ["catchUpMax"], message: 'allowed only with catchUp "all"' });
    }
  });

const firing = z.strictObject({
  slot: time,
  task: z.string().max(128).optional(),
  skipped: z.enum(["overlap", "catch-up"]).optional(),
});

export const ScheduleStateSchema: z.ZodType<ScheduleState> = z.strictObject({
  v: version,
  epoch: z
    .number({ error: expected("an epoch (an integer ≥ 0)") })
    .int()
    .min(0),
  createdAt: time,
  lastSlot: time,
  recent: z.array(firing).max(RECENT_FIRINGS),
});

// ---------------------------------------------------------------------------------------------
// Codec

function tooBig(data: Uint8Array | string, max: number): { message: string } | undefined {
  const bytes = typeof data === "string" ? Buffer.byteLength(data) : data.length;
  return bytes > max ? { message: `is ${bytes} bytes; a schedule node holds at most ${max}` } : undefined;
}

/** Decodes a schedule node; the error names the first problems (path: problem). */
export function decodeScheduleSpec(data: Uint8Array | string): Result<ScheduleSpec> {
  const big = tooBig(data, MAX_SCHEDULE_BYTES);
  if (big) return { ok: false, error: new ProtocolError(big.message) };
  const json = decodeJson(data);
  return json.ok ? parseVersioned(ScheduleSpecSchema, json.value) : json;
}

/** Checks a schedule spec already in memory (what a client is about to write). */
export function checkScheduleSpec(value: unknown): Result<ScheduleSpec> {
  const result = parseVersioned(ScheduleSpecSchema, value);
  if (!result.ok) return result;
  const bytes = encodedByteLength(result.value) ?? Number.POSITIVE_INFINITY;
  if (bytes > MAX_SCHEDULE_BYTES) {
    return {
      ok: false,
      error: new ProtocolError(`encodes to ${bytes} bytes; at most ${MAX_SCHEDULE_BYTES}`),
    };
  }
  return result;
}

export function encodeScheduleSpec(spec: ScheduleSpec): Buffer {
  const checked = checkScheduleSpec(spec);
  if (!checked.ok) throw checked.error;
  return Buffer.from(JSON.stringify(checked.value), "utf8");
}

export function decodeScheduleState(data: Uint8Array | string): Result<ScheduleState> {
  const big = tooBig(data, 64 * 1024);
  if (big) return { ok: false, error: new ProtocolError(big.message) };
  const json = decodeJson(data);
  return json.ok ? parseVersioned(ScheduleStateSchema, json.value) : json;
}

export function encodeScheduleState(state: ScheduleState): Buffer {
  const checked = parseVersioned(ScheduleStateSchema, state);
  if (!checked.ok) throw checked.error;
  return Buffer.from(JSON.stringify(checked.value), "utf8");
}

// ---------------------------------------------------------------------------------------------
// Firings and slots

/** The id of the task a schedule fires for `slot`: `<name>.<slot in ms>`. */
export function firingTaskId(name: string, slot: number): string {
  return `${name}.${slot}`;
}

/** Splits a firing's task id; undefined if `id` is not one. */
export function parseFiringTaskId(id: string): { name: string; slot: number } | undefined {
  const dot = id.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const name = id.slice(0, dot);
  const slot = id.slice(dot + 1);
  if (scheduleNameProblem(name) !== undefined || !/^\d{1,16}$/.test(slot)) return undefined;
  return { name, slot: Number(slot) };
}

type Timing = Pick<ScheduleSpec, "cron" | "tz" | "everyMs">;

/** The first slot after `after` (ms), or undefined if there is none. */
export function nextSlot(spec: Timing, after: number): number | undefined {
  if (spec.everyMs !== undefined) return (Math.floor(after / spec.everyMs) + 1) * spec.everyMs;
  if (spec.cron === undefined) return undefined;
  return cronOf(spec.cron, spec.tz).nextRun(new Date(after))?.getTime();
}

/** The newest `max` slots in (after, until], oldest first. */
export function slotsBetween(spec: Timing, after: number, until: number, max: number): number[] {
  if (until <= after || max <= 0) return [];
  if (spec.everyMs !== undefined) {
    const every = spec.everyMs;
    const last = Math.floor(until / every) * every;
    const first = Math.max((Math.floor(after / every) + 1) * every, last - (max - 1) * every);
    const out: number[] = [];
    for (let s = first; s <= last; s += every) out.push(s);
    return out;
  }
  if (spec.cron === undefined) return [];
  return cronOf(spec.cron, spec.tz)
    .previousRuns(max, new Date(until + 1))
    .map((d) => d.getTime())
    .filter((s) => s > after && s <= until)
    .reverse();
}
