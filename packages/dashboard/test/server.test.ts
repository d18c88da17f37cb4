import { request } from "node:http";
import { MetricsRegistry } from "@zkgrid/metrics";
import { observeGrid } from "@zkgrid/observer";
import type { GridSnapshot, TaskView } from "@zkgrid/observer";
import type {} from "@zkgrid/testing";
import { afterEach, describe, expect, inject, it } from "vitest";
import { encodeGridGate } from "@zkgrid/protocol";
import { type Dashboard, startDashboard } from "../src/index.js";
import { InProcessGrid } from "./grid.js";

let grid: InProcessGrid | undefined;
let dashboard: Dashboard | undefined;

afterEach(async () => {
  await dashboard?.close();
  dashboard = undefined;
  await grid?.close();
  grid = undefined;
});

async function startGrid(): Promise<InProcessGrid> {
  grid = await InProcessGrid.create(inject("zkConnectString"));
  const master = await grid.master("m1");
  await master.leading();
  await grid.worker("w1");
  return grid;
}

/** The snapshots an `/events` stream sends, parsed, until `stop` aborts. */
async function* snapshots(url: string, stop: AbortSignal): AsyncGenerator<GridSnapshot> {
  const response = await fetch(new URL("events", url), { signal: stop });
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = event.split("\n");
        if (lines.includes("event: snapshot")) {
          const data = lines.find((l) => l.startsWith("data: "))!.slice(6);
          yield JSON.parse(data) as GridSnapshot;
        }
        end = buffer.indexOf("\n\n");
      }
    }
  } catch (err) {
    if (!stop.aborted) throw err;
  }
}

function rawRequest(url: string, method: string): Promise<{ status: number; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, allow: res.headers.allow }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("startDashboard", () => {
  it("serves a self-contained page whose only script and style are its own, with a strict CSP", async () => {
    const g = await startGrid();
    dashboard = await startDashboard({ connectString: g.connectString, root: g.root });
    expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(dashboard.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html).not.toMatch(/<link|<script src|<img|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).not.toContain("innerHTML");
  });

  it("streams a new snapshot over /events as a task runs, and answers /api/snapshot and /api/tasks", async () => {
    const g = await startGrid();
    dashboard = await startDashboard({ connectString: g.connectString, root: g.root });
    const stop = new AbortController();
    const seen: GridSnapshot[] = [];
    const watching = (async () => {
      for await (const s of snapshots(dashboard!.url, stop.signal)) {
        seen.push(s);
        if (s.recent.some((t) => t.id === "sse-1")) stop.abort();
      }
    })();
    await g.submit([{ id: "sse-1", cmd: "echo streamed" }]);
    await watching;
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[0]).toMatchObject({ leader: { name: "m1" }, workers: [{ name: "w1" }] });
    const final = seen.at(-1)!.recent.find((t) => t.id === "sse-1");
    expect(final).toMatchObject({ state: "succeeded", worker: "w1", stdoutTail: "streamed\n" });

    const snapshot = (await (await fetch(new URL("api/snapshot", dashboard.url))).json()) as GridSnapshot;
    expect(snapshot.counts.succeeded).toBe(1);
    const tasks = (await (
      await fetch(new URL("api/tasks?state=succeeded&limit=5", dashboard.url))
    ).json()) as TaskView[];
    expect(tasks.map((t) => t.id)).toEqual(["sse-1"]);
    const one = await fetch(new URL("api/tasks/sse-1", dashboard.url));
    expect(await one.json()).toMatchObject({ id: "sse-1", state: "succeeded" });
    expect((await fetch(new URL("api/tasks/nope-1", dashboard.url))).status).toBe(404);
    expect((await fetch(new URL("api/tasks?state=done", dashboard.url))).status).toBe(400);
  });

  it("streams the gate: a pause and a start limit written to R/gate show in the next snapshot and on the page", async () => {
    const g = await startGrid();
    dashboard = await startDashboard({ connectString: g.connectString, root: g.root });
    const first = (await (await fetch(new URL("api/snapshot", dashboard.url))).json()) as GridSnapshot;
    expect(first.gate).toEqual({ v: 1 });
    const stop = new AbortController();
    const watching = (async () => {
      for await (const s of snapshots(dashboard!.url, stop.signal)) {
        if (s.gate.paused && s.gate.limits?.mail) {
          stop.abort();
          return s;
        }
      }
      return undefined;
    })();
    const gate = encodeGridGate({
      v: 1,
      paused: { at: Date.now(), by: "ops" },
      limits: { mail: { starts: 10, perMs: 1000, at: Date.now() } },
    });
    await g.zk.create(g.layout.gate, gate, "persistent");
    const seen = await watching;
    expect(seen?.gate).toMatchObject({
      paused: { by: "ops" },
      limits: { mail: { starts: 10, perMs: 1000 } },
    });
    const page = await (await fetch(dashboard.url)).text();
    expect(page).toContain('id="gate-state"');
    expect(page).toContain("function renderGate(s)");
  });

  it("exposes grid gauges and the process's own series on /metrics", async () => {
    const g = await startGrid();
    const observer = await observeGrid({ connectString: g.connectString, root: g.root });
    const registry = new MetricsRegistry();
    registry.counter({ name: "zkgrid_master_session_expiries_total", help: "Sessions lost" }).inc(2);
    dashboard = await startDashboard({ observer, metrics: () => registry.metrics() });
    const res = await fetch(new URL("metrics", dashboard.url));
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(text).toContain('zkgrid_leader_epoch{name="m1"}');
    expect(text).toContain("\nzkgrid_workers 1\n");
    expect(text).toContain("\nzkgrid_masters 1\n");
    expect(text).toContain('zkgrid_worker_capacity{worker="w1"} 2');
    expect(text).toContain('zkgrid_tasks{state="queued"} 0');
    expect(text).toContain('zkgrid_tasks_finished_total{state="succeeded"} 0');
    expect(text).toContain("\nzkgrid_queue_depth 0\n");
    expect(text).toContain("\nzkgrid_master_session_expiries_total 2\n");
    expect(text).toContain("\n# TYPE nodejs_heap_size_used_bytes gauge\n");
    await dashboard.close();
    dashboard = undefined;
    // The dashboard does not close an observer it was given.
    expect(observer.snapshot().leader?.name).toBe("m1");
    await observer.close();
  });

  it("is read-only without control: POST gets 403, PUT, DELETE and PATCH 405 on every route", async () => {
    const g = await startGrid();
    dashboard = await startDashboard({ connectString: g.connectString, root: g.root });
    for (const path of ["", "events", "api/snapshot", "api/tasks/x", "api/control/pause", "metrics"]) {
      expect(await rawRequest(new URL(path, dashboard.url).href, "POST")).toEqual({
        status: 403,
        allow: undefined,
      });
      for (const method of ["PUT", "DELETE", "PATCH"]) {
        const res = await rawRequest(new URL(path, dashboard.url).href, method);
        expect(res).toEqual({ status: 405, allow: "GET, HEAD" });
      }
    }
    expect((await fetch(new URL("nowhere", dashboard.url))).status).toBe(404);
  });
});
