import type { GridSnapshot } from "@zkgrid/observer";
import { MetricsRegistry } from "@zkgrid/metrics";

const ACTIVE_STATES = ["queued", "delayed", "assigned", "running"] as const;
const FINAL_STATES = ["succeeded", "failed", "timed-out", "cancelled", "rejected"] as const;

/**
 * The grid-level series of a snapshot, in the Prometheus text format (see docs/operators.md). A fresh
 * registry each time, so workers that left leave no series behind. Without the process's series: a
 * process adds its own through the dashboard's `metrics` option.
 */
export function gridMetrics(s: GridSnapshot): Promise<string> {
  const r = new MetricsRegistry({ processMetrics: false });
  r.gauge({
    name: "zkgrid_observer_connected",
    help: "1 while the dashboard's ZooKeeper session is connected",
  }).set(s.connection === "connected" ? 1 : 0);
  r.gauge({ name: "zkgrid_masters", help: "Masters in the election (leader and standbys)" }).set(
    s.masters.length,
  );
  const leader = r.gauge({
    name: "zkgrid_leader_epoch",
    help: "The leader's epoch (its candidate sequence), labelled with its name; absent without a leader",
    labelNames: ["name"],
  });
  if (s.leader) leader.set({ name: s.leader.name ?? s.leader.node }, s.leader.seq);
  r.gauge({ name: "zkgrid_workers", help: "Live workers" }).set(s.workers.length);
  r.gauge({ name: "zkgrid_capacity", help: "Tasks the live workers can run at once, in total" }).set(
    s.workers.reduce((n, w) => n + w.capacity, 0),
  );
  const capacity = r.gauge({
    name: "zkgrid_worker_capacity",
    help: "Tasks a worker runs at once",
    labelNames: ["worker"],
  });
  const assigned = r.gauge({
    name: "zkgrid_worker_assigned_tasks",
    help: "Tasks a worker holds: in its assignment or its inbox",
    labelNames: ["worker"],
  });
  for (const w of s.workers) {
    capacity.set({ worker: w.name }, w.capacity);
    assigned.set({ worker: w.name }, w.assigned);
  }
  const tasks = r.gauge({
    name: "zkgrid_tasks",
    help: "Tasks waiting (queued), waiting for their time (delayed), handed out (assigned) or seen running",
    labelNames: ["state"],
  });
  for (const state of ACTIVE_STATES) tasks.set({ state }, s.counts[state]);
  const finished = r.counter({
    name: "zkgrid_tasks_finished_total",
    help: "Final statuses seen in R/results or direct tasks' answers since the dashboard started, by state",
    labelNames: ["state"],
  });
  for (const state of FINAL_STATES) finished.inc({ state }, s.counts[state]);
  r.gauge({ name: "zkgrid_queue_depth", help: "Queued tasks not yet assigned" }).set(s.queue.depth);
  r.gauge({ name: "zkgrid_queue_nodes", help: "Nodes under R/queue" }).set(s.queue.nodes);
  const byPriority = r.gauge({
    name: "zkgrid_queue_depth_by_priority",
    help: "Queued tasks per priority",
    labelNames: ["priority"],
  });
  for (const p of s.queue.byPriority) byPriority.set({ priority: p.priority }, p.count);
  r.gauge({
    name: "zkgrid_queue_oldest_age_seconds",
    help: "Age of the oldest queued task (0 when none waits)",
  }).set(
    s.queue.oldestSubmittedAt === undefined ? 0 : Math.max(0, (s.at - s.queue.oldestSubmittedAt) / 1000),
  );
  r.gauge({
    name: "zkgrid_throughput_per_second",
    help: "Tasks finished per second over the last minute",
  }).set(s.throughput.perSecond);
  return r.metrics();
}
