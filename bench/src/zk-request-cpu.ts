/**
 * ZooKeeper's own CPU per request: one client's gets and sets of a 200-byte node, one at a time and 200
 * in flight, on a server of its own for each run (`forceSync=yes`, data on disk), with the JVM's thread
 * defaults and without the request thread pools (`NO_REQUEST_POOLS` in zoo.cfg), taking turns. Prints
 * each run and the medians; see docs/scaling.md, "Sizing the ensemble".
 *
 *   pnpm build && node bench/dist/zk-request-cpu.js [--runs 3]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect, type ZkClient } from "@zkgrid/core";
import { startServer } from "@zkgrid/testing";
import { diskRoot, NO_REQUEST_POOLS, ZOOKEEPER_JVM_FLAGS } from "./durability.js";
import { cpuTimeMs } from "./processes.js";
import { median, percentile, round } from "./stats.js";
import { toolArgs } from "./tool-args.js";

type Threads = "defaults" | "no pools";

interface Figures {
  /** ZooKeeper's CPU per request, µs. */
  cpuUs: number;
  /** One at a time: the round trip's p50, µs; in flight: requests a second. */
  p50Us?: number;
  perSecond?: number;
}

interface RunFigures {
  threads: Threads;
  oneGet: Figures;
  oneSet: Figures;
  manyGets: Figures;
  manySets: Figures;
}

const NODE = "/n";
const DATA = Buffer.alloc(200, "x");

async function oneAtATime(pid: number, count: number, op: () => Promise<unknown>): Promise<Figures> {
  const walls: number[] = [];
  const before = cpuTimeMs(pid) ?? Number.NaN;
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await op();
    walls.push(performance.now() - start);
  }
  const cpu = (cpuTimeMs(pid) ?? Number.NaN) - before;
  walls.sort((a, b) => a - b);
  return { cpuUs: round((cpu * 1000) / count, 0), p50Us: round(percentile(walls, 50) * 1000, 0) };
}

async function inFlight(
  pid: number,
  count: number,
  op: () => Promise<unknown>,
  width = 200,
): Promise<Figures> {
  const before = cpuTimeMs(pid) ?? Number.NaN;
  const start = performance.now();
  let issued = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (issued < count) {
        issued++;
        await op();
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = (cpuTimeMs(pid) ?? Number.NaN) - before;
  return { cpuUs: round((cpu * 1000) / count, 0), perSecond: round(count / seconds, 0) };
}

async function oneRun(threads: Threads): Promise<RunFigures> {
  const dir = mkdtempSync(join(diskRoot(), "zkgrid-request-cpu-"));
  const server = await startServer({
    dir,
    jvmFlags: ZOOKEEPER_JVM_FLAGS.durable,
    config: { forceSync: "yes", ...(threads === "no pools" ? NO_REQUEST_POOLS : {}) },
  });
  let zk: ZkClient | undefined;
  try {
    const pid = server.pid;
    if (pid === undefined) throw new Error("the server is not running");
    zk = await connect({ connectString: server.connectString });
    const client = zk;
    await client.create(NODE, DATA, "persistent");
    const get = () => client.get(NODE);
    const set = () => client.set(NODE, DATA, -1);
    // Warm-up, untimed: the JIT compilers' work is not the requests'.
    await oneAtATime(pid, 1000, get);
    await oneAtATime(pid, 500, set);
    await inFlight(pid, 5000, get);
    return {
      threads,
      oneGet: await oneAtATime(pid, 3000, get),
      oneSet: await oneAtATime(pid, 2000, set),
      manyGets: await inFlight(pid, 30_000, get),
      manySets: await inFlight(pid, 10_000, set),
    };
  } finally {
    await zk?.close().catch(() => {});
    await server.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

function describe(f: Figures): string {
  return f.p50Us !== undefined
    ? `${f.cpuUs} µs CPU, p50 ${f.p50Us} µs`
    : `${f.cpuUs} µs CPU, ${f.perSecond}/s`;
}

const USAGE = `Usage: node bench/dist/zk-request-cpu.js [--runs <n>]

ZooKeeper's own CPU per request (gets and sets of a 200-byte node, one at a time and 200 in flight), on
a server of its own per run (forceSync=yes, data on disk), with the JVM's thread defaults and without
the request thread pools, taking turns.

Options:
  --runs <n>   runs of each thread setting, 1..20 (default 3); the medians follow
  -h, --help   show this help
`;

async function main(): Promise<number> {
  const { values } = toolArgs("zk-request-cpu", () =>
    parseArgs({
      options: {
        runs: { type: "string", default: "3" },
        help: { type: "boolean", short: "h", default: false },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
    process.stderr.write(`zk-request-cpu: --runs must be a whole number 1..20, got "${values.runs}"\n`);
    return 2;
  }
  const all: RunFigures[] = [];
  for (let i = 0; i < runs; i++) {
    for (const threads of ["defaults", "no pools"] as const) {
      const run = await oneRun(threads);
      all.push(run);
      process.stdout.write(
        `run ${i + 1}, ${threads}: get one at a time ${describe(run.oneGet)}; set one at a time ${describe(run.oneSet)}; ` +
          `gets 200 in flight ${describe(run.manyGets)}; sets 200 in flight ${describe(run.manySets)}\n`,
      );
    }
  }
  for (const threads of ["defaults", "no pools"] as const) {
    const mine = all.filter((r) => r.threads === threads);
    const m = (pick: (r: RunFigures) => number | undefined) => median(mine.map((r) => pick(r) ?? Number.NaN));
    process.stdout.write(
      `median of ${runs}, ${threads}: get one at a time ${m((r) => r.oneGet.cpuUs)} µs CPU (p50 ${m((r) => r.oneGet.p50Us)} µs); ` +
        `set one at a time ${m((r) => r.oneSet.cpuUs)} µs (p50 ${m((r) => r.oneSet.p50Us)} µs); ` +
        `gets in flight ${m((r) => r.manyGets.cpuUs)} µs, ${m((r) => r.manyGets.perSecond)}/s; ` +
        `sets in flight ${m((r) => r.manySets.cpuUs)} µs, ${m((r) => r.manySets.perSecond)}/s\n`,
    );
  }
  return 0;
}

process.exitCode = await main();
