import { observeGrid } from "@zkgrid/observer";
import { connectGrid, InvalidScheduleError, ScheduleExistsError } from "@zkgrid/submit";
import {
  decodeScheduleState,
  encodeScheduleSpec,
  encodeScheduleState,
  encodeSubmitBatch,
  firingTaskId,
  parseFiringTaskId,
  type ScheduleState,
  type TaskStatus,
} from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, type TestGrid } from "./grid.js";

const start = gridPerTest();

/** The slots of `name` that have a result, in order, and every result of it (duplicates kept). */
async function firedSlots(g: TestGrid, name: string): Promise<{ slots: number[]; results: TaskStatus[] }> {
  const results = (await g.results()).filter((r) => parseFiringTaskId(r.id)?.name === name);
  const slots = results.map((r) => parseFiringTaskId(r.id)?.slot as number).sort((a, b) => a - b);
  return { slots, results };
}

async function firings(g: TestGrid, name: string): Promise<ScheduleState | undefined> {
  const zk = await g.zk();
  const got = await zk.get(g.layout.firing(name)).catch(() => undefined);
  if (!got) return undefined;
  const decoded = decodeScheduleState(got.data);
  return decoded.ok ? decoded.value : undefined;
}

/** Each slot once, and every slot between the first and the last (1 s apart). */
function expectEverySlotOnce(slots: number[], everyMs = 1000): void {
  expect(new Set(slots).size).toBe(slots.length);
  for (let i = 1; i < slots.length; i++)
    expect((slots[i] as number) - (slots[i - 1] as number)).toBe(everyMs);
}

async function scheduleNodes(g: TestGrid): Promise<string[]> {
  const zk = await g.zk();
  return zk.getChildren(g.layout.schedules).catch(() => []);
}

