import { collectDefaultMetrics, Registry } from "prom-client";

let shared: Registry | undefined;

/**
 * The process's standard series (`process_cpu_seconds_total`, `nodejs_eventloop_lag_seconds`,
 * `nodejs_heap_size_used_bytes`, `nodejs_gc_duration_seconds`, ...), collected by prom-client.
 * One registry per process: its event-loop and GC observers run for the life of the process, so
 * every MetricsRegistry shares them rather than starting its own.
 */
export function processMetrics(): Registry {
  if (shared === undefined) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}
