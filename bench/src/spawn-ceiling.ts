/**
 * The spawn ceiling: `node spawn-ceiling.js <concurrency> <warmup> <count>` spawns `sh -c true` with
 * `concurrency` in flight, `warmup` times untimed and then `count` times timed, and prints
 * `{"count":…,"ms":…}` as its last line.
 */
import { performance } from "node:perf_hooks";
import { runTrue } from "./spawn-true.js";

const [concurrency, warmup, count] = process.argv.slice(2).map(Number);
if (!concurrency || warmup === undefined || !count) {
  process.stderr.write("usage: spawn-ceiling <concurrency> <warmup> <count>\n");
  process.exit(2);
}

async function spawnMany(total: number): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency as number, total) }, async () => {
    while (next < total) {
      next++;
      await runTrue();
    }
  });
  await Promise.all(lanes);
}

await spawnMany(warmup);
const start = performance.now();
await spawnMany(count);
const ms = performance.now() - start;
process.stdout.write(`${JSON.stringify({ count, ms })}\n`);
