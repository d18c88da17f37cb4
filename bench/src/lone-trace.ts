/**
 * Where a lone task's time goes: one master and the bench's latency workers (the built bins, 2 × 100,
 * tuned as the bench tunes them) on a ZooKeeper of its own, started and warmed up as the bench starts
 * and warms up its server of the same setting (fast, or durable with `--durable`), lone no-op tasks one
 * at a time by each route, each task's hops split by the times its status carries, and per task: each
 * process's CPU time and ZooKeeper's requests (mntr).
 *
 *   pnpm build && node bench/dist/lone-trace.js [--count 200] [--runs 3] [--durable] [--cold] [--only floor,direct]
 *     [--workers 2] [--concurrency 100] [--defaults] [--node-flags "--cpu-prof --cpu-prof-dir /tmp/p"]
 *
 * Routes: `floor` (the direct path's floor on the same server: a create seen by an inbox station
 * through a child watch, answered over the node and read through a data watch, as the bench's
 * zk-direct), `direct` (a lone task with an id of the client's making: a worker's inbox), `own-id` (the
 * caller names the task: the queue, and the wait reads every result node), `own-id-since` (the same,
 * waiting from a baseline taken before the write), `due` (runAt in the past: the queue, with the
 * client's own baseline). With `floor` and `direct` it prints direct ÷ floor for each run. It prints
 * one line per route, and JSON with `--json`. With LONE_TRACE_PIDS=<file> it writes ZooKeeper's port and
 * each process's pid there (for bench/tools/zk-trace.sh).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { inboxNodeId } from "@zkgrid/protocol";
import { connectGrid, type GridClient, type TaskStatus } from "@zkgrid/submit";
import type { ZkServer } from "@zkgrid/testing";
import { BINS } from "./context.js";
import { directFloorRound } from "./direct-floor.js";
import { type Durability, diskRoot, fastServerCpu, scratchRoot, startZooKeeper } from "./durability.js";
import { configFor } from "./plan.js";
import { GuardedProcess } from "./processes.js";
import { toolArgs } from "./tool-args.js";
import { warmServer } from "./zkgrid.js";

type Route = "floor" | "direct" | "own-id" | "own-id-since" | "due";
const ROUTES: readonly Route[] = ["floor", "direct", "own-id", "own-id-since", "due"];

interface RouteFigures {
  route: Route;
  count: number;
  /** Submit call to the status in hand, ms. */
  p50: number;
  /** Means of each hop, ms (same machine: every clock is the same clock). */
  hops: Record<string, number>;
  /** CPU time per task, ms, of each process. */
  cpuMs: Record<string, number>;
  /** ZooKeeper requests (packets received) per task. */
  zkRequestsPerTask: number;
}

/** One request's round trip from the submitter, p50 ms: the floors each hop is made of. */
interface Floors {
  write: number;
  read: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** utime + stime of a process, and of its descendants (a worker's launcher, a bin's watchdog), ms. */
function cpuMs(pid: number | undefined, descendants = true): number {
  if (pid === undefined) return Number.NaN;
  let total = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total = ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
    if (!descendants) return total;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ");
    for (const child of children) if (child.trim() !== "") total += cpuMs(Number(child));
  } catch {
    // gone meanwhile
  }
  return total;
}

async function packetsReceived(zk: ZkServer): Promise<number> {
  const mntr = await zk.fourLetterWord("mntr");
  return Number(/zk_packets_received\s+(\d+)/.exec(mntr)?.[1] ?? Number.NaN);
}

function task(route: Route, i: number) {
  if (route === "own-id" || route === "own-id-since")
    return { handler: "noop", input: i, id: `lone-own-${i}-${Date.now()}` };
  if (route === "due") return { handler: "noop", input: i, runAt: Date.now() - 1 };
  return { handler: "noop", input: i };
}

/** The ctime (mtime with `modified`) of the newest child of `dir` (by sequence), or of `dir/<name>`. */
async function newestStamp(client: GridClient, dir: string, modified = false): Promise<number | undefined> {
  const names = await client.zk.getChildren(dir).catch(() => [] as string[]);
  const newest = names.sort((a, b) => Number(a.slice(-10)) - Number(b.slice(-10))).at(-1);
  if (newest === undefined) return undefined;
  const stat = await client.zk.exists(`${dir}/${newest}`).catch(() => null);
  if (stat === null) return undefined;
  return modified ? stat.mtime : stat.ctime;
}

