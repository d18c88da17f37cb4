/**
 * The headline figures of each run under one durability setting, their medians over the runs, and the
 * issue's targets judged on the medians, with how far the worst run misses.
 */
import type { Durability } from "./durability.js";
import type { BenchResult, CeilingResult, LatencyResult, ThroughputResult } from "./results.js";
import { median, round } from "./stats.js";

/** A bound on a figure: `value` at least (≥) or at most (≤) `bound`. */
export interface Target {
  op: "≥" | "≤";
  bound: number;
  /** How far a single run may miss the bound, as a share of it: 0.1 for "no run misses by more than 10%". */
  runTolerance: number;
}

export interface Figure {
  name: string;
  value: number;
  target?: Target;
}

export interface FigureSummary {
  name: string;
  /** Each run's value, in run order (NaN where a run did not measure it). */
  runs: number[];
  median: number;
  target?: Target;
  /** The target judged on the median. */
  met?: boolean;
  /** By how much the median misses its target, as a share of the bound (0 when met). */
  medianMiss?: number;
  /** The largest miss of any single run, as a share of the bound (0 when every run meets it). */
  worstRunMiss?: number;
  /** No run misses by more than the target's runTolerance. */
  runsWithinTolerance?: boolean;
}

/**
 * The issue's targets: zkgrid ÷ BullMQ per setting (no run may miss by more than 10%; fast against fast
 * must meet them in every run), and the programs' defaults within 10% of the tuned flags.
 */
export const TARGETS: Record<Durability, { throughput: Target; p50: Target }> = {
  durable: {
    throughput: { op: "≥", bound: 2.5, runTolerance: 0.1 },
    p50: { op: "≤", bound: 1.0, runTolerance: 0.1 },
  },
  fast: {
    throughput: { op: "≥", bound: 2, runTolerance: 0 },
    p50: { op: "≤", bound: 2, runTolerance: 0 },
  },
};
export const DEFAULTS_TARGETS: { throughput: Target; p50: Target } = {
  throughput: { op: "≥", bound: 0.9, runTolerance: 0.1 },
  p50: { op: "≤", bound: 1.1, runTolerance: 0.1 },
};

/** How far `value` misses `target`, as a share of the bound; 0 when it meets it. */
export function missOf(value: number, target: Target): number {
  if (!Number.isFinite(value)) return Number.POSITIVE_INFINITY;
  const miss = target.op === "≥" ? target.bound - value : value - target.bound;
  return miss <= 0 ? 0 : miss / target.bound;
}

const ok = <T extends { error?: string }>(r: T | undefined): T | undefined =>
  r !== undefined && r.error === undefined ? r : undefined;

