import { createServer } from "node:http";
import { describe, expect, it } from "vitest";
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE, serveMetrics } from "../src/index.js";

describe("serveMetrics", () => {
  it("serves the registry on GET /metrics, refuses other methods, and stops on close()", async () => {
    const r = new MetricsRegistry();
    const c = r.counter({ name: "zkgrid_worker_tasks_started_total", help: "Task attempts started" });
    const server = await serveMetrics({ metrics: () => r.metrics() });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      c.inc(3);
      const res = await fetch(server.url);
      expect(res.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
      const text = await res.text();
      expect(text).toContain("\nzkgrid_worker_tasks_started_total 3\n");
      expect(text).toContain("\n# TYPE nodejs_eventloop_lag_seconds gauge\n");
      expect(await (await fetch(new URL("/healthz", server.url))).text()).toBe("ok\n");
      expect((await fetch(server.url, { method: "POST" })).status).toBe(405);
      expect((await fetch(new URL("/other", server.url))).status).toBe(404);
    } finally {
      await server.close();
    }
    await expect(fetch(server.url)).rejects.toThrow();
  });

  it("answers 500 with the reason when the metrics cannot be written", async () => {
    const server = await serveMetrics({
      metrics: () => Promise.reject(new Error("registry gone")),
    });
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(500);
      expect(await res.text()).toBe("metrics failed: registry gone\n");
    } finally {
      await server.close();
    }
  });

  it("refuses a port that is taken, with the system's reason", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as { port: number };
    try {
      await expect(serveMetrics({ port, metrics: () => "" })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
