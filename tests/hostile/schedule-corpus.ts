import { MAX_SCHEDULE_BYTES } from "@zkgrid/protocol";

/** A schedule node a client could write by hand; the leader must ignore it with a reason. */
export interface ScheduleCase {
  /** The child name under R/schedules. */
  name: string;
  data: Buffer;
  /** What the leader's log line gives as the reason (a fragment). */
  reason: RegExp;
}

/** A valid schedule but for its missing `cron` or `everyMs`: the cases below each break one thing. */
export const scheduleBase = {
  v: 1,
  task: { cmd: "echo hostile" },
  catchUp: "all",
  overlap: "allow",
  paused: false,
  createdAt: 1,
} as const;

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Malformed schedules: bad cron, bad time zone, wrong types, unknown keys, oversized, not JSON. */
export function hostileSchedules(): ScheduleCase[] {
  return [
    {
      name: "bad-cron",
      data: json({ ...scheduleBase, cron: "61 * * * *" }),
      reason: /cron: invalid cron expression/,
    },
    { name: "cron-fields", data: json({ ...scheduleBase, cron: "* * *" }), reason: /expected 5 fields/ },
    { name: "cron-never", data: json({ ...scheduleBase, cron: "0 0 30 2 *" }), reason: /cron: / },
    {
      name: "cron-number",
      data: json({ ...scheduleBase, cron: 5 }),
      reason: /cron: expected a cron expression/,
    },
    {
      name: "bad-tz",
      data: json({ ...scheduleBase, cron: "* * * * * *", tz: "Mars/Olympus" }),
      reason: /tz: unknown time zone/,
    },
    {
      name: "tz-without-cron",
      data: json({ ...scheduleBase, everyMs: 1000, tz: "UTC" }),
      reason: /tz: allowed only with "cron"/,
    },
    {
      name: "every-tiny",
      data: json({ ...scheduleBase, everyMs: 1 }),
      reason: /everyMs: must be at least 1000/,
    },
    {
      name: "every-string",
      data: json({ ...scheduleBase, everyMs: "1s" }),
      reason: /everyMs: expected an interval/,
    },
    { name: "every-float", data: json({ ...scheduleBase, everyMs: 1000.5 }), reason: /everyMs/ },
    {
      name: "both",
      data: json({ ...scheduleBase, everyMs: 1000, cron: "* * * * *" }),
      reason: /exactly one of "cron" or "everyMs"/,
    },
    { name: "neither", data: json(scheduleBase), reason: /exactly one of "cron" or "everyMs"/ },
    {
      name: "task-with-id",
      data: json({ ...scheduleBase, everyMs: 1000, task: { id: "x", cmd: "true" } }),
      reason: /task.id/,
    },
    {
      name: "task-empty",
      data: json({ ...scheduleBase, everyMs: 1000, task: {} }),
      reason: /task: expected exactly one of "cmd" or "handler"/,
    },
    {
      name: "task-array",
      data: json({ ...scheduleBase, everyMs: 1000, task: [] }),
      reason: /task: expected a task/,
    },
    {
      name: "task-bad-field",
      data: json({ ...scheduleBase, everyMs: 1000, task: { cmd: "x", priority: 1e9 } }),
      reason: /task.priority/,
    },
    {
      name: "catch-up",
      data: json({ ...scheduleBase, everyMs: 1000, catchUp: "sometimes" }),
      reason: /catchUp: expected one of skip, latest, all/,
    },
    {
      name: "catch-up-max",
      data: json({ ...scheduleBase, everyMs: 1000, catchUpMax: 1e6 }),
      reason: /catchUpMax/,
    },
    {
      name: "overlap",
      data: json({ ...scheduleBase, everyMs: 1000, overlap: 1 }),
      reason: /overlap: expected one of allow, skip/,
    },
    {
      name: "paused-string",
      data: json({ ...scheduleBase, everyMs: 1000, paused: "no" }),
      reason: /paused: expected true or false/,
    },
    {
      name: "created-negative",
      data: json({ ...scheduleBase, everyMs: 1000, createdAt: -5 }),
      reason: /createdAt/,
    },
    {
      name: "unknown-key",
      data: json({ ...scheduleBase, everyMs: 1000, extra: true }),
      reason: /extra: unknown key/,
    },
    {
      name: "version-2",
      data: json({ ...scheduleBase, everyMs: 1000, v: 2 }),
      reason: /unsupported schema version 2/,
    },
    {
      name: "no-version",
      data: json({ ...scheduleBase, v: undefined, everyMs: 1000 }),
      reason: /v: required/,
    },
    { name: "not-object", data: json([1, 2, 3]), reason: /expected a JSON object/ },
    { name: "not-json", data: Buffer.from("{ nightly at 3"), reason: /JSON/i },
    { name: "not-utf8", data: Buffer.from([0xc0, 0x80, 0x7b]), reason: /UTF-8|JSON/i },
    { name: "empty", data: Buffer.alloc(0), reason: /JSON|empty/i },
    {
      name: "huge",
      data: json({ ...scheduleBase, everyMs: 1000, task: { cmd: "x".repeat(MAX_SCHEDULE_BYTES) } }),
      reason: /bytes; a schedule node holds at most/,
    },
    {
      name: "deep",
      data: Buffer.from(`${'{"v":1,"task":'.repeat(1)}${"[".repeat(5000)}${"]".repeat(5000)}}`),
      reason: /deep|nest|JSON|task/i,
    },
  ];
}
