/**
 * Many submitters at once (issue 16): 1, 10 and 50 submitter processes, each submitting its own tasks
 * in rounds and waiting for each round, on one grid. Each reports what waiting cost it (bytes and result
 * nodes read, listings, CPU); the growth from 1 to 50 shows whether a submitter's cost depends on its
 * own tasks or on everyone's. The server's zxid delta over the run counts every ZooKeeper write it
 * caused (submitters', leader's, workers'), so the leader's extra result nodes with reply dirs (one per
 * address per step, not one shared) show per submitter. Each count runs twice: results in each
 * submitter's reply dir, then in the shared R/results (the baseline; its 50 is the slowest run, so it
 * goes last).
 */
import { randomUUID } from "node:crypto";
import { connect, type ZkClient } from "@zkgrid/core";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { BENCH_DIST, type BenchContext } from "./context.js";
import { GuardedProcess } from "./processes.js";
import { median, round } from "./stats.js";
import { type GridShape, RunningGrid } from "./zkgrid.js";
import { readCounters, waitQuiet, writesBetween } from "./zookeeper.js";

/** Where the submitters' results go: R/results, or each one's reply dir. */
export type ResultPlace = "shared" | "reply";

export interface SubmittersShape {
  /** Submitter processes of each run, one run per count and place. */
  counts: number[];
  places: ResultPlace[];
  rounds: number;
  tasksPerRound: number;
  grid: GridShape;
}

export const SUBMITTERS_SHAPE: SubmittersShape = {
  counts: [1, 10, 50],
  places: ["reply", "shared"],
  rounds: 4,
  tasksPerRound: 5,
  grid: { workers: 2, concurrency: 32 },
};

/** One submitter's figures, as submitter.ts prints them. */
interface SubmitterFigures {
  index: number;
  ms: number;
  cpuMs: number;
  failed: number;
  bytes: number;
  resultNodes: number;
  listings: number;
}

export interface SubmittersRow {
  place: ResultPlace;
  submitters: number;
  tasksEach: number;
  /** From the go signal until the last submitter has every result. */
  totalSeconds: number;
  /** Per submitter: median and max. */
  bytesRead: { median: number; max: number };
  resultNodesRead: { median: number; max: number };
  listings: { median: number; max: number };
  cpuMs: { median: number; max: number };
  /**
   * ZooKeeper writes (the server's zxid delta from the go signal until the grid went quiet, the
   * clean-up deletes included) divided by the submitters.
   */
  zkWritesPerSubmitter: number;
  failed: number;
  error?: string;
}

export interface SubmittersResult {
  kind: "submitters";
  shape: string;
  rows: SubmittersRow[];
}

const SUBMITTER = join(BENCH_DIST, "submitter.js");

export async function zkgridSubmitters(
  ctx: BenchContext,
  shape: SubmittersShape = SUBMITTERS_SHAPE,
): Promise<SubmittersResult> {
  const rows: SubmittersRow[] = [];
  for (const place of shape.places) {
    for (const count of shape.counts) {
      ctx.log(
        `submitters: ${count} at once, results in ${place === "shared" ? "R/results" : "reply dirs"}, each ${shape.rounds} rounds × ${shape.tasksPerRound} no-op tasks`,
      );
      const row = await oneRun(ctx, shape, count, place);
      ctx.log(`  ${formatRow(row)}`);
      rows.push(row);
    }
  }
  return {
    kind: "submitters",
    shape: `${shape.rounds} × ${shape.tasksPerRound} tasks each; ${shape.grid.workers} workers × ${shape.grid.concurrency}`,
    rows,
  };
}

