import { describe, expect, it } from "vitest";
import {
  checkScheduleSpec,
  cronProblem,
  decodeScheduleSpec,
  firingTaskId,
  gridLayout,
  nextSlot,
  parseFiringTaskId,
  type ScheduleSpec,
  slotsBetween,
  timeZoneProblem,
} from "../src/index.js";

const base: ScheduleSpec = {
  v: 1,
  everyMs: 1000,
  task: { cmd: "true" },
  catchUp: "all",
  overlap: "allow",
  paused: false,
  createdAt: 0,
};

describe("schedule slots", () => {
  it("an interval's slots are the multiples of it since the epoch, the newest `max` of (after, until]", () => {
    expect(slotsBetween({ everyMs: 1000 }, 1500, 5200, 10)).toEqual([2000, 3000, 4000, 5000]);
    expect(slotsBetween({ everyMs: 1000 }, 1500, 5200, 2)).toEqual([4000, 5000]);
    expect(slotsBetween({ everyMs: 1000 }, 2000, 2000, 10)).toEqual([]);
    expect(nextSlot({ everyMs: 30_000 }, 30_000)).toBe(60_000);
  });

  it("a cron expression with seconds and a time zone gives the same slots, across a DST change", () => {
    expect(slotsBetween({ cron: "* * * * * *" }, 1500, 5200, 10)).toEqual([2000, 3000, 4000, 5000]);
    // 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer (the change is on 2026-03-29).
    const start = Date.parse("2026-03-27T12:00:00Z");
    const nightly = { cron: "0 3 * * *", tz: "Europe/Paris" };
    expect(
      slotsBetween(nightly, start, start + 3 * 86_400_000, 10).map((s) => new Date(s).toISOString()),
    ).toEqual(["2026-03-28T02:00:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T01:00:00.000Z"]);
    expect(nextSlot(nightly, Date.parse("2026-03-29T01:00:00Z"))).toBe(Date.parse("2026-03-30T01:00:00Z"));
  });

  it("a firing's id is <name>.<slot> and splits back", () => {
    expect(firingTaskId("nightly", 1_764_900_000_000)).toBe("nightly.1764900000000");
    expect(parseFiringTaskId("night-ly_2.1764900000000")).toEqual({
      name: "night-ly_2",
      slot: 1_764_900_000_000,
    });
    expect(parseFiringTaskId("plain-task")).toBeUndefined();
    expect(parseFiringTaskId("a.b.1000")).toBeUndefined();
  });
});

describe("schedule specs", () => {
  it("accept a cron or an interval with a task, and name the problem of a bad one", () => {
    expect(checkScheduleSpec(base).ok).toBe(true);
    const cron = { ...base, everyMs: undefined, cron: "0 3 * * 1-5", tz: "America/New_York" };
    expect(checkScheduleSpec(JSON.parse(JSON.stringify(cron))).ok).toBe(true);
    const problem = (spec: unknown) => {
      const r = checkScheduleSpec(spec);
      return r.ok ? "ok" : r.error.message;
    };
    expect(problem({ ...base, everyMs: 999 })).toBe("everyMs: must be at least 1000 ms (1s)");
    expect(problem({ ...base, everyMs: undefined })).toMatch(
      /exactly one of "cron" or "everyMs", got neither/,
    );
    expect(problem({ ...base, tz: "UTC" })).toBe('tz: allowed only with "cron"');
    expect(problem({ ...base, task: { cmd: "x", id: "y" } })).toMatch(/^task.id: /);
    expect(problem({ ...base, task: { cmd: "x", runAt: 1 } })).toMatch(/^task.runAt: .*due at its slot/);
    expect(problem({ ...base, task: { handler: "h", args: ["a"] } })).toMatch(
      /task.args: allowed only with "cmd"/,
    );
    expect(problem({ ...base, catchUp: "all", catchUpMax: 0 })).toMatch(/^catchUpMax/);
    expect(problem({ ...base, catchUp: "skip", catchUpMax: 5 })).toBe(
      'catchUpMax: allowed only with catchUp "all"',
    );
    expect(cronProblem("0 0 30 2 *")).toMatch(/never fires|invalid/);
    expect(cronProblem("*/5 * * * * * *")).toMatch(/expected 5 fields .* got 7/);
    expect(timeZoneProblem("Europe/Paris")).toBeUndefined();
    expect(timeZoneProblem("Europe/Pari")).toMatch(/unknown time zone "Europe\/Pari"/);
    expect(decodeScheduleSpec("x".repeat(200_000)).ok).toBe(false);
  });

  it("live under R/schedules and R/firings, whose names refuse a dot", () => {
    const layout = gridLayout("/g");
    expect(layout.schedule("nightly")).toBe("/g/schedules/nightly");
    expect(layout.firing("nightly")).toBe("/g/firings/nightly");
    expect(layout.dirs).toContain("/g/schedules");
    expect(() => layout.schedule("a.b")).toThrow(/invalid schedule name "a.b"/);
  });
});
