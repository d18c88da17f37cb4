import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { availableParallelism } from "node:os";
import type { ZkClient } from "@zkgrid/core";
import { connectGrid, type GridClient, type TaskInput } from "@zkgrid/submit";
import { BINS, type BenchContext, type GridContext, type Workload } from "./context.js";
import { CpuMeter, cpuTimeMs, GuardedProcess, readStatusKb } from "./processes.js";
import {
  cpuPerTask,
  emptyLatency,
  emptyThroughput,
  type LatencyResult,
  MiB,
  type PeakRss,
  type ScaleResult,
  type ThroughputResult,
  toMiB,
  type ZkLoad,
} from "./results.js";
import { round } from "./stats.js";
import { alone, REWARM_TASKS, RoundTally, type Side, share } from "./turns.js";
import { type ServerCounters, waitQuiet, writesBetween } from "./zookeeper.js";

export interface GridShape {
  workers: number;
  /** Tasks each worker runs at once. */
  concurrency: number;
  /** Tasks each worker holds beyond those, ready to start (the worker's --prefetch); default 0. */
  prefetch?: number;
  /**
   * Start the master and workers as a user would: no tuning flags (no --prefetch, no --log-level), only
   * what the workload needs (--concurrency, --handlers, --cwd). `prefetch` is then ignored.
   */
  defaults?: boolean;
}

export interface GridOptions {
  /** Node flags for the master and workers (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Runs before each timed round, untimed (e.g. a ceiling measured beside the rounds). */
  beforeRound?: () => Promise<void>;
  /**
   * A project that installed the packed packages (e.g. by tests/consumers/run.sh): its master and
   * worker programs run instead of this repository's builds, with the addon that install built.
   */
  install?: string;
}

/** The master and worker programs of `install`, or this repository's. */
export function gridBins(install?: string): { master: string; worker: string } {
  if (install === undefined) return { master: BINS.master, worker: BINS.worker };
  const app = (name: string) => join(install, "node_modules/@zkgrid", name, "dist/bin.js");
  return { master: app("master"), worker: app("worker") };
}

export function describeShape(shape: GridShape): string {
  const prefetch = shape.defaults
    ? " (defaults: no --prefetch, default log level)"
    : shape.prefetch
      ? ` (prefetch ${shape.prefetch})`
      : "";
  return `1 master + ${shape.workers} worker${shape.workers === 1 ? "" : "s"} × ${shape.concurrency}${prefetch}`;
}

/** A workload of `count` tasks on a grid of `shape`. */
export type CountedWorkload<R> = (
  ctx: BenchContext,
  shape: GridShape,
  count: number,
  options?: GridOptions,
) => Promise<R>;

interface GridWorkloadResult {
  kind: string;
  shape: string;
  error?: string;
}

/**
 * Runs a workload on a grid of its own, named `zkgrid-<kind>`. Its result starts as `figures` after its
 * kind and shape, and `run` fills it in; a failure is recorded as the result's `error`, not thrown.
 * `finish` (results read off the grid, failed or not) runs before the grid is stopped, in every case.
 */
export async function onGridOfItsOwn<R extends GridWorkloadResult>(
  ctx: BenchContext,
  kind: R["kind"],
  shape: GridShape,
  options: GridOptions,
  figures: Omit<R, "kind" | "shape">,
  run: (grid: RunningGrid, result: R) => Promise<void>,
  finish?: (grid: RunningGrid, result: R) => Promise<void>,
): Promise<R> {
  const result = { kind, shape: describeShape(shape), ...figures } as R;
  const grid = await RunningGrid.start(ctx, `zkgrid-${kind}`, shape, options);
  try {
    await run(grid, result);
  } catch (error) {
    result.error = String(error);
  } finally {
    await finish?.(grid, result);
    await grid.stop();
  }
  return result;
}

/** One master and its workers as real processes (the built bins), on a grid root of their own. */
export class RunningGrid {
  private constructor(
    readonly root: string,
    readonly master: GuardedProcess,
    readonly workers: GuardedProcess[],
    readonly client: GridClient,
    private readonly outDir: string,
  ) {}

