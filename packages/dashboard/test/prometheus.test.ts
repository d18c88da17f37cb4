import { describe, expect, it } from "vitest";
import { MetricError, MetricsRegistry } from "../src/index.js";

describe("MetricsRegistry", () => {
  it("writes counters and gauges in the Prometheus text format, labelled samples by label set", () => {
    const r = new MetricsRegistry();
    const tasks = r.counter({ name: "zkgrid_tasks_total", help: "Tasks finished", labelNames: ["state"] });
    tasks.inc({ state: "succeeded" });
    tasks.inc({ state: "succeeded" }, 2);
    tasks.inc({ state: "failed" });
    const up = r.gauge({ name: "zkgrid_up", help: "Connected" });
    up.set(1);
    const queued = r.gauge({ name: "zkgrid_queued", help: "Queued", collect: (g) => g.set(42) });
    queued.inc(5); // overwritten by collect at scrape time
    expect(r.metrics()).toBe(
      [
        "# HELP zkgrid_tasks_total Tasks finished",
        "# TYPE zkgrid_tasks_total counter",
        'zkgrid_tasks_total{state="succeeded"} 3',
        'zkgrid_tasks_total{state="failed"} 1',
        "# HELP zkgrid_up Connected",
        "# TYPE zkgrid_up gauge",
        "zkgrid_up 1",
        "# HELP zkgrid_queued Queued",
        "# TYPE zkgrid_queued gauge",
        "zkgrid_queued 42",
        "",
      ].join("\n"),
    );
    expect(tasks.get({ state: "succeeded" })).toBe(3);
  });

  it("writes a histogram's cumulative buckets, +Inf, sum and count", () => {
    const r = new MetricsRegistry();
    const h = r.histogram({
      name: "zkgrid_run_seconds",
      help: "Run time",
      buckets: [0.1, 1],
      labelNames: ["worker"],
    });
    h.observe({ worker: "w1" }, 0.05);
    h.observe({ worker: "w1" }, 0.5);
    h.observe({ worker: "w1" }, 3);
    expect(r.metrics()).toBe(
      [
        "# HELP zkgrid_run_seconds Run time",
        "# TYPE zkgrid_run_seconds histogram",
        'zkgrid_run_seconds_bucket{worker="w1",le="0.1"} 1',
        'zkgrid_run_seconds_bucket{worker="w1",le="1"} 2',
        'zkgrid_run_seconds_bucket{worker="w1",le="+Inf"} 3',
        'zkgrid_run_seconds_sum{worker="w1"} 3.55',
        'zkgrid_run_seconds_count{worker="w1"} 3',
        "",
      ].join("\n"),
    );
    const timer = h.startTimer({ worker: "w2" });
    expect(timer()).toBeGreaterThanOrEqual(0);
    expect(r.metrics()).toContain('zkgrid_run_seconds_count{worker="w2"} 1');
  });

  it("escapes label values and help text, so a worker name cannot break the format", () => {
    const r = new MetricsRegistry();
    const g = r.gauge({ name: "x", help: "line one\nback\\slash", labelNames: ["l"] });
    g.set({ l: 'a"b\\c\nd' }, 1);
    expect(r.metrics()).toBe('# HELP x line one\\nback\\\\slash\n# TYPE x gauge\nx{l="a\\"b\\\\c\\nd"} 1\n');
  });

  it("refuses bad names, duplicate metrics, wrong label sets and a counter going down", () => {
    const r = new MetricsRegistry();
    expect(() => r.counter({ name: "1bad", help: "" })).toThrow(MetricError);
    expect(() => r.counter({ name: "ok", help: "", labelNames: ["le"] })).toThrow(MetricError);
    expect(() => r.counter({ name: "ok2", help: "", labelNames: ["__x"] })).toThrow(MetricError);
    const c = r.counter({ name: "c_total", help: "", labelNames: ["a"] });
    expect(() => r.gauge({ name: "c_total", help: "" })).toThrow(/registered already/);
    expect(() => c.inc()).toThrow(/expected labels \{a\}/);
    expect(() => c.inc({ a: "1", b: "2" })).toThrow(MetricError);
    expect(() => c.inc({ a: "1" }, -1)).toThrow(/only goes up/);
    expect(() => r.histogram({ name: "h", help: "", buckets: [1, 0.5] })).toThrow(/ascending/);
  });
});
