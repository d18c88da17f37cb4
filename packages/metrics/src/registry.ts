import {
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from "prom-client";
import { processMetrics } from "./process-metrics.js";

/** The Content-Type of the Prometheus text exposition format that `metrics()` writes. */
export const PROMETHEUS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** A counter's definition; the registry that makes it is the only one it joins. */
export type CounterOptions<L extends string = string> = Omit<CounterConfiguration<L>, "registers">;
/** A gauge's definition; `collect()` (with the gauge as `this`) runs at every scrape. */
export type GaugeOptions<L extends string = string> = Omit<GaugeConfiguration<L>, "registers">;
/** A histogram's definition; `buckets` are upper bounds in ascending order (`+Inf` is added). */
export type HistogramOptions<L extends string = string> = Omit<HistogramConfiguration<L>, "registers">;

export interface MetricsRegistryOptions {
  /** Add the process's standard series to `metrics()`. Default true. */
  processMetrics?: boolean;
}

/**
 * One component's series (a master's, a worker's), rendered with the process's standard ones for
 * `/metrics`. Metrics made here join this registry only, never prom-client's global one, so two
 * workers in one process keep apart.
 *
 * ```ts
 * const registry = new MetricsRegistry();
 * const finished = registry.counter({ name: "zkgrid_worker_tasks_finished_total", help: "Tasks", labelNames: ["state"] });
 * finished.inc({ state: "succeeded" });
 * registry.gauge({ name: "zkgrid_worker_running_tasks", help: "Tasks running now", collect() { this.set(2); } });
 * response.end(await registry.metrics());
 * ```
 */
export class MetricsRegistry {
  /** The prom-client registry of this component's own series. */
  readonly own = new Registry();
  readonly contentType = PROMETHEUS_CONTENT_TYPE;
  readonly #withProcess: boolean;

  constructor(options: MetricsRegistryOptions = {}) {
    this.#withProcess = options.processMetrics ?? true;
  }

  counter<L extends string = string>(options: CounterOptions<L>): Counter<L> {
    return new Counter({ ...options, registers: [this.own] });
  }

  gauge<L extends string = string>(options: GaugeOptions<L>): Gauge<L> {
    return new Gauge({ ...options, registers: [this.own] });
  }

  histogram<L extends string = string>(options: HistogramOptions<L>): Histogram<L> {
    return new Histogram({ ...options, registers: [this.own] });
  }

  /** This registry's series, then (unless turned off) the process's, in the text format. */
  async metrics(): Promise<string> {
    const own = await this.own.metrics();
    return this.#withProcess ? own + (await processMetrics().metrics()) : own;
  }
}
