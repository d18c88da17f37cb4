/**
 * The two durability settings the bench compares zkgrid and BullMQ under, and the servers each starts.
 * "durable" is what a user gets by default: ZooKeeper syncing every transaction to a log on disk, against
 * Redis appending every write to its AOF and syncing it before it answers. "fast" is neither syncing,
 * with their data in RAM, as the bench always ran them.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants as fsConstants, mkdirSync, readFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type ZkServer, type ZooKeeperInstallation } from "@zkgrid/testing";
import { REPO } from "./context.js";
import { type RedisPersistence, type RedisServer, startRedis } from "./redis.js";

export const DURABILITIES = ["durable", "fast"] as const;
export type Durability = (typeof DURABILITIES)[number];

/**
 * ZooKeeper without thread pools between the network, the commit processor and the replies, as zoo.cfg
 * keys (ZooKeeper reads a key it does not know as the system property `zookeeper.<key>`); docs/scaling.md
 * recommends them for a small machine.
 */
export const NO_REQUEST_POOLS = {
  "nio.numSelectorThreads": 1,
  "nio.numWorkerThreads": 0,
  "commitProcessor.numWorkerThreads": 0,
} as const;

/**
 * "fast": sized for a small machine as an operator would: a 1 GiB heap, and no thread pools between the
 * network, the commit processor and the replies (each pool is a hand-off between threads per request,
 * which a 2-core machine pays for in CPU). "durable": the JVM's and ZooKeeper's defaults but a heap the
 * scale of the bench fits in; `-XX:-UseSerialGC` undoes the test harness's collector choice, so the JVM
 * picks its own as it does for `zkServer.sh`.
 */
export const ZOOKEEPER_JVM_FLAGS: Record<Durability, string[]> = {
  durable: ["-Xmx1g", "-XX:-UseSerialGC"],
  fast: ["-Xmx1g", ...Object.entries(NO_REQUEST_POOLS).map(([key, value]) => `-Dzookeeper.${key}=${value}`)],
};

/**
 * The CPU the `fast` server's threads are held to (`taskset`), or undefined to leave them free: the
 * machine's last one, on a machine of 2 to 4. ZooKeeper hands each request from thread to thread (its
 * network thread, the request processors); on a small VM each hand-off to a thread on the other core
 * costs a wake-up across cores, and on one core it is a plain switch (bench/README.md, "The fast
 * server on one core", gives the runs). `ZKGRID_BENCH_ZK_CPU=all` leaves them free; a number picks
 * that CPU; anything else throws, naming it.
 */
export function fastServerCpu(): number | undefined {
  const chosen = process.env.ZKGRID_BENCH_ZK_CPU;
  const cpus = availableParallelism();
  if (chosen === "all") return undefined;
  if (chosen !== undefined && chosen !== "") {
    const cpu = /^[0-9]+$/.test(chosen) ? Number(chosen) : Number.NaN;
    if (!(cpu < cpus))
      throw new Error(`ZKGRID_BENCH_ZK_CPU=${chosen}: expected "all" or a CPU number 0..${cpus - 1}`);
    return cpu;
  }
  return cpus >= 2 && cpus <= 4 ? cpus - 1 : undefined;
}