describe("zkgrid schedule (the CLI)", () => {
  it("refuses a bad cron expression, time zone, name, interval or a taken name with exit 2, writing nothing", async () => {
    const g = start();
    const bad: Array<[string[], RegExp]> = [
      [
        ["add", "nightly", "--cron", "61 * * * *", "--cmd", "true"],
        /--cron: invalid cron expression "61 \* \* \* \*"/,
      ],
      [["add", "nightly", "--cron", "* * *", "--cmd", "true"], /--cron: expected 5 fields/],
      [
        ["add", "nightly", "--cron", "0 3 * * *", "--tz", "Mars/Olympus", "--cmd", "true"],
        /--tz: unknown time zone "Mars\/Olympus"/,
      ],
      [["add", "night.ly", "--every", "1s", "--cmd", "true"], /name: invalid schedule name "night.ly"/],
      [["add", "nightly", "--every", "10ms", "--cmd", "true"], /--every: must be at least 1000 ms/],
      [["add", "nightly", "--every", "soon", "--cmd", "true"], /--every: expected a duration/],
      [["add", "nightly", "--every", "1s"], /give the task/],
      [["add", "nightly", "--every", "1s", "--cron", "* * * * *", "--cmd", "true"], /not both/],
      [
        ["add", "nightly", "--every", "1s", "--cmd", "true", "--catch-up", "sometimes"],
        /--catch-up: expected one of skip, latest, all/,
      ],
      [["add", "nightly", "--every", "1s", "--cmd", "true", "--timeout", "0"], /--timeout/],
      [["add", "nightly", "--every", "1s", "--cmd", "true", "--id", "x"], /--id/],
      [
        ["add", "nightly", "--every", "1s", "--cmd", "true", "--delay", "5s"],
        /--delay: a schedule's firings/,
      ],
      [
        ["add", "nightly", "--every", "1s", "--cmd", "true", "--at", "2030-01-01T00:00:00Z"],
        /--at: a schedule/,
      ],
    ];
    for (const [args, message] of bad) {
      const r = await g.submit(["schedule", ...args]);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.code, args.join(" ")).toBe(2);
    }
    expect(await scheduleNodes(g)).toEqual([]);

    const ok = await g.submit([
      "schedule",
      "add",
      "nightly",
      "--cron",
      "0 3 * * *",
      "--tz",
      "Europe/Paris",
      "--cmd",
      "make backup",
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^added nightly; next slot 20\d\d-\d\d-\d\dT0[12]:00:00.000Z\n$/);
    const again = await g.submit(["schedule", "add", "nightly", "--every", "1s", "--cmd", "true"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/a schedule named "nightly" exists already/);
  });

  it("lists, shows, pauses, resumes and removes a schedule", async () => {
    const g = start();
    expect(
      (
        await g.submit([
          "schedule",
          "add",
          "hourly",
          "--every",
          "1h",
          "--cmd",
          "date",
          "--label",
          "ops",
          "--retries",
          "2",
        ])
      ).code,
    ).toBe(0);
    const list = await g.submit(["schedule", "list"]);
    expect(list.stdout).toMatch(/^hourly {2}every 3600000ms {2}next .* {2}never fired\n$/);
    const json = JSON.parse((await g.submit(["schedule", "show", "hourly", "--json"])).stdout);
    expect(json.spec).toMatchObject({
      everyMs: 3_600_000,
      task: { cmd: "date", labels: ["ops"], maxAttempts: 3, retry: {} },
      catchUp: "latest",
      overlap: "allow",
      paused: false,
    });
    expect((await g.submit(["schedule", "pause", "hourly"])).stdout).toBe("paused hourly\n");
    expect((await g.submit(["schedule", "show", "hourly"])).stdout).toMatch(/paused/);
    expect((await g.submit(["schedule", "resume", "hourly"])).stdout).toBe("resumed hourly\n");
    expect((await g.submit(["schedule", "remove", "hourly"])).code).toBe(0);
    const gone = await g.submit(["schedule", "show", "hourly"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no schedule named "hourly"/);
    expect((await g.submit(["schedule", "remove", "hourly"])).code).toBe(1);
  });
});

describe("grid.schedules (the library)", () => {
  it("throws InvalidScheduleError naming the option before writing, and adds, lists, pauses and removes", async () => {
    const g = start();
    const grid = await connectGrid({ connectString: g.connectString, root: g.root });
    try {
      const s = grid.schedules;
      await expect(s.add("a", { cron: "* * * * 99", task: { cmd: "x" } })).rejects.toMatchObject({
        name: "InvalidScheduleError",
        field: "cron",
      });
      await expect(s.add("a", { cron: "* * * * *", tz: "Nowhere/City", task: { cmd: "x" } })).rejects.toThrow(
        /tz: unknown time zone "Nowhere\/City"/,
      );
      await expect(s.add("a", { every: "1s", task: { cmd: "x", priority: 5000 } })).rejects.toThrow(
        /task.priority/,
      );
      await expect(s.add("a b", { every: 1000, task: { cmd: "x" } })).rejects.toBeInstanceOf(
        InvalidScheduleError,
      );
      await expect(s.add("a", { every: 1000, cron: "* * * * *", task: { cmd: "x" } })).rejects.toThrow(
        /exactly one/,
      );
      expect(await scheduleNodes(g)).toEqual([]);

      const spec = await s.add("a", {
        every: "2m",
        task: { handler: "report", input: { n: 1 } },
        overlap: "skip",
      });
      expect(spec).toMatchObject({ everyMs: 120_000, overlap: "skip", catchUp: "latest", paused: false });
      await expect(s.add("a", { every: 1000, task: { cmd: "x" } })).rejects.toBeInstanceOf(
        ScheduleExistsError,
      );
      expect((await s.list()).map((v) => v.name)).toEqual(["a"]);
      // The observer lists every schedule node, and says why the leader ignores a bad one.
      const zk = await g.zk();
      await zk.create(
        g.layout.schedule("junk"),
        JSON.stringify({ ...spec, everyMs: undefined, cron: "61 * * * *" }),
      );
      const observer = await observeGrid({ client: grid.zk, root: g.root });
      try {
        const seen = await observer.schedules();
        expect(
          seen.map((v) => [v.name, v.spec?.everyMs, v.problem?.includes("cron: invalid cron expression")]),
        ).toEqual([
          ["a", 120_000, undefined],
          ["junk", undefined, true],
        ]);
        expect(seen[0]?.next).toBeGreaterThan(Date.now());
      } finally {
        await observer.close();
      }
      expect((await s.pause("a")).paused).toBe(true);
      expect((await s.get("a"))?.next).toBeUndefined();
      const resumed = await s.resume("a");
      expect(resumed.paused).toBe(false);
      expect(resumed.resumedAt).toBeGreaterThanOrEqual(spec.createdAt);
      expect(await s.remove("a")).toBe(true);
      expect(await s.get("a")).toBeUndefined();
      await expect(s.pause("a")).rejects.toThrow(/no schedule named "a"/);
    } finally {
      await grid.close();
    }
  });
});

describe("the leader fires schedules", () => {
  it("an --every 1s schedule fires each slot once, and its results are the tasks <name>.<slot>", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1");
    expect((await g.submit(["schedule", "add", "tick", "--every", "1s", "--cmd", "echo tick"])).code).toBe(0);
    await waitFor(async () => (await firedSlots(g, "tick")).slots.length >= 5, {
      timeoutMs: 60_000,
      message: "five firings of tick",
    });
    const { slots, results } = await firedSlots(g, "tick");
    expect(results.every((r) => r.state === "succeeded" && r.stdoutTail === "tick\n")).toBe(true);
    expectEverySlotOnce(slots);
    const show = await g.submit(["schedule", "show", "tick"]);
    expect(show.stdout).toMatch(/recent firings \(slot, task, state\):\n/);
    expect(show.stdout).toMatch(new RegExp(`tick\\.${slots[0]}  succeeded`));
  });

  it("a leader SIGKILLed right after a firing's queue write does not fire that slot twice; catch-up all fires each", async () => {
    const g = start();
    g.worker("w1");
    const masters = [g.master("m1")];
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000, message: "m1 to lead" });
    masters.push(g.master("m2"));
    expect(
      (
        await g.submit([
          "schedule",
          "add",
          "beat",
          "--every",
          "1s",
          "--catch-up",
          "all",
          "--catch-up-max",
          "100",
          "--cmd",
          "true",
        ])
      ).code,
    ).toBe(0);
    const zk = await g.zk();
    // Twice: kill the leader the moment a firing's queue node appears (its firings write is in flight).
    for (const [round, next] of [
      ["m1", "m3"],
      ["m2", "m4"],
    ] as const) {
      await waitFor(async () => (await g.leaderName()) === round, {
        timeoutMs: 30_000,
        message: `${round} to lead`,
      });
      const before = new Set(await zk.getChildren(g.layout.queue));
      await waitFor(async () => (await zk.getChildren(g.layout.queue)).some((n) => !before.has(n)), {
        timeoutMs: 30_000,
        intervalMs: 5,
        message: "a firing's queue node",
      });
      masters.find((m) => m.child.spawnargs.includes(round))?.kill("SIGKILL");
      masters.push(g.master(next));
    }
    await waitFor(async () => (await g.leaderName()) === "m3", { timeoutMs: 30_000, message: "m3 to lead" });
    const settled = Date.now() + 3000;
    await waitFor(
      async () => {
        const { slots } = await firedSlots(g, "beat");
        return (slots[slots.length - 1] ?? 0) >= settled;
      },
      { timeoutMs: 60_000, message: "firings after the failovers" },
    );
    const { slots, results } = await firedSlots(g, "beat");
    expect(results.length).toBe(slots.length);
    expectEverySlotOnce(slots);
    expect(slots.length).toBeGreaterThanOrEqual(8);
  });

  it("a slot whose queue node was written but whose firings write was lost is not fired again by the next leader", async () => {
    const g = start();
    const zk = await g.zk();
    const now = Date.now();
    const last = Math.floor(now / 1000) * 1000 - 5000;
    for (const dir of [g.layout.schedules, g.layout.firings, g.layout.queue]) await zk.ensurePath(dir);
    await zk.create(
      g.layout.schedule("lost"),
      encodeScheduleSpec({
        v: 1,
        everyMs: 1000,
        task: { cmd: "true" },
        catchUp: "all",
        catchUpMax: 100,
        overlap: "allow",
        paused: false,
        createdAt: last - 10_000,
      }),
    );
    // What a leader killed between its two writes leaves: lastSlot behind, the next slots already queued.
    await zk.create(
      g.layout.firing("lost"),
      encodeScheduleState({ v: 1, epoch: 0, createdAt: last - 10_000, lastSlot: last, recent: [] }),
    );
    const queued = [last + 1000, last + 2000].map((slot) => ({
      id: firingTaskId("lost", slot),
      cmd: "true",
    }));
    await zk.create(
      `${g.layout.queue}/q`,
      encodeSubmitBatch({
        v: 1,
        batchId: "lost-firings",
        submittedAt: now,
        submitter: "leader@0",
        tasks: queued,
      }),
      "persistent-sequential",
    );
    g.master("m1");
    g.worker("w1");
    await waitFor(
      async () =>
        ((await firedSlots(g, "lost")).slots.at(-1) ?? 0) > now + 2000 &&
        (await firedSlots(g, "lost")).slots.length >= 8,
      {
        timeoutMs: 60_000,
        message: "the missed slots and new ones to fire",
      },
    );
    const { slots, results } = await firedSlots(g, "lost");
    expect(results.length).toBe(slots.length);
    expect(slots[0]).toBe(last + 1000);
    expectEverySlotOnce(slots);
    const state = await firings(g, "lost");
    expect(state?.epoch).toBeGreaterThanOrEqual(0);
    expect(state?.lastSlot).toBeGreaterThanOrEqual(last + 5000);
  });

  it("after the master was down, catch-up skip fires no missed slot, latest the newest, all each", async () => {
    const g = start();
    g.worker("w1");
    const m1 = g.master("m1");
    for (const policy of ["skip", "latest", "all"]) {
      expect(
        (await g.submit(["schedule", "add", policy, "--every", "1s", "--catch-up", policy, "--cmd", "true"]))
          .code,
      ).toBe(0);
    }
    await waitFor(async () => (await firedSlots(g, "skip")).slots.length >= 2, {
      timeoutMs: 30_000,
      message: "firings",
    });
    m1.kill("SIGKILL");
    // The next master leads once m1's session has expired (4 s): several slots come due meanwhile.
    g.master("m2");
    await waitFor(async () => (await g.leaderName()) === "m2", { timeoutMs: 30_000, message: "m2 to lead" });
    const after = Date.now() + 3000;
    await waitFor(
      async () => {
        for (const name of ["skip", "latest", "all"]) {
          const { slots } = await firedSlots(g, name);
          if ((slots[slots.length - 1] ?? 0) < after) return false;
        }
        return true;
      },
      { timeoutMs: 60_000, message: "firings after the restart" },
    );
    const missing = async (name: string) => {
      const { slots, results } = await firedSlots(g, name);
      expect(new Set(slots).size).toBe(results.length);
      let gap = 0;
      for (let i = 1; i < slots.length; i++)
        gap += ((slots[i] as number) - (slots[i - 1] as number)) / 1000 - 1;
      return gap;
    };
    const skipped = await missing("skip");
    expect(skipped).toBeGreaterThanOrEqual(2);
    expect(await missing("latest")).toBe(skipped - 1);
    expect(await missing("all")).toBe(0);
    expect((await firings(g, "skip"))?.recent.some((f) => f.skipped === "catch-up")).toBe(true);
  });

  it("overlap skip fires no slot while the previous firing runs", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1", ["--concurrency", "4"]);
    expect(
      (
        await g.submit([
          "schedule",
          "add",
          "slow",
          "--every",
          "1s",
          "--overlap",
          "skip",
          "--cmd",
          "sleep 2.2",
        ])
      ).code,
    ).toBe(0);
    await waitFor(async () => (await firedSlots(g, "slow")).results.length >= 3, {
      timeoutMs: 60_000,
      message: "three firings",
    });
    const { results } = await firedSlots(g, "slow");
    const runs = results
      .map((r) => [r.startedAt as number, r.finishedAt as number])
      .sort((a, b) => a[0]! - b[0]!);
    for (let i = 1; i < runs.length; i++) expect(runs[i]![0]).toBeGreaterThanOrEqual(runs[i - 1]![1]!);
    expect((await firings(g, "slow"))?.recent.some((f) => f.skipped === "overlap")).toBe(true);
  });

  it("a paused schedule fires nothing while the other keeps firing, and resumes from the next slot", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1");
    for (const name of ["one", "two"]) {
      expect(
        (await g.submit(["schedule", "add", name, "--every", "1s", "--catch-up", "all", "--cmd", "true"]))
          .code,
      ).toBe(0);
    }
    await waitFor(async () => (await firedSlots(g, "one")).slots.length >= 2, {
      timeoutMs: 30_000,
      message: "firings",
    });
    expect((await g.submit(["schedule", "pause", "one"])).code).toBe(0);
    const pausedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const resumedAt = Date.now();
    expect((await g.submit(["schedule", "resume", "one"])).code).toBe(0);
    await waitFor(async () => (await firedSlots(g, "one")).slots.some((s) => s > resumedAt + 1000), {
      timeoutMs: 30_000,
      message: "a firing after the resume",
    });
    const one = (await firedSlots(g, "one")).slots;
    expect(one.filter((s) => s > pausedAt + 1000 && s <= resumedAt)).toEqual([]);
    expect(new Set(one).size).toBe(one.length);
    const two = (await firedSlots(g, "two")).slots;
    expect(two.filter((s) => s > pausedAt + 1000 && s <= resumedAt).length).toBeGreaterThanOrEqual(2);
    expectEverySlotOnce(two);
  });
});
