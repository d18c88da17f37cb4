/**
 * Delays and retries (issue 15): (a) `count` delayed tasks held at once, then all run: the master's
 * memory while it holds them, ZooKeeper writes per task, and how late each starts after its due time;
 * (b) a task that fails once and is retried against one that succeeds at once: writes per task and
 * lone end-to-end latency of each, and their ratio.
 */
import { performance } from "node:perf_hooks";
import type { TaskInput } from "@zkgrid/submit";
import { readStatusKb } from "./processes.js";
import { MiB } from "./results.js";
import { type LatencySummary, round, summarize } from "./stats.js";
import { type CountedWorkload, onGridOfItsOwn, type RunningGrid } from "./zkgrid.js";
import { waitQuiet, writesBetween } from "./zookeeper.js";

export interface DelayedResult {
  kind: "delayed";
  shape: string;
  count: number;
  /** Submitting all `count` took this long; every task was due after that. */
  acceptedSeconds: number;
  /** The master's RSS before the submit, and while it held every task (all accepted, none due). */
  masterRssMiB: { before: number; holding: number };
  /** ZooKeeper writes per task, from before the submit until the grid was quiet after the last result. */
  zkWritesPerTask: number;
  /** How long after its `runAt` each task started (its status's `startedAt`), ms. */
  startLatenessMs: LatencySummary;
  /** How long after its `runAt` the leader handed it out (`assignedAt`), ms. */
  assignLatenessMs: LatencySummary;
  /** Any task that started before its runAt: must be 0. */
  early: number;
  failed: number;
  error?: string;
}

export interface RetryResult {
  kind: "retry";
  shape: string;
  count: number;
  /** Tasks that succeed at once, and tasks that fail their first attempt and succeed on the retry (no backoff). */
  firstTime: { zkWritesPerTask: number; loneLatencyMs: LatencySummary };
  retried: { zkWritesPerTask: number; loneLatencyMs: LatencySummary };
  /** retried / first-time, for writes and for the lone p50. */
  ratio: { writes: number; p50: number };
  failed: number;
  error?: string;
}

function masterRssMiB(grid: RunningGrid): number {
  const bytes = readStatusKb(grid.master.pid, "VmRSS");
  return bytes === undefined ? Number.NaN : round(bytes / MiB, 1);
}

export const zkgridDelayed: CountedWorkload<DelayedResult> = (ctx, shape, count, options = {}) =>
  onGridOfItsOwn<DelayedResult>(
    ctx,
    "delayed",
    shape,
    options,
    {
      count,
      acceptedSeconds: Number.NaN,
      masterRssMiB: { before: Number.NaN, holding: Number.NaN },
      zkWritesPerTask: Number.NaN,
      startLatenessMs: summarize([]),
      assignLatenessMs: summarize([]),
      early: 0,
      failed: 0,
    },
    async (grid, result) => {
      // Warm the grid up, untimed.
      await grid.client.submitAndWait(Array.from({ length: 200 }, (_, i) => ({ handler: "noop", input: i })));
      const before = await waitQuiet(ctx.zk);
      result.masterRssMiB.before = masterRssMiB(grid);
      // Every task is due only after all are accepted (a generous lead), spread over a window the
      // workers can keep up with, so lateness measures the leader's timer, not a backlog.
      const start = Date.now();
      const lead = 5000 + count / 5;
      const spread = Math.max(2000, count / 2);
      const tasks: TaskInput[] = Array.from({ length: count }, (_, i) => ({
        handler: "noop",
        input: i,
        runAt: start + lead + Math.floor((i * spread) / count),
      }));
      const runAt = new Map<string, number>();
      const t0 = performance.now();
      const ids = await grid.client.submit(tasks);
      result.acceptedSeconds = round((performance.now() - t0) / 1000);
      for (const [i, id] of ids.entries()) runAt.set(id, tasks[i]?.runAt ?? 0);
      // The leader has read the queue by now, in a step or two: sample while none is due yet.
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(2000, start + lead - Date.now() - 500))));
      result.masterRssMiB.holding = masterRssMiB(grid);
      const lateness: number[] = [];
      const assignLateness: number[] = [];
      await grid.client.wait(ids, {
        timeoutMs: lead + spread + 120_000,
        onResult: (status) => {
          const due = runAt.get(status.id) ?? 0;
          if (status.state !== "succeeded") result.failed++;
          if (status.startedAt !== undefined) {
            lateness.push(status.startedAt - due);
            if (status.startedAt < due) result.early++;
          }
          if (status.assignedAt !== undefined) assignLateness.push(status.assignedAt - due);
        },
      });
      const after = await waitQuiet(ctx.zk);
      result.zkWritesPerTask = round(writesBetween(before, after) / count, 3);
      result.startLatenessMs = summarize(lateness);
      result.assignLatenessMs = summarize(assignLateness);
    },
  );

