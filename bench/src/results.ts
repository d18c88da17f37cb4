import type { SubmittersResult } from "./submitters.js";
import type { ScaleCurveResult } from "./scale-curve.js";
import type { SchedulesResult } from "./schedules.js";
import type { DelayedResult, RetryResult } from "./time-workloads.js";
import type { RedisLoad } from "./redis.js";
import { type LatencySummary, summarize } from "./stats.js";

/** Peak resident memory (VmHWM) of the processes of one run, in MiB. */
export interface PeakRss {
  master?: number;
  workers: number[];
}

/** Load on ZooKeeper over the timed part of a run, counted by the server. */
export interface ZkLoad {
  /** Transactions (creates, sets, deletes) per task: the zxid delta over the run. */
  writesPerTask: number;
  /** Requests of any kind (reads, writes, pings) per task: `zk_packets_received`. */
  requestsPerTask: number;
  /** Bytes the server received per task. */
  bytesInPerTask: number;
  /** Result nodes the leader wrote per task (each one is listed and read by every waiting submitter). */
  resultNodesPerTask?: number;
}

/**
 * CPU time per timed task, in ms, by process group (master, workers, zookeeper, redis, submitter),
 * plus `total`, `utilization` (the total over wall time × CPUs) and `otherLoad` (the machine's busy time
 * that none of those processes used, over wall time × CPUs).
 */
export type CpuPerTask = Record<string, number>;

/** How zkgrid's master and workers were started: with the bench's tuning flags, or with none. */
export type ProgramFlags = "tuned" | "defaults";

export interface ThroughputResult {
  kind: "throughput";
  system: "zkgrid" | "bullmq";
  workload: "noop" | "shell";
  /** e.g. "1 master + 2 workers × 100". */
  shape: string;
  /** zkgrid only: started with the bench's tuning flags, or with the programs' defaults. */
  flags?: ProgramFlags;
  workers: number;
  concurrency: number;
  warmup: number;
  /** Tasks per timed round. */
  count: number;
  /** Tasks per second of each timed round; `tasksPerSecond` is their median. */
  rounds: number[];
  /** Timed seconds over all rounds. */
  seconds: number;
  tasksPerSecond: number;
  /** Submit to result seen by the submitter, for tasks all submitted at once (so mostly queueing). */
  latencyMs: LatencySummary;
  failed: number;
  zk?: ZkLoad;
  cpuMsPerTask?: CpuPerTask;
  peakRssMiB: PeakRss;
  error?: string;
}

export interface LatencyResult {
  kind: "latency";
  system: "zkgrid" | "bullmq";
  shape: string;
  /** zkgrid only, as for ThroughputResult. */
  flags?: ProgramFlags;
  /** zkgrid only: the consumer project whose installed programs ran (`--consumer`); absent: this repository's. */
  install?: string;
  warmup: number;
  count: number;
  /** One task at a time: submit, await its result, repeat. */
  latencyMs: LatencySummary;
  failed: number;
  zk?: ZkLoad;
  /** BullMQ's load on Redis over the timed jobs. */
  redis?: RedisLoad;
  cpuMsPerTask?: CpuPerTask;
  peakRssMiB: PeakRss;
  error?: string;
}

/**
 * zk-creates: pipelined creates; spawn: `sh -c true`; the latency floors, one at a time: zk-relay (3
 * writes in sequence seen by other processes), zk-direct (a direct task's 2 writes), zk-create-lone (one
 * create and its reply), fsync (one small write + fdatasync on the file system of ZooKeeper's data).
 */
export type CeilingName = "zk-creates" | "spawn" | "zk-relay" | "zk-direct" | "zk-create-lone" | "fsync";

export interface CeilingResult {
  kind: "ceiling";
  name: CeilingName;
  /** What was run, for humans. */
  detail: string;
  count: number;
  seconds: number;
  perSecond: number;
  /** For a spawn ceiling measured once before each timed shell round: each run's rate (the median is `perSecond`). */
  rounds?: number[];
  /** For zk-creates: transactions per create seen by the server (1 when nothing else writes). */
  writesPerOp?: number;
  /** For the latency floors, per operation (zk-relay: from the first write until the last process has read the last node). */
  latencyMs?: LatencySummary;
}

export interface ScaleResult {
  kind: "scale";
  shape: string;
  count: number;
  /** Until `submit` resolved: every task is in a queue node. */
  acceptedSeconds: number;
  /** Until the queue was empty: the leader had taken every task out of its queue node. */
  assignedSeconds: number;
  /** Until the submitter had every result. */
  drainedSeconds: number;
  tasksPerSecond: number;
  failed: number;
  zk: ZkLoad;
  cpuMsPerTask?: CpuPerTask;
  /** Largest reply the server sent (`zk_max_client_response_size`). */
  maxResponseBytes: number;
  /** Requests the server refused for their size ("Len error" in its log; it drops the connection). */
  oversizedRequests: number;
  /** Largest znode data seen under the grid's root while it drained (sampled). */
  maxNodeBytesSeen: number;
  peakRssMiB: PeakRss;
  /** Master VmRSS sampled while draining, MiB: [seconds since submit, MiB]. */
  masterRssTimeline: Array<[number, number]>;
  error?: string;
}

export type BenchResult =
  | ThroughputResult
  | LatencyResult
  | CeilingResult
  | ScaleResult
  | ScaleCurveResult
  | DelayedResult
  | RetryResult
  | SchedulesResult
  | SubmittersResult;

export const MiB = 1024 * 1024;

export function toMiB(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : Math.round((bytes / MiB) * 10) / 10;
}

/** Per-task CPU figures from a meter's reading over `wallMs` for `tasks` tasks. */
export function cpuPerTask(
  used: Record<string, number>,
  tasks: number,
  wallMs: number,
  cpus: number,
): CpuPerTask {
  const out: CpuPerTask = {};
  let total = 0;
  for (const [group, ms] of Object.entries(used)) {
    if (group === "machine") continue;
    out[group] = Math.round((ms / tasks) * 1000) / 1000;
    total += ms;
  }
  out.total = Math.round((total / tasks) * 1000) / 1000;
  out.utilization = Math.round((total / (wallMs * cpus)) * 100) / 100;
  // Busy time of the machine that none of the measured processes used: other programs, the kernel's
  // own threads (e.g. writing back files the tasks wrote). Figures are noisy when it is high.
  const machine = used.machine;
  if (machine !== undefined) {
    out.otherLoad = Math.max(0, Math.round(((machine - total) / (wallMs * cpus)) * 100) / 100);
  }
  return out;
}

/** A throughput result with nothing measured yet: what a run that fails at once reports. */
export function emptyThroughput(
  fields: Pick<
    ThroughputResult,
    "system" | "workload" | "shape" | "workers" | "concurrency" | "warmup" | "count"
  >,
): ThroughputResult {
  return {
    kind: "throughput",
    ...fields,
    rounds: [],
    seconds: Number.NaN,
    tasksPerSecond: Number.NaN,
    latencyMs: summarize([]),
    failed: 0,
    peakRssMiB: { workers: [] },
  };
}

/** A latency result with nothing measured yet. */
export function emptyLatency(
  fields: Pick<LatencyResult, "system" | "shape" | "warmup" | "count">,
): LatencyResult {
  return { kind: "latency", ...fields, latencyMs: summarize([]), failed: 0, peakRssMiB: { workers: [] } };
}
