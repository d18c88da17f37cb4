/**
 * `pnpm bench`: zkgrid against BullMQ and against the machine's ceilings, in one run on one machine.
 * For each durability setting it starts its own ZooKeeper (one local server) and Redis, runs every
 * workload, prints the tables and ratios, and writes JSON and SVG charts to bench/results/.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { MAX_CAPACITY } from "@zkgrid/protocol";
import { findZooKeeper } from "@zkgrid/testing";
import { BINS, type BenchContext, REPO } from "./context.js";
import {
  DURABILITIES,
  type Durability,
  type DurabilityServers,
  type DurabilitySettings,
  describeSettings,
  diskRoot,
  scratchRoot,
  fastServerCpu,
  startServers,
} from "./durability.js";
import { configFor, PARTS, type Part, runPass } from "./plan.js";
import { describeTimeResult } from "./time-workloads.js";
import { killAllNow } from "./processes.js";
import { computeRatios, formatSummary, formatTables, type Ratio, renderChart } from "./report.js";
import type { BenchResult } from "./results.js";
import { DEFAULTS_TARGETS, type FigureSummary, figuresOf, summarizeRuns, TARGETS } from "./summary.js";
import { formatRow } from "./submitters.js";
import { gridBins, type ServerWarmup } from "./zkgrid.js";
import { serverVersion } from "./zookeeper.js";

const USAGE = `Usage: pnpm bench [-- options]

Runs zkgrid (1 master + 2 workers, real processes) against BullMQ and against the raw ceilings
(pipelined ZooKeeper creates, directly spawned \`sh -c true\`) on this machine, with its own ZooKeeper
and Redis, under each durability setting. Prints the tables and ratios; writes <mode>.json and
<mode>-<durability>.svg to bench/results/.

Durability settings:
  durable          ZooKeeper as installed: forceSync=yes, data on disk, the JVM's defaults but a 1 GiB
                   heap; Redis with appendonly yes + appendfsync always, data on disk
  fast             ZooKeeper with forceSync=no, tuned threads (on one CPU on a machine of 2 to 4 cores),
                   data in RAM (/dev/shm); Redis without persistence

Options:
  --quick          one smaller run, a minute or two after the build (no scale test, one BullMQ shape)
  --smoke          tiny counts: only checks that every part runs end to end (its figures mean nothing)
  --scale          only the scale part: 100 000 tasks queued at once, then the workers curve (2 masters
                   and 10, 100, 1 000 workers, 50 a process: takeover, assignment latency, the
                   leader's CPU per task, ZooKeeper's counters); with --smoke: 500 tasks, 10 and 50
                   workers
  --curve <counts> only the workers curve, at these worker counts (comma-separated, e.g. 10,1000),
                   each step ending after its CPU measurement (no takeover): the leader's CPU per
                   task and the ratio in a few minutes; with --profile, the masters alone are
                   profiled and \`node bench/dist/profile-window.js <scratch dir>/profiles\` gives the
                   leader's profile over each step's CPU window; its JSON is partial.json
  --only <list>    only these parts, comma-separated: ceilings,noop,shell,latency,scale,delayed,retry,
                   schedules (delayed: 100 000 delayed tasks held at once, their start lateness;
                   retry: a failed-then-retried task's cost against a first-time success;
                   schedules: N schedules firing every second for a minute, runs only when named;
                   submitters: 1, 10, 50 submitters at once, each waiting for its own tasks, also with --scale)
  --durability <list>  these settings, comma-separated, in this order (default durable,fast)
  --runs <n>       complete runs (every setting, every part); each figure is reported as its median
                   over the runs, and the targets are judged on it (default 3; 1 with --quick,
                   --smoke or --scale). The scale test runs in the first run only
  --concurrency <n>  tasks each worker runs at once in the no-op and latency runs, zkgrid and
                   BullMQ alike (default 100); zkgrid's no-op workers hold as many again (prefetch)
  --out <dir>      where to write the results (default bench/results)
  --profile        run the master and workers with --cpu-prof (profiles kept in the scratch dir;
                   in the workers curve, the masters only)
  --node-flags <s> flags for the grid's master and worker processes, e.g. "--max-semi-space-size=32"
                   (added after --profile's)
  --keep           keep the scratch dirs (process logs, profiles, the durable servers' data)
  --consumer <dir> also measure the lone-task latency with the master and worker a project installed
                   from the packed packages (tests/consumers/run.sh with KEEP=1 leaves one), beside
                   this repository's, in the same run (needs the latency part); every other run
                   measures the consumer's first
  --allow-unpatched-addon  report figures even when the zookeeper addon lacks @zkgrid/core's
                   hosts-once patch (about 13 µs of CPU more per reply in every process)
  -h, --help       show this help

Examples:
  pnpm bench                        the full run: 3 runs of both settings, medians against the targets
  pnpm bench --only latency --durability durable,fast --runs 3
                                    the lone-task latency and its floors only, both settings
  pnpm bench --quick                one short run of both settings

Environment:
  ZKGRID_BENCH_SCRATCH  a RAM directory for the fast servers and the scratch files (default /dev/shm)
  ZKGRID_BENCH_DISK     a disk directory for the durable servers' data (default the temp dir when it
                   is on a disk, else bench/.disk)
  ZKGRID_BENCH_ZK_CPU   the CPU the fast ZooKeeper's threads are held to (default the last one on a
                   machine of 2 to 4 cores, else none), or "all" to leave them free`;

/** Everything one durability setting produced in one run. */
interface DurabilityPass {
  settings: DurabilitySettings;
  serverWarmup?: ServerWarmup;
  results: BenchResult[];
  ratios: Ratio[];
}

