/**
 * `pnpm bench`: zkgrid against BullMQ and against the machine's ceilings, in one run on one machine.
 * Starts its own ZooKeeper (one local server) and Redis, runs every workload, prints the tables and
 * ratios, and writes JSON and an SVG chart to bench/results/.
 */
import { execFileSync } from "node:child_process";
import {
  accessSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { MAX_CAPACITY } from "@zkgrid/protocol";
import { findZooKeeper, startServer, type ZkServer } from "@zkgrid/testing";
import { type BullShape, bullLatency, bullThroughput } from "./bullmq.js";
import {
  spawnCeiling,
  spawnCeilingBesideRounds,
  zkCreateCeiling,
  zkDirectFloor,
  zkRelayFloor,
} from "./ceilings.js";
import { BINS, type BenchContext, REPO } from "./context.js";
import { killAllNow } from "./processes.js";
import { type RedisServer, startRedis } from "./redis.js";
import { computeRatios, formatTables, renderChart } from "./report.js";
import type { BenchResult } from "./results.js";
import {
  type GridShape,
  type ServerWarmup,
  warmServer,
  zkgridLatency,
  zkgridScale,
  zkgridThroughput,
} from "./zkgrid.js";
import { serverVersion } from "./zookeeper.js";

const USAGE = `Usage: pnpm bench [-- options]

Runs zkgrid (1 master + 2 workers, real processes) against BullMQ and against the raw ceilings
(pipelined ZooKeeper creates, directly spawned \`sh -c true\`) on this machine, with its own ZooKeeper
and Redis. Prints the tables and ratios; writes <mode>.json and <mode>.svg to bench/results/.

Options:
  --quick          a smaller run, about 30 s after the build (no scale test, one BullMQ shape)
  --scale          only the scale test (100 000 tasks queued at once)
  --only <list>    only these parts, comma-separated: ceilings,noop,shell,latency,scale
  --concurrency <n>  tasks each worker runs at once in the no-op and latency runs, zkgrid and
                   BullMQ alike (default 100); zkgrid's no-op workers hold as many again (prefetch)
  --out <dir>      where to write the results (default bench/results)
  --profile        run the master and workers with --cpu-prof (profiles kept in the scratch dir)
  --keep           keep the scratch dir (process logs, profiles)
  --allow-unpatched-addon  report figures even when the zookeeper addon lacks @zkgrid/core's
                   hosts-once patch (about 13 µs of CPU more per reply in every process)
  -h, --help       show this help`;

const PARTS = ["ceilings", "noop", "shell", "latency", "scale"] as const;

/**
 * The bench's ZooKeeper, sized for a small machine as an operator would: a 1 GiB heap, and no thread
 * pools between the network, the commit processor and the replies (each pool is a hand-off between
 * threads per request, which a 2-core machine pays for in CPU). The ceilings run on the same server.
 */
const ZOOKEEPER_JVM_FLAGS = [
  "-Xmx1g",
  "-Dzookeeper.nio.numSelectorThreads=1",
  "-Dzookeeper.nio.numWorkerThreads=0",
  "-Dzookeeper.commitProcessor.numWorkerThreads=0",
];
type Part = (typeof PARTS)[number];

/** Task counts and shapes of one mode. Warm-up tasks are never timed. */
interface Config {
  mode: "full" | "quick" | "scale" | "partial";
  parts: Part[];
  /** Timed rounds of each throughput run, `count` tasks each; the median round is reported. */
  rounds: number;
  noop: { warmup: number; count: number; zkgrid: GridShape; bullmq: BullShape[] };
  shell: { warmup: number; count: number; zkgrid: GridShape; bullmq: BullShape[] };
  latency: { warmup: number; count: number; zkgrid: GridShape; bullmq: BullShape };
  ceilings: {
    zkCreates: { warmup: number; count: number; inFlight: number };
    spawn: { warmup: number; count: number; concurrency: number; processes: number[] };
  };
  scale: { count: number; zkgrid: GridShape };
  /** The throw-away grid that warms ZooKeeper's JIT up first: tasks per round, at most this many rounds. */
  serverWarmup: { tasksPerRound: number; maxRounds: number };
  masterRssLimitMiB: number;
}

function configFor(mode: "full" | "quick"): Config {
  // Workers hold tasks beyond their concurrency (--prefetch), so that many share each report and
  // assignment; BullMQ's workers run with the same concurrency.
  const noopShape = { workers: 2, concurrency: 100, prefetch: 100 };
  const shellShape = { workers: 2, concurrency: 8, prefetch: 32 };
  // One task at a time: nothing is ever held, so prefetch changes nothing there.
  const latencyShape = { workers: 2, concurrency: 100 };
  if (mode === "quick") {
    return {
      mode,
      parts: ["ceilings", "noop", "shell", "latency"],
      rounds: 3,
      noop: { warmup: 5000, count: 2500, zkgrid: noopShape, bullmq: [{ workers: 1, concurrency: 100 }] },
      shell: { warmup: 60, count: 150, zkgrid: shellShape, bullmq: [{ workers: 2, concurrency: 8 }] },
      latency: { warmup: 20, count: 200, zkgrid: latencyShape, bullmq: { workers: 1, concurrency: 100 } },
      ceilings: {
        zkCreates: { warmup: 1000, count: 5000, inFlight: 500 },
        spawn: { warmup: 50, count: 600, concurrency: 8, processes: [1] },
      },
      scale: { count: 20_000, zkgrid: noopShape },
      serverWarmup: { tasksPerRound: 5000, maxRounds: 3 },
      masterRssLimitMiB: 300,
    };
  }
  return {
    mode,
    parts: [...PARTS],
    rounds: 5,
    noop: {
      warmup: 20_000,
      count: 20_000,
      zkgrid: noopShape,
      bullmq: [
        { workers: 1, concurrency: 100 },
        { workers: 2, concurrency: 100 },
      ],
    },
    shell: { warmup: 1500, count: 1000, zkgrid: shellShape, bullmq: [{ workers: 2, concurrency: 8 }] },
    latency: { warmup: 2000, count: 1000, zkgrid: latencyShape, bullmq: { workers: 1, concurrency: 100 } },
    ceilings: {
      zkCreates: { warmup: 5000, count: 50_000, inFlight: 500 },
      spawn: { warmup: 300, count: 3000, concurrency: 8, processes: [1, 2] },
    },
    scale: { count: 100_000, zkgrid: noopShape },
    serverWarmup: { tasksPerRound: 10_000, maxRounds: 8 },
    masterRssLimitMiB: 300,
  };
}

/** The version of an installed package; `from` is a package that depends on it, when the bench does not. */
function packageVersion(name: string, from?: string): string {
  try {
    const require = createRequire(import.meta.url);
    const paths = from === undefined ? undefined : [dirname(require.resolve(from))];
    let dir = dirname(require.resolve(name, paths === undefined ? undefined : { paths }));
    while (dir !== dirname(dir)) {
      const file = join(dir, "package.json");
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version ?? "unknown";
      }
      dir = dirname(dir);
    }
  } catch {
    // Fall through.
  }
  return "unknown";
}

