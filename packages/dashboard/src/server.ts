import { setMaxListeners } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  type GridObserver,
  type GridSnapshot,
  type ObserveOptions,
  observeGrid,
  type TaskView,
} from "@zkgrid/observer";
import { messageOf } from "@zkgrid/core";
import { PROMETHEUS_CONTENT_TYPE } from "@zkgrid/metrics";
import { TASK_STATES, type TaskState } from "@zkgrid/protocol";
import { gridMetrics } from "./grid-metrics.js";
import { closeServer, listen } from "./listen.js";
import { dashboardPage, PAGE_CSP } from "./page.js";

/** Where the dashboard listens and what else `/metrics` shows. */
export interface DashboardServeOptions {
  /** Default 0: any free port (read `url` or `port`). */
  port?: number;
  /** Default "127.0.0.1": only this machine. Use "0.0.0.0" to serve others (the page is read-only). */
  host?: string;
  /** Process-level series appended to `/metrics`, in the Prometheus text format. */
  metrics?: () => string | Promise<string>;
  /** The page's title (default "zkgrid"). */
  title?: string;
}

/** Serve an observer you own (left open by `close()`), or let the dashboard observe the grid itself. */
export type DashboardOptions = DashboardServeOptions & ({ observer: GridObserver } | ObserveOptions);

export interface Dashboard {
  /** `http://host:port/`. */
  readonly url: string;
  readonly port: number;
  readonly observer: GridObserver;
  readonly server: Server;
  /** Ends every event stream, stops listening, and closes the observer if the dashboard made it. */
  close(): Promise<void>;
}

/** How much of a snapshot the page gets: enough to draw it, small enough to push ~10 times a second. */
const PAGE_RECENT = 100;
const PAGE_ACTIVE = 200;
const PAGE_TAIL_CHARS = 600;
const HEARTBEAT_MS = 15_000;

/**
 * Starts the read-only dashboard: `GET /` the page, `/events` snapshots as server-sent events,
 * `/api/snapshot`, `/api/tasks?state=&worker=&limit=`, `/api/tasks/<id>`, `/metrics` (Prometheus) and
 * `/healthz`. Any other method than GET or HEAD is refused with 405.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const ownsObserver = !("observer" in options);
  const observer = "observer" in options ? options.observer : await observeGrid(options);
  const title = options.title ?? "zkgrid";
  const page = dashboardPage(title);
  const streams = new Set<ServerResponse>();
  const stop = new AbortController();
  // One listener per open page.
  setMaxListeners(0, stop.signal);

  const server = createServer((req, res) => {
    void route(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        send(res, 500, "text/plain; charset=utf-8", `internal error: ${messageOf(err)}\n`);
      else res.destroy();
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    securityHeaders(res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return send(res, 405, "text/plain; charset=utf-8", "read-only: only GET and HEAD\n");
    }
    const url = new URL(req.url ?? "/", "http://dashboard.invalid");
    const path = url.pathname;
    if (path === "/" || path === "/index.html") {
      res.setHeader("Content-Security-Policy", PAGE_CSP);
      return send(res, 200, "text/html; charset=utf-8", page, req);
    }
    if (path === "/events") return streamEvents(req, res);
    if (path === "/api/snapshot") return sendJson(res, observer.snapshot(), req);
    if (path === "/api/tasks") {
      const state = url.searchParams.get("state") ?? undefined;
      if (state !== undefined && !(TASK_STATES as readonly string[]).includes(state)) {
        return sendJson(res, { error: `unknown state ${JSON.stringify(state)}` }, req, 400);
      }
      const limitText = url.searchParams.get("limit");
      const limit = limitText === null ? 100 : Number(limitText);
      if (!Number.isSafeInteger(limit) || limit < 1)
        return sendJson(res, { error: "limit: a positive integer" }, req, 400);
      const worker = url.searchParams.get("worker") ?? undefined;
      return sendJson(
        res,
        observer.tasks({
          limit,
          ...(state === undefined ? {} : { state: state as TaskState }),
          ...(worker === undefined ? {} : { worker }),
        }),
        req,
      );
    }
    if (path.startsWith("/api/tasks/")) {
      const id = decodeURIComponent(path.slice("/api/tasks/".length));
      const task = await observer.task(id);
      return task
        ? sendJson(res, task, req)
        : sendJson(res, { error: `no task ${JSON.stringify(id)}` }, req, 404);
    }
    if (path === "/metrics") {
      let text = await gridMetrics(observer.snapshot());
      if (options.metrics) text += await options.metrics();
      return send(res, 200, PROMETHEUS_CONTENT_TYPE, text, req);
    }
    if (path === "/healthz") return send(res, 200, "text/plain; charset=utf-8", "ok\n", req);
    if (path === "/favicon.ico") {
      res.writeHead(204);
      return void res.end();
    }
    return send(res, 404, "text/plain; charset=utf-8", "not found\n", req);
  }

  async function streamEvents(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    if (req.method === "HEAD") return void res.end();
    streams.add(res);
    const gone = new AbortController();
    const signal = AbortSignal.any([gone.signal, stop.signal]);
    const end = () => gone.abort();
    req.on("close", end);
    res.on("close", end);
    res.write("retry: 2000\n\n");
    const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
    try {
      for await (const snapshot of observer.changes({ signal })) {
        if (!res.writable) break;
        res.write(`event: snapshot\ndata: ${pageJson(snapshot)}\n\n`);
      }
    } finally {
      clearInterval(heartbeat);
      streams.delete(res);
      req.off("close", end);
      if (!res.writableEnded) res.end();
    }
  }

  const { origin, port } = await listen(server, options.port ?? 0, options.host ?? "127.0.0.1");

  let closing: Promise<void> | undefined;
  return {
    url: `${origin}/`,
    port,
    observer,
    server,
    close() {
      closing ??= (async () => {
        stop.abort();
        for (const res of streams) res.end();
        await closeServer(server);
        if (ownsObserver) await observer.close();
      })();
      return closing;
    },
  };
}

/** The same snapshot goes to every open page: encode it once. */
const encoded = new WeakMap<GridSnapshot, string>();

function pageJson(snapshot: GridSnapshot): string {
  let json = encoded.get(snapshot);
  if (json === undefined) {
    json = JSON.stringify({
      ...snapshot,
      active: snapshot.active.slice(0, PAGE_ACTIVE).map(forPage),
      recent: snapshot.recent.slice(0, PAGE_RECENT).map(forPage),
    });
    encoded.set(snapshot, json);
  }
  return json;
}

function forPage(task: TaskView): TaskView {
  const { output: _output, meta: _meta, ...rest } = task;
  if (rest.stdoutTail) rest.stdoutTail = rest.stdoutTail.slice(-PAGE_TAIL_CHARS);
  if (rest.stderrTail) rest.stderrTail = rest.stderrTail.slice(-PAGE_TAIL_CHARS);
  return rest;
}

function securityHeaders(res: ServerResponse): void {
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Cache-Control", "no-store");
}

function send(res: ServerResponse, status: number, type: string, body: string, req?: IncomingMessage): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(req?.method === "HEAD" ? undefined : body);
}

function sendJson(res: ServerResponse, value: unknown, req: IncomingMessage, status = 200): void {
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(value)}\n`, req);
}
