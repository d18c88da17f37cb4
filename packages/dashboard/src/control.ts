import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { labelProblem, parseStartLimit, scheduleNameProblem, startLimitProblem } from "@zkgrid/protocol";

/**
 * What the dashboard may change when control is on: a `GridClient` of `@zkgrid/submit` fits as it
 * is. The dashboard only calls these; it never writes ZooKeeper itself.
 */
export interface DashboardControl {
  pause(options?: { label?: string; by?: string }): Promise<unknown>;
  resume(options?: { label?: string }): Promise<unknown>;
  setLimit(
    label: string,
    limit: { starts: number; perMs: number },
    options?: { by?: string },
  ): Promise<unknown>;
  removeLimit(label: string): Promise<unknown>;
  readonly schedules: {
    pause(name: string): Promise<unknown>;
    resume(name: string): Promise<unknown>;
  };
}

/** The header that carries the page's token on every control request. */
export const CONTROL_TOKEN_HEADER = "x-zkgrid-token";

/** The control actions, each `POST /api/control/<action>` with a JSON body. */
export const CONTROL_ACTIONS = [
  "pause",
  "resume",
  "limit",
  "remove-limit",
  "pause-schedule",
  "resume-schedule",
] as const;
export type ControlAction = (typeof CONTROL_ACTIONS)[number];

const MAX_BODY_BYTES = 4096;

/** A control request refused: the HTTP status and the reason shown to the operator. */
export class ControlRefusal extends Error {
  override readonly name = "ControlRefusal";
  constructor(
    readonly status: 400 | 403 | 404 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The guard in front of the control actions: a random token per process, given only to the page
 * this server serves (CSRF), and an Origin that must be this server as the browser reached it by a
 * name that is its own, or one of `origins` (a proxy in front). A Host that is not one of its names
 * may be DNS rebinding: a foreign page would then be same-origin, and read the token.
 */
export class ControlGuard {
  readonly token = randomBytes(32).toString("base64url");
  readonly #origins: ReadonlySet<string>;

  constructor(origins: readonly string[] = []) {
    this.#origins = new Set(origins.map((o) => new URL(o).origin));
  }

  /** Throws ControlRefusal unless `req` carries the token and comes from an allowed origin. */
  check(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined || origin === "null")
      throw new ControlRefusal(403, "refused: a control request must carry the Origin of the dashboard page");
    if (!this.#origins.has(origin)) {
      const host = req.headers.host ?? "";
      if (origin !== `http://${host}`)
        throw new ControlRefusal(403, `refused: Origin ${origin} is not this dashboard (http://${host})`);
      if (!ownName(host))
        throw new ControlRefusal(
          403,
          `refused: Host ${host} is not an address or a name of this machine; allow it with --origin http://${host}`,
        );
    }
    const sent = req.headers[CONTROL_TOKEN_HEADER];
    if (typeof sent !== "string" || !sameToken(sent, this.token))
      throw new ControlRefusal(403, "refused: missing or wrong control token (reload the dashboard page)");
  }
}

function sameToken(sent: string, token: string): boolean {
  const a = Buffer.from(sent);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** An IP literal, localhost, or this machine's host name (with or without its domain). */
function ownName(host: string): boolean {
  let name: string;
  try {
    name = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (name.startsWith("[")) name = name.slice(1, -1);
  if (isIP(name) !== 0 || name === "localhost") return true;
  const own = hostname().toLowerCase();
  return name === own || name === own.split(".")[0];
}

/** The JSON object a control request sends; ControlRefusal for anything else. */
export async function readControlBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type))
    throw new ControlRefusal(415, "a control request's body must be application/json");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ControlRefusal(413, `body: at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  let value: unknown;
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    throw new ControlRefusal(400, "body: not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new ControlRefusal(400, "body: expected a JSON object");
  return value as Record<string, unknown>;
}

/** Checks the body for `action` (400 naming the problem), then calls `control`; resolves with what was done. */
export async function applyControl(
  control: DashboardControl,
  action: ControlAction,
  body: Record<string, unknown>,
  by: string,
): Promise<string> {
  switch (action) {
    case "pause": {
      const label = optionalLabel(body.label);
      await control.pause({ ...(label === undefined ? {} : { label }), by });
      return label === undefined ? "paused the grid" : `paused label ${label}`;
    }
    case "resume": {
      const label = optionalLabel(body.label);
      await control.resume(label === undefined ? {} : { label });
      return label === undefined ? "resumed the grid" : `resumed label ${label}`;
    }
    case "limit": {
      const label = requiredLabel(body.label);
      const limit = startLimit(body.limit);
      await control.setLimit(label, limit, { by });
      return `limited label ${label} to ${String(body.limit).trim()}`;
    }
    case "remove-limit": {
      const label = requiredLabel(body.label);
      await control.removeLimit(label);
      return `removed the start limit of label ${label}`;
    }
    case "pause-schedule":
    case "resume-schedule": {
      const name = body.name;
      const problem = scheduleNameProblem(name);
      if (problem !== undefined)
        throw new ControlRefusal(400, `name: invalid schedule name ${JSON.stringify(name)}: ${problem}`);
      try {
        if (action === "pause-schedule") await control.schedules.pause(name as string);
        else await control.schedules.resume(name as string);
      } catch (err) {
        // Matched by code, not class: the client may come from another copy of @zkgrid/submit.
        if ((err as { code?: unknown }).code === "SCHEDULE_NOT_FOUND")
          throw new ControlRefusal(404, (err as Error).message);
        throw err;
      }
      return `${action === "pause-schedule" ? "paused" : "resumed"} schedule ${name as string}`;
    }
  }
}

function optionalLabel(value: unknown): string | undefined {
  return value === undefined || value === "" ? undefined : requiredLabel(value);
}

function requiredLabel(value: unknown): string {
  const problem = labelProblem(value);
  if (problem !== undefined)
    throw new ControlRefusal(400, `label: invalid label ${JSON.stringify(value ?? null)}: ${problem}`);
  return value as string;
}

function startLimit(value: unknown): { starts: number; perMs: number } {
  const parsed = typeof value === "string" ? parseStartLimit(value) : undefined;
  if (parsed === undefined)
    throw new ControlRefusal(
      400,
      `limit: expected <starts>/<interval> such as 10/1s or 100/2m, got ${JSON.stringify(value ?? null)}`,
    );
  const problem = startLimitProblem(parsed.starts, parsed.perMs);
  if (problem !== undefined) throw new ControlRefusal(400, `limit: ${problem}`);
  return parsed;
}
