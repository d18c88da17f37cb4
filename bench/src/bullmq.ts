import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { BINS, type BenchContext, type Workload } from "./context.js";
import { CpuMeter, GuardedProcess } from "./processes.js";
import type { LatencyResult, PeakRss, ThroughputResult } from "./results.js";
import { emptyLatency, emptyThroughput, toMiB } from "./results.js";
import { countRedisLoad, untilNoRewrite } from "./redis.js";
import { alone, REWARM_TASKS, RoundTally, type Side, share } from "./turns.js";

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

/** BullMQ's side of a throughput part: `count` jobs added per round, after `warmup`. */
export class BullThroughput implements Side<ThroughputResult> {
  private readonly result: ThroughputResult;
  private bull: RunningBull | undefined;
  private readonly tally = new RoundTally();

  constructor(
    private readonly ctx: BenchContext,
    private readonly workload: Workload,
    private readonly shape: BullShape,
    private readonly warmup: number,
    private readonly count: number,
    private readonly rounds: number,
  ) {
    this.result = emptyThroughput({
      system: "bullmq",
      workload,
      shape: describeBullShape(shape),
      workers: shape.workers,
      concurrency: shape.concurrency,
      warmup,
      count,
    });
  }

  async start(): Promise<void> {
    const { ctx, workload, shape, warmup } = this;
    const label = `bullmq-${workload}-${shape.workers}w`;
    this.bull = await RunningBull.start(ctx, label, shape, 2 * (warmup + this.count * this.rounds));
    await addAll(this.bull, workload, warmup, Math.max(60_000, warmup * 5));
    await settle(ctx);
  }

  async round(): Promise<void> {
    const { ctx, count, result } = this;
    const bull = this.bull as RunningBull;
    const meter = bull.cpuMeter(ctx.redis.process.pid);
    meter.start();
    const run = await addAll(bull, this.workload, count, Math.max(60_000, count * 5));
    this.tally.add(run.ms, run.latencies, meter.stop());
    result.failed += run.failed;
    result.rounds.push(Math.round((count / (run.ms / 1000)) * 10) / 10);
    await settle(ctx);
  }

  async finish(error: unknown): Promise<ThroughputResult> {
    await this.tally.into(this.result, error, this.bull);
    await flushRedis(this.ctx).catch(() => {});
    return this.result;
  }
}

/** BullMQ's throughput alone: its rounds in a row. */
export function bullThroughput(
  ctx: BenchContext,
  workload: Workload,
  shape: BullShape,
  warmup: number,
  count: number,
  rounds: number,
): Promise<ThroughputResult> {
  return alone(new BullThroughput(ctx, workload, shape, warmup, count, rounds), rounds);
}

/**
 * BullMQ's side of the latency part, as zkgrid's (GridLatency): one job at a time, `count` timed ones
 * split over the rounds, each round after a few untimed ones. Then, untimed, the Redis writes of up to
 * 50 more jobs are counted.
 */
export class BullLatency implements Side<LatencyResult> {
  private readonly result: LatencyResult;
  private bull: RunningBull | undefined;
  private readonly tally = new RoundTally();
  private next = 0;

  constructor(
    private readonly ctx: BenchContext,
    private readonly shape: BullShape,
    private readonly warmup: number,
    private readonly count: number,
    private readonly rounds: number,
  ) {
    this.result = emptyLatency({ system: "bullmq", shape: describeBullShape(shape), warmup, count });
  }

  /** One lone job, timed; `untimed`: its failure is not counted either. */
  private async one(untimed = false): Promise<number> {
    const bull = this.bull as RunningBull;
    const start = performance.now();
    const job = await bull.queue.add("noop", { i: this.next++ });
    try {
      await job.waitUntilFinished(bull.events, 30_000);
    } catch {
      if (!untimed) this.result.failed++;
    }
    return performance.now() - start;
  }

  async start(): Promise<void> {
    this.bull = await RunningBull.start(this.ctx, "bullmq-latency", this.shape, 10_000);
    for (let i = 0; i < this.warmup; i++) await this.one(true);
    await settle(this.ctx);
  }

  async round(index: number): Promise<void> {
    const bull = this.bull as RunningBull;
    for (let i = 0; i < REWARM_TASKS; i++) await this.one(true);
    const meter = bull.cpuMeter(this.ctx.redis.process.pid);
    meter.start();
    const start = performance.now();
    const latencies: number[] = [];
    for (let i = share(this.count, this.rounds, index); i > 0; i--) latencies.push(await this.one());
    this.tally.add(performance.now() - start, latencies, meter.stop());
    await settle(this.ctx);
  }

  async finish(error: unknown): Promise<LatencyResult> {
    const { result } = this;
    if (this.bull !== undefined && this.tally.tasks > 0) {
      try {
        result.redis = await countRedisLoad(this.ctx.redis.port, Math.min(this.tally.tasks, 50), () =>
          this.one(true),
        );
      } catch (e) {
        error ??= e;
      }
    }
    await this.tally.into(result, error, this.bull);
    await flushRedis(this.ctx).catch(() => {});
    return result;
  }
}

/**
 * After a BullMQ round, untimed: the workers' trailing event writes settle (as zkgrid's rounds wait
 * for a quiet ZooKeeper), and an AOF rewrite that its writes set off is waited for, so that it does
 * not run into the next side's round.
 */
async function settle(ctx: BenchContext): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  await untilNoRewrite(ctx.redis.port);
}

async function flushRedis(ctx: BenchContext): Promise<void> {
  const client = new Redis({ host: "127.0.0.1", port: ctx.redis.port, maxRetriesPerRequest: 1 });
  try {
    await client.flushall();
  } finally {
    client.disconnect();
  }
}
