import type { ZkClient } from "@zkgrid/core";
import { MetricsRegistry } from "@zkgrid/metrics";
import type { TaskStatus } from "@zkgrid/protocol";

const ROLES = ["starting", "standby", "leader", "stopped"] as const;

/**
 * This master's own series and its process's standard ones for `/metrics`, served next to the
 * dashboard's grid-level ones.
 */
export class MasterMetrics {
  readonly registry = new MetricsRegistry();
  readonly #expiries;
  readonly #connectionLosses;
  readonly #terms;
  readonly #assignLatency;
  readonly #runTime;
  readonly #results;

  constructor(client: ZkClient, role: () => string) {
    const r = this.registry;
    r.gauge({
      name: "zkgrid_master_role",
      help: "1 for this master's current role",
      labelNames: ["role"],
      collect() {
        for (const each of ROLES) this.set({ role: each }, role() === each ? 1 : 0);
      },
    });
    r.gauge({
      name: "zkgrid_master_zookeeper_connected",
      help: "1 while this master's ZooKeeper connection is up",
      collect() {
        this.set(client.state === "connected" ? 1 : 0);
      },
    });
    this.#expiries = r.counter({
      name: "zkgrid_master_session_expiries_total",
      help: "ZooKeeper sessions of this master that expired",
    });
    this.#connectionLosses = r.counter({
      name: "zkgrid_master_connection_losses_total",
      help: "Times this master lost its ZooKeeper connection (the session may have survived)",
    });
    this.#terms = r.counter({
      name: "zkgrid_master_leader_terms_total",
      help: "Leader terms this master started",
    });
    this.#assignLatency = r.histogram({
      name: "zkgrid_master_assignment_latency_seconds",
      help: "From a task's submission to its assignment to a worker (every attempt)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    });
    this.#runTime = r.histogram({
      name: "zkgrid_master_task_run_seconds",
      help: "Run time of finished tasks (startedAt to finishedAt), by final state",
      labelNames: ["state"],
      buckets: [0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
    });
    this.#results = r.counter({
      name: "zkgrid_master_results_total",
      help: "Final statuses this master wrote to R/results while leading, by state",
      labelNames: ["state"],
    });
    client.on("expired", () => this.#expiries.inc());
    client.on("suspended", () => this.#connectionLosses.inc());
  }

  leaderTerm(): void {
    this.#terms.inc();
  }

  taskAssigned(submittedAt: number, assignedAt: number): void {
    this.#assignLatency.observe(Math.max(0, assignedAt - submittedAt) / 1000);
  }

  resultWritten(status: TaskStatus): void {
    this.#results.inc({ state: status.state });
    if (status.startedAt !== undefined && status.finishedAt !== undefined) {
      this.#runTime.observe(
        { state: status.state },
        Math.max(0, status.finishedAt - status.startedAt) / 1000,
      );
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
