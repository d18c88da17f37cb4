/** The Content-Type of the Prometheus text exposition format this module writes. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values by label name. */
export type Labels = Readonly<Record<string, string | number>>;

/** A metric's definition was refused (bad name, duplicate, unknown label, ...). */
export class MetricError extends Error {
  override readonly name = "MetricError";
}

export interface MetricOptions {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; a counter's name should end in `_total`. */
  name: string;
  help: string;
  /** The label names every sample must give (none by default). */
  labelNames?: readonly string[];
}

export interface GaugeOptions extends MetricOptions {
  /** Called at every scrape, before the samples are written: set the gauge's values here. */
  collect?: (gauge: Gauge) => void;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; `+Inf` is added. Default: DEFAULT_BUCKETS (seconds). */
  buckets?: readonly number[];
}

/** Prometheus client libraries' default buckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Sample {
  labels: Labels;
  value: number;
}

abstract class Metric {
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];

  constructor(options: MetricOptions) {
    if (!METRIC_NAME.test(options.name))
      throw new MetricError(`invalid metric name ${JSON.stringify(options.name)}`);
    const labelNames = options.labelNames ?? [];
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
        throw new MetricError(`${options.name}: invalid label name ${JSON.stringify(label)}`);
      }
    }
    if (new Set(labelNames).size !== labelNames.length)
      throw new MetricError(`${options.name}: a label name twice`);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...labelNames];
  }

  /** The canonical key of a label set; throws unless it names exactly this metric's labels. */
  protected key(labels: Labels | undefined): string {
    const given = Object.keys(labels ?? {});
    if (given.length !== this.labelNames.length || given.some((l) => !this.labelNames.includes(l))) {
      throw new MetricError(
        `${this.name}: expected labels {${this.labelNames.join(", ")}}, got {${given.join(", ")}}`,
      );
    }
    return JSON.stringify(this.labelNames.map((l) => String(labels?.[l])));
  }

  protected header(): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
  }

  abstract render(): string;
}

abstract class ValueMetric extends Metric {
  protected readonly values = new Map<string, Sample>();

  protected add(labels: Labels | undefined, delta: number): void {
    const key = this.key(labels);
    const sample = this.values.get(key);
    if (sample) sample.value += delta;
    else this.values.set(key, { labels: { ...labels }, value: delta });
  }

  /** Forgets every sample (e.g. of workers that left). */
  reset(): void {
    this.values.clear();
  }

  /** The current value for `labels` (0 if never set). */
  get(labels?: Labels): number {
    return this.values.get(this.key(labels))?.value ?? 0;
  }

  render(): string {
    let out = this.header();
    // An unlabelled metric that was never touched still shows 0, so dashboards see it exists.
    if (this.values.size === 0 && this.labelNames.length === 0) out += `${this.name} 0\n`;
    for (const s of this.values.values())
      out += `${this.name}${formatLabels(s.labels)} ${formatValue(s.value)}\n`;
    return out;
  }
}

/** A value that only goes up (and back to 0 when the process restarts). */
export class Counter extends ValueMetric {
  readonly type = "counter";

  /** Adds `value` (default 1, ≥ 0) to the sample with `labels`. */
  inc(labels?: Labels, value?: number): void;
  inc(value?: number): void;
  inc(a?: Labels | number, b?: number): void {
    const [labels, value] = typeof a === "number" || a === undefined ? [undefined, a ?? 1] : [a, b ?? 1];
    if (!(value >= 0)) throw new MetricError(`${this.name}: a counter only goes up (got ${value})`);
    this.add(labels, value);
  }
}

/** A value that goes up and down. */
export class Gauge extends ValueMetric {
  readonly type = "gauge";
  readonly #collect: ((gauge: Gauge) => void) | undefined;

  constructor(options: GaugeOptions) {
    super(options);
    this.#collect = options.collect;
  }

