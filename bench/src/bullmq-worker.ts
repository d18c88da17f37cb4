/**
 * A BullMQ worker process for the baseline: `node bullmq-worker.js <redis port> <queue> <concurrency>`.
 * Jobs named `noop` return at once; jobs named `shell` run `sh -c true`, as a zkgrid shell task does.
 * Prints "ready" once its connections are up; SIGTERM closes it.
 */
import { Worker } from "bullmq";
import { runTrue } from "./spawn-true.js";

const [portText, queueName, concurrencyText] = process.argv.slice(2);
if (portText === undefined || queueName === undefined || concurrencyText === undefined) {
  process.stderr.write("usage: bullmq-worker <redis port> <queue> <concurrency>\n");
  process.exit(2);
}

const worker = new Worker(
  queueName,
  async (job) => {
    if (job.name === "shell") await runTrue();
    return null;
  },
  {
    connection: { host: "127.0.0.1", port: Number(portText), maxRetriesPerRequest: null },
    concurrency: Number(concurrencyText),
  },
);
worker.on("error", (error) => process.stderr.write(`bullmq worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  void worker.close().finally(() => process.exit(0));
});
