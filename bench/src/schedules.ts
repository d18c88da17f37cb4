/**
 * The schedules workload: many schedules firing every second for a while. It measures the leader's
 * CPU and ZooKeeper's writes per firing, how late firings are queued after their slot, and checks that
 * every slot in the window fired exactly once (one final status per slot's task id, no other firing).
 */
import { cpuTimeMs } from "./processes.js";
import type { BenchContext } from "./context.js";
import { decodeResultBatch, firingTaskId, parseFiringTaskId } from "@zkgrid/protocol";
import { type LatencySummary, summarize } from "./stats.js";
import { readCounters, waitQuiet, writesBetween } from "./zookeeper.js";
import { type GridOptions, type GridShape, onGridOfItsOwn } from "./zkgrid.js";

export interface SchedulesResult {
  kind: "schedules";
  shape: string;
  schedules: number;
  seconds: number;
  /** Slots in the measured window, over all schedules. */
  slotsExpected: number;
  /** Of those, slots with exactly one final status. */
  slotsFiredOnce: number;
  /** Slots with no status, or more than one. */
  slotsMissing: number;
  slotsDuplicated: number;
  /** Firings of a slot outside the window or of no schedule of this run. */
  strayFirings: number;
  /** The master's CPU over the window, as a share of one core (100 = one core busy). */
  leaderCpuPercent: number;
  leaderCpuMsPerFiring: number;
  zkWritesPerFiring: number;
  /** From a slot to its firing's queue write (the batch's submittedAt), ms. */
  queuedLateMs: LatencySummary;
  error?: string;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

export async function zkgridSchedules(
  ctx: BenchContext,
  shape: GridShape,
  count: number,
  seconds: number,
  options: GridOptions = {},
): Promise<SchedulesResult> {
  const names = Array.from({ length: count }, (_, i) => `s${i}`);
  return onGridOfItsOwn<SchedulesResult>(
    ctx,
    "schedules",
    shape,
    options,
    {
      schedules: count,
      seconds,
      slotsExpected: 0,
      slotsFiredOnce: 0,
      slotsMissing: 0,
      slotsDuplicated: 0,
      strayFirings: 0,
      leaderCpuPercent: Number.NaN,
      leaderCpuMsPerFiring: Number.NaN,
      zkWritesPerFiring: Number.NaN,
      queuedLateMs: summarize([]),
    },
    async (grid, result) => {
      const schedules = grid.client.schedules;
      for (let i = 0; i < names.length; i += 100) {
        await Promise.all(
          names
            .slice(i, i + 100)
            .map((name) => schedules.add(name, { every: 1000, catchUp: "all", task: { handler: "noop" } })),
        );
      }
      // A warm-up of two slots, then the window: every slot in (from, to] of every schedule.
      const from = Math.ceil(Date.now() / 1000) * 1000 + 2000;
      const to = from + seconds * 1000;
      await sleep(from - Date.now() + 200);
      const before = await readCounters(ctx.zk);
      const cpuBefore = cpuTimeMs(grid.master.pid) ?? 0;
      await sleep(to - Date.now() + 200);
      const cpuMs = (cpuTimeMs(grid.master.pid) ?? 0) - cpuBefore;
      await Promise.all(names.map((name) => schedules.pause(name)));
      const after = await waitQuiet(ctx.zk);
      const expected = new Set<string>();
      for (const name of names)
        for (let s = from + 1000; s <= to; s += 1000) expected.add(firingTaskId(name, s));
      result.slotsExpected = expected.size;
      result.leaderCpuPercent = Math.round((cpuMs / (to - from)) * 1000) / 10;
      result.leaderCpuMsPerFiring = Math.round((cpuMs / expected.size) * 1000) / 1000;
      result.zkWritesPerFiring = Math.round((writesBetween(before, after) / expected.size) * 100) / 100;

      // Every status of every firing, from all result nodes (duplicates kept).
      const seen = new Map<string, number>();
      const late: number[] = [];
      const deadline = Date.now() + 120_000;
      for (;;) {
        seen.clear();
        late.length = 0;
        const nodes = await grid.zk.getChildren(grid.client.layout.results);
        for (const node of nodes) {
          const got = await grid.zk.get(`${grid.client.layout.results}/${node}`).catch(() => undefined);
          const decoded = got ? decodeResultBatch(got.data) : undefined;
          if (!decoded?.ok) continue;
          for (const status of decoded.value.results) {
            const firing = parseFiringTaskId(status.id);
            if (!firing) continue;
            seen.set(status.id, (seen.get(status.id) ?? 0) + 1);
            if (expected.has(status.id) && status.submittedAt !== undefined)
              late.push(status.submittedAt - firing.slot);
          }
        }
        if ([...expected].every((id) => seen.has(id)) || Date.now() > deadline) break;
        await sleep(500);
      }
      for (const id of expected) {
        const n = seen.get(id) ?? 0;
        if (n === 1) result.slotsFiredOnce++;
        else if (n === 0) result.slotsMissing++;
        else result.slotsDuplicated++;
      }
      for (const [id, n] of seen) {
        const firing = parseFiringTaskId(id);
        if (!expected.has(id) && firing && firing.slot > from + 1000 && firing.slot <= to)
          result.strayFirings += n;
        else if (!expected.has(id) && firing && n > 1) result.strayFirings += n - 1;
      }
      result.queuedLateMs = summarize(late);
    },
  );
}