/**
 * When each write of a lone task's path happened, by ZooKeeper's clock (the same machine's), read
 * after the task ended and before the leader's clean-up (50 ms later) deletes the nodes.
 */
async function writeStamps(
  client: GridClient,
  route: Route,
  id: string,
): Promise<Record<string, number | undefined>> {
  const { layout } = client;
  if (route === "direct") {
    const dirs = await client.zk.getChildren(layout.inbox).catch(() => [] as string[]);
    for (const dir of dirs) {
      // The node's name is the id, or the id and the task (inboxNodeName).
      const names = await client.zk.getChildren(`${layout.inbox}/${dir}`).catch(() => [] as string[]);
      const name = names.find((n) => inboxNodeId(n) === id);
      if (name === undefined) continue;
      const stat = await client.zk.exists(`${layout.inbox}/${dir}/${name}`).catch(() => null);
      if (stat !== null) return { written: stat.ctime, answered: stat.mtime };
    }
    return {};
  }
  const reportDirs = await client.zk.getChildren(layout.reports).catch(() => [] as string[]);
  const reported = await Promise.all(reportDirs.map((d) => newestStamp(client, `${layout.reports}/${d}`)));
  const assign = await client.zk.exists(layout.assign("w1")).catch(() => null);
  return {
    written: await newestStamp(client, layout.queue),
    assignWritten: assign?.mtime,
    reported: Math.max(...reported.filter((t): t is number => t !== undefined)),
    resultWritten: await newestStamp(client, layout.results),
  };
}

/** The hops of one task, ms, in path order; a hop whose ends are not both known is left out. */
function hopsOf(route: Route, t0: number, end: number, s: TaskStatus, w: Record<string, number | undefined>) {
  const marks: Array<[string, number | undefined]> =
    route === "direct"
      ? [
          ["submit→inbox node", w.written],
          ["→worker started", s.startedAt],
          ["→finished", s.finishedAt],
          ["→answer written", w.answered],
          ["→submitter has it", end],
        ]
      : [
          ["submit→queue node", w.written],
          ["→assignment written", w.assignWritten],
          ["→worker started", s.startedAt],
          ["→finished", s.finishedAt],
          ["→report written", w.reported],
          ["→result written", w.resultWritten],
          ["→submitter has it", end],
        ];
  const hops: Record<string, number> = {};
  let from = t0;
  for (const [name, at] of marks) {
    if (at === undefined || !Number.isFinite(at)) continue;
    hops[name] = at - from;
    from = at;
  }
  return hops;
}

/** One lone task by `route`, submitted and waited for. */
async function submitAndWait(client: GridClient, route: Route, i: number): Promise<TaskStatus> {
  let got: Map<string, TaskStatus>;
  if (route === "own-id-since") {
    // Not awaited before the write: a session's requests are applied in the order sent.
    const since = client.resultBaseline();
    const ids = await client.submit(task(route, i));
    got = await client.wait(ids, { since: await since });
  } else got = await client.submitAndWait(task(route, i));
  const status = [...got.values()][0] as TaskStatus;
  if (status.state !== "succeeded") throw new Error(`task ${status.id} ended ${status.state}`);
  return status;
}

/**
 * The direct path's floor beside the grid, on the same server: an inbox station (a process of its own)
 * watches a dir, takes each new node's task from its name and answers over it; the submitter reads the answer through a
 * data watch and deletes the node, as the bench's zk-direct floor does.
 */
class FloorStation {
  private constructor(
    private readonly client: GridClient,
    private readonly dir: string,
    readonly process: GuardedProcess,
  ) {}

  static async start(client: GridClient, connectString: string, logFile: string): Promise<FloorStation> {
    const dir = `${client.layout.root}/lone-trace-direct-floor`;
    await client.zk.ensurePath(dir);
    const station = new GuardedProcess(
      "inbox-station",
      process.execPath,
      [BINS.inboxStation, connectString, `${dir}`],
      { cwd: "/tmp", logFile, pipeStdout: true },
    );
    await station.waitForLine(/^ready$/, 30_000);
    return new FloorStation(client, dir, station);
  }