export const zkgridRetry: CountedWorkload<RetryResult> = (ctx, shape, count, options = {}) => {
  const empty = { zkWritesPerTask: Number.NaN, loneLatencyMs: summarize([]) };
  const task = (retried: boolean, i: number): TaskInput =>
    retried
      ? { handler: "failOnce", input: i, maxAttempts: 2, retry: { backoff: { type: "fixed", delayMs: 0 } } }
      : { handler: "noop", input: i };
  return onGridOfItsOwn<RetryResult>(
    ctx,
    "retry",
    shape,
    options,
    {
      count,
      firstTime: { ...empty },
      retried: { ...empty },
      ratio: { writes: Number.NaN, p50: Number.NaN },
      failed: 0,
    },
    async (grid, result) => {
      await grid.client.submitAndWait(Array.from({ length: 100 }, (_, i) => task(i % 2 === 0, i)));
      for (const [key, retried] of [
        ["firstTime", false],
        ["retried", true],
      ] as const) {
        // Writes: a batch of `count`, submitted at once.
        const before = await waitQuiet(ctx.zk);
        const batch = await grid.client.submitAndWait(
          Array.from({ length: count }, (_, i) => task(retried, i)),
        );
        for (const s of batch.values()) if (s.state !== "succeeded") result.failed++;
        const after = await waitQuiet(ctx.zk);
        // Latency: lone tasks one at a time (through the queue: a retried task never goes direct).
        const latencies: number[] = [];
        for (let i = 0; i < Math.min(count, 200); i++) {
          const t0 = performance.now();
          // A caller's own id keeps a lone first-time task off the direct path too: the same route for both.
          // Its wait starts from a baseline taken before the write (not awaited first: a session's requests
          // apply in order), as a generated id's does: else it reads every result node the grid keeps.
          const since = grid.client.resultBaseline();
          const ids = await grid.client.submit({ ...task(retried, i), id: `lone-${key}-${i}` });
          const status = await grid.client.wait(ids, { since: await since });
          latencies.push(performance.now() - t0);
          for (const s of status.values()) if (s.state !== "succeeded") result.failed++;
        }
        result[key] = {
          zkWritesPerTask: round(writesBetween(before, after) / count, 3),
          loneLatencyMs: summarize(latencies),
        };
      }
      result.ratio = {
        writes: round(result.retried.zkWritesPerTask / result.firstTime.zkWritesPerTask, 2),
        p50: round(result.retried.loneLatencyMs.p50 / result.firstTime.loneLatencyMs.p50, 2),
      };
    },
  );
};

/** One line for the run's log. */
export function describeTimeResult(r: DelayedResult | RetryResult): string {
  const error = r.error ? ` ERROR ${r.error}` : "";
  if (r.kind === "delayed")
    return `  delayed: ${r.count} held, master RSS ${r.masterRssMiB.before} → ${r.masterRssMiB.holding} MiB, ${r.zkWritesPerTask} ZK writes/task, start lateness p50 ${r.startLatenessMs.p50} ms p99 ${r.startLatenessMs.p99} ms, early ${r.early}${error}`;
  return `  retry: ${r.firstTime.zkWritesPerTask} → ${r.retried.zkWritesPerTask} ZK writes/task (×${r.ratio.writes}), lone p50 ${r.firstTime.loneLatencyMs.p50} → ${r.retried.loneLatencyMs.p50} ms (×${r.ratio.p50})${error}`;
}
