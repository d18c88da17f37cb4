import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { availableParallelism } from "node:os";
import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { BINS, type BenchContext, type Workload } from "./context.js";
import { CpuMeter, CpuTotals, GuardedProcess } from "./processes.js";
import type { LatencyResult, PeakRss, ThroughputResult } from "./results.js";
import { cpuPerTask, emptyLatency, emptyThroughput, measureInto, toMiB } from "./results.js";
import { countRedisLoad } from "./redis.js";
import { median, round, summarize } from "./stats.js";

export interface BullShape {
  /** Worker processes. */
  workers: number;
  concurrency: number;
}

export function describeBullShape(shape: BullShape): string {
  return `${shape.workers} worker process${shape.workers === 1 ? "" : "es"} × ${shape.concurrency}`;
}

/** What a TypeScript user would set up: a Queue, QueueEvents for results, and worker processes. */
class RunningBull {
  private constructor(
    readonly queue: Queue,
    readonly events: QueueEvents,
    readonly workers: GuardedProcess[],
  ) {}

  static async start(
    ctx: BenchContext,
    label: string,
    shape: BullShape,
    maxEvents: number,
  ): Promise<RunningBull> {
    const name = `${label}-${randomUUID().slice(0, 8)}`;
    const connection = { host: "127.0.0.1", port: ctx.redis.port, maxRetriesPerRequest: null };
    // The events stream is trimmed to ~10 000 entries by default: a submitter that lags behind a fast
    // burst would lose `completed` events, so keep room for the whole run.
    const queue = new Queue(name, { connection, streams: { events: { maxLen: maxEvents } } });
    const events = new QueueEvents(name, { connection });
    const workers: GuardedProcess[] = [];
    try {
      await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
      for (let i = 0; i < shape.workers; i++) {
        workers.push(
          new GuardedProcess(
            `${label}-worker${i + 1}`,
            process.execPath,
            [BINS.bullmqWorker, String(ctx.redis.port), name, String(shape.concurrency)],
            { logFile: join(ctx.workDir, `${label}-worker${i + 1}.log`), pipeStdout: true },
          ),
        );
      }
      await Promise.all(workers.map((w) => w.waitForLine(/^ready$/, 30_000)));
      for (const w of workers) w.discardStdout();
      return new RunningBull(queue, events, workers);
    } catch (error) {
      await Promise.all(workers.map((w) => w.stop()));
      await events.close();
      await queue.close();
      throw error;
    }
  }

  /** Meters the worker processes, Redis and this process (the submitter). */
  cpuMeter(redisPid: number): CpuMeter {
    return new CpuMeter({ workers: this.workers.map((w) => w.pid), redis: [redisPid] });
  }

  peakRss(): PeakRss {
    return { workers: this.workers.map((w) => toMiB(w.peakRssBytes()) ?? Number.NaN) };
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.events.close();
    await this.queue.obliterate({ force: true }).catch(() => {});
    await this.queue.close();
  }
}

/**
 * Adds `count` jobs in bulk (1000 per addBulk, as zkgrid packs at most 1000 tasks per queue node) and
 * waits for each one's `completed` event on QueueEvents.
 */
async function addAll(
  bull: RunningBull,
  workload: Workload,
  count: number,
  timeoutMs: number,
): Promise<{ latencies: number[]; failed: number; ms: number }> {
  const latencies: number[] = [];
  let failed = 0;
  let seen = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const start = performance.now();
  const onEnd = () => {
    latencies.push(performance.now() - start);
    if (++seen === count) finish();
  };
  const onFailed = () => {
    failed++;
    onEnd();
  };
  bull.events.on("completed", onEnd);
  bull.events.on("failed", onFailed);
  let timer: NodeJS.Timeout | undefined;
  try {
    for (let i = 0; i < count; i += 1000) {
      const n = Math.min(1000, count - i);
      await bull.queue.addBulk(Array.from({ length: n }, (_, k) => ({ name: workload, data: { i: i + k } })));
    }
    await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${count - seen} of ${count} jobs unfinished after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
    return { latencies, failed, ms: performance.now() - start };
  } finally {
    clearTimeout(timer);
    bull.events.off("completed", onEnd);
    bull.events.off("failed", onFailed);
  }
}

export async function bullThroughput(
  ctx: BenchContext,
  workload: Workload,
  shape: BullShape,
  warmup: number,
  count: number,
  rounds: number,
): Promise<ThroughputResult> {
  const result = emptyThroughput({
    system: "bullmq",
    workload,
    shape: describeBullShape(shape),
    workers: shape.workers,
    concurrency: shape.concurrency,
    warmup,
    count,
  });
  const bull = await RunningBull.start(
    ctx,
    `bullmq-${workload}-${shape.workers}w`,
    shape,
    2 * (warmup + count * rounds),
  );
  return measureInto(result, bull, async () => {
    await addAll(bull, workload, warmup, Math.max(60_000, warmup * 5));
    const cpu = new CpuTotals();
    const latencies: number[] = [];
    let ms = 0;
    for (let round = 0; round < rounds; round++) {
      const meter = bull.cpuMeter(ctx.redis.process.pid);
      meter.start();
      const run = await addAll(bull, workload, count, Math.max(60_000, count * 5));
      cpu.add(meter.stop());
      ms += run.ms;
      latencies.push(...run.latencies);
      result.failed += run.failed;
      result.rounds.push(Math.round((count / (run.ms / 1000)) * 10) / 10);
      // Let the workers' trailing event writes settle, as zkgrid's rounds wait for a quiet server.
      await new Promise((r) => setTimeout(r, 300));
    }
    result.seconds = round(ms / 1000);
    result.tasksPerSecond = median(result.rounds);
    result.latencyMs = summarize(latencies);
    result.cpuMsPerTask = cpuPerTask(cpu.totals, count * rounds, ms, availableParallelism());
  }).finally(() => flushRedis(ctx));
}

export async function bullLatency(
  ctx: BenchContext,
  shape: BullShape,
  warmup: number,
  count: number,
): Promise<LatencyResult> {
  const result = emptyLatency({ system: "bullmq", shape: describeBullShape(shape), warmup, count });
  const bull = await RunningBull.start(ctx, "bullmq-latency", shape, 10_000);
  return measureInto(result, bull, async () => {
    const one = async (i: number): Promise<number> => {
      const start = performance.now();
      const job = await bull.queue.add("noop", { i });
      try {
        await job.waitUntilFinished(bull.events, 30_000);
      } catch {
        result.failed++;
      }
      return performance.now() - start;
    };
    for (let i = 0; i < warmup; i++) await one(i);
    result.failed = 0;
    const meter = bull.cpuMeter(ctx.redis.process.pid);
    meter.start();
    const start = performance.now();
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) latencies.push(await one(warmup + i));
    result.cpuMsPerTask = cpuPerTask(meter.stop(), count, performance.now() - start, availableParallelism());
    result.latencyMs = summarize(latencies);
    const failed = result.failed;
    result.redis = await countRedisLoad(ctx.redis.port, Math.min(count, 50), (i) => one(warmup + count + i));
    result.failed = failed;
  }).finally(() => flushRedis(ctx));
}

async function flushRedis(ctx: BenchContext): Promise<void> {
  const client = new Redis({ host: "127.0.0.1", port: ctx.redis.port, maxRetriesPerRequest: 1 });
  try {
    await client.flushall();
  } finally {
    client.disconnect();
  }
}
