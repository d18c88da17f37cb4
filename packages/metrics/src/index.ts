/**
 * Prometheus metrics for zkgrid's processes: a registry per component (a master's, a worker's) on
 * prom-client, the process's standard series (CPU, heap, event-loop lag, GC) with it, and a small
 * HTTP server for `/metrics`.
 *
 * ```ts
 * import { MetricsRegistry, serveMetrics } from "@zkgrid/metrics";
 *
 * const registry = new MetricsRegistry();
 * const started = registry.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" });
 * const server = await serveMetrics({ port: 9464, metrics: () => registry.metrics() });
 * started.inc();
 * console.log(`scrape ${server.url}`);
 * await server.close();
 * ```
 *
 * @module
 */

export { processMetrics } from "./process-metrics.js";
export { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./registry.js";
export { serveMetrics } from "./server.js";

export type { Counter, Gauge, Histogram } from "prom-client";
export type { CounterOptions, GaugeOptions, HistogramOptions, MetricsRegistryOptions } from "./registry.js";
export type { MetricsServer, MetricsServerOptions } from "./server.js";