  get zk(): ZkClient {
    return this.client.zk;
  }

  static async start(
    ctx: GridContext,
    label: string,
    shape: GridShape,
    options: GridOptions,
  ): Promise<RunningGrid> {
    const root = `/bench-${label}-${randomUUID().slice(0, 8)}`;
    const outDir = join(ctx.workDir, `out-${label}`);
    mkdirSync(outDir, { recursive: true });
    const connect = ctx.zk.connectString;
    const flags = options.nodeFlags ?? [];
    const bins = gridBins(options.install);
    const started: GuardedProcess[] = [];
    try {
      const master = new GuardedProcess(
        `${label}-master`,
        process.execPath,
        [
          ...flags,
          bins.master,
          "bench-master",
          "--connect",
          connect,
          "--root",
          root,
          // Tuned: the master's per-task info lines cost it CPU.
          ...(shape.defaults ? [] : ["--log-level", "warn"]),
        ],
        { logFile: join(ctx.workDir, `${label}-master.log`), cwd: outDir },
      );
      started.push(master);
      const workers = Array.from({ length: shape.workers }, (_, i) => {
        const name = `w${i + 1}`;
        const worker = new GuardedProcess(
          `${label}-${name}`,
          process.execPath,
          [
            ...flags,
            bins.worker,
            name,
            "--connect",
            connect,
            "--root",
            root,
            "--concurrency",
            String(shape.concurrency),
            ...(shape.defaults ? [] : ["--prefetch", String(shape.prefetch ?? 0)]),
            "--handlers",
            BINS.handlers,
            "--cwd",
            outDir,
          ],
          { logFile: join(ctx.workDir, `${label}-${name}.log`), cwd: outDir },
        );
        started.push(worker);
        return worker;
      });
      const client = await connectGrid({ connectString: connect, root, submitter: "bench" });
      const grid = new RunningGrid(root, master, workers, client, outDir);
      await grid.waitUntilUp(shape.workers);
      return grid;
    } catch (error) {
      await Promise.all(started.map((p) => p.stop()));
      throw error;
    }
  }

