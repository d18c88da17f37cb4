import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, type Proc, sessionOf, type TestGrid } from "./grid.js";

const start = gridPerTest();

/** The `url` of the first log line (JSON, as the bins log when piped) whose message is `msg`. */
async function loggedUrl(proc: Proc, msg: string): Promise<string> {
  let url: string | undefined;
  await waitFor(
    () => {
      for (const line of proc.output().split("\n")) {
        if (!line.startsWith("{")) continue;
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === msg && entry.url) url = entry.url;
      }
      return url !== undefined;
    },
    { timeoutMs: 30_000, message: `a "${msg}" log line` },
  );
  return url as string;
}

interface Scrape {
  text: string;
  /** Each family's TYPE, by name. */
  types: Map<string, string>;
  /** Each sample's value, by its name and labels as written. */
  samples: Map<string, number>;
}

/** GETs `/metrics` and parses the text format; throws on a line that is not a sample or a comment, or a family twice. */
async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      if (types.has(type[1]!)) throw new Error(`${type[1]} twice in ${url}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a sample: ${JSON.stringify(line)}`);
    samples.set(sample[1]!, Number(sample[2]));
  }
  return { text, types, samples };
}

/**
 * Runs one lone task, which goes straight to a worker's inbox (a direct task: no `running` report,
 * no assignment by the leader), and a batch of two, which goes through the queue and the leader.
 */
async function runDirectAndQueuedTasks(g: TestGrid): Promise<void> {
  const lone = await g.submit(["--cmd", "echo direct", "--wait", "--json"]);
  expect(lone.code).toBe(0);
  const batch = await g.submit([], '{"cmd":"echo queued 1"}\n{"cmd":"echo queued 2"}\n');
  expect(batch.code).toBe(0);
  const ids = batch.stdout.split("\n").filter((l) => l !== "");
  expect(ids).toHaveLength(2);
  const results = await g.waitForResults(ids);
  for (const id of ids) expect(results.get(id)?.state).toBe("succeeded");
}

/** A few of the standard series prom-client collects for every process, with sane values. */
function expectProcessSeries(s: Scrape): void {
  expect(s.types.get("process_cpu_seconds_total")).toBe("counter");
  expect(s.types.get("nodejs_eventloop_lag_seconds")).toBe("gauge");
  expect(s.types.get("nodejs_heap_size_used_bytes")).toBe("gauge");
  expect(s.types.get("nodejs_gc_duration_seconds")).toBe("histogram");
  expect(s.samples.get("process_cpu_seconds_total")).toBeGreaterThan(0);
  expect(s.samples.get("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
  expect(s.samples.get("nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
}

describe("/metrics of a real master and a real worker", () => {
  it("a worker started with --metrics-port serves its own series and its process's, and counts direct and queued tasks", async () => {
    const g = start();
    g.master("m1");
    const worker = g.worker("w1", ["--metrics-port", "0"]);
    const url = await loggedUrl(worker, "metrics listening");
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    await runDirectAndQueuedTasks(g);
    let s = await scrape(url);
    await waitFor(async () => {
      s = await scrape(url);
      return s.samples.get('zkgrid_worker_tasks_finished_total{state="succeeded"}') === 3;
    });
    expect(s.types.get("zkgrid_worker_tasks_started_total")).toBe("counter");
    expect(s.samples.get("zkgrid_worker_tasks_started_total")).toBe(3);
    expect(s.types.get("zkgrid_worker_task_run_seconds")).toBe("histogram");
    expect(s.samples.get('zkgrid_worker_task_run_seconds_count{state="succeeded"}')).toBe(3);
    expect(s.samples.get("zkgrid_worker_running_tasks")).toBe(0);
    expect(s.samples.get("zkgrid_worker_zookeeper_connected")).toBe(1);
    expect(s.types.get("zkgrid_worker_sessions_ended_total")).toBe("counter");
    // The lone task's answer went to zkgrid-submit on the worker's answer stream too.
    expect(s.types.get("zkgrid_worker_answers_streamed_total")).toBe("counter");
    expect(s.samples.get("zkgrid_worker_answers_streamed_total")).toBe(1);
    expect(s.types.get("zkgrid_worker_answer_stream_connections")).toBe("gauge");
    expectProcessSeries(s);
    // A worker serves only its own series: the grid's are the dashboard's.
    expect(s.types.has("zkgrid_queue_depth")).toBe(false);
  });

  it("a master started with --http-port serves the grid's series, its own and its process's, once each", async () => {
    const g = start();
    const master = g.master("m1", ["--http-port", "0"]);
    g.worker("w1");
    const dashboard = await loggedUrl(master, "dashboard listening");
    const url = new URL("metrics", dashboard).href;
    // Registered first: a lone task sent while no worker is known goes through the queue instead.
    await sessionOf(g, "w1");

    await runDirectAndQueuedTasks(g);
    let s = await scrape(url);
    await waitFor(async () => {
      s = await scrape(url);
      return (
        s.samples.get('zkgrid_master_results_total{state="succeeded"}') === 3 &&
        s.samples.get("zkgrid_workers") === 1
      );
    });
    // The grid's, from the dashboard's observer.
    expect(s.samples.get("zkgrid_masters")).toBe(1);
    expect(s.samples.get('zkgrid_leader_epoch{name="m1"}')).toBeGreaterThanOrEqual(0);
    expect(s.samples.get('zkgrid_worker_capacity{worker="w1"}')).toBeGreaterThan(0);
    expect(s.samples.get("zkgrid_queue_depth")).toBe(0);
    // The master's own.
    expect(s.samples.get('zkgrid_master_role{role="leader"}')).toBe(1);
    expect(s.samples.get('zkgrid_master_role{role="standby"}')).toBe(0);
    expect(s.samples.get("zkgrid_master_zookeeper_connected")).toBe(1);
    expect(s.samples.get("zkgrid_master_leader_terms_total")).toBe(1);
    expect(s.types.get("zkgrid_master_assignment_latency_seconds")).toBe("histogram");
    // The leader assigned the queued two; the direct one went to the worker's inbox.
    expect(s.samples.get("zkgrid_master_assignment_latency_seconds_count")).toBe(2);
    expect(s.samples.get('zkgrid_master_task_run_seconds_count{state="succeeded"}')).toBe(3);
    expect(s.samples.get("zkgrid_master_session_expiries_total")).toBe(0);
    // The process's, once (scrape() throws on a family written twice).
    expectProcessSeries(s);
  });
});