  set(labels: Labels, value: number): void;
  set(value: number): void;
  set(a: Labels | number, b?: number): void {
    const [labels, value] = typeof a === "number" ? [undefined, a] : [a, b ?? 0];
    const key = this.key(labels);
    this.values.set(key, { labels: { ...labels }, value });
  }

  inc(labels?: Labels, value?: number): void;
  inc(value?: number): void;
  inc(a?: Labels | number, b?: number): void {
    if (typeof a === "number" || a === undefined) this.add(undefined, a ?? 1);
    else this.add(a, b ?? 1);
  }

  dec(labels?: Labels, value?: number): void;
  dec(value?: number): void;
  dec(a?: Labels | number, b?: number): void {
    if (typeof a === "number" || a === undefined) this.add(undefined, -(a ?? 1));
    else this.add(a, -(b ?? 1));
  }

  override render(): string {
    this.#collect?.(this);
    return super.render();
  }
}

interface HistogramSeries {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into buckets (cumulative in the output), with their sum and count. */
export class Histogram extends Metric {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(options: HistogramOptions) {
    super(options);
    const buckets = [...(options.buckets ?? DEFAULT_BUCKETS)].filter((b) => b !== Number.POSITIVE_INFINITY);
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new MetricError(`${options.name}: buckets must be finite and ascending`);
    }
    this.buckets = buckets;
  }

  observe(labels: Labels, value: number): void;
  observe(value: number): void;
  observe(a: Labels | number, b?: number): void {
    const [labels, value] = typeof a === "number" ? [undefined, a] : [a, b ?? 0];
    const key = this.key(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    const index = this.buckets.findIndex((bound) => value <= bound);
    if (index >= 0) series.counts[index]! += 1;
    series.sum += value;
    series.count += 1;
  }

  /** Starts a timer; calling the returned function observes the seconds elapsed and returns them. */
  startTimer(labels?: Labels): () => number {
    const start = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (labels) this.observe(labels, seconds);
      else this.observe(seconds);
      return seconds;
    };
  }

  reset(): void {
    this.#series.clear();
  }

  render(): string {
    let out = this.header();
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += s.counts[i]!;
        out += `${this.name}_bucket${formatLabels({ ...s.labels, le: formatValue(bound) })} ${cumulative}\n`;
      });
      out += `${this.name}_bucket${formatLabels({ ...s.labels, le: "+Inf" })} ${s.count}\n`;
      out += `${this.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}\n`;
      out += `${this.name}_count${formatLabels(s.labels)} ${s.count}\n`;
    }
    return out;
  }
}

/**
 * A set of metrics rendered together in the Prometheus text format, for a process's `/metrics`.
 *
 * ```ts
 * const registry = new MetricsRegistry();
 * const finished = registry.counter({ name: "zkgrid_tasks_total", help: "Tasks", labelNames: ["state"] });
 * finished.inc({ state: "succeeded" });
 * const latency = registry.histogram({ name: "zkgrid_assign_seconds", help: "Queue to assignment" });
 * latency.observe(0.02);
 * registry.gauge({ name: "zkgrid_up", help: "1 while connected", collect: (g) => g.set(1) });
 * response.end(registry.metrics());
 * ```
 */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();
  readonly contentType = PROMETHEUS_CONTENT_TYPE;

  counter(options: MetricOptions): Counter {
    return this.#register(new Counter(options));
  }

  gauge(options: GaugeOptions): Gauge {
    return this.#register(new Gauge(options));
  }

  histogram(options: HistogramOptions): Histogram {
    return this.#register(new Histogram(options));
  }

  /** Every metric in the text exposition format, in registration order. */
  metrics(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join("");
  }

  #register<M extends Metric>(metric: M): M {
    if (this.#metrics.has(metric.name)) throw new MetricError(`metric ${metric.name} is registered already`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(String(v))}"`).join(",")}}`;
}

/** A sample value: `+Inf`, `-Inf`, `NaN`, or the number. */
export function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
