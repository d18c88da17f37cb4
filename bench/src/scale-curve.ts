/**
 * The workers curve of `--scale` (issue 16): the same grid at 10, 100 and 1 000 workers, each worker a
 * ZooKeeper session of its own, many to a process (scale-workers.ts). At each count: the assignment
 * latency and the leader's CPU per task at a fixed pace, ZooKeeper's own counters (mntr), and a
 * takeover: the leader SIGKILLed with `queuedPerWorker` tasks per worker queued, timed until its
 * successor assigns again.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { connect } from "@zkgrid/core";
import { compareSequentialNames, decodeMasterInfo } from "@zkgrid/protocol";
import { connectGrid, type GridClient, type TaskInput } from "@zkgrid/submit";
import { BENCH_DIST, BINS, type BenchContext } from "./context.js";
import { cpuTimeMs, GuardedProcess, readStatusKb } from "./processes.js";
import { MiB } from "./results.js";
import { type LatencySummary, round, summarize } from "./stats.js";
import { readServerShape, type ServerShape } from "./zookeeper.js";

export interface ScaleCurveConfig {
  /** The worker counts, one step each, in this order. */
  workers: number[];
  /** Workers per process (the last process takes the rest). */
  perProcess: number;
  /** Tasks each worker runs at once; workers hold none beyond (prefetch 0). */
  concurrency: number;
  /** Untimed tasks first, then `tasks` timed ones submitted at `tasksPerSecond`. */
  warmup: number;
  tasks: number;
  tasksPerSecond: number;
  /** Tasks queued per worker when the leader is killed, at most `maxQueued`. */
  queuedPerWorker: number;
  maxQueued: number;
  /** Of the masters and the workers. */
  sessionTimeoutMs: number;
  /** False: each step ends after its CPU measurement (no takeover; `--curve`). */
  takeover?: boolean;
  /**
   * Where the masters' `--cpu-prof` profiles go (`--profile`): each step also writes there the leader's
   * pid and its CPU window (`curve-<workers>-window.json`, process.hrtime µs, the profile's clock), which
   * `node bench/dist/profile-window.js <dir>` reads.
   */
  profileDir?: string;
}

export interface ScaleCurveStep {
  workers: number;
  processes: number;
  /** From starting the worker processes until every worker was registered. */
  workersUpSeconds: number;
  /** The worker processes' resident memory once up, over the workers (a process's own share included). */
  workerRssMiBEach: number;
  /** The same, per worker process. */
  processRssMiB: number;
  /** Submit → assignedAt (the leader's stamp) and submit → startedAt (the worker's), of the timed tasks. */
  assignMs: LatencySummary;
  startMs: LatencySummary;
  /** The leader's user + system CPU over the timed tasks (from their submit to their last result). */
  leaderCpuUsPerTask: number;
  /** The worker processes' CPU over the same span, per task. */
  workersCpuUsPerTask: number;
  /** ZooKeeper's CPU over the same span, per task. */
  zookeeperCpuUsPerTask: number;
  /** How long submitting the timed tasks took: above tasks ÷ tasksPerSecond, the submitter fell behind. */
  submitSeconds: number;
  /** mntr once the timed tasks were done: the whole server, less what it held before the step. */
  znodes: number;
  /** mntr's zk_watch_count then: every live session's watches, the bench's own submitter included. */
  watches: number;
  /** mntr's zk_max_client_response_size over the step until then (reset as the step began), bytes. */
  largestReplyBytes: number;
  takeover?: Takeover;
  failed: number;
  error?: string;
}

export interface Takeover {
  queued: number;
  /** From the SIGKILL until the successor's election node was the lowest (the old session expired). */
  electedSeconds: number;
  /** From the SIGKILL until the earliest `assignedAt` after it: the successor assigning again. */
  assigningSeconds: number;
  /** Results awaited from tasks the successor assigned: twice the grid's slots, at most `queued`. */
  wave: number;
  /** From the SIGKILL until `wave` such results had come. */
  waveSeconds: number;
  /** mntr's zk_max_client_response_size over the whole step, takeover included, bytes. */
  largestReplyBytes: number;
  /** mntr's zk_znode_count with every task queued (before the kill), less the step's baseline. */
  znodesQueued: number;
}

