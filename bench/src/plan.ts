/**
 * What one pass of the bench runs on one pair of servers: the parts, their task counts and shapes, in
 * the order they run.
 */
import { zkgridSchedules } from "./schedules.js";
import { BullLatency, type BullShape, BullThroughput, bullThroughput, describeBullShape } from "./bullmq.js";
import {
  fsyncFloor,
  spawnCeiling,
  spawnCeilingBesideRounds,
  zkCreateCeiling,
  zkDirectFloor,
  zkLoneCreateFloor,
  zkRelayFloor,
} from "./ceilings.js";
import type { BenchContext } from "./context.js";
import type { BenchResult, LatencyResult, ThroughputResult } from "./results.js";
import { describeCurve, type ScaleCurveConfig, zkgridScaleCurve } from "./scale-curve.js";
import { zkgridDelayed, zkgridRetry } from "./time-workloads.js";
import { zkgridSubmitters } from "./submitters.js";
import { type Side, takeTurns } from "./turns.js";
import {
  GridLatency,
  type GridShape,
  GridThroughput,
  type ServerWarmup,
  warmServer,
  zkgridScale,
  zkgridThroughput,
} from "./zkgrid.js";

export const PARTS = [
  "ceilings",
  "noop",
  "shell",
  "latency",
  "scale",
  "delayed",
  "retry",
  "schedules",
  "submitters",
] as const;
/** What a run does unless `--only` names parts: the schedules workload runs only when asked for. */
const DEFAULT_PARTS: Part[] = PARTS.filter((part) => part !== "schedules" && part !== "submitters");
export type Part = (typeof PARTS)[number];
export type Mode = "full" | "quick" | "smoke" | "scale" | "partial";

/** Task counts and shapes of one mode. Warm-up tasks are never timed. */
export interface Config {
  mode: Mode;
  parts: Part[];
  /** Timed rounds of each throughput run, `count` tasks each; the median round is reported. */
  rounds: number;
  noop: { warmup: number; count: number; zkgrid: GridShape; bullmq: BullShape[] };
  shell: { warmup: number; count: number; zkgrid: GridShape; bullmq: BullShape[] };
  /** `floorWarmup`: untimed operations before each latency floor. */
  latency: { warmup: number; count: number; floorWarmup: number; zkgrid: GridShape; bullmq: BullShape };
  ceilings: {
    zkCreates: { warmup: number; count: number; inFlight: number };
    spawn: { warmup: number; count: number; concurrency: number; processes: number[] };
  };
  /** `count` tasks queued at once on `zkgrid`; `curve`: the workers curve (scale-curve.ts). */
  scale: { count: number; zkgrid: GridShape; curve: ScaleCurveConfig; only?: string[] };
  /** `delayed`: tasks held at once before they are due; `retry`: tasks of each kind (see time-workloads.ts). */
  time: { delayed: number; retry: number; zkgrid: GridShape };
  /** `count` schedules firing every second for `seconds`. */
  schedules: { count: number; seconds: number; zkgrid: GridShape };
  /** The throw-away grid that warms ZooKeeper's JIT up first: tasks per round, at most this many rounds. */
  serverWarmup: { tasksPerRound: number; maxRounds: number };
  masterRssLimitMiB: number;
}

/**
 * The figures of each mode, one row a figure, one column a mode: smoke (only proves that every part runs
 * end to end; its figures mean nothing), quick, full. `*BullWorkers`: BullMQ's worker counts, one run each.
 */
const FIGURES = {
  rounds: [1, 3, 5],
  noopWarmup: [100, 5000, 20_000],
  noopCount: [200, 2500, 20_000],
  noopBullWorkers: [[1], [1], [1, 2]],
  shellWarmup: [10, 60, 1500],
  shellCount: [20, 150, 1000],
  shellBullWorkers: [[1], [2], [2]],
  latencyWarmup: [5, 20, 2000],
  latencyCount: [20, 200, 1000],
  latencyFloorWarmup: [5, 20, 200],
  zkCreatesWarmup: [100, 1000, 5000],
  zkCreatesCount: [500, 5000, 50_000],
  zkCreatesInFlight: [100, 500, 500],
  spawnWarmup: [5, 50, 300],
  spawnCount: [40, 600, 3000],
  spawnProcesses: [[1], [1], [1, 2]],
  scaleCount: [500, 20_000, 100_000],
  curveWorkers: [
    [10, 50],
    [10, 100],
    [10, 100, 1000],
  ],
  curveWarmup: [100, 500, 1000],
  curveTasks: [300, 2000, 3000],
  curveQueuedPerWorker: [20, 100, 100],
  timeDelayed: [200, 5000, 100_000],
  timeRetry: [20, 200, 1000],
  schedulesCount: [5, 100, 1000],
  schedulesSeconds: [3, 10, 60],
  serverWarmupTasksPerRound: [200, 5000, 10_000],
  serverWarmupMaxRounds: [1, 3, 8],
} as const;

