import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { connect, type ZkClient } from "@zkgrid/core";
import { BINS, type BenchContext } from "./context.js";
import { directFloorRound } from "./direct-floor.js";
import { GuardedProcess } from "./processes.js";
import type { CeilingName, CeilingResult } from "./results.js";
import { median, round, summarize } from "./stats.js";
import { waitQuiet, writesBetween } from "./zookeeper.js";

/**
 * The most creates one client gets from this server: `inFlight` sequential creates of a small payload
 * kept in flight at once (the addon pipelines them on one connection).
 */
export async function zkCreateCeiling(
  ctx: BenchContext,
  warmup: number,
  count: number,
  inFlight = 500,
): Promise<CeilingResult> {
  const zk = await connect({ connectString: ctx.zk.connectString });
  try {
    const dir = `/bench-ceiling-${Date.now()}`;
    await zk.ensurePath(dir);
    const payload = Buffer.alloc(100, "x");
    const createMany = async (total: number): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(inFlight, total) }, async () => {
          while (next < total) {
            next++;
            await zk.create(`${dir}/n`, payload, "persistent-sequential");
          }
        }),
      );
    };
    await createMany(warmup);
    const before = await waitQuiet(ctx.zk);
    const start = performance.now();
    await createMany(count);
    const ms = performance.now() - start;
    const after = await waitQuiet(ctx.zk);
    return {
      kind: "ceiling",
      name: "zk-creates",
      detail: `one @zkgrid/core client, ${inFlight} creates in flight, 100-byte payload`,
      count,
      seconds: round(ms / 1000),
      perSecond: round(count / (ms / 1000), 1),
      writesPerOp: round(writesBetween(before, after) / count),
    };
  } finally {
    await zk.close();
  }
}

/**
 * The 1-process spawn ceiling measured once before each of zkgrid's timed shell rounds (`runBefore`,
 * passed as `beforeRound`), then `result()`: their median.
 */
export function spawnCeilingBesideRounds(
  ctx: BenchContext,
  concurrency: number,
  warmup: number,
  count: number,
): { runBefore: () => Promise<void>; result: () => CeilingResult | undefined } {
  const runs: CeilingResult[] = [];
  return {
    runBefore: async () => {
      runs.push(await spawnCeiling(ctx, 1, concurrency, warmup, count));
    },
    result: () => {
      const first = runs[0];
      if (first === undefined) return undefined;
      const rates = runs.map((r) => r.perSecond);
      return {
        ...first,
        detail: `${first.detail}, once before each timed shell round (median)`,
        count: runs.reduce((sum, r) => sum + r.count, 0),
        seconds: round(runs.reduce((sum, r) => sum + r.seconds, 0)),
        perSecond: median(rates),
        rounds: rates,
      };
    },
  };
}

