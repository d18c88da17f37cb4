/**
 * Sides that take turns. The no-op and latency parts compare several sides (zkgrid tuned, zkgrid with
 * the programs' defaults, BullMQ), and the machine they share does not run at one speed: on the 2-core
 * VM the bench was written on, the same single-threaded loop took from 50 to 60 ms in 10-second windows
 * of one idle minute. A side measured in one block of a minute or two meets its own stretch of that
 * drift. So every side is started and warmed up first, and then they run their timed rounds in turn:
 * round 1 of each, round 2 of each, ..., each round in a rotated order, so that every side meets the
 * same stretches of the machine and none always comes right after the same neighbour.
 */
import { availableParallelism } from "node:os";
import { CpuTotals } from "./processes.js";
import { cpuPerTask, type LatencyResult, type PeakRss, type ThroughputResult } from "./results.js";
import { median, round, summarize } from "./stats.js";

/** One side of a comparison, measured a round at a time. */
export interface Side<R> {
  /** Starts its processes and runs its untimed warm-up. */
  start(): Promise<void>;
  /** Timed round `index` (from 0). */
  round(index: number): Promise<void>;
  /**
   * Sums up its rounds and stops its processes; `error` is what stopped its start or a round, if
   * anything did, and belongs in the result. Called once for every side, and must not throw.
   */
  finish(error: unknown): Promise<R>;
}

/**
 * Starts every side in the order given, then runs `rounds` rounds, each announced on `log`: in round
 * `i` the sides go in the order given, rotated by `i`. A side whose start or round fails sits out the
 * rest; the others go on.
 * Every side is finished, in the order given, whatever happened; their results come in that order.
 */
export async function takeTurns<R>(
  sides: Side<R>[],
  rounds: number,
  log?: (line: string) => void,
): Promise<R[]> {
  const failed = new Map<Side<R>, unknown>();
  const attempt = async (side: Side<R>, step: () => Promise<void>) => {
    if (failed.has(side)) return;
    try {
      await step();
    } catch (error) {
      failed.set(side, error);
    }
  };
  for (const side of sides) await attempt(side, () => side.start());
  for (let i = 0; i < rounds; i++) {
    if (rounds > 1) log?.(`  round ${i + 1} of ${rounds}`);
    for (const side of rotated(sides, i)) await attempt(side, () => side.round(i));
  }
  const results: R[] = [];
  for (const side of sides) results.push(await side.finish(failed.get(side)));
  return results;
}

/** Untimed lone tasks before each timed round of a latency side: the other sides' rounds ran in between. */
export const REWARM_TASKS = 10;

/** Round `index`'s share of `count` over `rounds` rounds: as even as can be, the first ones larger. */
export function share(count: number, rounds: number, index: number): number {
  return Math.floor(count / rounds) + (index < count % rounds ? 1 : 0);
}

/** One side alone: its rounds in a row. */
export async function alone<R>(side: Side<R>, rounds: number): Promise<R> {
  const [result] = await takeTurns([side], rounds);
  return result as R;
}

/** `items` rotated left by `by`: [a, b, c] by 1 is [b, c, a]. */
export function rotated<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** A started system a side measures: its peak memory is kept, then it is stopped. */
export interface MeasuredSystem {
  peakRss(): PeakRss;
  stop(): Promise<void>;
}

/**
 * What a side's timed rounds add up to: their wall time, each task's latency, and the CPU its processes
 * used (as its meter read it); `into` writes the figures into the side's result, and ends the side.
 */
export class RoundTally {
  private readonly cpu = new CpuTotals();
  private readonly latencies: number[] = [];
  private ms = 0;

  /** A timed round: its wall time, its tasks' latencies and its meter's reading. */
  add(ms: number, latencies: number[], cpu: Record<string, number>): void {
    this.ms += ms;
    for (const l of latencies) this.latencies.push(l);
    this.cpu.add(cpu);
  }

  /** Tasks timed so far. */
  get tasks(): number {
    return this.latencies.length;
  }

  /**
   * Fills in the figures common to both kinds of result (when anything was timed), the error, the peak
   * memory, and stops `system`: a side's `finish`.
   */
  async into<R extends ThroughputResult | LatencyResult>(
    result: R,
    error: unknown,
    system: MeasuredSystem | undefined,
  ): Promise<R> {
    if (error !== undefined) result.error = String(error);
    if (this.tasks > 0) {
      result.latencyMs = summarize(this.latencies);
      result.cpuMsPerTask = cpuPerTask(this.cpu.totals, this.tasks, this.ms, availableParallelism());
      if (result.kind === "throughput") {
        result.seconds = round(this.ms / 1000);
        result.tasksPerSecond = median(result.rounds);
      }
    }
    if (system !== undefined) {
      result.peakRssMiB = system.peakRss();
      await system.stop().catch(() => {});
    }
    return result;
  }
}