export interface ScaleCurveResult {
  kind: "scale-curve";
  shape: string;
  sessionTimeoutMs: number;
  /** Which mntr field gave the largest reply. */
  largestReplyField: "zk_max_client_response_size";
  steps: ScaleCurveStep[];
  /** The leader's CPU per task at the largest count ÷ at the smallest (target ≤ 1.5). */
  leaderCpuRatio: number;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function describeCurve(c: ScaleCurveConfig): string {
  return `2 masters + ${c.workers.join("/")} workers × ${c.concurrency} (${c.perProcess} a process), session timeout ${c.sessionTimeoutMs / 1000} s`;
}

export async function zkgridScaleCurve(
  ctx: BenchContext,
  config: ScaleCurveConfig,
  nodeFlags: string[] = [],
): Promise<ScaleCurveResult> {
  const result: ScaleCurveResult = {
    kind: "scale-curve",
    shape: describeCurve(config),
    sessionTimeoutMs: config.sessionTimeoutMs,
    largestReplyField: "zk_max_client_response_size",
    steps: [],
    leaderCpuRatio: Number.NaN,
  };
  for (const workers of config.workers) {
    ctx.log(`scale curve: ${workers} workers`);
    const step = await curveStep(ctx, config, workers, nodeFlags);
    result.steps.push(step);
    ctx.log(`  ${describeStep(step)}`);
    if (step.error !== undefined) result.error ??= `${workers} workers: ${step.error}`;
  }
  // A step whose takeover failed still measured the CPU before it.
  const cpu = result.steps.map((s) => s.leaderCpuUsPerTask).filter(Number.isFinite);
  if (cpu.length >= 2) result.leaderCpuRatio = round((cpu.at(-1) as number) / (cpu[0] as number), 2);
  return result;
}

export function describeStep(s: ScaleCurveStep): string {
  const t = s.takeover;
  return `${s.workers} workers (${s.processes} processes, up in ${s.workersUpSeconds} s, ${s.processRssMiB} MiB a process): assign p50 ${s.assignMs.p50} ms p99 ${s.assignMs.p99} ms, leader ${s.leaderCpuUsPerTask} µs/task (ZooKeeper ${s.zookeeperCpuUsPerTask}, workers ${s.workersCpuUsPerTask}; submitted in ${s.submitSeconds} s), ${s.znodes} znodes, ${s.watches} watches, largest reply ${s.largestReplyBytes} B${t ? `; takeover with ${t.queued} queued: elected ${t.electedSeconds} s, assigning ${t.assigningSeconds} s, ${t.wave} results in ${t.waveSeconds} s, largest reply ${t.largestReplyBytes} B` : ""}${s.error ? ` ERROR ${s.error}` : ""}`;
}

async function curveStep(
  ctx: BenchContext,
  config: ScaleCurveConfig,
  workers: number,
  nodeFlags: string[],
): Promise<ScaleCurveStep> {
  const label = `curve-${workers}`;
  const root = `/bench-${label}-${randomUUID().slice(0, 8)}`;
  const outDir = join(ctx.workDir, `out-${label}`);
  mkdirSync(outDir, { recursive: true });
  const connect = ctx.zk.connectString;
  const step: ScaleCurveStep = {
    workers,
    processes: Math.ceil(workers / config.perProcess),
    workersUpSeconds: Number.NaN,
    workerRssMiBEach: Number.NaN,
    processRssMiB: Number.NaN,
    assignMs: summarize([]),
    startMs: summarize([]),
    leaderCpuUsPerTask: Number.NaN,
    workersCpuUsPerTask: Number.NaN,
    zookeeperCpuUsPerTask: Number.NaN,
    submitSeconds: Number.NaN,
    znodes: Number.NaN,
    watches: Number.NaN,
    largestReplyBytes: Number.NaN,
    failed: 0,
  };
  const baseline = await readServerShape(ctx.zk);
  // Resets zk_max_client_response_size, so that each step reports its own largest reply.
  await ctx.zk.fourLetterWord("srst");
  const masters: GuardedProcess[] = [];
  const pool: GuardedProcess[] = [];
  let client: GridClient | undefined;
  try {
    const grid = await connectGrid({
      connectString: connect,
      root,
      submitter: "bench",
      sessionTimeoutMs: SUBMITTER_SESSION_TIMEOUT_MS,
    });
    client = grid;
    const layout = grid.layout;
    const startMaster = (name: string) => {
      const master = new GuardedProcess(
        `${label}-${name}`,
        process.execPath,
        [
          ...nodeFlags,
          BINS.master,
          name,
          "--connect",
          connect,
          "--root",
          root,
          "--session-timeout",
          String(config.sessionTimeoutMs),
          "--log-level",
          "warn",
        ],
        { logFile: join(ctx.workDir, `${label}-${name}.log`), cwd: outDir },
      );
      masters.push(master);
      return master;
    };
    // The first master leads: it stands for election before the second starts.
    startMaster("m1");
    await until(ctx, async () => (await children(grid, layout.masters)).length >= 1, masters, "m1");
    startMaster("m2");
    await until(ctx, async () => (await children(grid, layout.masters)).length >= 2, masters, "m2");

    const began = performance.now();
    for (let p = 0; p < step.processes; p++) {
      const count = Math.min(config.perProcess, workers - p * config.perProcess);
      pool.push(
        new GuardedProcess(
          `${label}-p${p}`,
          process.execPath,
          [
            // Profiles are the leader's concern here: twenty profiled worker processes would load the machine.
            ...(config.profileDir === undefined ? nodeFlags : []),
            join(BENCH_DIST, "scale-workers.js"),
            connect,
            root,
            `p${p}`,
            String(count),
            String(config.concurrency),
            outDir,
            String(config.sessionTimeoutMs),
          ],
          { logFile: join(ctx.workDir, `${label}-p${p}.log`), cwd: outDir, pipeStdout: true },
        ),
      );
    }
    const startMs = Math.max(60_000, workers * 200);
    await Promise.all(pool.map((p) => p.waitForLine(/^ready /, startMs)));
    for (const p of pool) p.discardStdout();
    await until(
      ctx,
      async () => (await children(grid, layout.workers)).length >= workers,
      [...masters, ...pool],
      `${workers} workers`,
    );
    step.workersUpSeconds = round((performance.now() - began) / 1000, 1);
    const rss = pool.reduce((sum, p) => sum + (readStatusKb(p.pid, "VmRSS") ?? 0), 0);
    step.workerRssMiBEach = round(rss / MiB / workers, 2);
    step.processRssMiB = round(rss / MiB / pool.length, 1);

    const leaderPid = await leaderOf(client);
    const leader = masters.find((m) => m.pid === leaderPid);
    if (leader === undefined) throw new Error(`the leader's pid ${leaderPid} is none of the masters'`);

    const tasks = (n: number, offset: number): TaskInput[] =>
      Array.from({ length: n }, (_, i) => ({ handler: "noop", input: offset + i }));
    await client.wait(await client.submit(tasks(config.warmup, 0)), { timeoutMs: 120_000 });

    // The timed tasks, at a fixed pace: a batch every TICK_MS.
    const leaderBefore = cpuTimeMs(leader.pid) ?? Number.NaN;
    const workersBefore = cpuOf(pool);
    const zkBefore = ctx.zk.pid === undefined ? Number.NaN : (cpuTimeMs(ctx.zk.pid) ?? Number.NaN);
    const windowFromUs = hrtimeUs();
    const perTick = Math.max(2, Math.round((config.tasksPerSecond * TICK_MS) / 1000));
    const ids: string[] = [];
    const paceStart = performance.now();
    for (let sent = 0, tick = 0; sent < config.tasks; tick++) {
      const n = Math.min(perTick, config.tasks - sent);
      // Two or more tasks to a submit: they go through the queue and the leader, never a worker's inbox.
      ids.push(...(await client.submit(tasks(Math.max(2, n), config.warmup + sent))));
      sent += Math.max(2, n);
      const due = paceStart + (tick + 1) * TICK_MS;
      await sleep(Math.max(0, due - performance.now()));
    }
    step.submitSeconds = round((performance.now() - paceStart) / 1000, 1);
    const statuses = await client.wait(ids, { timeoutMs: 120_000 + ids.length * 10 });
    if (config.profileDir !== undefined) {
      mkdirSync(config.profileDir, { recursive: true });
      const window = {
        workers,
        leaderPid: leader.pid,
        fromUs: windowFromUs,
        toUs: hrtimeUs(),
        tasks: ids.length,
      };
      writeFileSync(join(config.profileDir, `curve-${workers}-window.json`), JSON.stringify(window));
    }
    step.leaderCpuUsPerTask = round(
      (((cpuTimeMs(leader.pid) ?? Number.NaN) - leaderBefore) * 1000) / ids.length,
      1,
    );
    step.workersCpuUsPerTask = round(((cpuOf(pool) - workersBefore) * 1000) / ids.length, 1);
    const zkAfter = ctx.zk.pid === undefined ? Number.NaN : (cpuTimeMs(ctx.zk.pid) ?? Number.NaN);
    step.zookeeperCpuUsPerTask = round(((zkAfter - zkBefore) * 1000) / ids.length, 1);
    const assign: number[] = [];
    const start: number[] = [];
    for (const s of statuses.values()) {
      if (s.state !== "succeeded") step.failed++;
      if (s.submittedAt === undefined) continue;
      if (s.assignedAt !== undefined) assign.push(s.assignedAt - s.submittedAt);
      if (s.startedAt !== undefined) start.push(s.startedAt - s.submittedAt);
    }
    step.assignMs = summarize(assign);
    step.startMs = summarize(start);
    const shape = await readServerShape(ctx.zk);
    step.znodes = shape.znodes - baseline.znodes;
    step.watches = shape.watches;
    step.largestReplyBytes = shape.maxResponseBytes;

    if (config.takeover !== false)
      step.takeover = await takeover(ctx, config, client, leader, workers, baseline);
  } catch (error) {
    step.error = String(error);
  } finally {
    await client?.close().catch(() => {});
    await Promise.all(pool.map((p) => p.stop(10_000)));
    // A profiled master writes its profile as it exits: give it time to.
    await Promise.all(masters.map((m) => m.stop(config.profileDir === undefined ? 5000 : 60_000)));
    await cleanUp(ctx, root);
    rmSync(outDir, { recursive: true, force: true });
  }
  return step;
}

const TICK_MS = 50;

/** process.hrtime in µs: the clock of V8's CPU profiles. */
function hrtimeUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
const TAKEOVER_CHUNK = 5000;
/** The bench's own session: longer than the grid's, so that a busy machine does not cost it its session. */
const SUBMITTER_SESSION_TIMEOUT_MS = 30_000;

/**
 * Queues the tasks, SIGKILLs the leader, and times its successor: elected once the dead session's
 * election node is gone, assigning again at the earliest `assignedAt` after the kill among the queued
 * tasks' final statuses (the leader stamps it as it writes the assignment).
 */
async function takeover(
  ctx: BenchContext,
  config: ScaleCurveConfig,
  client: GridClient,
  leader: GuardedProcess,
  workers: number,
  baseline: ServerShape,
): Promise<Takeover> {
  const queued = Math.min(config.maxQueued, config.queuedPerWorker * workers);
  ctx.log(`  takeover: ${queued} tasks queued, then the leader SIGKILLed`);
  // In chunks: encoding 100 000 tasks in one go holds the submitter's event loop long enough, on a
  // busy machine, for its own session to miss its pings.
  const ids: string[] = [];
  for (let sent = 0; sent < queued; sent += TAKEOVER_CHUNK) {
    const n = Math.min(TAKEOVER_CHUNK, queued - sent);
    ids.push(
      ...(await client.submit(Array.from({ length: n }, (_, i) => ({ handler: "noop", input: sent + i })))),
    );
  }
  const znodesQueued = (await readServerShape(ctx.zk)).znodes - baseline.znodes;
  const killedAt = Date.now();
  const killed = performance.now();
  leader.signal("SIGKILL");
  const elected = (async () => {
    for (;;) {
      const pid = await leaderOf(client).catch(() => undefined);
      if (pid !== undefined && pid !== leader.pid) return (performance.now() - killed) / 1000;
      await sleep(50);
    }
  })();
  // The successor's first hand-outs fill every slot: once twice the slots' worth of tasks it assigned
  // are done, the earliest of its stamps is among them, and the rest of the queue need not drain.
  const wave = Math.min(queued, 2 * workers * config.concurrency);
  const enough = new AbortController();
  let firstAssignedAt = Number.POSITIVE_INFINITY;
  let reassigned = 0;
  await client
    .wait(ids, {
      timeoutMs: 120_000 + queued * 5,
      signal: enough.signal,
      onResult: (status) => {
        if (status.assignedAt === undefined || status.assignedAt <= killedAt) return;
        firstAssignedAt = Math.min(firstAssignedAt, status.assignedAt);
        if (++reassigned >= wave) enough.abort();
      },
    })
    .catch((error: unknown) => {
      if (!enough.signal.aborted) throw error;
    });
  const waveSeconds = (performance.now() - killed) / 1000;
  return {
    queued,
    electedSeconds: round(await elected, 2),
    assigningSeconds: round((firstAssignedAt - killedAt) / 1000, 2),
    wave,
    waveSeconds: round(waveSeconds, 1),
    largestReplyBytes: (await readServerShape(ctx.zk)).maxResponseBytes,
    znodesQueued,
  };
}

/** The pid in the lowest election node: the leader's. */
async function leaderOf(client: GridClient): Promise<number> {
  const candidates = (await client.zk.getChildren(client.layout.masters)).sort(compareSequentialNames);
  const first = candidates[0];
  if (first === undefined) throw new Error("no master stands for election");
  const info = decodeMasterInfo((await client.zk.get(`${client.layout.masters}/${first}`)).data);
  if (!info.ok) throw new Error(`the leader's election node does not decode: ${info.error.message}`);
  return info.value.pid;
}

function children(client: GridClient, path: string): Promise<string[]> {
  return client.zk.getChildren(path).catch(() => [] as string[]);
}

/** Polls `ready` until it holds, failing when one of `processes` exits or after a minute per 1 000 workers. */
async function until(
  ctx: BenchContext,
  ready: () => Promise<boolean>,
  processes: GuardedProcess[],
  what: string,
): Promise<void> {
  const deadline = Date.now() + Math.max(60_000, processes.length * 3_000);
  while (!(await ready())) {
    const gone = processes.find((p) => !p.isRunning);
    if (gone !== undefined) throw new Error(`${gone.label} exited while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`${what} not up in time`);
    await sleep(100);
  }
  ctx.log(`  ${what} up`);
}

function cpuOf(processes: GuardedProcess[]): number {
  return processes.reduce((sum, p) => sum + (cpuTimeMs(p.pid) ?? 0), 0);
}

/** Deletes the step's grid, so that the next step's node count starts from the same server. */
async function cleanUp(ctx: BenchContext, root: string): Promise<void> {
  const zk = await connect({ connectString: ctx.zk.connectString }).catch(() => undefined);
  await zk?.deleteRecursive(root).catch(() => {});
  await zk?.close().catch(() => {});
}
