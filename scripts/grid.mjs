#!/usr/bin/env node
// Runs a whole grid on this machine: a real local ZooKeeper, one master and one worker. Ctrl-C stops all.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const USAGE = `Usage: pnpm grid [options]

Starts a local ZooKeeper (kept in .zkgrid/zookeeper), a master and a worker, and stops them all on Ctrl-C.
If a ZooKeeper already answers on the port, the grid uses it instead.

Options:
  --port <n>          ZooKeeper client port (default 2181)
  --workers <n>       how many workers to start (default 1)
  --concurrency <n>   tasks each worker runs at once (default: the number of CPUs)
  --output <dir>      the workers' working directory, where task folders land (default ./grid-output)
  -h, --help          show this help`;

function fail(message) {
  process.stderr.write(`grid: ${message}\nRun pnpm grid --help for usage.\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--")),
    strict: true,
    options: {
      port: { type: "string", default: "2181" },
      workers: { type: "string", default: "1" },
      concurrency: { type: "string" },
      output: { type: "string", default: "grid-output" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  fail(err.message);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535)
  fail(`--port must be a port number (got "${values.port}")`);
const workerCount = Number(values.workers);
if (!Number.isInteger(workerCount) || workerCount < 0 || workerCount > 64)
  fail(`--workers must be 0..64 (got "${values.workers}")`);
if (values.concurrency !== undefined && !/^[1-9][0-9]*$/.test(values.concurrency)) {
  fail(`--concurrency must be a positive whole number (got "${values.concurrency}")`);
}

const bins = {
  master: join(repo, "apps/master/dist/bin.js"),
  worker: join(repo, "apps/worker/dist/bin.js"),
  testing: join(repo, "packages/testing/dist/index.js"),
};
for (const [name, path] of Object.entries(bins)) {
  if (!existsSync(path)) fail(`${name} is not built (${path} is missing): run pnpm build first`);
}
const { findZooKeeper, fourLetterWord, startServer } = await import(bins.testing);

const connect = `127.0.0.1:${port}`;
let server;
const existing = await fourLetterWord("127.0.0.1", port, "ruok", 1000).catch(() => "");
if (existing === "imok") {
  console.log(`grid: using the ZooKeeper already answering on ${connect}`);
} else {
  const zookeeper = await findZooKeeper({ install: process.getuid?.() === 0 });
  console.log(`grid: starting ZooKeeper ${zookeeper.version} on ${connect} (data in .zkgrid/zookeeper)`);
  server = await startServer({ zookeeper, port, dir: join(repo, ".zkgrid/zookeeper"), tickTimeMs: 2000 });
}

const output = resolve(values.output);
const children = [];
function run(label, bin, args) {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, ZKGRID_CONNECT: connect },
    stdio: ["ignore", "inherit", "inherit"],
  });
  child.on("exit", (code, signal) => {
    if (!stopping) console.log(`grid: ${label} exited (${signal ?? code})`);
  });
  children.push(child);
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  console.log("\ngrid: stopping the worker(s), the master and ZooKeeper");
  const exits = children.map((c) =>
    c.exitCode === null && c.signalCode === null ? new Promise((r) => c.on("exit", r)) : null,
  );
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await Promise.all(exits);
  await server?.stop();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

run("master1", bins.master, ["master1"]);
for (let i = 1; i <= workerCount; i++) {
  const args = [`worker${i}`, "--cwd", output];
  if (values.concurrency) args.push("--concurrency", values.concurrency);
  run(`worker${i}`, bins.worker, args);
}

console.log(`grid: master1 and ${workerCount} worker(s) running; task output lands in ${output}/<worker>/<task-id>/
grid: in another terminal, submit a task and wait for it:
  echo '{"cmd":"ps aux"}' | pnpm --filter submit start -- --wait
grid: Ctrl-C stops everything.`);
