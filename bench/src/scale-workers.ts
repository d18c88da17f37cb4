/**
 * Many workers in one process, for the workers curve (scale-curve.ts): `node scale-workers.js <connect>
 * <root> <name-prefix> <count> <concurrency> <cwd> <session-timeout-ms>` starts `count` workers named
 * `<prefix>-<i>`, each a ZooKeeper session of its own, with the bench's in-process handlers. They share
 * the process's event loop and `cwd`: each name has its own folder (and lock) there. Prints
 * `ready <ms to start them all> <rss bytes>` once every one is registered; SIGTERM stops them all.
 */
import type { Logger } from "@zkgrid/core";
import { startWorker, type Worker } from "@zkgrid/worker";
import { handlers } from "./handlers.js";

const [connectString, root, prefix, countText, concurrencyText, cwd, timeoutText] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText);
const sessionTimeoutMs = Number(timeoutText);
if (
  !connectString ||
  !root ||
  !prefix ||
  !cwd ||
  !Number.isInteger(count) ||
  count < 1 ||
  !Number.isInteger(concurrency) ||
  concurrency < 1 ||
  !Number.isInteger(sessionTimeoutMs) ||
  sessionTimeoutMs < 1
) {
  process.stderr.write(
    "usage: scale-workers <connect> <root> <name-prefix> <count> <concurrency> <cwd> <session-timeout-ms>\n",
  );
  process.exit(2);
}

// Only what needs a reader: a thousand workers' info lines would cost the measured CPU.
const logger: Logger = (level, msg, fields) => {
  if (level === "warn" || level === "error")
    process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
};

/** Workers connecting at once, per process: enough to overlap the round trips, few enough not to stampede. */
const STARTING_AT_ONCE = 10;

const workers: Worker[] = [];
let stopping = false;
process.once("SIGTERM", () => {
  stopping = true;
  void Promise.allSettled(workers.map((w) => w.stop({ graceMs: 2000 }))).then(() => process.exit(0));
});

const began = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(STARTING_AT_ONCE, count) }, async () => {
    while (next < count && !stopping) {
      const name = `${prefix}-${next++}`;
      workers.push(
        await startWorker({
          name,
          connectString,
          root,
          concurrency,
          prefetch: 0,
          handlers,
          cwd,
          sessionTimeoutMs,
          // Plain spawning: the Perl launcher's probe would run once per worker, and no task here forks.
          perl: false,
          logger,
        }),
      );
    }
  }),
);
process.stdout.write(`ready ${Math.round(performance.now() - began)} ${process.memoryUsage().rss}\n`);
