import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  startEnsemble,
  startTestNet,
  type TestHost,
  type TestNet,
  waitFor,
  type ZkEnsemble,
} from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, isAlive, TestGrid } from "../e2e/grid.js";

/*
 * The zombie window, measured with the code as it is: a worker cut off from every ensemble member keeps
 * running its task after the leader has fenced it and handed the task out again. The numbers are printed,
 * not asserted (timing belongs to the bench); the test asserts only the grid's correctness facts.
 */
const SESSION_TIMEOUT = "4s";
/** How long the partition lasts, and how long we watch the cut-off task after the heal. */
const PARTITION_MS = 20_000;
const AFTER_HEAL_MS = 20_000;

describe("a worker cut off from the ensemble", () => {
  let net: TestNet;
  let ensemble: ZkEnsemble;
  let grid: TestGrid;

  beforeAll(async () => {
    net = await startTestNet({ name: "zombie-test" });
    const zk = [await net.addHost("zk1"), await net.addHost("zk2"), await net.addHost("zk3")];
    ensemble = await startEnsemble(3, { hosts: zk, startTimeoutMs: 120_000 });
    grid = new TestGrid(ensemble.connectString);
  }, 240_000);

  afterAll(async () => {
    await grid?.close();
    await ensemble?.stop();
    await net?.close();
  });

  /** Starts one of the grid's bins on `host`; TestNet.close() kills it. */
  const run = (host: TestHost, bin: string, args: string[]): ChildProcess =>
    host.spawn(process.execPath, [bin, ...args], { cwd: grid.dir, env: grid.env, stdio: "ignore" });

  /** A worker named for its host, one task at a time. */
  const worker = (host: TestHost): ChildProcess =>
    run(host, BIN.worker, [
      host.name,
      "--session-timeout",
      SESSION_TIMEOUT,
      "--cwd",
      grid.dir,
      "--concurrency",
      "1",
    ]);

  it("keeps running its task after the task is handed out again; one final status is recorded", async () => {
    const m1 = await net.addHost("m1");
    const w1 = await net.addHost("w1");
    const w2 = await net.addHost("w2");
    const log = join(grid.dir, "starts.log");
    // Attempt 1 (on the worker we cut off) sleeps long; the re-run ends quickly.
    const cmd =
      `echo "$ZKGRID_TASK_ATTEMPT $$" >> ${log}; ` +
      `if [ "$ZKGRID_TASK_ATTEMPT" = 1 ]; then exec sleep 600; else sleep 1; fi`;
    const starts = (): string[][] =>
      existsSync(log)
        ? readFileSync(log, "utf8")
            .trim()
            .split("\n")
            .filter(Boolean)
            .map((line) => line.split(" "))
        : [];

    run(m1, BIN.master, ["m1", "--session-timeout", SESSION_TIMEOUT]);
    worker(w1);
    const sent = await grid.submit([], JSON.stringify({ id: "long", cmd }));
    expect(sent.code, sent.stderr).toBe(0);
    await waitFor(() => starts().length === 1, { timeoutMs: 90_000, message: "attempt 1 to start on w1" });
    const zombiePid = Number(starts()[0]![1]);
    worker(w2);
    const zk = await grid.zk();
    await waitFor(async () => (await zk.exists(`${grid.layout.workers}/w2`)) !== null, {
      timeoutMs: 90_000,
      message: "w2 to register",
    });

    let fencedAt = 0;
    let handedOutAt = 0;
    let zombieDiedAt: number | undefined;
    /** Notes when the cut-off attempt's process dies, until `done()`. */
    const watchZombieUntil = (done: () => boolean) =>
      waitFor(
        () => {
          if (!isAlive(zombiePid)) zombieDiedAt ??= Date.now();
          return done();
        },
        { timeoutMs: Math.max(PARTITION_MS, AFTER_HEAL_MS) + 10_000, intervalMs: 100 },
      );
    const cutAt = Date.now();
    await net.isolate(w1);
    try {
      // (a) the leader fences w1 (its session ends, its worker node goes) and hands the task to w2.
      await waitFor(
        async () => {
          if (fencedAt === 0 && (await zk.exists(`${grid.layout.workers}/w1`)) === null)
            fencedAt = Date.now();
          if (handedOutAt === 0 && starts().some(([attempt]) => attempt === "2")) handedOutAt = Date.now();
          return fencedAt > 0 && handedOutAt > 0;
        },
        { timeoutMs: 90_000, intervalMs: 100, message: "the fence of w1 and a second attempt on w2" },
      );
      expect(fencedAt).toBeLessThanOrEqual(handedOutAt);
      // (b) the cut-off attempt's process, for as long as the partition lasts.
      await watchZombieUntil(() => Date.now() - cutAt >= PARTITION_MS);
    } finally {
      await net.heal(w1);
    }
    const healedAt = Date.now();
    await watchZombieUntil(() => zombieDiedAt !== undefined || Date.now() - healedAt >= AFTER_HEAL_MS);

    const results = await grid.waitForResults(["long"], 90_000);
    const finals = (await grid.results()).filter((result) => result.id === "long");
    const window =
      zombieDiedAt === undefined
        ? `still running ${Date.now() - handedOutAt} ms after the hand-out (${Date.now() - healedAt} ms after the heal)`
        : `${zombieDiedAt - handedOutAt} ms after the hand-out (${zombieDiedAt < healedAt ? "before" : "after"} the heal, ${zombieDiedAt - healedAt} ms from it)`;
    console.log(
      [
        `zombie window, session timeout ${SESSION_TIMEOUT}, partition ${PARTITION_MS} ms:`,
        `  fenced ${fencedAt - cutAt} ms after the cut; handed out again ${handedOutAt - cutAt} ms after it`,
        `  the cut-off attempt's process: ${window}`,
      ].join("\n"),
    );
    expect(results.get("long")).toMatchObject({ state: "succeeded", attempt: 2, worker: "w2" });
    expect(finals).toHaveLength(1);
  }, 300_000);
});