  /** Until every worker is registered and a master stands for election. */
  private async waitUntilUp(workers: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    const { layout } = this.client;
    for (;;) {
      for (const p of [this.master, ...this.workers]) {
        if (!p.isRunning) throw new Error(`${p.label} exited while the grid was starting`);
      }
      const [registered, masters] = await Promise.all([
        this.zk.getChildren(layout.workers).catch(() => [] as string[]),
        this.zk.getChildren(layout.masters).catch(() => [] as string[]),
      ]);
      if (registered.length >= workers && masters.length >= 1) return;
      if (Date.now() > deadline)
        throw new Error(`the grid did not come up within 30 s (workers: ${registered})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Meters the grid's processes, the ZooKeeper server and this process (the submitter). A worker's
   * share includes its task launcher (its child that forks the tasks): a BullMQ worker forks its own.
   */
  cpuMeter(zkPid: number | undefined): CpuMeter {
    return new CpuMeter({
      master: [this.master.pid],
      workers: this.workers.flatMap((w) => [w.pid, ...childPids(w.pid)]),
      zookeeper: zkPid === undefined ? [] : [zkPid],
    });
  }

  /** How many result nodes the grid holds now. */
  async resultNodeCount(): Promise<number> {
    return (await this.zk.getChildren(this.client.layout.results)).length;
  }

  peakRss(): PeakRss {
    return {
      master: toMiB(this.master.peakRssBytes()),
      workers: this.workers.map((w) => toMiB(w.peakRssBytes()) ?? Number.NaN),
    };
  }

  /** Stops the workers first (so none waits for a master that is gone), then the master. */
  async stop(): Promise<void> {
    await this.client.close().catch(() => {});
    await Promise.all(this.workers.map((w) => w.stop(10_000)));
    await this.master.stop();
    rmSync(this.outDir, { recursive: true, force: true });
  }
}

/** The live children of a process (for a worker: its task launcher, once it ran a command). */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(" ")
      .filter((p) => p.trim() !== "")
      .map(Number);
  } catch {
    return [];
  }
}

function makeTasks(workload: Workload, n: number, offset = 0): TaskInput[] {
  return Array.from({ length: n }, (_, i) =>
    workload === "noop" ? { handler: "noop", input: offset + i } : { cmd: "true" },
  );
}

interface ZkTotals {
  writes: number;
  packets: number;
  bytes: number;
  resultNodes: number;
}

function addZkTotals(
  sum: ZkTotals | undefined,
  before: ServerCounters,
  after: ServerCounters,
  resultNodes: number,
): ZkTotals {
  return {
    writes: (sum?.writes ?? 0) + writesBetween(before, after),
    packets: (sum?.packets ?? 0) + after.packetsReceived - before.packetsReceived,
    bytes: (sum?.bytes ?? 0) + after.bytesReceived - before.bytesReceived,
    resultNodes: (sum?.resultNodes ?? 0) + resultNodes,
  };
}

function zkLoadOf(t: ZkTotals, tasks: number): ZkLoad {
  return {
    writesPerTask: round(t.writes / tasks),
    requestsPerTask: round(t.packets / tasks),
    bytesInPerTask: round(t.bytes / tasks, 1),
    resultNodesPerTask: round(t.resultNodes / tasks),
  };
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

function zkLoad(before: ServerCounters, after: ServerCounters, tasks: number, resultNodes?: number): ZkLoad {
  return {
    writesPerTask: round(writesBetween(before, after) / tasks),
    requestsPerTask: round((after.packetsReceived - before.packetsReceived) / tasks),
    bytesInPerTask: round((after.bytesReceived - before.bytesReceived) / tasks, 1),
    ...(resultNodes === undefined ? {} : { resultNodesPerTask: round(resultNodes / tasks) }),
  };
}

/** Submits `tasks` at once and waits for all; returns the latencies (ms) and the failures. */
async function submitAll(
  grid: RunningGrid,
  tasks: TaskInput[],
  timeoutMs: number,
  onAccepted?: () => void,
): Promise<{ latencies: number[]; failed: number; ms: number }> {
  const latencies: number[] = [];
  let failed = 0;
  const start = performance.now();
  const ids = await grid.client.submit(tasks);
  onAccepted?.();
  await grid.client.wait(ids, {
    timeoutMs,
    onResult: (status) => {
      latencies.push(performance.now() - start);
      if (status.state !== "succeeded") failed++;
    },
  });
  return { latencies, failed, ms: performance.now() - start };
}

function drainTimeoutMs(count: number): number {
  return Math.max(60_000, count * 5);
}

/** The grid's label: its root, process logs and output folder are named after it. */
function gridLabel(kind: string, shape: GridShape, install?: string): string {
  return `zkgrid-${kind}${shape.defaults ? "-defaults" : ""}${install === undefined ? "" : "-install"}`;
}

/** zkgrid's side of a throughput part: `count` tasks submitted at once per round, after `warmup`. */
export class GridThroughput implements Side<ThroughputResult> {
  private readonly result: ThroughputResult;
  private grid: RunningGrid | undefined;
  private readonly tally = new RoundTally();
  private load: ZkTotals | undefined;

  constructor(
    private readonly ctx: BenchContext,
    private readonly workload: Workload,
    private readonly shape: GridShape,
    private readonly warmup: number,
    private readonly count: number,
    private readonly options: GridOptions = {},
  ) {
    this.result = emptyThroughput({
      system: "zkgrid",
      workload,
      shape: describeShape(shape),
      workers: shape.workers,
      concurrency: shape.concurrency,
      warmup,
      count,
    });
    this.result.flags = shape.defaults ? "defaults" : "tuned";
  }

  async start(): Promise<void> {
    const { ctx, workload, shape, warmup } = this;
    this.grid = await RunningGrid.start(ctx, gridLabel(workload, shape), shape, this.options);
    await submitAll(this.grid, makeTasks(workload, warmup), drainTimeoutMs(warmup));
  }

  async round(index: number): Promise<void> {
    const { ctx, count, result } = this;
    const grid = this.grid as RunningGrid;
    await this.options.beforeRound?.();
    const nodesBefore = await grid.resultNodeCount();
    const before = await waitQuiet(ctx.zk);
    const meter = grid.cpuMeter(ctx.zk.pid);
    meter.start();
    const run = await submitAll(
      grid,
      makeTasks(this.workload, count, this.warmup + index * count),
      drainTimeoutMs(count),
    );
    this.tally.add(run.ms, run.latencies, meter.stop());
    const after = await waitQuiet(ctx.zk);
    this.load = addZkTotals(this.load, before, after, (await grid.resultNodeCount()) - nodesBefore);
    result.failed += run.failed;
    result.rounds.push(round1(count / (run.ms / 1000)));
  }

  finish(error: unknown): Promise<ThroughputResult> {
    if (this.load) this.result.zk = zkLoadOf(this.load, this.tally.tasks);
    return this.tally.into(this.result, error, this.grid);
  }
}

/** zkgrid's throughput alone: its rounds in a row. */
export function zkgridThroughput(
  ctx: BenchContext,
  workload: Workload,
  shape: GridShape,
  warmup: number,
  count: number,
  rounds: number,
  options: GridOptions = {},
): Promise<ThroughputResult> {
  return alone(new GridThroughput(ctx, workload, shape, warmup, count, options), rounds);
}

/**
 * zkgrid's side of the latency part: one no-op task at a time, submitted when the last one's result
 * is in. `warmup` tasks first; then `count` timed ones, split evenly over the rounds, each round after
 * a few untimed tasks (the other sides' rounds ran in between).
 */
export class GridLatency implements Side<LatencyResult> {
  private readonly result: LatencyResult;
  private grid: RunningGrid | undefined;
  private readonly tally = new RoundTally();
  private load: ZkTotals | undefined;
  private next = 0;

  constructor(
    private readonly ctx: BenchContext,
    private readonly shape: GridShape,
    private readonly warmup: number,
    private readonly count: number,
    private readonly rounds: number,
    private readonly options: GridOptions = {},
  ) {
    this.result = emptyLatency({ system: "zkgrid", shape: describeShape(shape), warmup, count });
    this.result.flags = shape.defaults ? "defaults" : "tuned";
    if (options.install !== undefined) this.result.install = options.install;
  }

  /** One lone task, timed; `untimed`: its failure is not counted either. */
  private async one(untimed = false): Promise<number> {
    const grid = this.grid as RunningGrid;
    const start = performance.now();
    const results = await grid.client.submitAndWait(
      { handler: "noop", input: this.next++ },
      { timeoutMs: 30_000 },
    );
    const ms = performance.now() - start;
    for (const status of results.values()) {
      if (status.state !== "succeeded" && !untimed) this.result.failed++;
    }
    return ms;
  }

  async start(): Promise<void> {
    const { ctx, shape, options } = this;
    this.grid = await RunningGrid.start(ctx, gridLabel("latency", shape, options.install), shape, options);
    for (let i = 0; i < this.warmup; i++) await this.one(true);
  }

  async round(index: number): Promise<void> {
    const { ctx } = this;
    const grid = this.grid as RunningGrid;
    for (let i = 0; i < REWARM_TASKS; i++) await this.one(true);
    const nodesBefore = await grid.resultNodeCount();
    const before = await waitQuiet(ctx.zk);
    const meter = grid.cpuMeter(ctx.zk.pid);
    meter.start();
    const start = performance.now();
    const latencies: number[] = [];
    for (let i = share(this.count, this.rounds, index); i > 0; i--) latencies.push(await this.one());
    this.tally.add(performance.now() - start, latencies, meter.stop());
    const after = await waitQuiet(ctx.zk);
    this.load = addZkTotals(this.load, before, after, (await grid.resultNodeCount()) - nodesBefore);
  }

  finish(error: unknown): Promise<LatencyResult> {
    if (this.load) this.result.zk = zkLoadOf(this.load, this.tally.tasks);
    return this.tally.into(this.result, error, this.grid);
  }
}

/** Lines of the server log that mean a request was refused for its size (the server drops the link). */
function oversizedRequests(logFile: string): number {
  try {
    return (
      readFileSync(logFile, "utf8").match(/Len error|Unreasonable length|exceeds.*jute\.maxbuffer/gi) ?? []
    ).length;
  } catch {
    return 0;
  }
}

async function dataLength(zk: ZkClient, path: string): Promise<number> {
  const stat = await zk.exists(path).catch(() => null);
  return stat?.dataLength ?? 0;
}

/** Largest data among the children of `dir` (by stat, no data read). */
async function largestChild(zk: ZkClient, dir: string, limit = 5000): Promise<number> {
  const children = await zk.getChildren(dir).catch(() => [] as string[]);
  let max = 0;
  for (let i = 0; i < children.length && i < limit; i += 64) {
    const sizes = await Promise.all(children.slice(i, i + 64).map((c) => dataLength(zk, `${dir}/${c}`)));
    max = Math.max(max, ...sizes);
  }
  return max;
}

/**
 * 100 000 tasks queued at once: the time until all are in the queue (accepted), until the queue is
 * empty (the leader has handed every task out), and until every result is back (drained); the size of
 * what crosses ZooKeeper and the master's memory on the way.
 */
export const zkgridScale: CountedWorkload<ScaleResult> = (ctx, shape, count, options = {}) => {
  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();
  return onGridOfItsOwn<ScaleResult>(
    ctx,
    "scale",
    shape,
    options,
    {
      count,
      acceptedSeconds: Number.NaN,
      assignedSeconds: Number.NaN,
      drainedSeconds: Number.NaN,
      tasksPerSecond: Number.NaN,
      failed: 0,
      zk: { writesPerTask: Number.NaN, requestsPerTask: Number.NaN, bytesInPerTask: Number.NaN },
      maxResponseBytes: 0,
      oversizedRequests: 0,
      maxNodeBytesSeen: 0,
      peakRssMiB: { workers: [] },
      masterRssTimeline: [],
    },
    async (grid, result) => {
      const { layout } = grid.client;
      await submitAll(grid, makeTasks("noop", 1000), drainTimeoutMs(1000));
      const nodesBefore = await grid.resultNodeCount();
      const before = await waitQuiet(ctx.zk);
      const meter = grid.cpuMeter(ctx.zk.pid);
      meter.start();
      const start = performance.now();
      const since = () => (performance.now() - start) / 1000;
      let accepted = false;
      sampler = (async () => {
        while (sampling) {
          const rss = readStatusKb(grid.master.pid, "VmRSS");
          if (rss !== undefined) result.masterRssTimeline.push([round(since(), 2), round(rss / MiB, 1)]);
          const assigns = await Promise.all(
            grid.workers.map((_, i) => dataLength(grid.zk, layout.assign(`w${i + 1}`))),
          );
          result.maxNodeBytesSeen = Math.max(result.maxNodeBytesSeen, ...assigns);
          if (accepted && Number.isNaN(result.assignedSeconds)) {
            const queued = await grid.zk.getChildren(layout.queue).catch(() => ["?"]);
            if (queued.length === 0) result.assignedSeconds = round(since());
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const run = await submitAll(grid, makeTasks("noop", count, 1000), drainTimeoutMs(count), () => {
        result.acceptedSeconds = round(since());
        accepted = true;
        // Right after acceptance most queue nodes still exist: measure them (stats only).
        void largestChild(grid.zk, layout.queue).then((n) => {
          result.maxNodeBytesSeen = Math.max(result.maxNodeBytesSeen, n);
        });
      });
      result.cpuMsPerTask = cpuPerTask(meter.stop(), count, run.ms, availableParallelism());
      result.drainedSeconds = round(run.ms / 1000);
      if (Number.isNaN(result.assignedSeconds)) result.assignedSeconds = result.drainedSeconds;
      result.tasksPerSecond = round(count / (run.ms / 1000), 1);
      result.failed = run.failed;
      sampling = false;
      await sampler;
      const after = await waitQuiet(ctx.zk);
      result.zk = zkLoad(before, after, count, (await grid.resultNodeCount()) - nodesBefore);
      result.maxResponseBytes = after.maxResponseBytes;
      result.maxNodeBytesSeen = Math.max(
        result.maxNodeBytesSeen,
        await largestChild(grid.zk, layout.results),
      );
    },
    async (grid, result) => {
      sampling = false;
      await sampler.catch(() => {});
      result.oversizedRequests = oversizedRequests(ctx.zk.logFile);
      result.peakRssMiB = grid.peakRss();
    },
  );
};

/** CPU time (ms) of each thread of a process, with whether it is a JIT compiler thread. */
function threadCpu(pid: number): Map<string, { ms: number; jit: boolean }> {
  const threads = new Map<string, { ms: number; jit: boolean }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const tid of tids) {
    try {
      const jit = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").includes("CompilerThre");
      const ms = cpuTimeMs(Number(tid), `${pid}/task/${tid}`);
      if (ms !== undefined) threads.set(tid, { ms, jit });
    } catch {
      // the thread ended
    }
  }
  return threads;
}

/**
 * The share of a JVM's CPU its JIT compilers took between two readings. The JVM starts and retires
 * compiler threads as it likes, so the JIT's time is the process's time less that of the other
 * threads seen at the end: a compiler thread that ended meanwhile still counts.
 */
function jitShare(
  before: { all: number; threads: Map<string, { ms: number; jit: boolean }> },
  pid: number,
): number {
  const all = (cpuTimeMs(pid) ?? before.all) - before.all;
  if (all <= 0) return 0;
  let others = 0;
  for (const [tid, t] of threadCpu(pid)) {
    if (!t.jit) others += Math.max(0, t.ms - (before.threads.get(tid)?.ms ?? 0));
  }
  return round(Math.max(0, all - others) / all);
}

export interface ServerWarmup {
  rounds: number;
  tasks: number;
  seconds: number;
  /** Share of ZooKeeper's CPU its JIT compilers took in the last round; null if not measured. */
  jitShareLastRound: number | null;
}

/**
 * Runs a throw-away grid until ZooKeeper's JIT compilers are done: a fresh JVM spends seconds of CPU
 * compiling what a long-running server has long since compiled, and that would count against
 * whichever part ran first. Each round mixes no-op and shell tasks (one in five), so every request
 * kind the grid makes is warm; it stops once the compilers took under 3% of the server's CPU in a
 * round, or after `maxRounds` (all of them when the server's threads cannot be read).
 */
export async function warmServer(
  ctx: GridContext,
  tasksPerRound: number,
  maxRounds: number,
): Promise<ServerWarmup> {
  const pid = ctx.zk.pid;
  const grid = await RunningGrid.start(ctx, "zkgrid-warmup", { workers: 2, concurrency: 50 }, {});
  const began = performance.now();
  const warm: ServerWarmup = { rounds: 0, tasks: 0, seconds: 0, jitShareLastRound: null };
  try {
    while (warm.rounds < maxRounds && (warm.jitShareLastRound === null || warm.jitShareLastRound >= 0.03)) {
      const before = pid === undefined ? undefined : { all: cpuTimeMs(pid) ?? 0, threads: threadCpu(pid) };
      const shell = Math.ceil(tasksPerRound / 5);
      const tasks = [...makeTasks("noop", tasksPerRound - shell, warm.tasks), ...makeTasks("shell", shell)];
      // One at a time too: a lone task takes other paths through the server than a batch.
      await submitAll(grid, tasks, drainTimeoutMs(tasks.length));
      for (let i = 0; i < 20; i++) await submitAll(grid, makeTasks("noop", 1, i), 30_000);
      warm.rounds++;
      warm.tasks += tasks.length + 20;
      if (pid !== undefined && before !== undefined) warm.jitShareLastRound = jitShare(before, pid);
    }
  } finally {
    warm.seconds = round((performance.now() - began) / 1000);
    await grid.stop();
  }
  return warm;
}
