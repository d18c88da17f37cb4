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
import {
  applyControl,
  CONTROL_ACTIONS,
  type ControlAction,
  ControlGuard,
  ControlRefusal,
  type DashboardControl,
  readControlBody,
} from "./control.js";
import { gridMetrics } from "./grid-metrics.js";
import { closeServer, listen } from "./listen.js";
import { dashboardPage, PAGE_CSP } from "./page.js";
import { ScheduleRows } from "./schedule-rows.js";

/** Where the dashboard listens and what else `/metrics` shows. */
export interface DashboardServeOptions {
  /** Default 0: any free port (read `url` or `port`). */
  port?: number;
  /**
   * Default "127.0.0.1": only this machine. Use "0.0.0.0" to serve others: with `control`, anyone who
   * reaches the port can pause the grid (bind to loopback, or put it behind an authenticating proxy).
   */
  host?: string;
  /**
   * Turns control on (default off: read-only): the page gets Pause/Resume for the grid, its labels and
   * its schedules, and start limits. A `GridClient` of `@zkgrid/submit` fits; the dashboard does not
   * close it.
   */
  control?: DashboardControl;
  /**
   * With `control`: origins besides the dashboard's own that may send control requests, e.g. the
   * public `https://grid.example.com` of a proxy in front of it.
   */
  controlOrigins?: readonly string[];
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

/** At most this many delayed tasks go to the page (the tile counts them all). */
const PAGE_DELAYED = 50;

/**
 * Starts the dashboard: `GET /` the page, `/events` snapshots as server-sent events,
 * `/api/snapshot`, `/api/tasks?state=&worker=&limit=`, `/api/tasks/<id>`, `/api/schedules`,
 * `/metrics` (Prometheus) and `/healthz`. With `control`, `POST /api/control/<action>` from the page
 * (token and Origin checked); without it every POST gets 403. Any other method is refused with 405.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const ownsObserver = !("observer" in options);
  const observer = "observer" in options ? options.observer : await observeGrid(options);
  const title = options.title ?? "zkgrid";
  const control = options.control;
  const guard = control ? new ControlGuard(options.controlOrigins) : undefined;
  const page = dashboardPage(title, guard?.token);
  const schedules = new ScheduleRows(observer);
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
    if (req.method === "POST") return controlRequest(req, res);
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
    if (path === "/api/schedules") return sendJson(res, await schedules.read(), req);
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

  async function controlRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://dashboard.invalid").pathname;
    const action = path.startsWith("/api/control/") ? path.slice("/api/control/".length) : undefined;
    try {
      if (!control || !guard)
        throw new ControlRefusal(
          403,
          "read-only: this dashboard was started without control (zkgrid dashboard --control)",
        );
      if (action === undefined || !(CONTROL_ACTIONS as readonly string[]).includes(action)) {
        res.setHeader("Allow", "GET, HEAD");
        return send(res, 405, "text/plain; charset=utf-8", "only GET and HEAD here\n");
      }
      guard.check(req);
      const body = await readControlBody(req);
      const by = `dashboard (${req.socket.remoteAddress ?? "unknown"})`;
      const done = await applyControl(control, action as ControlAction, body, by);
      schedules.stale();
      return sendJson(res, { ok: true, done }, req);
    } catch (err) {
      if (err instanceof ControlRefusal) return sendJson(res, { error: err.message }, req, err.status);
      // The client's own checks (InvalidGateError, InvalidScheduleError) name the field at fault.
      const code = (err as { code?: unknown }).code;
      if (code === "INVALID_GATE" || code === "INVALID_SCHEDULE")
        return sendJson(res, { error: messageOf(err) }, req, 400);
      throw err;
    }
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
        res.write(`event: snapshot\ndata: ${pageJson(snapshot, observer)}\n\n`);
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

function pageJson(snapshot: GridSnapshot, observer: GridObserver): string {
  let json = encoded.get(snapshot);
  if (json === undefined) {
    json = JSON.stringify({
      ...snapshot,
      // The observer's queue, not this snapshot's: at most one change newer, and only shown as a list.
      delayed: observer.tasks({ state: "delayed", limit: PAGE_DELAYED }).map(forPage),
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