  /** One round; its time as the bench's zk-direct floor counts it (the watch's end and the delete after). */
  once(i: number): Promise<number> {
    return directFloorRound(this.client.zk, this.dir, `t${i}-${Date.now()}`, String(i));
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}

async function runRoute(
  client: GridClient,
  zk: ZkServer,
  pids: Record<string, number | undefined>,
  route: Route,
  count: number,
  warmup: number,
  station: FloorStation | undefined,
): Promise<RouteFigures> {
  /** One task, and its time when the route counts it itself (the floor, as the bench does). */
  const once = async (i: number): Promise<number | undefined> => {
    if (route === "floor") return (station as FloorStation).once(i);
    await submitAndWait(client, route, i);
    return undefined;
  };
  for (let i = 0; i < warmup; i++) await once(i);
  // CPU and requests over a run of their own: the stamps' reads would count.
  const cpuBefore = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid, k !== "submitter")]),
  );
  const packetsBefore = await packetsReceived(zk);
  const totals: number[] = [];
  const began = performance.now();
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const counted = await once(i);
    totals.push(counted ?? performance.now() - start);
  }
  const took = performance.now() - began;
  const packetsAfter = await packetsReceived(zk);
  const cpuAfter = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid, k !== "submitter")]),
  );
  // What each process spends doing nothing for as long (pings, a JVM's own threads) is not the tasks'.
  await new Promise((r) => setTimeout(r, took));
  const cpu = Object.fromEntries(
    Object.entries(pids).map(([k, pid]) => {
      const busy = (cpuAfter[k] ?? 0) - (cpuBefore[k] ?? 0);
      const idle = cpuMs(pid, k !== "submitter") - (cpuAfter[k] ?? 0);
      return [k, round(Math.max(0, busy - idle) / count, 3)];
    }),
  );
  const hops = new Map<string, number[]>();
  // An own-id wait outlasts the leader's clean-up, which rewrites or deletes the nodes stamped. The
  // stamps are whole milliseconds: a hop's mean over many tasks says more than its median.
  for (let i = 0; i < (route === "own-id" || route === "floor" ? 0 : count); i++) {
    const t0 = performance.timeOrigin + performance.now();
    const s = await submitAndWait(client, route, i);
    const end = performance.timeOrigin + performance.now();
    for (const [name, ms] of Object.entries(
      hopsOf(route, t0, end, s, await writeStamps(client, route, s.id)),
    ))
      hops.set(name, [...(hops.get(name) ?? []), ms]);
  }
  return {
    route,
    count,
    p50: round(median(totals)),
    hops: Object.fromEntries([...hops].map(([k, v]) => [k, round(mean(v))])),
    cpuMs: cpu,
    // The mntr calls themselves are 2 requests.
    zkRequestsPerTask: round((packetsAfter - packetsBefore - 2) / count, 2),
  };
}

async function floors(client: GridClient, count: number): Promise<Floors> {
  const dir = `${client.layout.root}/lone-trace-floor`;
  await client.zk.ensurePath(dir);
  const writes: number[] = [];
  const reads: number[] = [];
  for (let i = 0; i < count; i++) {
    let start = performance.now();
    const path = await client.zk.create(`${dir}/n`, Buffer.from("x"), "persistent-sequential");
    writes.push(performance.now() - start);
    start = performance.now();
    await client.zk.get(path);
    reads.push(performance.now() - start);
    await client.zk.delete(path);
  }
  await client.zk.delete(dir);
  return { write: round(median(writes)), read: round(median(reads)) };
}

interface Run {
  floor: Floors;
  figures: RouteFigures[];
}

/** The grid's shape, as the bench's latency part runs it. */
interface Shape {
  workers: number;
  concurrency: number;
  /** No tuning flags: the master at its default log level, the workers' prefetch adaptive. */
  defaults: boolean;
  /** Node's own flags for the master and the workers (e.g. `--cpu-prof`). */
  nodeFlags: string[];
}

/**
 * A ZooKeeper of the setting's own (as the bench starts it: forceSync, JVM flags, data on a disk or in
 * RAM), warmed up as the bench warms it up unless `cold`; a master and workers of their own; each route
 * in turn; then the floors.
 */
