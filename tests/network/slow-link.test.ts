import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startSlowLink, type TestHost, waitFor } from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, TestGrid } from "../e2e/grid.js";
import { type EnsembleNet, startEnsembleNet, startOnHost } from "./ensemble-net.js";

/*
 * A healthy worker on a slow, lossy link (100 ms ± 20 ms per chunk each way, 5% of packets dropped both
 * ways; no netem here, so a relay and nftables make it) keeps its session and its tasks: every task runs
 * once, as attempt 1, on it. SESSION_TIMEOUT is the workers' default, which this link needs: its cutoff
 * stop (a quarter) must outlast a reconnect that loses a packet, 1.1–1.4 s here; 4 s left 1 s, and a
 * run that lost its connection then failed (see docs/guarantees.md, "On a slow link").
 */
const SESSION_TIMEOUT = process.env.SLOW_LINK_SESSION_TIMEOUT ?? "10s";
const TASKS = 30;

describe("a worker on a slow, lossy link", () => {
  let testNet: EnsembleNet;
  let grid: TestGrid;
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    testNet = await startEnsembleNet("slow-link-test");
    grid = new TestGrid(testNet.ensemble.connectString);
  }, 240_000);

  afterAll(async () => {
    for (const child of procs) child.kill("SIGKILL");
    await grid?.close();
    await testNet?.close();
  });

  const run = (host: TestHost, bin: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    procs.push(startOnHost(grid, host, bin, args, env));
  };

  it("keeps its session and runs every task once, as attempt 1", async () => {
    const m1 = await testNet.net.addHost("m1");
    const w1 = await testNet.net.addHost("w1");
    const link = await startSlowLink(w1, {
      to: testNet.ensemble.connectString,
      delayMs: 100,
      jitterMs: 20,
      lossPercent: 5,
    });
    run(m1, BIN.master, ["m1", "--session-timeout", SESSION_TIMEOUT]);
    const startedAt = Date.now();
    run(
      w1,
      BIN.worker,
      ["w1", "--session-timeout", SESSION_TIMEOUT, "--cwd", grid.dir, "--concurrency", "2"],
      {
        ZKGRID_CONNECT: link.connectString,
      },
    );
    const zk = await grid.zk();
    const owner = await waitFor(async () => (await zk.exists(`${grid.layout.workers}/w1`))?.ephemeralOwner, {
      timeoutMs: 90_000,
      message: "w1 to register over the slow link",
    });
    const registeredMs = Date.now() - startedAt;
    const ids = Array.from({ length: TASKS }, (_, i) => `slow${i}`);
    const input = ids.map((id) => JSON.stringify({ id, cmd: "sleep 0.3" })).join("\n");
    const sent = await grid.submit([], input);
    expect(sent.code, sent.stderr).toBe(0);
    const sentAt = Date.now();
    const results = await grid.waitForResults(ids, 180_000);
    const log = readFileSync(join(grid.dir, "w1.log"), "utf8");
    const suspended = log.match(/connection lost; session may still be alive/g)?.length ?? 0;
    console.log(
      `slow link (100 ± 20 ms each way, 5% loss), session timeout ${SESSION_TIMEOUT}: registered after ${registeredMs} ms; ` +
        `${TASKS} tasks of 0.3 s at concurrency 2 done in ${Date.now() - sentAt} ms; the connection was lost ${suspended} times`,
    );
    for (const id of ids)
      expect(results.get(id), id).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
    expect((await zk.exists(`${grid.layout.workers}/w1`))?.ephemeralOwner, "w1 kept its session").toBe(owner);
    expect(log).not.toMatch(/cut off from every ZooKeeper server/);
    await link.close();
  }, 400_000);
});