async function oneRun(
  ctx: BenchContext,
  shape: SubmittersShape,
  count: number,
  place: ResultPlace,
): Promise<SubmittersRow> {
  const tasksEach = shape.rounds * shape.tasksPerRound;
  const row: SubmittersRow = {
    place,
    submitters: count,
    tasksEach,
    totalSeconds: Number.NaN,
    bytesRead: { median: 0, max: 0 },
    resultNodesRead: { median: 0, max: 0 },
    listings: { median: 0, max: 0 },
    cpuMs: { median: 0, max: 0 },
    zkWritesPerSubmitter: Number.NaN,
    failed: 0,
  };
  const label = `submitters-${place}-${count}`;
  const grid = await RunningGrid.start(ctx, label, shape.grid, {});
  const barrier = `/bench-barrier-${randomUUID().slice(0, 8)}`;
  const children: GuardedProcess[] = [];
  // Its own client with a long session: the grid's may expire while 50 processes start at once.
  let zk: ZkClient | undefined;
  try {
    zk = await connect({ connectString: ctx.zk.connectString, sessionTimeoutMs: 60_000 });
    await zk.create(barrier);
    for (let i = 0; i < count; i++) {
      children.push(
        new GuardedProcess(
          `${label}-${i}`,
          process.execPath,
          [
            SUBMITTER,
            ctx.zk.connectString,
            grid.root,
            barrier,
            String(i),
            String(shape.rounds),
            String(shape.tasksPerRound),
            place,
          ],
          { logFile: join(ctx.workDir, `${label}.log`), pipeStdout: true },
        ),
      );
    }
    const lines = children.map((child) => child.waitForLine(/^\{/, 600_000));
    // Stopped on an error below: their lines then never come.
    for (const line of lines) line.catch(() => {});
    await untilReady(zk, barrier, count, children);
    const before = await readCounters(ctx.zk);
    const start = performance.now();
    await zk.create(`${barrier}/go`);
    const figures = (await Promise.all(lines)).map((line) => JSON.parse(line) as SubmitterFigures);
    row.totalSeconds = round((performance.now() - start) / 1000, 2);
    // The go node's create is the bench's, not the grid's.
    const writes = writesBetween(before, await waitQuiet(ctx.zk)) - 1;
    row.zkWritesPerSubmitter = round(writes / count, 1);
    const spread = (pick: (f: SubmitterFigures) => number) => {
      const values = figures.map(pick);
      return { median: round(median(values), 1), max: round(Math.max(...values), 1) };
    };
    row.bytesRead = spread((f) => f.bytes);
    row.resultNodesRead = spread((f) => f.resultNodes);
    row.listings = spread((f) => f.listings);
    row.cpuMs = spread((f) => f.cpuMs);
    row.failed = figures.reduce((sum, f) => sum + f.failed, 0);
  } catch (error) {
    row.error = String(error);
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await zk?.deleteRecursive(barrier).catch(() => {});
    await zk?.close();
    await grid.stop();
  }
  return row;
}

/** Until every submitter has connected (its ready node is there). */
async function untilReady(
  zk: ZkClient,
  barrier: string,
  count: number,
  children: GuardedProcess[],
): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    // A loaded machine (50 processes starting) may time a read out: ask again.
    const ready = (await zk.getChildren(barrier).catch(() => [])).length;
    if (ready >= count) return;
    const gone = children.find((child) => !child.isRunning);
    if (gone !== undefined) throw new Error(`${gone.label} exited before it was ready`);
    if (Date.now() > deadline)
      throw new Error(`only ${ready} of ${count} submitters were ready within 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function formatRow(r: SubmittersRow): string {
  if (r.error !== undefined) return `${r.submitters} submitters (${r.place}): error ${r.error}`;
  return `${r.submitters} submitters (${r.place}) × ${r.tasksEach} tasks: ${r.totalSeconds} s in all; per submitter (median / max): ${r.bytesRead.median} / ${r.bytesRead.max} bytes read, ${r.resultNodesRead.median} / ${r.resultNodesRead.max} result nodes read, ${r.listings.median} / ${r.listings.max} listings, ${r.cpuMs.median} / ${r.cpuMs.max} ms CPU, ${r.zkWritesPerSubmitter} ZooKeeper writes${r.failed > 0 ? `; ${r.failed} failed` : ""}`;
}
