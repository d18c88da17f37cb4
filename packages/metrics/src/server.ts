import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PROMETHEUS_CONTENT_TYPE } from "./registry.js";

export interface MetricsServerOptions {
  /** The text of `/metrics`, e.g. `() => registry.metrics()`. */
  metrics: () => string | Promise<string>;
  /** Default 0: any free port. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
}

export interface MetricsServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Serves only `GET /metrics` (and `/healthz`): for a process such as a worker that exposes its own
 * series without the dashboard.
 */
export async function serveMetrics(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Cache-Control", "no-store");
    const path = new URL(req.url ?? "/", "http://metrics.invalid").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" });
      return void res.end("read-only: only GET and HEAD\n");
    }
    if (path === "/healthz")
      return void res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" }).end("ok\n");
    if (path !== "/metrics") {
      return void res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("not found\n");
    }
    void Promise.resolve()
      .then(() => options.metrics())
      .then(
        (text) =>
          res
            .writeHead(200, { "Content-Type": PROMETHEUS_CONTENT_TYPE })
            .end(req.method === "HEAD" ? undefined : text),
        (err: unknown) =>
          res
            .writeHead(500, { "Content-Type": "text/plain; charset=utf-8" })
            .end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
  });
  // `once` rejects on an "error" event first (e.g. the port is taken).
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}/metrics`,
    port: address.port,
    server,
    close() {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would otherwise hold the server open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
