import { type ChildProcess, spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import type { ZkClient } from "@zkgrid/core";
import type { GridSnapshot } from "@zkgrid/observer";
import { gridLayout, type TaskStatus } from "@zkgrid/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CliIo, runCli } from "../src/cli.js";
import { ProgressBar } from "../src/cli-progress.js";
import { answerQueue, connectString, connectTestClient, finalStatus, randomRoot } from "./helpers.js";
import { bins, buildBins, gridEnv, killAll } from "./built-bins.js";

let zk: ZkClient;
const children = new Set<ChildProcess>();
const leaders: AbortController[] = [];

beforeAll(async () => {
  await buildBins();
  zk = await connectTestClient();
}, 300_000);

afterEach(async () => {
  for (const leader of leaders.splice(0)) leader.abort();
  await killAll(children);
});

afterAll(async () => {
  await zk?.close();
});

/** A terminal or a pipe, collecting what is written. */
function sink(isTTY: boolean): PassThrough & { isTTY: boolean; text(): string } {
  const stream = new PassThrough() as PassThrough & { isTTY: boolean; text(): string };
  let text = "";
  stream.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  stream.isTTY = isTTY;
  stream.text = () => text;
  return stream;
}

function io(
  root: string,
  input: string,
  stderrIsTTY: boolean,
): CliIo & { stdout: ReturnType<typeof sink>; stderr: ReturnType<typeof sink> } {
  const stdin = new PassThrough();
  stdin.end(input);
  return {
    stdin,
    stdout: sink(false),
    stderr: sink(stderrIsTTY),
    env: { ZKGRID_CONNECT: connectString(), ZKGRID_ROOT: root },
  };
}

describe("zkgrid dashboard", () => {
  it("serves the page, the snapshot and /metrics for the grid until SIGTERM, then exits 0", async () => {
    const root = randomRoot();
    const child = spawn(process.execPath, [bins.submit, "dashboard", "--port", "0"], {
      env: gridEnv(root),
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
        const match = /^dashboard for \S+ at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(stdout);
        if (match) resolve(match[1]!);
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    expect(await (await fetch(new URL("healthz", url))).text()).toBe("ok\n");
    expect(await (await fetch(url)).text()).toContain("<title>zkgrid</title>");
    const snapshot = (await (await fetch(new URL("api/snapshot", url))).json()) as GridSnapshot;
    expect(snapshot).toMatchObject({ root, masters: [], workers: [], connection: "connected" });
    expect(await (await fetch(new URL("metrics", url))).text()).toContain("\nzkgrid_masters 0\n");

    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stderr).toBe("");
  });
});

describe("zkgrid dashboard --control usage", () => {
  it("warns in --help that control lets anyone who reaches the port pause the grid", async () => {
    const streams = io(randomRoot(), "", false);
    expect(await runCli(["dashboard", "--help"], streams)).toBe(0);
    expect(streams.stdout.text()).toContain("ANYONE WHO CAN REACH THE PORT CAN PAUSE THE GRID");
  });

  it("exits 2 for --origin without --control, or an --origin that is not an origin; nothing starts", async () => {
    const bad: Array<[string[], RegExp]> = [
      [["--origin", "https://grid.example.com"], /^zkgrid dashboard: --origin: only with --control\n/],
      [["--control", "--origin", "grid.example.com"], /^zkgrid dashboard: --origin: expected a URL/],
      [
        ["--control", "--origin", "https://grid.example.com/path"],
        /^zkgrid dashboard: --origin: expected an origin/,
      ],
      [
        ["--control", "--origin", "ftp://grid.example.com"],
        /^zkgrid dashboard: --origin: expected an origin/,
      ],
    ];
    for (const [args, message] of bad) {
      const streams = io(randomRoot(), "", false);
      expect({ args, code: await runCli(["dashboard", ...args], streams) }).toEqual({ args, code: 2 });
      expect(streams.stderr.text()).toMatch(message);
      expect(streams.stdout.text()).toBe("");
    }
  });
});

describe("submit --wait progress", () => {
  function answerAll(root: string): void {
    const controller = new AbortController();
    leaders.push(controller);
    void answerQueue(
      zk,
      gridLayout(root),
      (task) =>
        task.cmd === "false"
          ? finalStatus(task.id, "failed", { exitCode: 1 })
          : finalStatus(task.id, "succeeded"),
      controller.signal,
      // The stand-in leader ends when the test's client closes; that is not a failure.
    ).catch(() => {});
  }

  const tasks = ['{"cmd":"true"}', '{"cmd":"false"}', '{"cmd":"true"}'].join("\n");

  it("draws a bar with done, failed, rate and ETA on a terminal's stderr, and leaves stdout to the results", async () => {
    const root = randomRoot();
    answerAll(root);
    const streams = io(root, tasks, true);
    expect(await runCli(["--wait", "--json"], streams)).toBe(1);
    const results = streams.stdout
      .text()
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as TaskStatus);
    expect(results).toHaveLength(3);
    const err = streams.stderr.text();
    expect(err).toContain("submitted 3 tasks; waiting\n");
    expect(err).toContain("\r\x1b[2K[");
    // The bar's last state stays, on its own line.
    expect(err).toMatch(/\[#{24}\] 3\/3 done, 1 failed {2}[\d.]+\/s {2}done\n$/);
  });

  it("writes nothing decorative when stderr is not a terminal", async () => {
    const root = randomRoot();
    answerAll(root);
    const streams = io(root, tasks, false);
    expect(await runCli(["submit", "--wait"], streams)).toBe(1);
    expect(streams.stderr.text()).toBe("");
    expect(streams.stdout.text().match(/ {2}(succeeded|failed) {2}/g)).toHaveLength(3);
  });

  it("the bar's line counts failures and estimates the time left from the rate so far", () => {
    const out = sink(true);
    const bar = new ProgressBar(out, 4, 1_000);
    bar.add(finalStatus("a", "succeeded"));
    bar.add(finalStatus("b", "timed-out"));
    const line = bar.line(3_000);
    bar.stop();
    expect(line).toMatch(/^\[#{12}-{12}\] 2\/4 done, 1 failed {2}1\.0\/s {2}ETA 2\.0s$/);
  });
});
