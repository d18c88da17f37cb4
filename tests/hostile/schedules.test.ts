import { encodeScheduleSpec, parseFiringTaskId } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { Cluster } from "../chaos/cluster.js";
import { clusterPerTest, waitForLeader } from "./harness.js";
import { hostileSchedules, scheduleBase } from "./schedule-corpus.js";

const newCluster = clusterPerTest(4000);

/** The reasons a master logged for ignoring schedules, by schedule name. */
function ignored(log: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of log.split("\n")) {
    if (!line.includes("unreadable schedule; ignoring it")) continue;
    const entry = JSON.parse(line) as { schedule: string; reason: string };
    out.set(entry.schedule, entry.reason);
  }
  return out;
}

async function goodSlots(c: Cluster): Promise<number[]> {
  return (await c.results())
    .map((r) => parseFiringTaskId(r.id))
    .filter((f) => f?.name === "good")
    .map((f) => f?.slot as number)
    .sort((a, b) => a - b);
}

describe("hostile schedules written straight into ZooKeeper", () => {
  it("malformed schedule nodes are ignored with a logged reason, also on takeover; the valid one keeps firing once per slot", async () => {
    const c = newCluster("hostile");
    const zk = await c.zk();
    await zk.ensurePath(c.layout.schedules);
    const cases = hostileSchedules();
    for (const k of cases) await zk.create(c.layout.schedule(k.name), k.data);
    const good = { ...scheduleBase, everyMs: 1000, task: { cmd: "true" }, createdAt: Date.now() };
    // A valid spec under a name that is not a schedule name.
    await zk.create(`${c.layout.schedules}/bad.name`, encodeScheduleSpec(good));
    await zk.create(c.layout.schedule("good"), encodeScheduleSpec(good));
    // A firings node of garbage: rewritten, not believed.
    await zk.ensurePath(c.layout.firings);
    await zk.create(c.layout.firing("good"), "garbage");

    c.startMaster("m1");
    await waitForLeader(c, "m1");
    c.startMaster("m2");
    c.startWorker("w1");
    await waitFor(async () => (await goodSlots(c)).length >= 3, {
      timeoutMs: 60_000,
      message: "good to fire",
    });

    for (const master of ["m1"]) {
      const reasons = ignored(c.proc(master)?.log() ?? "");
      for (const k of cases) expect(reasons.get(k.name), `${master}: ${k.name}`).toMatch(k.reason);
      expect(c.proc(master)?.log()).toMatch(
        /"node":"bad\.name".*"msg":"unexpected node under schedules; ignoring it"/,
      );
    }
    // Valid schedules broken while the leader runs are ignored from then on; the leader stays up.
    await zk.set(c.layout.schedule("good"), encodeScheduleSpec({ ...good, paused: false }));
    await zk.create(c.layout.schedule("later"), encodeScheduleSpec({ ...good, createdAt: Date.now() }));
    await waitFor(async () => (await c.results()).some((r) => parseFiringTaskId(r.id)?.name === "later"), {
      timeoutMs: 30_000,
      message: "later to fire",
    });
    await zk.set(c.layout.schedule("later"), JSON.stringify({ ...good, cron: "nope" }));
    await waitFor(async () => ignored(c.proc("m1")?.log() ?? "").has("later"), {
      timeoutMs: 30_000,
      message: "later ignored",
    });

    await c.proc("m1")?.kill();
    await waitForLeader(c, "m2");
    const after = Date.now() + 2000;
    await waitFor(async () => ((await goodSlots(c)).at(-1) ?? 0) > after, {
      timeoutMs: 60_000,
      message: "good after takeover",
    });
    const reasons = ignored(c.proc("m2")?.log() ?? "");
    for (const k of cases) expect(reasons.get(k.name), `m2: ${k.name}`).toMatch(k.reason);
    expect(reasons.get("later")).toMatch(/exactly one of "cron" or "everyMs"/);

    const slots = await goodSlots(c);
    expect(new Set(slots).size).toBe(slots.length);
    for (let i = 1; i < slots.length; i++) expect((slots[i] as number) - (slots[i - 1] as number)).toBe(1000);
    const names = new Set((await c.results()).map((r) => parseFiringTaskId(r.id)?.name));
    for (const k of cases) expect(names.has(k.name)).toBe(false);
    expect(c.proc("m2")?.alive).toBe(true);
  }, 300_000);
});
