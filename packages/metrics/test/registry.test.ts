import { register as globalRegister } from "prom-client";
import { describe, expect, it } from "vitest";
import { MetricsRegistry, processMetrics } from "../src/index.js";

/** The standard series every process shows, one of each kind prom-client collects. */
const PROCESS_SERIES = [
  "process_cpu_seconds_total",
  "process_resident_memory_bytes",
  "nodejs_eventloop_lag_seconds",
  "nodejs_heap_size_used_bytes",
  "nodejs_gc_duration_seconds",
];

describe("MetricsRegistry", () => {
  it("writes counters, gauges and histograms in the Prometheus text format", async () => {
    const r = new MetricsRegistry({ processMetrics: false });
    const tasks = r.counter({ name: "zkgrid_tasks_total", help: "Tasks finished", labelNames: ["state"] });
    tasks.inc({ state: "succeeded" });
    tasks.inc({ state: "succeeded" }, 2);
    tasks.inc({ state: "failed" });
    r.gauge({ name: "zkgrid_up", help: "Connected" }).set(1);
    let queued = 40;
    r.gauge({
      name: "zkgrid_queued",
      help: "Queued",
      collect() {
        this.set(++queued);
      },
    });
    const run = r.histogram({
      name: "zkgrid_run_seconds",
      help: "Run time",
      buckets: [0.1, 1],
      labelNames: ["worker"],
    });
    run.observe({ worker: "w1" }, 0.05);
    run.observe({ worker: "w1" }, 0.5);
    run.observe({ worker: "w1" }, 3);
    expect(await r.metrics()).toBe(
      [
        "# HELP zkgrid_tasks_total Tasks finished",
        "# TYPE zkgrid_tasks_total counter",
        'zkgrid_tasks_total{state="succeeded"} 3',
        'zkgrid_tasks_total{state="failed"} 1',
        "",
        "# HELP zkgrid_up Connected",
        "# TYPE zkgrid_up gauge",
        "zkgrid_up 1",
        "",
        "# HELP zkgrid_queued Queued",
        "# TYPE zkgrid_queued gauge",
        "zkgrid_queued 41",
        "",
        "# HELP zkgrid_run_seconds Run time",
        "# TYPE zkgrid_run_seconds histogram",
        'zkgrid_run_seconds_bucket{le="0.1",worker="w1"} 1',
        'zkgrid_run_seconds_bucket{le="1",worker="w1"} 2',
        'zkgrid_run_seconds_bucket{le="+Inf",worker="w1"} 3',
        'zkgrid_run_seconds_sum{worker="w1"} 3.55',
        'zkgrid_run_seconds_count{worker="w1"} 3',
        "",
      ].join("\n"),
    );
    // collect() runs at every scrape.
    expect(await r.metrics()).toContain("\nzkgrid_queued 42\n");
  });

  it("escapes label values and help text, so a worker name cannot break the format", async () => {
    const r = new MetricsRegistry({ processMetrics: false });
    r.gauge({ name: "x", help: "line one\nback\\slash", labelNames: ["l"] }).set({ l: 'a"b\\c\nd' }, 1);
    expect(await r.metrics()).toBe(
      '# HELP x line one\\nback\\\\slash\n# TYPE x gauge\nx{l="a\\"b\\\\c\\nd"} 1\n',
    );
  });

  it("refuses bad names, a metric twice, unknown labels and a counter going down", () => {
    const r = new MetricsRegistry({ processMetrics: false });
    expect(() => r.counter({ name: "1bad", help: "x" })).toThrow(/Invalid metric name/);
    const c = r.counter({ name: "c_total", help: "x", labelNames: ["a"] });
    expect(() => r.gauge({ name: "c_total", help: "x" })).toThrow(/already been registered/);
    expect(() => c.inc({ b: "2" } as never)).toThrow(/label/i);
    expect(() => c.inc({ a: "1" }, -1)).toThrow(/not possible to decrease/);
    expect(() => r.histogram({ name: "h", help: "x", labelNames: ["le"] })).toThrow(/le/);
  });

  it("adds the process's standard series after its own, unless told not to", async () => {
    const r = new MetricsRegistry();
    r.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" }).inc();
    const text = await r.metrics();
    expect(text.startsWith("# HELP zkgrid_worker_tasks_started_total")).toBe(true);
    for (const name of PROCESS_SERIES) expect(text).toContain(`\n# TYPE ${name} `);
    const bare = await new MetricsRegistry({ processMetrics: false }).metrics();
    for (const name of PROCESS_SERIES) expect(bare).not.toContain(name);
  });

  it("keeps two registries apart and out of prom-client's global registry; the process series are shared", async () => {
    const a = new MetricsRegistry();
    const b = new MetricsRegistry();
    a.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" }).inc(2);
    b.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" }).inc(5);
    expect(await a.metrics()).toContain("\nzkgrid_worker_tasks_started_total 2\n");
    expect(await b.metrics()).toContain("\nzkgrid_worker_tasks_started_total 5\n");
    expect(await globalRegister.metrics()).not.toContain("zkgrid_");
    expect(processMetrics()).toBe(processMetrics());
  });
});