/** Holds every thread of process `pid` (and those it makes later) to one CPU, with util-linux's taskset. */
function pinToCpu(pid: number, cpu: number): void {
  execFileSync("taskset", ["--all-tasks", "--cpu-list", "--pid", String(cpu), String(pid)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** What was run, for the JSON and the tables. */
export interface DurabilitySettings {
  durability: Durability;
  zookeeper: {
    forceSync: boolean;
    dataDir: string;
    /** The data dir's file system, as `stat -f` names it (e.g. "ext2/ext3", "tmpfs"). */
    filesystem: string;
    /** The server's JVM arguments as it runs (from /proc), up to the class path. */
    jvmArgs: string[];
    /** The one CPU its threads are held to (`fast` on a small machine), or undefined: all of them. */
    cpu?: number;
  };
  redis?: { persistence: RedisPersistence; dataDir: string; filesystem: string };
}

export interface DurabilityServers {
  zk: ZkServer;
  redis?: RedisServer;
  settings: DurabilitySettings;
}

/** The file system a path lives on, as `stat -f -c %T` names it. */
export function filesystemOf(path: string): string {
  try {
    return execFileSync("stat", ["-f", "-c", "%T", path], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return "unknown";
  }
}

const isRam = (path: string) => ["tmpfs", "ramfs"].includes(filesystemOf(path));

function writable(dir: string): boolean {
  try {
    accessSync(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the scratch dir goes: a RAM file system when there is one. The fast servers keep their data
 * there; so do the workers' output folders (three files per task) under both settings, which BullMQ's
 * jobs and the spawn ceiling do not write at all. On a disk they measure the disk: a file created on
 * this machine's ext4 costs ~0.3 ms, on tmpfs ~10 µs.
 */
export function scratchRoot(): string {
  const ram = process.env.ZKGRID_BENCH_SCRATCH ?? "/dev/shm";
  return writable(ram) ? ram : tmpdir();
}

/**
 * Where the durable servers keep their data: ZKGRID_BENCH_DISK, else the system's temp dir when it is
 * on a disk, else bench/.disk in the clone (never a RAM file system: that would not be durable).
 */
export function diskRoot(): string {
  const chosen = process.env.ZKGRID_BENCH_DISK;
  if (chosen !== undefined) {
    if (isRam(chosen)) throw new Error(`ZKGRID_BENCH_DISK=${chosen} is a RAM file system, not a disk`);
    return chosen;
  }
  const tmp = tmpdir();
  if (writable(tmp) && !isRam(tmp)) return tmp;
  const inClone = join(REPO, "bench/.disk");
  mkdirSync(inClone, { recursive: true });
  return inClone;
}

/** The JVM arguments of a running process, up to its class path. */
function jvmArgs(pid: number | undefined): string[] {
  if (pid === undefined) return [];
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1);
    const cp = args.indexOf("-cp");
    return cp < 0 ? args : args.slice(0, cp);
  } catch {
    return [];
  }
}

/**
 * Starts the setting's ZooKeeper with its data in `dir` (lone-trace starts its own this way too); the
 * `fast` one held to one CPU on a small machine (`fastServerCpu`).
 */
export async function startZooKeeper(
  durability: Durability,
  dir: string,
  zookeeper?: ZooKeeperInstallation,
): Promise<{ server: ZkServer; cpu: number | undefined }> {
  const cpu = durability === "fast" ? fastServerCpu() : undefined;
  const server = await startServer({
    ...(zookeeper === undefined ? {} : { zookeeper }),
    jvmFlags: ZOOKEEPER_JVM_FLAGS[durability],
    dir,
    // ZooKeeper's own default is yes; the harness turns it off for throw-away test servers.
    // maxClientCnxns 0: no limit per address, since the scale curve's thousand workers all come from
    // this machine (ZooKeeper's default allows 60).
    config: { forceSync: durability === "durable" ? "yes" : "no", maxClientCnxns: 0 },
  });
  if (cpu !== undefined) {
    try {
      if (server.pid === undefined) throw new Error("the server has no pid");
      pinToCpu(server.pid, cpu);
    } catch (error) {
      await server.stop().catch(() => {});
      throw new Error(`could not hold ZooKeeper to CPU ${cpu} with taskset: ${String(error)}`);
    }
  }
  return { server, cpu };
}

/**
 * Starts ZooKeeper (and Redis when `withRedis`) for one durability setting: the durable ones keep their
 * data under `diskDir`, the fast ones under `ramDir`.
 */
export async function startServers(
  durability: Durability,
  options: {
    zookeeper: ZooKeeperInstallation;
    ramDir: string;
    diskDir: string;
    withRedis: boolean;
    log: (line: string) => void;
  },
): Promise<DurabilityServers> {
  const durable = durability === "durable";
  const base = join(durable ? options.diskDir : options.ramDir, durability);
  const { server: zk, cpu } = await startZooKeeper(durability, join(base, "zookeeper"), options.zookeeper);
  const settings: DurabilitySettings = {
    durability,
    zookeeper: {
      forceSync: durable,
      dataDir: zk.dataDir,
      filesystem: filesystemOf(zk.dataDir),
      jvmArgs: jvmArgs(zk.pid),
      ...(cpu === undefined ? {} : { cpu }),
    },
  };
  if (!options.withRedis) return { zk, settings };
  try {
    const redisDir = join(base, "redis");
    mkdirSync(redisDir, { recursive: true });
    const persistence: RedisPersistence = durable ? "aof-always" : "none";
    const redis = await startRedis(redisDir, options.log, persistence);
    settings.redis = { persistence, dataDir: redisDir, filesystem: filesystemOf(redisDir) };
    return { zk, redis, settings };
  } catch (error) {
    await zk.stop().catch(() => {});
    throw error;
  }
}

/** One line for the log and the tables. */
export function describeSettings(s: DurabilitySettings): string {
  const cpu = s.zookeeper.cpu === undefined ? "" : `, its threads on CPU ${s.zookeeper.cpu} only`;
  const zk = `ZooKeeper forceSync=${s.zookeeper.forceSync ? "yes" : "no"}, data on ${s.zookeeper.filesystem} (${s.zookeeper.dataDir}), JVM ${s.zookeeper.jvmArgs.filter((a) => a.startsWith("-X")).join(" ")}${cpu}`;
  const redis =
    s.redis === undefined
      ? ""
      : `; Redis ${s.redis.persistence === "aof-always" ? "appendonly yes, appendfsync always" : "no persistence"}, data on ${s.redis.filesystem}`;
  return `${s.durability}: ${zk}${redis}`;
}
