import { mkdir } from "node:fs/promises";
import { request } from "node:http";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { type Dashboard, startDashboard } from "@zkgrid/dashboard";
import { connectGrid, type GridClient } from "@zkgrid/submit";
import { type CliIo, runCli } from "../../apps/submit/src/cli.js";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { ensureChromium, launchChromium } from "../../packages/dashboard/test/chromium.js";
import { InProcessGrid } from "../../packages/dashboard/test/grid.js";

const ARTIFACTS = resolve(import.meta.dirname, "artifacts");
const IN_CI = process.env.CI === "true";

let unavailable: string | undefined;
let grid: InProcessGrid | undefined;
let client: GridClient | undefined;
let dashboard: Dashboard | undefined;
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
/** Ends a `zkgrid dashboard` started in this process, and resolves with its exit status. */
let stopCli: (() => Promise<number>) | undefined;

beforeAll(async () => {
  unavailable = await ensureChromium();
  if (unavailable && !IN_CI) console.warn(`skipping the browser tests: ${unavailable}`);
}, 900_000);

afterEach(async () => {
  await browser?.close();
  browser = undefined;
  if (stopCli) expect(await stopCli()).toBe(0);
  stopCli = undefined;
  await dashboard?.close();
  dashboard = undefined;
  await client?.close();
  client = undefined;
  await grid?.close();
  grid = undefined;
});

/** CI must open the dashboard: there, a browser it cannot get is a failure, never a skip. */
function needsBrowser(ctx: { skip(): void }): boolean {
  if (unavailable && IN_CI) throw new Error(`CI has no browser for the dashboard test: ${unavailable}`);
  if (unavailable) ctx.skip();
  return unavailable === undefined;
}

async function startGrid(): Promise<InProcessGrid> {
  grid = await InProcessGrid.create(inject("zkConnectString"));
  const master = await grid.master("m1");
  await master.leading();
  await grid.worker("w1", 2);
  client = await connectGrid({ connectString: grid.connectString, root: grid.root });
  return grid;
}

function sink(): PassThrough & { text(): string } {
  const stream = new PassThrough() as PassThrough & { text(): string };
  let text = "";
  stream.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  stream.text = () => text;
  return stream;
}

function cliIo(
  g: InProcessGrid,
  signal?: AbortSignal,
): CliIo & { stdout: ReturnType<typeof sink>; stderr: ReturnType<typeof sink> } {
  const stdin = new PassThrough();
  stdin.end();
  return {
    stdin,
    stdout: sink(),
    stderr: sink(),
    env: { ZKGRID_CONNECT: g.connectString, ZKGRID_ROOT: g.root },
    ...(signal ? { signal } : {}),
  };
}

/** Runs `zkgrid dashboard <args>` in this process until the test ends; resolves with its URL. */
async function zkgridDashboard(g: InProcessGrid, args: string[]): Promise<string> {
  const stop = new AbortController();
  const io = cliIo(g, stop.signal);
  const exit = runCli(["dashboard", "--port", "0", ...args], io);
  stopCli = () => {
    stop.abort();
    return exit;
  };
  for (;;) {
    const match = /dashboard for \S+ at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(io.stdout.text());
    if (match) return match[1]!;
    const done = await Promise.race([exit, new Promise((r) => setTimeout(r, 50, "waiting"))]);
    if (done !== "waiting") throw new Error(`zkgrid dashboard exited ${done}: ${io.stderr.text()}`);
  }
}

async function zkgridStatus(g: InProcessGrid): Promise<string> {
  const io = cliIo(g);
  expect(await runCli(["status"], io)).toBe(0);
  return io.stdout.text();
}

/** The page's control token, as the page itself carries it. */
async function pageToken(url: string): Promise<string> {
  const html = await (await fetch(url)).text();
  const match = /<meta name="zkgrid-control-token" content="([A-Za-z0-9_-]+)">/.exec(html);
  if (!match) throw new Error("the page carries no control token");
  return match[1]!;
}

