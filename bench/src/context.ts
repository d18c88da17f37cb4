import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ZkServer } from "@zkgrid/testing";
import type { RedisServer } from "./redis.js";

/** Where the built programs are: this file is bench/dist/run.js once built. */
export const BENCH_DIST = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(BENCH_DIST, "../..");
export const BINS = {
  master: join(REPO, "apps/master/dist/bin.js"),
  worker: join(REPO, "apps/worker/dist/bin.js"),
  handlers: join(BENCH_DIST, "handlers.js"),
  bullmqWorker: join(BENCH_DIST, "bullmq-worker.js"),
  spawnCeiling: join(BENCH_DIST, "spawn-ceiling.js"),
  relayStation: join(BENCH_DIST, "relay-station.js"),
  inboxStation: join(BENCH_DIST, "inbox-station.js"),
};

/** What every scenario shares: the servers, a scratch directory and the progress log. */
export interface BenchContext {
  zk: ZkServer;
  redis: RedisServer;
  /** Scratch space: process logs, worker output folders. Removed at the end unless --keep. */
  workDir: string;
  log: (line: string) => void;
}

/** What starting a grid needs of the context: its ZooKeeper and a scratch dir (no Redis, no log). */
export type GridContext = Pick<BenchContext, "zk" | "workDir">;

export type Workload = "noop" | "shell";