/**
 * Where the scratch dir goes: a RAM file system when there is one. Redis keeps nothing on disk and
 * ZooKeeper does not sync, so neither should pay for the disk; nor should the workers' output folders
 * (three files per task), which BullMQ's jobs and the spawn ceiling do not write at all. On a disk
 * they measure the disk: a file created on this machine's ext4 costs ~0.3 ms, on tmpfs ~10 µs.
 */
function scratchRoot(): string {
  const ram = process.env.ZKGRID_BENCH_SCRATCH ?? "/dev/shm";
  try {
    accessSync(ram, fsConstants.W_OK);
    return ram;
  } catch {
    return tmpdir();
  }
}

/**
 * Whether the addon the grid loads (zookeeper, as @zkgrid/core resolves it) carries the hosts-once
 * patch: its postinstall leaves this stamp beside the built addon only when the rebuild succeeded.
 */
function addonState(): { patched: boolean; dir?: string } {
  try {
    const require = createRequire(import.meta.url);
    const core = dirname(require.resolve("@zkgrid/core"));
    const dir = dirname(require.resolve("zookeeper/package.json", { paths: [core] }));
    const release = join(dir, "build", "Release");
    const patched =
      existsSync(join(release, ".zkgrid-resolution-patch")) && existsSync(join(release, "zookeeper.node"));
    return { patched, dir };
  } catch {
    return { patched: false };
  }
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

function gitCommit(): string | undefined {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "ignore"],
    });
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "apps", "packages"], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "ignore"],
    });
    return `${head.toString().trim()}${dirty.length > 0 ? "+changes" : ""}`;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse());
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  for (const [what, path] of Object.entries(BINS)) {
    if (!existsSync(path)) {
      process.stderr.write(`bench: ${what} is not built (${path}): run pnpm build first\n`);
      return 2;
    }
  }
  const addon = addonState();
  if (!addon.patched && !values["allow-unpatched-addon"]) {
    process.stderr.write(
      `bench: the zookeeper addon (${addon.dir ?? "not found"}) lacks @zkgrid/core's hosts-once patch, so ` +
        "its figures would not be zkgrid's. Run `pnpm --filter @zkgrid/core run postinstall` (it says why " +
        "if it cannot apply), or pass --allow-unpatched-addon to measure the addon as shipped.\n",
    );
    return 1;
  }
  const config = configFor(values.quick ? "quick" : "full");
  if (values.scale) {
    config.mode = "scale";
    config.parts = ["scale"];
  }
  if (values.only !== undefined) {
    const parts = values.only.split(",").map((p) => p.trim());
    const unknown = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
    if (unknown.length > 0) {
      process.stderr.write(
        `bench: --only: unknown part(s) ${unknown.join(", ")}; known: ${PARTS.join(", ")}\n`,
      );
      return 2;
    }
    config.mode = "partial";
    config.parts = parts as Part[];
  }
  if (values.concurrency !== undefined) {
    const n = Number(values.concurrency);
    // The no-op grid's workers hold as many again: concurrency + prefetch is at most MAX_CAPACITY.
    if (!Number.isInteger(n) || n < 1 || n > MAX_CAPACITY / 2) {
      process.stderr.write(
        `bench: --concurrency must be a whole number 1..${MAX_CAPACITY / 2}, got "${values.concurrency}"\n`,
      );
      return 2;
    }
    for (const shape of [
      config.noop.zkgrid,
      config.latency.zkgrid,
      config.latency.bullmq,
      config.scale.zkgrid,
      ...config.noop.bullmq,
    ]) {
      shape.concurrency = n;
    }
    // The no-op grid holds as many tasks again as it runs.
    config.noop.zkgrid.prefetch = n;
    config.scale.zkgrid.prefetch = n;
  }
  const outDir = resolve(values.out ?? join(REPO, "bench/results"));
  const has = (part: Part) => config.parts.includes(part);
  const needsRedis = has("noop") || has("shell") || has("latency");

  const began = performance.now();
  const log = (line: string) => {
    process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  };
  const workDir = mkdtempSync(join(scratchRoot(), "zkgrid-bench-"));
  const nodeFlags = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${join(workDir, "profiles")}`] : [];
  let zk: ZkServer | undefined;
  let redis: RedisServer | undefined;
  const results: BenchResult[] = [];
  const startedAt = new Date();
  const loadAverageAtStart = loadavg();
  try {
    log(`mode ${config.mode}: ${config.parts.join(", ")}; scratch dir ${workDir}`);
    const zookeeper = await findZooKeeper({ install: process.getuid?.() === 0 });
    // A larger heap than the test harness gives: the scale test keeps ~100 000 tasks' worth of nodes.
    zk = await startServer({ zookeeper, jvmFlags: ZOOKEEPER_JVM_FLAGS, dir: join(workDir, "zookeeper") });
    log(`ZooKeeper ${await serverVersion(zk)} on ${zk.connectString}`);
    if (needsRedis) {
      redis = await startRedis(workDir, log);
      log(`Redis ${redis.version} on 127.0.0.1:${redis.port}`);
    }
    const ctx: BenchContext = {
      zk,
      redis: redis as RedisServer,
      workDir,
      log,
    };

    let serverWarmup: ServerWarmup | undefined;
    if (config.parts.some((part) => part !== "ceilings")) {
      log("warming ZooKeeper up with a throw-away grid, until its JIT compilers are quiet");
      serverWarmup = await warmServer(ctx, config.serverWarmup.tasksPerRound, config.serverWarmup.maxRounds);
      log(
        `  ${serverWarmup.rounds} rounds, ${serverWarmup.tasks} tasks, ${serverWarmup.seconds} s; JIT share of ZooKeeper's CPU in the last round: ${serverWarmup.jitShareLastRound === null ? "not measured" : `${Math.round(serverWarmup.jitShareLastRound * 100)}%`}`,
      );
    }

    const record = (result: BenchResult) => {
      results.push(result);
      const r = result;
      const error = "error" in r && r.error ? ` ERROR ${r.error}` : "";
      if (r.kind === "ceiling") log(`  ${r.detail}: ${r.perSecond}/s${error}`);
      else if (r.kind === "throughput")
        log(
          `  ${r.system} ${r.workload} ${r.shape}: ${r.tasksPerSecond} tasks/s (rounds ${r.rounds.join(", ")}), p50 ${r.latencyMs.p50} ms${error}`,
        );
      else if (r.kind === "latency")
        log(`  ${r.system} ${r.shape}: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms${error}`);
      else
        log(
          `  scale: drained ${r.count} in ${r.drainedSeconds} s, master peak ${r.peakRssMiB.master} MiB${error}`,
        );
    };

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
      log(`(a) zkgrid: ${r} × ${n.count} no-op tasks after ${n.warmup} to warm up`);
      record(await zkgridThroughput(ctx, "noop", n.zkgrid, n.warmup, n.count, r, { nodeFlags }));
      for (const shape of n.bullmq) {
        log(`(a) BullMQ: ${r} × ${n.count} no-op jobs after ${n.warmup} to warm up`);
        record(await bullThroughput(ctx, "noop", shape, n.warmup, n.count, r));
      }
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
      log(`(c) floor: ${l.count} relays of 3 ZooKeeper writes in sequence after ${l.warmup} to warm up`);
      record(await zkRelayFloor(ctx, 3, l.warmup, l.count));
      log(`(c) direct floor: ${l.count} creates answered over the node after ${l.warmup} to warm up`);
      record(await zkDirectFloor(ctx, l.warmup, l.count));
      log(`(c) zkgrid: ${l.count} no-op tasks one at a time after ${l.warmup} to warm up`);
      record(await zkgridLatency(ctx, l.zkgrid, l.warmup, l.count, { nodeFlags }));
      log(`(c) BullMQ: ${l.count} no-op jobs one at a time after ${l.warmup} to warm up`);
      record(await bullLatency(ctx, l.bullmq, l.warmup, l.count));
    }
    if (has("scale")) {
      const s = config.scale;
      log(`scale: ${s.count} no-op tasks queued at once`);
      record(await zkgridScale(ctx, s.zkgrid, s.count, { nodeFlags }));
    }

    const ratios = computeRatios(results, config.masterRssLimitMiB);
    const seconds = Math.round((performance.now() - began) / 100) / 10;
    const cpuList = cpus();
    const report = {
      mode: config.mode,
      startedAt: startedAt.toISOString(),
      durationSeconds: seconds,
      config,
      versions: {
        node: process.version,
        zookeeper: await serverVersion(zk),
        redis: redis?.version,
        bullmq: packageVersion("bullmq"),
        ioredis: packageVersion("ioredis"),
        zkgrid: packageVersion("@zkgrid/master"),
        zookeeperAddon: packageVersion("zookeeper", "@zkgrid/core"),
        commit: gitCommit(),
      },
      addon: { hostsOncePatch: addon.patched },
      machine: {
        cpus: cpuList.length,
        cpuModel: cpuList[0]?.model,
        memoryBytes: totalmem(),
        os: osName(),
        kernel: release(),
        loadAverageAtStart,
        loadAverageAtEnd: loadavg(),
      },
      notes: [
        `ZooKeeper: one standalone server from @zkgrid/testing (forceSync=no, ${ZOOKEEPER_JVM_FLAGS.join(" ")}); Redis: no persistence. Both throw-away.`,
        "Before any part but the ceilings, a throw-away grid warms ZooKeeper up until its JIT compilers take under 3% of its CPU in a round (serverWarmup), as on a server that has been running a while.",
        `Scratch dir (ZooKeeper's data, the workers' output folders, logs): ${workDir}; on a RAM file system (/dev/shm, or ZKGRID_BENCH_SCRATCH) when there is one.`,
        "CPU of a zkgrid worker includes its task launcher, the child process that forks its tasks.",
        "Throughput: after the warm-up, `rounds` timed rounds of `count` tasks, each round's tasks submitted at once; the median round is reported. Only timed tasks count. Latency there is mostly queueing.",
        "ZK writes per task: the server's zxid delta from before the timed submit until the grid went quiet after it.",
        "Peak RSS: VmHWM of each process at the end of its run (it includes the warm-up).",
      ],
      serverWarmup,
      results,
      ratios,
    };
    mkdirSync(outDir, { recursive: true });
    const jsonFile = join(outDir, `${config.mode}.json`);
    const svgFile = join(outDir, `${config.mode}.svg`);
    writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    const subtitle = `${startedAt.toISOString().slice(0, 16).replace("T", " ")} · ${cpuList.length} CPUs · Node ${process.version} · ZooKeeper ${report.versions.zookeeper}${redis ? ` · Redis ${redis.version} · BullMQ ${report.versions.bullmq}` : ""}`;
    writeFileSync(svgFile, renderChart(results, subtitle));
    process.stdout.write(`\n${formatTables(results, ratios)}\n\n`);
    process.stdout.write(`Wrote ${jsonFile} and ${svgFile} (${seconds} s in all)\n`);
    const failed = results.some((r) => "error" in r && r.error !== undefined);
    return failed ? 1 : 0;
  } finally {
    await redis?.stop().catch(() => {});
    await zk?.stop().catch(() => {});
    killAllNow();
    if (values.keep || values.profile) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

function parse() {
  return parseArgs({
    args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--")),
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean" },
      scale: { type: "boolean" },
      only: { type: "string" },
      concurrency: { type: "string" },
      out: { type: "string" },
      profile: { type: "boolean" },
      keep: { type: "boolean" },
      "allow-unpatched-addon": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    killAllNow();
    process.exit(1);
  },
);