function post(
  url: string,
  action: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<Response> {
  return fetch(new URL(`api/control/${action}`, url), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** A POST with its own Host header (which fetch does not let a caller set). */
function rawPost(
  url: URL,
  host: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: { ...headers, host, "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end("{}");
  });
}

describe("the dashboard's Schedules panel and delayed tasks", () => {
  it("shows a schedule with its timing, policies and firings in their states, and a delayed task", async (ctx) => {
    if (!needsBrowser(ctx)) return;
    const g = await startGrid();
    await client!.schedules.add("tick", { every: "1s", task: { cmd: "true" }, overlap: "skip" });
    await client!.schedules.add("nightly", {
      cron: "0 3 * * *",
      tz: "Europe/Paris",
      task: { cmd: "true" },
      catchUp: "all",
      catchUpMax: 3,
      paused: true,
    });
    await g.submit([{ id: "later-1", cmd: "true", runAt: Date.now() + 600_000 }]);
    dashboard = await startDashboard({ connectString: g.connectString, root: g.root });
    browser = await launchChromium();
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(dashboard.url);

    const tick = 'tr[data-schedule="tick"]';
    await page.waitForSelector(`${tick} .firing[data-state="succeeded"]`, { timeout: 30_000 });
    const cells = await page.$$eval(`${tick} td`, (tds) => tds.map((td) => td.textContent));
    expect(cells.slice(0, 3)).toEqual(["tick", "every 1.0s", "active"]);
    expect(cells[3]).toMatch(/\((in \d|due now)/);
    expect(cells[4]).toMatch(/ago\)$/);
    expect(cells[5]).toBe("catch-up latest, overlap skip");
    expect(await page.getAttribute(tick, "data-paused")).toBe("false");

    const nightly = 'tr[data-schedule="nightly"]';
    const nightlyCells = await page.$$eval(`${nightly} td`, (tds) => tds.map((td) => td.textContent));
    expect(nightlyCells.slice(0, 4)).toEqual(["nightly", "0 3 * * * (Europe/Paris)", "paused", ""]);
    expect(nightlyCells[5]).toBe("catch-up all (max 3), overlap allow");
    expect(nightlyCells[6]).toBe("none yet");

    // Every firing the page shows is a task the leader made for that slot, in a state the grid knows.
    const api = (await (await fetch(new URL("api/schedules", dashboard.url))).json()) as {
      name: string;
      firings: { slot: number; task?: string; state?: string }[];
    }[];
    const fired = api.find((s) => s.name === "tick")!.firings.filter((f) => f.task);
    expect(fired.length).toBeGreaterThan(0);
    for (const f of fired) expect(f.task).toBe(`tick.${f.slot}`);

    await page.waitForSelector('tr[data-task-id="later-1"][data-state="delayed"]');
    expect(await page.textContent('tr[data-task-id="later-1"] td:nth-child(6)')).toMatch(/^due in (9|10)m/);
    expect(await page.textContent('[data-count="delayed"] .n')).toBe("1");

    // Read-only: no control on the page, and no token in it.
    expect(await page.$$("button")).toHaveLength(0);
    expect(await page.$$('meta[name="zkgrid-control-token"]')).toHaveLength(0);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-schedules.png"), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 120_000);
});

describe("zkgrid dashboard --control", () => {
  it("pauses and resumes a label, sets a start limit and pauses a schedule from the page; status and the library see it", async (ctx) => {
    if (!needsBrowser(ctx)) return;
    const g = await startGrid();
    await client!.schedules.add("tick", { every: "1s", task: { cmd: "true" } });
    const url = await zkgridDashboard(g, ["--control"]);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(url);
    await page.waitForSelector("#stream:text-is('live')");

    await page.fill("#control-label", "mail");
    await page.click("#pause-label");
    await page.waitForSelector('#gate tr[data-label="mail"]');
    // The gate may come over the stream before the request's own answer: wait for both.
    await page.waitForSelector("#control-message.ok:text-is('paused label mail')");
    expect((await client!.gate()).pausedLabels?.mail?.by).toMatch(/^dashboard \(/);
    expect(await zkgridStatus(g)).toMatch(/\n {2}label mail paused /);

    await page.click('#gate tr[data-label="mail"] button[data-action="resume"]');
    await page.waitForSelector("#gate td.empty");
    expect((await client!.gate()).pausedLabels).toBeUndefined();
    expect(await zkgridStatus(g)).toContain("GATE  open: nothing paused, no start limit");

    // The whole grid, from the toggle.
    await page.click('#control-grid button[data-action="pause"]');
    await page.waitForSelector("#gate-state:text-is('grid paused')");
    expect((await client!.gate()).paused).toBeDefined();
    await page.click('#control-grid button[data-action="resume"]');
    await page.waitForSelector("#gate-state:text-is('grid open')");
    expect((await client!.gate()).paused).toBeUndefined();

    // A bad limit is refused with its reason, and nothing is written.
    await page.fill("#control-label", "mail");
    await page.fill("#control-limit", "ten per second");
    await page.click("#set-limit");
    await page.waitForSelector("#control-message.bad");
    expect(await page.textContent("#control-message")).toMatch(/^limit: expected <starts>\/<interval>/);
    expect((await client!.gate()).limits).toBeUndefined();
    await page.fill("#control-limit", "5/2s");
    await page.click("#set-limit");
    await page.waitForSelector('#gate tr[data-label="mail"] button[data-action="remove-limit"]');
    expect((await client!.gate()).limits?.mail).toMatchObject({ starts: 5, perMs: 2000 });
    expect(await zkgridStatus(g)).toContain("label mail limited to 5/2s");
    await page.click('#gate tr[data-label="mail"] button[data-action="remove-limit"]');
    await page.waitForSelector("#gate td.empty");
    expect((await client!.gate()).limits).toBeUndefined();

    const tick = 'tr[data-schedule="tick"]';
    await page.click(`${tick} button[data-action="pause-schedule"]`);
    await page.waitForSelector(`${tick}[data-paused="true"]`);
    expect((await client!.schedules.get("tick"))?.spec.paused).toBe(true);
    await page.click(`${tick} button[data-action="resume-schedule"]`);
    await page.waitForSelector(`${tick}[data-paused="false"]`);
    expect((await client!.schedules.get("tick"))?.spec.paused).toBe(false);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it("refuses a control request without the page's token, from a foreign Origin, or with bad input; and stays up", async () => {
    const g = await startGrid();
    const url = await zkgridDashboard(g, ["--control"]);
    const token = await pageToken(url);
    const own = { origin: new URL(url).origin, "x-zkgrid-token": token };

    const noToken = await post(url, "pause", {}, { origin: own.origin });
    expect(noToken.status).toBe(403);
    expect(await noToken.json()).toEqual({
      error: "refused: missing or wrong control token (reload the dashboard page)",
    });
    const wrongToken = await post(url, "pause", {}, { ...own, "x-zkgrid-token": `${token.slice(1)}x` });
    expect(wrongToken.status).toBe(403);
    const foreign = await post(url, "pause", {}, { ...own, origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: string }).error).toMatch(
      /^refused: Origin http:\/\/evil\.example is not this dashboard/,
    );
    const noOrigin = await fetch(new URL("api/control/pause", url), {
      method: "POST",
      headers: { "content-type": "application/json", "x-zkgrid-token": token },
      body: "{}",
    });
    expect(noOrigin.status).toBe(403);
    // A name that is not this machine's (DNS rebinding makes such a page same-origin).
    const rebound = await rawPost(new URL("api/control/pause", url), "evil.example", {
      ...own,
      origin: "http://evil.example",
    });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatch(/Host evil\.example is not an address or a name of this machine/);

    const badLabel = await post(url, "pause", { label: "no spaces" }, own);
    expect(badLabel.status).toBe(400);
    expect(((await badLabel.json()) as { error: string }).error).toMatch(
      /^label: invalid label "no spaces": /,
    );
    const badLimit = await post(url, "limit", { label: "mail", limit: "0/1s" }, own);
    expect(badLimit.status).toBe(400);
    expect(((await badLimit.json()) as { error: string }).error).toMatch(
      /^limit: starts: expected an integer 1\.\./,
    );
    const noSchedule = await post(url, "pause-schedule", { name: "none-such" }, own);
    expect(noSchedule.status).toBe(404);
    const notJson = await fetch(new URL("api/control/pause", url), {
      method: "POST",
      headers: { "content-type": "text/plain", ...own },
      body: "pause",
    });
    expect(notJson.status).toBe(415);
    expect((await post(url, "shutdown", {}, own)).status).toBe(405);
    expect((await fetch(new URL("api/control/pause", url), { method: "PUT", headers: own })).status).toBe(
      405,
    );
    // Nothing was written by any of them.
    expect(await client!.gate()).toEqual({ v: 1 });

    const ok = await post(url, "pause", { label: "mail" }, own);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, done: "paused label mail" });
    expect(Object.keys((await client!.gate()).pausedLabels ?? {})).toEqual(["mail"]);
    expect(await (await fetch(new URL("healthz", url))).text()).toBe("ok\n");
  }, 60_000);

  it("without --control, shows no control and refuses every POST with 403 and its reason", async () => {
    const g = await startGrid();
    const url = await zkgridDashboard(g, []);
    const html = await (await fetch(url)).text();
    expect(html).not.toContain('<meta name="zkgrid-control-token"');
    expect(html).not.toContain("<button");
    for (const path of ["api/control/pause", "", "api/snapshot"]) {
      const res = await fetch(new URL(path, url), {
        method: "POST",
        headers: { "content-type": "application/json", origin: new URL(url).origin },
        body: "{}",
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        error: "read-only: this dashboard was started without control (zkgrid dashboard --control)",
      });
    }
    expect(await client!.gate()).toEqual({ v: 1 });
  }, 60_000);
});