const COLUMN = { smoke: 0, quick: 1, full: 2 } as const;

export function configFor(mode: "full" | "quick" | "smoke"): Config {
  const at = <R extends readonly [unknown, unknown, unknown]>(row: R): R[number] => row[COLUMN[mode]];
  const f = FIGURES;
  // Workers hold tasks beyond their concurrency (--prefetch), so that many share each report and
  // assignment; BullMQ's workers run with the same concurrency.
  const noopShape = { workers: 2, concurrency: 100, prefetch: 100 };
  const shellShape = { workers: 2, concurrency: 8, prefetch: 32 };
  // One task at a time: nothing is ever held, so prefetch changes nothing there.
  const latencyShape = { workers: 2, concurrency: 100 };
  const bullmq = (workers: readonly number[], concurrency: number): BullShape[] =>
    workers.map((n) => ({ workers: n, concurrency }));
  return {
    mode,
    parts: mode === "quick" ? ["ceilings", "noop", "shell", "latency"] : [...DEFAULT_PARTS],
    rounds: at(f.rounds),
    noop: {
      warmup: at(f.noopWarmup),
      count: at(f.noopCount),
      zkgrid: noopShape,
      bullmq: bullmq(at(f.noopBullWorkers), 100),
    },
    shell: {
      warmup: at(f.shellWarmup),
      count: at(f.shellCount),
      zkgrid: shellShape,
      bullmq: bullmq(at(f.shellBullWorkers), 8),
    },
    latency: {
      warmup: at(f.latencyWarmup),
      count: at(f.latencyCount),
      floorWarmup: at(f.latencyFloorWarmup),
      zkgrid: latencyShape,
      bullmq: { workers: 1, concurrency: 100 },
    },
    ceilings: {
      zkCreates: {
        warmup: at(f.zkCreatesWarmup),
        count: at(f.zkCreatesCount),
        inFlight: at(f.zkCreatesInFlight),
      },
      spawn: {
        warmup: at(f.spawnWarmup),
        count: at(f.spawnCount),
        concurrency: 8,
        processes: [...at(f.spawnProcesses)],
      },
    },
    scale: {
      count: at(f.scaleCount),
      zkgrid: noopShape,
      curve: {
        workers: [...at(f.curveWorkers)],
        perProcess: 50,
        concurrency: 2,
        warmup: at(f.curveWarmup),
        tasks: at(f.curveTasks),
        tasksPerSecond: 300,
        queuedPerWorker: at(f.curveQueuedPerWorker),
        maxQueued: 100_000,
        // The masters' and workers' default.
        sessionTimeoutMs: 10_000,
      },
    },
    time: { delayed: at(f.timeDelayed), retry: at(f.timeRetry), zkgrid: noopShape },
    schedules: { count: at(f.schedulesCount), seconds: at(f.schedulesSeconds), zkgrid: noopShape },
    serverWarmup: { tasksPerRound: at(f.serverWarmupTasksPerRound), maxRounds: at(f.serverWarmupMaxRounds) },
    masterRssLimitMiB: 300,
  };
}

/** One measurement of the scale part (`--scale`): its result goes into the JSON with the others'. */
export interface ScalePart {
  name: string;
  describe: (config: Config) => string;
  run: (ctx: BenchContext, config: Config, nodeFlags: string[]) => Promise<BenchResult>;
}

/** What `--scale` runs, in this order. A new scale measurement adds its line here. */
export const SCALE_PARTS: ScalePart[] = [
  {
    name: "queued",
    describe: (c) => `${c.scale.count} no-op tasks queued at once`,
    run: (ctx, c, nodeFlags) => zkgridScale(ctx, c.scale.zkgrid, c.scale.count, { nodeFlags }),
  },
  {
    name: "workers",
    describe: (c) => `the workers curve, ${describeCurve(c.scale.curve)}`,
    run: (ctx, c, nodeFlags) => zkgridScaleCurve(ctx, c.scale.curve, nodeFlags),
  },
  {
    name: "submitters",
    describe: () => "1, 10 and 50 submitters at once, results in reply dirs and in R/results",
    run: (ctx) => zkgridSubmitters(ctx),
  },
];