/** One complete run: every setting, every part. */
interface Run {
  run: number;
  passes: Partial<Record<Durability, DurabilityPass>>;
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
 * Whether the addon the grid loads (zookeeper, as @zkgrid/core resolves it) carries the hosts-once
 * patch: its postinstall leaves this stamp beside the built addon only when the rebuild succeeded.
 */
/** The zookeeper addon that @zkgrid/core resolves, seen from `from` (default this bench). */
function addonState(from: string = import.meta.url): { patched: boolean; dir?: string } {
  try {
    const require = createRequire(from);
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
  try {
    fastServerCpu();
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    return 2;
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
  const consumer = values.consumer === undefined ? undefined : resolve(values.consumer);
  if (consumer !== undefined) {
    for (const [what, path] of Object.entries(gridBins(consumer))) {
      if (!existsSync(path)) {
        process.stderr.write(`bench: --consumer: ${consumer} has no installed ${what} (${path})\n`);
        return 2;
      }
    }
    const installed = addonState(join(consumer, "node_modules/@zkgrid/master/package.json"));
    if (!installed.patched && !values["allow-unpatched-addon"]) {
      process.stderr.write(
        `bench: --consumer: the zookeeper addon of ${consumer} (${installed.dir ?? "not found"}) lacks the ` +
          "hosts-once patch; rebuild it (npm rebuild @zkgrid/core) or pass --allow-unpatched-addon\n",
      );
      return 1;
    }
  }
  if (values.quick && values.smoke) {
    process.stderr.write("bench: --quick and --smoke exclude each other\n");
    return 2;
  }
  const config = configFor(values.smoke ? "smoke" : values.quick ? "quick" : "full");
  if (values.scale) {
    config.mode = "scale";
    config.parts = ["scale"];
  }
  if (values.curve !== undefined) {
    const counts = values.curve.split(",").map((c) => Number(c.trim()));
    if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 5000)) {
      process.stderr.write(
        `bench: --curve: worker counts must be whole numbers 1..5000, comma-separated, got "${values.curve}"\n`,
      );
      return 2;
    }
    // Partial: its JSON (partial.json) never stands in for a whole --scale run's.
    config.mode = "partial";
    config.parts = ["scale"];
    config.scale.only = ["workers"];
    config.scale.curve.workers = counts;
    config.scale.curve.takeover = false;
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
  let durabilities: Durability[] = [...DURABILITIES];
  if (values.durability !== undefined) {
    const listed = values.durability.split(",").map((d) => d.trim());
    const unknown = listed.filter((d) => !(DURABILITIES as readonly string[]).includes(d));
    if (unknown.length > 0 || listed.length === 0) {
      process.stderr.write(
        `bench: --durability: unknown setting(s) ${unknown.join(", ") || "(none given)"}; known: ${DURABILITIES.join(", ")}\n`,
      );
      return 2;
    }
    durabilities = [...new Set(listed)] as Durability[];
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
  // Three runs unless the run is meant to be short (--quick, --smoke) or is the scale test alone.
  let runs = values.quick || values.smoke || values.scale || values.curve !== undefined ? 1 : 3;
  if (values.runs !== undefined) {
    runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
      process.stderr.write(`bench: --runs must be a whole number 1..20, got "${values.runs}"\n`);
      return 2;
    }
  }
  const outDir = resolve(values.out ?? join(REPO, "bench/results"));
  const needsRedis = ["noop", "shell", "latency"].some((p) => config.parts.includes(p as Part));
  // The scale test compares zkgrid with nothing: it runs once (first run), on the fast setting when
  // there is one.
  const scaleOn = durabilities.includes("fast") ? "fast" : durabilities[0];

  const began = performance.now();
  const log = (line: string) => {
    process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  };
  const workDir = mkdtempSync(join(scratchRoot(), "zkgrid-bench-"));
  let diskDir: string | undefined;
  const nodeFlags = [
    ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${join(workDir, "profiles")}`] : []),
    ...(values["node-flags"] ?? "").split(" ").filter((flag) => flag !== ""),
  ];
  if (values.profile) config.scale.curve.profileDir = join(workDir, "profiles");
  let servers: DurabilityServers | undefined;
  const runRecords: Run[] = [];
  const settingsOf: Partial<Record<Durability, DurabilitySettings>> = {};
  const startedAt = new Date();
  const loadAverageAtStart = loadavg();
  let zkVersion = "unknown";
  let redisVersion: string | undefined;
  try {
    if (durabilities.includes("durable")) diskDir = mkdtempSync(join(diskRoot(), "zkgrid-bench-"));
    log(
      `mode ${config.mode}: ${config.parts.join(", ")}; durability ${durabilities.join(", ")}; ${runs} run(s); scratch dir ${workDir}${diskDir ? `, disk dir ${diskDir}` : ""}`,
    );
    const zookeeper = await findZooKeeper({ install: process.getuid?.() === 0 });
    for (let run = 1; run <= runs; run++) {
      const record: Run = { run, passes: {} };
      runRecords.push(record);
      for (const durability of durabilities) {
        const parts = config.parts.filter((p) => p !== "scale" || (durability === scaleOn && run === 1));
        if (parts.length === 0) continue;
        log(`run ${run} of ${runs}, ${durability}`);
        servers = await startServers(durability, {
          zookeeper,
          ramDir: join(workDir, `run${run}`),
          diskDir: join(diskDir ?? workDir, `run${run}`),
          withRedis: needsRedis && parts.some((p) => p !== "ceilings" && p !== "scale"),
          log,
        });
        zkVersion = await serverVersion(servers.zk);
        redisVersion = servers.redis?.version ?? redisVersion;
        settingsOf[durability] ??= servers.settings;
        log(
          `${durability}: ZooKeeper ${zkVersion} on ${servers.zk.connectString}${servers.redis ? `, Redis ${servers.redis.version} on 127.0.0.1:${servers.redis.port}` : ""}`,
        );
        log(`  ${describeSettings(servers.settings)}`);
        const ctx: BenchContext = {
          zk: servers.zk,
          redis: servers.redis as BenchContext["redis"],
          workDir,
          log,
        };
        const results: BenchResult[] = [];
        const serverWarmup = await runPass(ctx, config, {
          parts,
          zkDataDir: servers.settings.zookeeper.dataDir,
          nodeFlags,
          ...(consumer === undefined ? {} : { consumer, consumerFirst: run % 2 === 0 }),
          reverse: run % 2 === 0,
          record: (result) => {
            results.push(result);
            logResult(log, result);
          },
        });
        record.passes[durability] = {
          settings: servers.settings,
          ...(serverWarmup === undefined ? {} : { serverWarmup }),
          results,
          ratios: computeRatios(results, config.masterRssLimitMiB, TARGETS[durability]),
        };
        await stopServers(servers);
        servers = undefined;
      }
    }
    const summary: Partial<Record<Durability, FigureSummary[]>> = {};
    for (const durability of durabilities) {
      const perRun = runRecords.map((r) => {
        const pass = r.passes[durability];
        return pass === undefined ? [] : figuresOf(pass.results, durability);
      });
      const summaries = summarizeRuns(perRun);
      if (summaries.length > 0) summary[durability] = summaries;
    }

    const seconds = Math.round((performance.now() - began) / 100) / 10;
    const cpuList = cpus();
    const report = {
      mode: config.mode,
      startedAt: startedAt.toISOString(),
      durationSeconds: seconds,
      config,
      durabilities,
      runCount: runs,
      targets: { ...TARGETS, defaults: DEFAULTS_TARGETS },
      versions: {
        node: process.version,
        zookeeper: zkVersion,
        redis: redisVersion,
        bullmq: packageVersion("bullmq"),
        ioredis: packageVersion("ioredis"),
        zkgrid: packageVersion("@zkgrid/master"),
        zookeeperAddon: packageVersion("zookeeper", "@zkgrid/core"),
        commit: gitCommit(),
      },
      addon: { hostsOncePatch: addon.patched },
      settings: settingsOf,
      machine: machineRecord(cpuList, loadAverageAtStart),
      notes: [
        "durable: ZooKeeper with forceSync=yes, its data on a disk (never a RAM file system), the JVM's own defaults but -Xmx1g; Redis with appendonly yes + appendfsync always, its data on a disk. fast: ZooKeeper with forceSync=no, no request thread pools, -Xmx1g, data in RAM; Redis without persistence. All servers throw-away.",
        "Before any part but the ceilings, a throw-away grid warms ZooKeeper up until its JIT compilers take under 3% of its CPU in a round (serverWarmup), as on a server that has been running a while.",
        "No-op and latency parts: every side is started and warmed up, then the sides take turns round by round (each side's round 1, then each side's round 2, ...), each round's order rotated by one.",
        `Scratch dir (the fast servers' data, the workers' output folders, logs): ${workDir}; on a RAM file system (/dev/shm, or ZKGRID_BENCH_SCRATCH) when there is one, under both settings.`,
        "CPU of a zkgrid worker includes its task launcher, the child process that forks its tasks.",
        "Throughput: after the warm-up, `rounds` timed rounds of `count` tasks, each round's tasks submitted at once; the median round is reported. Only timed tasks count. Latency there is mostly queueing.",
        "ZK writes per task: the server's zxid delta from before the timed submit until the grid went quiet after it (the clean-up deletes included). A lone task on the direct path waits for 2 of them: the submitter's create in the inbox and the worker's answer over it.",
        "Redis writes per job: commands clients sent that write (scripts, each one atomic AOF append, and commands flagged write; not what scripts call inside), counted under MONITOR over up to 50 more lone jobs after the timed ones.",
        "fsync floor: one 128-byte write + fdatasync into a preallocated file on the file system of ZooKeeper's data, as ZooKeeper appends to its transaction log.",
        "Peak RSS: VmHWM of each process at the end of its run (it includes the warm-up).",
        "Workers curve (scale-curve): at each worker count, 2 masters and workers 50 to a process (startWorker() per worker, each its own ZooKeeper session); latency submit → assignedAt of tasks paced at tasksPerSecond; leader CPU from /proc/<pid>/stat over those tasks; znodes, watches and the largest reply from mntr (zk_max_client_response_size, reset by srst as each step begins); takeover: SIGKILL of the leader → earliest assignedAt after it.",
        "runs: every run complete (fresh servers for each setting, every part but scale after run 1); summary: each headline figure per run and its median over the runs (a ratio's median is the median of the runs' ratios), the target judged on the median, and the worst run's miss as a share of the bound.",
      ],
      summary,
      runs: runRecords,
    };
    mkdirSync(outDir, { recursive: true });
    const jsonFile = join(outDir, `${config.mode}.json`);
    writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    const written = [jsonFile];
    for (const { run, passes } of runRecords) {
      for (const [durability, pass] of Object.entries(passes) as Array<[Durability, DurabilityPass]>) {
        process.stdout.write(
          `\n== run ${run} of ${runs} · ${describeSettings(pass.settings)}\n\n${formatTables(pass.results, pass.ratios)}\n`,
        );
        // The chart of the first run; every run's figures are in the JSON.
        if (run !== 1) continue;
        const svgFile = join(outDir, `${config.mode}-${durability}.svg`);
        const subtitle = `${durability} · run 1 of ${runs} · ${startedAt.toISOString().slice(0, 16).replace("T", " ")} · ${cpuList.length} CPUs · Node ${process.version} · ZooKeeper ${zkVersion}${redisVersion ? ` · Redis ${redisVersion} · BullMQ ${report.versions.bullmq}` : ""}`;
        writeFileSync(svgFile, renderChart(pass.results, subtitle, TARGETS[durability].throughput.bound));
        written.push(svgFile);
      }
    }
    for (const [durability, summaries] of Object.entries(summary) as Array<[Durability, FigureSummary[]]>) {
      const settings = settingsOf[durability];
      const title = `== ${runs === 1 ? "one run" : `medians of ${runs} runs`} · ${settings ? describeSettings(settings) : durability}`;
      process.stdout.write(`\n${formatSummary(title, summaries)}\n`);
    }
    process.stdout.write(`\nWrote ${written.join(", ")} (${seconds} s in all)\n`);
    const failed = runRecords.some((r) =>
      Object.values(r.passes).some((pass) => pass.results.some((x) => "error" in x && x.error !== undefined)),
    );
    return failed ? 1 : 0;
  } finally {
    if (servers !== undefined) await stopServers(servers);
    killAllNow();
    if (values.keep || values.profile) log(`kept ${workDir}${diskDir ? ` and ${diskDir}` : ""}`);
    else {
      rmSync(workDir, { recursive: true, force: true });
      if (diskDir !== undefined) rmSync(diskDir, { recursive: true, force: true });
    }
  }
}

async function stopServers(servers: DurabilityServers): Promise<void> {
  await servers.redis?.stop().catch(() => {});
  await servers.zk.stop().catch(() => {});
}

function machineRecord(cpuList: ReturnType<typeof cpus>, loadAverageAtStart: number[]) {
  return {
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model,
    memoryBytes: totalmem(),
    os: osName(),
    kernel: release(),
    loadAverageAtStart,
    loadAverageAtEnd: loadavg(),
  };
}

function logResult(log: (line: string) => void, r: BenchResult): void {
  const error = "error" in r && r.error ? ` ERROR ${r.error}` : "";
  if (r.kind === "ceiling")
    log(`  ${r.detail}: ${r.perSecond}/s${r.latencyMs ? `, p50 ${r.latencyMs.p50} ms` : ""}${error}`);
  else if (r.kind === "throughput")
    log(
      `  ${r.system} ${r.workload} ${r.shape}: ${r.tasksPerSecond} tasks/s (rounds ${r.rounds.join(", ")}), p50 ${r.latencyMs.p50} ms${error}`,
    );
  else if (r.kind === "delayed" || r.kind === "retry") log(describeTimeResult(r));
  else if (r.kind === "latency")
    log(
      `  ${r.system}${r.install ? ` (installed in ${r.install})` : ""} ${r.shape}: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms${r.zk ? `, ${r.zk.writesPerTask} ZK writes/task` : ""}${r.redis ? `, ${r.redis.writesPerJob} Redis writes/job` : ""}${error}`,
    );
  else if (r.kind === "schedules")
    log(
      `  schedules: ${r.schedules} × ${r.seconds} s: ${r.slotsFiredOnce}/${r.slotsExpected} slots fired once (${r.slotsMissing} missing, ${r.slotsDuplicated} twice, ${r.strayFirings} stray), leader CPU ${r.leaderCpuPercent}% of a core, ${r.zkWritesPerFiring} ZK writes/firing, queued p50 ${r.queuedLateMs.p50} ms / p99 ${r.queuedLateMs.p99} ms after the slot${error}`,
    );
  else if (r.kind === "submitters") for (const row of r.rows) log(`  ${formatRow(row)}`);
  else if (r.kind === "scale-curve")
    log(
      `  scale curve: leader CPU per task at the most workers ÷ at the fewest: ${r.leaderCpuRatio}${error}`,
    );
  else
    log(
      `  scale: drained ${r.count} in ${r.drainedSeconds} s, master peak ${r.peakRssMiB.master} MiB${error}`,
    );
}

function parse() {
  return parseArgs({
    args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--")),
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean" },
      smoke: { type: "boolean" },
      durability: { type: "string" },
      runs: { type: "string" },
      scale: { type: "boolean" },
      curve: { type: "string" },
      only: { type: "string" },
      concurrency: { type: "string" },
      out: { type: "string" },
      profile: { type: "boolean" },
      keep: { type: "boolean" },
      "node-flags": { type: "string" },
      "allow-unpatched-addon": { type: "boolean" },
      consumer: { type: "string" },
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
