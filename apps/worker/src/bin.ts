#!/usr/bin/env node
import { messageOf } from "@zkgrid/core";
import { createLogger } from "@zkgrid/log";
import { InvalidNameError } from "@zkgrid/protocol";
import { parseWorkerArgs, USAGE, UsageError } from "./cli.js";
import { WorkerOptionError, WorkerStoppedError } from "./errors.js";
import { type HandlerMap, loadHandlers } from "./handlers.js";
import { startWorker, type Worker } from "./worker.js";

async function main(argv: string[]): Promise<number> {
  let command: ReturnType<typeof parseWorkerArgs>;
  try {
    command = parseWorkerArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`zkgrid-worker: ${error.message}\nTry "zkgrid-worker --help".\n`);
    return 2;
  }
  if (command.kind === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command.kind === "version") {
    process.stdout.write(`${command.version}\n`);
    return 0;
  }
  const logger = createLogger({ name: "worker", level: command.logLevel });
  const interrupted = new AbortController();
  let worker: Worker | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    logger("info", `${signal} received${signals > 1 ? ": killing running tasks now" : ""}`, {
      worker: command.name,
    });
    if (worker === undefined) interrupted.abort();
    else void worker.stop({ graceMs: signals > 1 ? 0 : command.graceMs });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let handlers: HandlerMap | undefined;
  try {
    handlers = command.handlers === undefined ? undefined : await loadHandlers(command.handlers);
  } catch (error) {
    const message = messageOf(error);
    // A WorkerOptionError already starts with the option's name.
    process.stderr.write(
      `zkgrid-worker: --${error instanceof WorkerOptionError ? "" : "handlers: "}${message}\n`,
    );
    return 2;
  }
  try {
    worker = await startWorker({
      name: command.name,
      connectString: command.connectString,
      root: command.root,
      sessionTimeoutMs: command.sessionTimeoutMs,
      labels: command.labels,
      graceMs: command.graceMs,
      ...(command.cutoffStopMs === undefined ? {} : { cutoffStopMs: command.cutoffStopMs }),
      logger,
      signal: interrupted.signal,
      ...(command.auth === undefined ? {} : { auth: command.auth }),
      ...(command.acl === undefined ? {} : { acl: command.acl }),
      ...(command.perl === undefined ? {} : { perl: command.perl }),
      ...(command.answerAddress === undefined ? {} : { answerAddress: command.answerAddress }),
      ...(command.concurrency === undefined ? {} : { concurrency: command.concurrency }),
      ...(command.prefetch === undefined ? {} : { prefetch: command.prefetch }),
      ...(command.cwd === undefined ? {} : { cwd: command.cwd }),
      ...(handlers === undefined ? {} : { handlers }),
    });
  } catch (error) {
    if (error instanceof WorkerOptionError || error instanceof InvalidNameError) {
      process.stderr.write(`zkgrid-worker: ${error.message}\n`);
      return 2;
    }
    // Anything else has been logged by the worker as it failed.
    return error instanceof WorkerStoppedError ? 0 : 1;
  }
  if (command.metricsPort !== undefined) {
    // Loaded only when asked for: prom-client takes a while to load.
    const [{ serveMetrics }, { workerMetrics }] = await Promise.all([
      import("@zkgrid/metrics"),
      import("./metrics.js"),
    ]);
    const metrics = workerMetrics(worker);
    const server = await serveMetrics({
      port: command.metricsPort,
      host: command.metricsHost,
      metrics: () => metrics.text(),
    });
    logger("info", "metrics listening", { worker: command.name, url: server.url });
    await worker.closed();
    metrics.stop();
    await server.close();
  }
  await worker.closed();
  return worker.state === "FAILED" ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `zkgrid-worker: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