async function oneRun(
  setting: Durability,
  cold: boolean,
  routes: readonly Route[],
  count: number,
  warmup: number,
  shape: Shape,
): Promise<Run> {
  // A data dir of each run's own (a run must not find the result nodes of the one before), where the
  // bench keeps the setting's: on a disk for durable, in RAM for fast.
  const dir = mkdtempSync(join(setting === "durable" ? diskRoot() : scratchRoot(), "lone-trace-"));
  const { server: zk } = await startZooKeeper(setting, join(dir, "zookeeper"));
  const root = `/lone-trace-${randomUUID().slice(0, 8)}`;
  const common = ["--connect", zk.connectString, "--root", root];
  const logFile = `/tmp/lone-trace-${process.pid}.log`;
  // Tuned as the bench tunes its latency grid: the master's per-task info lines cost it CPU.
  const master = new GuardedProcess(
    "master",
    process.execPath,
    [...shape.nodeFlags, BINS.master, "m1", ...common, ...(shape.defaults ? [] : ["--log-level", "warn"])],
    { cwd: "/tmp", logFile },
  );
  const workers = Array.from(
    { length: shape.workers },
    (_, i) =>
      new GuardedProcess(
        `worker-${i + 1}`,
        process.execPath,
        [
          ...shape.nodeFlags,
          BINS.worker,
          `w${i + 1}`,
          ...common,
          "--concurrency",
          String(shape.concurrency),
          ...(shape.defaults ? [] : ["--prefetch", "0"]),
          "--handlers",
          BINS.handlers,
          "--cwd",
          "/tmp",
        ],
        { cwd: "/tmp", logFile },
      ),
  );
  const client = await connectGrid({ connectString: zk.connectString, root, submitter: "lone-trace" });
  let station: FloorStation | undefined;
  try {
    if (!cold) {
      // As the bench's full run warms its servers up.
      const { tasksPerRound, maxRounds } = configFor("full").serverWarmup;
      const warm = await warmServer({ zk, workDir: dir }, tasksPerRound, maxRounds);
      console.error(
        `server warmed up: ${warm.rounds} rounds, ${warm.tasks} tasks, ${warm.seconds} s; JIT share of its CPU in the last round ${warm.jitShareLastRound === null ? "not measured" : `${Math.round(warm.jitShareLastRound * 100)}%`}`,
      );
    }
    for (const deadline = Date.now() + 30_000; ; ) {
      const [registered, masters] = await Promise.all([
        client.zk.getChildren(client.layout.workers).catch(() => []),
        client.zk.getChildren(client.layout.masters).catch(() => []),
      ]);
      if (registered.length >= shape.workers && masters.length > 0) break;
      if (Date.now() > deadline) throw new Error("the grid did not come up within 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    if (routes.includes("floor")) station = await FloorStation.start(client, zk.connectString, logFile);
    const pids: Record<string, number | undefined> = {
      submitter: process.pid,
      master: master.pid,
      ...Object.fromEntries(workers.map((w, i) => [`worker-${i + 1}`, w.pid])),
      ...(station === undefined ? {} : { station: station.process.pid }),
      zookeeper: zk.pid,
    };
    if (process.env.LONE_TRACE_PIDS !== undefined)
      writeFileSync(process.env.LONE_TRACE_PIDS, JSON.stringify({ port: zk.port, pids }));
    const figures: RouteFigures[] = [];
    for (const route of routes) figures.push(await runRoute(client, zk, pids, route, count, warmup, station));
    return { floor: await floors(client, count), figures };
  } finally {
    await client.close();
    await Promise.all([station?.stop(), master.stop(), ...workers.map((w) => w.stop())]);
    await zk.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const describe = (figures: Record<string, number>) =>
  Object.entries(figures)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

const USAGE = `Usage: node bench/dist/lone-trace.js [options]

Where a lone task's time goes: a ZooKeeper, one master and the bench's latency workers of its own, lone
no-op tasks one at a time by each route; per route its p50, each hop, each process's CPU per task and
ZooKeeper's requests per task.

Options:
  --count <n>        timed tasks per route (default 200)
  --warmup <n>       tasks per route before timing (default 200)
  --runs <n>         complete runs; the p50s' medians follow (default 3)
  --only <routes>    these routes, comma-separated: ${ROUTES.join(", ")} (default all)
  --workers <n>      worker processes (default 2)
  --concurrency <n>  tasks each worker runs at once (default 100)
  --defaults         start the master and workers without tuning flags
  --durable          the bench's durable server: forceSync on, data on a disk, the JVM's defaults but a
                     1 GiB heap (default: its fast one: forceSync off, data in RAM, no request pools,
                     its threads on one CPU on a machine of 2 to 4; ZKGRID_BENCH_ZK_CPU=all frees them)
  --cold             skip the server's warm-up (default: warm it up as the bench does, with a throw-away
                     grid until its JIT compilers are quiet, about a minute and a half)
  --node-flags <s>   flags for every Node process started, e.g. "--cpu-prof --cpu-prof-dir /tmp/p"
  --json             print the runs as JSON
  -h, --help         show this help
`;

async function main(): Promise<void> {
  const { values } = toolArgs("lone-trace", () =>
    parseArgs({
      options: {
        help: { type: "boolean", short: "h", default: false },
        count: { type: "string", default: "200" },
        warmup: { type: "string", default: "200" },
        runs: { type: "string", default: "3" },
        workers: { type: "string", default: "2" },
        concurrency: { type: "string", default: "100" },
        defaults: { type: "boolean", default: false },
        "node-flags": { type: "string", default: "" },
        durable: { type: "boolean", default: false },
        cold: { type: "boolean", default: false },
        only: { type: "string" },
        json: { type: "boolean", default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const numbers = { count: 1, warmup: 0, runs: 1, workers: 1, concurrency: 1 } as const;
  const n = {} as Record<keyof typeof numbers, number>;
  for (const [name, least] of Object.entries(numbers) as Array<[keyof typeof numbers, number]>) {
    const value = Number(values[name]);
    if (!Number.isSafeInteger(value) || value < least) {
      console.error(`--${name}: expected an integer of at least ${least}, got ${values[name]}`);
      process.exit(2);
    }
    n[name] = value;
  }
  const { count, warmup, runs } = n;
  const routes = values.only === undefined ? ROUTES : (values.only.split(",") as Route[]);
  for (const r of routes) {
    if (!ROUTES.includes(r)) {
      console.error(`--only: unknown route ${r} (one of ${ROUTES.join(", ")})`);
      process.exit(2);
    }
  }
  const shape: Shape = {
    workers: n.workers,
    concurrency: n.concurrency,
    defaults: values.defaults === true,
    nodeFlags: values["node-flags"].split(" ").filter((flag) => flag !== ""),
  };
  const setting: Durability = values.durable === true ? "durable" : "fast";
  let cpu: number | undefined;
  try {
    cpu = fastServerCpu();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const fast = `fast (forceSync off, data in RAM${cpu === undefined ? "" : `, its threads on CPU ${cpu}`})`;
  const zkSetting = `${setting === "durable" ? "durable (forceSync on, data on a disk)" : fast}, ${values.cold ? "cold" : "warmed up"}`;
  const done: Run[] = [];
  const directOverFloor = (run: Run): number | undefined => {
    const p50 = (route: Route) => run.figures.find((f) => f.route === route)?.p50;
    const [direct, floor] = [p50("direct"), p50("floor")];
    return direct === undefined || floor === undefined ? undefined : round(direct / floor);
  };
  for (let r = 1; r <= runs; r++) {
    const run = await oneRun(setting, values.cold === true, routes, count, warmup, shape);
    done.push(run);
    if (values.json) continue;
    const ratio = directOverFloor(run);
    console.log(
      `run ${r}: ${count} lone no-op tasks per route after ${warmup}, ${shape.workers} workers × ${shape.concurrency}${shape.defaults ? " (defaults)" : ""}, ZooKeeper ${zkSetting}; one request from the submitter, p50: write ${run.floor.write} ms, read ${run.floor.read} ms${ratio === undefined ? "" : `; direct ÷ floor ${ratio}`}; load ${loadavg()[0]?.toFixed(2)}`,
    );
    for (const f of run.figures) {
      console.log(
        `  ${f.route}: p50 ${f.p50} ms; hops (ms): ${describe(f.hops)}; CPU ms/task: ${describe(f.cpuMs)}; ZK requests/task ${f.zkRequestsPerTask}`,
      );
    }
  }
  const medians = routes.map((route) => ({
    route,
    p50: median(done.map((run) => run.figures.find((f) => f.route === route)?.p50 ?? Number.NaN)),
  }));
  const ratios = done.map(directOverFloor).filter((x): x is number => x !== undefined);
  if (values.json)
    console.log(
      JSON.stringify(
        { setting, cold: values.cold === true, count, warmup, shape, runs: done, medians },
        null,
        2,
      ),
    );
  else
    console.log(
      `median of ${runs} runs, p50 (ms): ${medians.map((m) => `${m.route} ${m.p50}`).join(", ")}${ratios.length > 0 ? `; direct ÷ floor ${round(median(ratios))}` : ""}`,
    );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
