/**
 * A read-only web dashboard for a zkgrid (one self-contained page fed by server-sent events, a JSON
 * API and Prometheus `/metrics`), and a small Prometheus registry for the grid's own processes.
 *
 * ```ts
 * import { MetricsRegistry, startDashboard } from "@zkgrid/dashboard";
 *
 * const registry = new MetricsRegistry();
 * const sessions = registry.counter({ name: "zkgrid_master_session_expiries_total", help: "Sessions lost" });
 * const dashboard = await startDashboard({
 *   connectString: "127.0.0.1:2181",
 *   root: "/zkgrid",
 *   port: 8080,
 *   metrics: () => registry.metrics(),
 * });
 * console.log(`open ${dashboard.url}`);
 * sessions.inc();
 * await dashboard.close();
 * ```
 *
 * @module
 */

export { gridMetrics } from "./grid-metrics.js";
export { dashboardPage, PAGE_CSP } from "./page.js";
export {
  Counter,
  DEFAULT_BUCKETS,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  MetricError,
  MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./prometheus.js";
export { startDashboard } from "./server.js";

export type { GaugeOptions, HistogramOptions, Labels, MetricOptions } from "./prometheus.js";
export type { Dashboard, DashboardOptions, DashboardServeOptions } from "./server.js";