/** The same grid started with the programs' defaults: no tuning flags. */
function defaultsOf(shape: GridShape): GridShape {
  return { workers: shape.workers, concurrency: shape.concurrency, defaults: true };
}

export interface PassOptions {
  /** The parts to run in this pass (a subset of config.parts). */
  parts: Part[];
  /** ZooKeeper's data dir: the fsync floor is measured on its file system. */
  zkDataDir: string;
  nodeFlags: string[];
  /** `--consumer`: a project that installed the packed packages; its programs' latency is measured too. */
  consumer?: string;
  /** Measure the consumer's install before this repository's programs, not after. */
  consumerFirst?: boolean;
  /**
   * Take the sides of the no-op and latency parts in the opposite order (BullMQ, then zkgrid with the
   * programs' defaults, then the tuned grid): the order they start in, and in which round 1 runs (later
   * rounds rotate it; see takeTurns). The runner alternates it between runs, so that no side always
   * starts first after the server's warm-up.
   */
  reverse?: boolean;
  /** Called with each result as it comes. */
  record: (result: BenchResult) => void;
}

/** Runs the parts on one pair of servers; returns how the server was warmed up. */
export async function runPass(
  ctx: BenchContext,
  config: Config,
  options: PassOptions,
): Promise<ServerWarmup | undefined> {
  const { log } = ctx;
  const { nodeFlags, record } = options;
  const has = (part: Part) => options.parts.includes(part);
  let serverWarmup: ServerWarmup | undefined;
  if (options.parts.some((part) => part !== "ceilings")) {
    log("warming ZooKeeper up with a throw-away grid, until its JIT compilers are quiet");
    serverWarmup = await warmServer(ctx, config.serverWarmup.tasksPerRound, config.serverWarmup.maxRounds);
    log(
      `  ${serverWarmup.rounds} rounds, ${serverWarmup.tasks} tasks, ${serverWarmup.seconds} s; JIT share of ZooKeeper's CPU in the last round: ${serverWarmup.jitShareLastRound === null ? "not measured" : `${Math.round(serverWarmup.jitShareLastRound * 100)}%`}`,
    );
  }
  if (has("ceilings")) {
    const c = config.ceilings;
    log(`ceiling: ${c.zkCreates.count} pipelined ZooKeeper creates`);
    record(await zkCreateCeiling(ctx, c.zkCreates.warmup, c.zkCreates.count, c.zkCreates.inFlight));
    for (const processes of c.spawn.processes) {
      log(`ceiling: ${c.spawn.count} spawns of sh -c true from ${processes} process(es)`);
      record(await spawnCeiling(ctx, processes, c.spawn.concurrency, c.spawn.warmup, c.spawn.count));
    }
  }
  if (has("noop")) {
    const n = config.noop;
    const r = config.rounds;
    log(
      `(a) no-op: zkgrid tuned, zkgrid with defaults and BullMQ (${n.bullmq.map(describeBullShape).join("; ")}), each ${r} × ${n.count} tasks after ${n.warmup} to warm up, the sides taking turns round by round`,
    );
    const sides: Side<ThroughputResult>[] = [
      new GridThroughput(ctx, "noop", n.zkgrid, n.warmup, n.count, { nodeFlags }),
      new GridThroughput(ctx, "noop", defaultsOf(n.zkgrid), n.warmup, n.count, { nodeFlags }),
      ...n.bullmq.map((shape) => new BullThroughput(ctx, "noop", shape, n.warmup, n.count, r)),
    ];
    const results = await takeTurns(options.reverse ? [...sides].reverse() : sides, r, log);
    for (const result of options.reverse ? results.reverse() : results) record(result);
  }
  if (has("shell")) {
    const s = config.shell;
    const r = config.rounds;
    const c = config.ceilings.spawn;
    // The ceiling (b) is judged against, measured again right before each timed round: the load of a
    // shared machine drifts between the ceilings part and this one.
    const beside = has("ceilings")
      ? spawnCeilingBesideRounds(ctx, c.concurrency, c.warmup, c.count)
      : undefined;
    log(
      `(b) zkgrid: ${r} × ${s.count} shell tasks (true) after ${s.warmup} to warm up${beside ? `, each round after ${c.count} spawns of sh -c true` : ""}`,
    );
    record(
      await zkgridThroughput(ctx, "shell", s.zkgrid, s.warmup, s.count, r, {
        nodeFlags,
        ...(beside === undefined ? {} : { beforeRound: beside.runBefore }),
      }),
    );
    const besideResult = beside?.result();
    if (besideResult !== undefined) record(besideResult);
    for (const shape of s.bullmq) {
      log(`(b) BullMQ: ${r} × ${s.count} jobs spawning sh -c true after ${s.warmup} to warm up`);
      record(await bullThroughput(ctx, "shell", shape, s.warmup, s.count, r));
    }
  }
  if (has("latency")) {
    const l = config.latency;
    const fw = l.floorWarmup;
    log(
      `(c) fsync floor: ${l.count} small writes + fdatasync beside ZooKeeper's data after ${fw} to warm up`,
    );
    record(await fsyncFloor(options.zkDataDir, fw, l.count));
    log(`(c) lone create: ${l.count} ZooKeeper creates one at a time after ${fw} to warm up`);
    record(await zkLoneCreateFloor(ctx, fw, l.count));
    log(`(c) floor: ${l.count} relays of 3 ZooKeeper writes in sequence after ${l.warmup} to warm up`);
    record(await zkRelayFloor(ctx, 3, l.warmup, l.count));
    log(`(c) direct floor: ${l.count} creates answered over the node after ${l.warmup} to warm up`);
    record(await zkDirectFloor(ctx, l.warmup, l.count));
    const consumer = options.consumer;
    const r = config.rounds;
    const grid = (shape: GridShape, install?: string) =>
      new GridLatency(ctx, shape, l.warmup, l.count, r, {
        nodeFlags,
        ...(install === undefined ? {} : { install }),
      });
    // The consumer's install goes before this repository's grid in every other run, so that neither
    // side always has the place.
    const tuned: Side<LatencyResult>[] =
      consumer === undefined
        ? [grid(l.zkgrid)]
        : options.consumerFirst
          ? [grid(l.zkgrid, consumer), grid(l.zkgrid)]
          : [grid(l.zkgrid), grid(l.zkgrid, consumer)];
    const sides: Side<LatencyResult>[] = [
      ...tuned,
      grid(defaultsOf(l.zkgrid)),
      new BullLatency(ctx, l.bullmq, l.warmup, l.count, r),
    ];
    log(
      `(c) lone tasks: zkgrid tuned${consumer === undefined ? "" : `, zkgrid installed in ${consumer}`}, zkgrid with defaults and BullMQ, each ${l.count} one at a time after ${l.warmup} to warm up, in ${r} rounds taking turns`,
    );
    const results = await takeTurns(options.reverse ? [...sides].reverse() : sides, r, log);
    for (const result of options.reverse ? results.reverse() : results) record(result);
  }
  if (has("scale")) {
    for (const part of SCALE_PARTS) {
      // `--curve`: the named parts only.
      if (config.scale.only !== undefined && !config.scale.only.includes(part.name)) continue;
      log(`scale, ${part.name}: ${part.describe(config)}`);
      record(await part.run(ctx, config, nodeFlags));
    }
  }
  // With --scale the submitters run as its last part (above); `--only submitters` runs them alone.
  if (has("submitters") && !has("scale")) record(await zkgridSubmitters(ctx));
  if (has("delayed")) {
    const t = config.time;
    log(`delayed: ${t.delayed} no-op tasks held at once, then due over a window`);
    record(await zkgridDelayed(ctx, t.zkgrid, t.delayed, { nodeFlags }));
  }
  if (has("retry")) {
    const t = config.time;
    log(`retry: ${t.retry} tasks that fail once and are retried, against ${t.retry} that succeed at once`);
    record(await zkgridRetry(ctx, t.zkgrid, t.retry, { nodeFlags }));
  }
  if (has("schedules")) {
    const s = config.schedules;
    log(`schedules: ${s.count} schedules firing every second for ${s.seconds} s`);
    record(await zkgridSchedules(ctx, s.zkgrid, s.count, s.seconds, { nodeFlags }));
  }
  return serverWarmup;
}
