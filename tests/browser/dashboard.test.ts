import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type Dashboard, startDashboard } from "@zkgrid/dashboard";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ensureChromium, launchChromium } from "../../packages/dashboard/test/chromium.js";
import { InProcessGrid } from "../../packages/dashboard/test/grid.js";

const ARTIFACTS = resolve(import.meta.dirname, "artifacts");

const IN_CI = process.env.CI === "true";

let unavailable: string | undefined;

beforeAll(async () => {
  unavailable = await ensureChromium();
  if (unavailable && !IN_CI) console.warn(`skipping the browser test: ${unavailable}`);
}, 900_000);

describe("the dashboard in a real browser", () => {
  let grid: InProcessGrid | undefined;
  let dashboard: Dashboard | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await grid?.close();
  });

  it("shows the leader, a worker that joins, and a task row going from running to succeeded", async (ctx) => {
    // CI must open the dashboard: there, a browser it cannot get is a failure, never a skip.
    if (unavailable && IN_CI) throw new Error(`CI has no browser for the dashboard test: ${unavailable}`);
    if (unavailable) return ctx.skip();
    grid = await InProcessGrid.create(inject("zkConnectString"));
    const master = await grid.master("m1");
    await master.leading();
    dashboard = await startDashboard({
      connectString: grid.connectString,
      root: grid.root,
      title: "zkgrid test grid",
    });
    browser = await launchChromium();
    const page = await browser.context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") pageErrors.push(msg.text());
    });
    await page.goto(dashboard.url);

    await page.waitForSelector('#leader[data-leader="m1"]');
    expect(await page.textContent("#leader")).toMatch(/^m1 \(epoch \d+\)$/);
    expect(await page.textContent('tr[data-master="m1"] td')).toBe("leader");
    await page.waitForSelector("#workers td.empty");

    await grid.worker("w1", 2);
    await page.waitForSelector('tr[data-worker="w1"]');

    // The task holds until the test lets it go, so its running row is there to be seen.
    const gate = join(grid.cwd, "go");
    await grid.submit([
      {
        id: "browser-slow",
        cmd: `while [ ! -e '${gate}' ]; do sleep 0.05; done; echo finished after the gate`,
      },
      // Output is data, never markup: this must show as text.
      { id: "browser-html", cmd: "echo '<img src=x onerror=alert(1)><b>bold</b>'" },
      { id: "browser-fail", cmd: "echo broken >&2; exit 4" },
    ]);
    const slow = 'tr[data-task-id="browser-slow"]';
    await page.waitForSelector(`${slow}:is([data-state="assigned"], [data-state="running"])`);
    expect(await page.textContent(`${slow} td:nth-child(3)`)).toBe("w1");
    await writeFile(gate, "");
    await page.waitForSelector(`${slow}[data-state="succeeded"]`);
    expect(await page.textContent(`${slow} td.state`)).toBe("succeeded");
    expect(await page.textContent(`${slow} pre`)).toBe("finished after the gate");

    await page.waitForSelector('tr[data-task-id="browser-html"][data-state="succeeded"]');
    expect(await page.textContent('tr[data-task-id="browser-html"] pre')).toBe(
      "<img src=x onerror=alert(1)><b>bold</b>",
    );
    expect(await page.$$("#tasks img, #tasks b")).toHaveLength(0);
    await page.waitForSelector('tr[data-task-id="browser-fail"][data-state="failed"]');
    expect(await page.textContent('tr[data-task-id="browser-fail"] pre')).toBe("broken");
    await page.waitForSelector('[data-count="succeeded"] .n:text-is("2")');
    expect(await page.textContent('[data-count="failed"] .n')).toBe("1");
    expect(await page.textContent("#stream")).toBe("live");

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: false });
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