/** The headline figures of one pass (one run under one setting). */
export function figuresOf(results: BenchResult[], durability: Durability): Figure[] {
  const tp = results.filter((r): r is ThroughputResult => r.kind === "throughput" && r.workload === "noop");
  const lat = results.filter((r): r is LatencyResult => r.kind === "latency");
  const floor = (name: CeilingResult["name"]) =>
    results.find((r): r is CeilingResult => r.kind === "ceiling" && r.name === name)?.latencyMs?.p50;
  const zkTuned = ok(tp.find((r) => r.system === "zkgrid" && r.flags !== "defaults"));
  const zkDefaults = ok(tp.find((r) => r.system === "zkgrid" && r.flags === "defaults"));
  const bull = tp
    .filter((r) => r.system === "bullmq" && r.error === undefined)
    .sort((a, b) => b.tasksPerSecond - a.tasksPerSecond)[0];
  const zkLat = ok(
    lat.find((r) => r.system === "zkgrid" && r.flags !== "defaults" && r.install === undefined),
  );
  const zkLatDefaults = ok(lat.find((r) => r.system === "zkgrid" && r.flags === "defaults"));
  const zkLatInstall = ok(lat.find((r) => r.system === "zkgrid" && r.install !== undefined));
  const bullLat = ok(lat.find((r) => r.system === "bullmq"));
  const targets = TARGETS[durability];
  const figures: Figure[] = [];
  const add = (name: string, value: number | undefined, target?: Target) => {
    if (value === undefined || !Number.isFinite(value)) return;
    figures.push({ name, value, ...(target === undefined ? {} : { target }) });
  };
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : round(a / b, 3);

  add("no-op tasks/s: zkgrid, tuned", zkTuned?.tasksPerSecond);
  add("no-op tasks/s: zkgrid, defaults", zkDefaults?.tasksPerSecond);
  add(`no-op tasks/s: BullMQ (best shape${bull ? `: ${bull.shape}` : ""})`, bull?.tasksPerSecond);
  add(
    "no-op throughput: zkgrid tuned ÷ BullMQ",
    ratio(zkTuned?.tasksPerSecond, bull?.tasksPerSecond),
    targets.throughput,
  );
  add("no-op throughput: zkgrid defaults ÷ BullMQ", ratio(zkDefaults?.tasksPerSecond, bull?.tasksPerSecond));
  add(
    "no-op throughput: zkgrid defaults ÷ tuned",
    ratio(zkDefaults?.tasksPerSecond, zkTuned?.tasksPerSecond),
    DEFAULTS_TARGETS.throughput,
  );
  add("lone task p50 ms: zkgrid, tuned", zkLat?.latencyMs.p50);
  add("lone task p50 ms: zkgrid, defaults", zkLatDefaults?.latencyMs.p50);
  add("lone task p50 ms: zkgrid, installed by a consumer (--consumer)", zkLatInstall?.latencyMs.p50);
  add(
    "lone task p50: zkgrid installed by a consumer ÷ this repository's",
    ratio(zkLatInstall?.latencyMs.p50, zkLat?.latencyMs.p50),
  );
  add("lone job p50 ms: BullMQ", bullLat?.latencyMs.p50);
  add(
    "lone task p50: zkgrid tuned ÷ BullMQ",
    ratio(zkLat?.latencyMs.p50, bullLat?.latencyMs.p50),
    targets.p50,
  );
  add("lone task p50: zkgrid defaults ÷ BullMQ", ratio(zkLatDefaults?.latencyMs.p50, bullLat?.latencyMs.p50));
  add(
    "lone task p50: zkgrid defaults ÷ tuned",
    ratio(zkLatDefaults?.latencyMs.p50, zkLat?.latencyMs.p50),
    DEFAULTS_TARGETS.p50,
  );
  add("floor p50 ms: one small write + fdatasync (fsync)", floor("fsync"));
  add("floor p50 ms: one ZooKeeper create, alone", floor("zk-create-lone"));
  add("floor p50 ms: direct task (2 ZooKeeper writes in sequence)", floor("zk-direct"));
  add("floor p50 ms: 3 ZooKeeper writes in sequence", floor("zk-relay"));
  add("ZooKeeper writes per lone zkgrid task (clean-up included)", zkLat?.zk?.writesPerTask);
  add("Redis writes per lone BullMQ job", bullLat?.redis?.writesPerJob);
  return figures;
}

/** Each figure's values over the runs, in the order figures first appear. */
export function summarizeRuns(perRun: Figure[][]): FigureSummary[] {
  const names: string[] = [];
  const targets = new Map<string, Target>();
  for (const figures of perRun) {
    for (const f of figures) {
      if (!names.includes(f.name)) names.push(f.name);
      if (f.target) targets.set(f.name, f.target);
    }
  }
  return names.map((name) => {
    const runs = perRun.map((figures) => figures.find((f) => f.name === name)?.value ?? Number.NaN);
    const measured = runs.filter((v) => Number.isFinite(v));
    const summary: FigureSummary = { name, runs, median: round(median(measured), 3) };
    const target = targets.get(name);
    if (target !== undefined) {
      const medianMiss = missOf(summary.median, target);
      const worstRunMiss = Math.max(...runs.map((v) => missOf(v, target)));
      Object.assign(summary, {
        target,
        met: medianMiss === 0,
        medianMiss: round(medianMiss, 3),
        worstRunMiss: round(worstRunMiss, 3),
        runsWithinTolerance: worstRunMiss <= target.runTolerance,
      });
    }
    return summary;
  });
}
