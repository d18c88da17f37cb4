/**
 * A web dashboard for a zkgrid: one self-contained page fed by server-sent events, a JSON API and
 * Prometheus `/metrics` (the grid's series, plus any a process adds; the registry and the process's
 * standard series are `@zkgrid/metrics`). Read-only unless given `control` (a `GridClient`): then
 * the page can pause and resume the grid, its labels and schedules, and set start limits.
 *
 * ```ts
 * import { startDashboard } from "@zkgrid/dashboard";
 * import { MetricsRegistry } from "@zkgrid/metrics";
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

export { CONTROL_ACTIONS, CONTROL_TOKEN_HEADER } from "./control.js";
export { gridMetrics } from "./grid-metrics.js";
export { dashboardPage, PAGE_CSP } from "./page.js";
export { startDashboard } from "./server.js";

export type { ControlAction, DashboardControl } from "./control.js";
export type { FiringRow, ScheduleRow } from "./schedule-rows.js";
export type { Dashboard, DashboardOptions, DashboardServeOptions } from "./server.js";