/** `sh -c true` spawned from `processes` Node processes at once, `concurrency` in flight in each. */
export async function spawnCeiling(
  ctx: BenchContext,
  processes: number,
  concurrency: number,
  warmup: number,
  count: number,
): Promise<CeilingResult> {
  const perProcess = Math.ceil(count / processes);
  const children = Array.from(
    { length: processes },
    (_, i) =>
      new GuardedProcess(
        `spawn-ceiling-${processes}-${i + 1}`,
        process.execPath,
        [BINS.spawnCeiling, String(concurrency), String(warmup), String(perProcess)],
        { logFile: join(ctx.workDir, "spawn-ceiling.log"), pipeStdout: true },
      ),
  );
  try {
    const lines = await Promise.all(children.map((c) => c.waitForLine(/^\{"count"/, 120_000)));
    // Together the processes ran for as long as the slowest of them.
    const reports = lines.map((line) => JSON.parse(line) as { count: number; ms: number });
    const total = reports.reduce((sum, r) => sum + r.count, 0);
    const ms = Math.max(...reports.map((r) => r.ms));
    return {
      kind: "ceiling",
      name: "spawn",
      detail: `node child_process.spawn("/bin/sh", ["-c", "true"]) from ${processes} process${processes === 1 ? "" : "es"}, ${concurrency} in flight each`,
      count: total,
      seconds: round(ms / 1000),
      perSecond: round(total / (ms / 1000), 1),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

/**
 * The floor of a task's round trip through ZooKeeper: `writes` writes in sequence, each by another
 * process that learns of the previous one through a data watch, reads it and writes the next node: the
 * least a hop through ZooKeeper costs (a queue node, an assignment and a result each take at least
 * this). The bench process makes the first write and reads the last; `writes - 1` relay stations
 * (separate processes) make the others. One relay at a time, like the latency run.
 */
export async function zkRelayFloor(
  ctx: BenchContext,
  writes: number,
  warmup: number,
  count: number,
): Promise<CeilingResult> {
  return onScratchDir(ctx, "relay", async (zk, root) => {
    const nodes = Array.from({ length: writes }, (_, i) => `${root}/h${i}`);
    const last = nodes.at(-1) as string;
    const stations: GuardedProcess[] = [];
    try {
      for (const node of nodes) await zk.ensurePath(node);
      for (let i = 0; i + 1 < nodes.length; i++) {
        stations.push(
          new GuardedProcess(
            `relay-station-${i + 1}`,
            process.execPath,
            [BINS.relayStation, ctx.zk.connectString, nodes[i] as string, nodes[i + 1] as string],
            { logFile: join(ctx.workDir, "relay-station.log"), pipeStdout: true },
          ),
        );
      }
      await Promise.all(stations.map((s) => s.waitForLine(/^ready$/, 30_000)));
      const watch = zk.watchData(last);
      await watch.next(); // armed
      const relay = async (i: number): Promise<number> => {
        const key = String(i);
        const start = performance.now();
        await zk.set(nodes[0] as string, key);
        for (;;) {
          const { value, done } = await watch.next();
          if (done) throw new Error("the relay's watch ended");
          if (value?.data.toString() === key) return performance.now() - start;
        }
      };
      const result = await timedFloor(
        "zk-relay",
        (p50) =>
          `ZooKeeper floor: ${writes} writes in sequence by ${writes} processes, each seen through a data watch (p50 ${p50} ms)`,
        warmup,
        count,
        relay,
      );
      watch.stop();
      return result;
    } finally {
      await Promise.all(stations.map((s) => s.stop()));
    }
  });
}

/**
 * The floor of a direct task's round trip: the bench creates a node in a dir that another process (an
 * inbox station) watches; the station lists the dir, reads the node and writes an answer over it; the
 * bench learns of it through a data watch on its node and reads it. Two writes in sequence, as a
 * direct task takes (nothing runs, nothing is recorded afterwards). The bench deletes each node after,
 * as a leader would.
 */
export async function zkDirectFloor(
  ctx: BenchContext,
  warmup: number,
  count: number,
): Promise<CeilingResult> {
  return onScratchDir(ctx, "direct", async (zk, dir) => {
    const station = new GuardedProcess(
      "inbox-station",
      process.execPath,
      [BINS.inboxStation, ctx.zk.connectString, dir],
      {
        logFile: join(ctx.workDir, "inbox-station.log"),
        pipeStdout: true,
      },
    );
    try {
      await station.waitForLine(/^ready$/, 30_000);
      const once = (i: number): Promise<number> => directFloorRound(zk, dir, `t${i}`, String(i));
      return await timedFloor(
        "zk-direct",
        (p50) =>
          `ZooKeeper floor of a direct task: a create (the task in its name) seen by another process through a child watch, an answer written over it and seen through a data watch (p50 ${p50} ms)`,
        warmup,
        count,
        once,
      );
    } finally {
      await station.stop();
    }
  });
}

/**
 * The disk's floor under a durable write: one small write appended to a preallocated file in `dir`, then
 * fdatasync, as ZooKeeper appends a transaction to its preallocated log and forces it (FileChannel.force
 * without metadata) before it answers.
 */
export async function fsyncFloor(dir: string, warmup: number, count: number): Promise<CeilingResult> {
  const scratch = mkdtempSync(join(dir, "fsync-floor-"));
  const file = join(scratch, "log");
  const record = Buffer.alloc(128, "x");
  const total = warmup + count;
  const fd = openSync(file, "w");
  try {
    // Preallocate, as ZooKeeper does (64 MiB at a time), so no write grows the file.
    const block = Buffer.alloc(1 << 20);
    for (let written = 0; written < total * record.length; written += block.length) writeSync(fd, block);
    fdatasyncSync(fd);
    const once = async (i: number): Promise<number> => {
      const start = performance.now();
      writeSync(fd, record, 0, record.length, i * record.length);
      fdatasyncSync(fd);
      return performance.now() - start;
    };
    return await timedFloor(
      "fsync",
      (p50) =>
        `fsync floor: one 128-byte write + fdatasync on the file system of ZooKeeper's data (p50 ${p50} ms)`,
      warmup,
      count,
      once,
    );
  } finally {
    closeSync(fd);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The floor of one ZooKeeper write: a create and its reply, one at a time, from one client. */
export async function zkLoneCreateFloor(
  ctx: BenchContext,
  warmup: number,
  count: number,
): Promise<CeilingResult> {
  return onScratchDir(ctx, "lone", async (zk, dir) => {
    const payload = Buffer.alloc(100, "x");
    const once = async (): Promise<number> => {
      const start = performance.now();
      await zk.create(`${dir}/n`, payload, "persistent-sequential");
      return performance.now() - start;
    };
    return await timedFloor(
      "zk-create-lone",
      (p50) => `one ZooKeeper create at a time, from one client (p50 ${p50} ms)`,
      warmup,
      count,
      once,
    );
  });
}

/**
 * Runs `body` with a client of the bench's ZooKeeper and a node of its own, `/bench-<name>-<time>`, made
 * first; that node and all under it are deleted after, and the client closed.
 */
async function onScratchDir<T>(
  ctx: BenchContext,
  name: string,
  body: (zk: ZkClient, dir: string) => Promise<T>,
): Promise<T> {
  const zk = await connect({ connectString: ctx.zk.connectString });
  const dir = `/bench-${name}-${Date.now()}`;
  try {
    await zk.ensurePath(dir);
    return await body(zk, dir);
  } finally {
    await zk.deleteRecursive(dir).catch(() => {});
    await zk.close();
  }
}

/** Runs `once` `warmup` times untimed, then `count` times timed, one at a time: a latency floor. */
async function timedFloor(
  name: CeilingName,
  detail: (p50: number) => string,
  warmup: number,
  count: number,
  once: (i: number) => Promise<number>,
): Promise<CeilingResult> {
  for (let i = 0; i < warmup; i++) await once(i);
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await once(warmup + i));
  const latencyMs = summarize(times);
  const seconds = times.reduce((sum, t) => sum + t, 0) / 1000;
  return {
    kind: "ceiling",
    name,
    detail: detail(latencyMs.p50),
    count,
    seconds: round(seconds),
    perSecond: round(count / seconds, 1),
    latencyMs,
  };
}
