import { MetricsRegistry } from "@zkgrid/metrics";
import { isFinalState } from "@zkgrid/protocol";
import type { Worker } from "./worker.js";

/** A worker's own series for `/metrics`, fed by its public events, and its process's standard ones. */
export function workerMetrics(worker: Worker): {
  registry: MetricsRegistry;
  text(): Promise<string>;
  stop(): void;
} {
  const r = new MetricsRegistry();
  r.gauge({
    name: "zkgrid_worker_running_tasks",
    help: "Tasks running now",
    collect() {
      this.set(worker.running);
    },
  });
  r.gauge({
    name: "zkgrid_worker_zookeeper_connected",
    help: "1 while this worker's ZooKeeper connection is up",
    collect() {
      this.set(worker.client.state === "connected" ? 1 : 0);
    },
  });
  r.gauge({
    name: "zkgrid_worker_answer_stream_connections",
    help: "Submitters' connections to its answer stream open now",
    collect() {
      this.set(worker.answerStream?.connections ?? 0);
    },
  });
  r.counter({
    name: "zkgrid_worker_answers_streamed_total",
    help: "Direct tasks' answers sent on its answer stream (one per connection sent to)",
    collect() {
      // The stream counts them; a scrape takes its count.
      this.reset();
      this.inc(worker.answerStream?.answersSent ?? 0);
    },
  });
  const sessionsEnded = r.counter({
    name: "zkgrid_worker_sessions_ended_total",
    help: "Sessions whose tasks were dropped: expired (ZooKeeper), fenced (by the leader) or closed",
    labelNames: ["reason"],
  });
  const started = r.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" });
  const finished = r.counter({
    name: "zkgrid_worker_tasks_finished_total",
    help: "Task attempts finished, by state",
    labelNames: ["state"],
  });
  const runTime = r.histogram({
    name: "zkgrid_worker_task_run_seconds",
    help: "Run time of finished task attempts, by state",
    labelNames: ["state"],
    buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
  });
  // Attempts that reported `running`, by session. A direct task reports no `running` (its answer
  // carries startedAt), so its start is counted with its answer.
  const reportedRunning = new Map<string, Set<string>>();
  const stop = worker.on((event) => {
    if (event.type === "session-ended") {
      sessionsEnded.inc({ reason: event.reason });
      reportedRunning.delete(event.sessionId);
    }
    if (event.type !== "update") return;
    const u = event.update;
    const attempt = `${u.id}#${u.attempt}`;
    const running = reportedRunning.get(event.sessionId) ?? new Set<string>();
    if (u.state === "running") {
      started.inc();
      reportedRunning.set(event.sessionId, running.add(attempt));
      return;
    }
    if (!running.delete(attempt) && u.startedAt !== undefined) started.inc();
    if (isFinalState(u.state)) {
      finished.inc({ state: u.state });
      if (u.startedAt !== undefined && u.finishedAt !== undefined) {
        runTime.observe({ state: u.state }, Math.max(0, u.finishedAt - u.startedAt) / 1000);
      }
    }
  });
  return { registry: r, text: () => r.metrics(), stop };
}
