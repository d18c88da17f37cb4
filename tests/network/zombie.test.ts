import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type TestHost, type TestNet, waitFor } from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, isAlive, TestGrid } from "../e2e/grid.js";
import { type EnsembleNet, startEnsembleNet, startOnHost } from "./ensemble-net.js";

/*
 * The zombie window: how long a worker cut off from every ensemble member keeps running its task. With
 * the cutoff stop off it runs on after the leader has fenced the worker and handed the task out again,
 * for as long as the partition lasts. With it on (the default, a quarter of the session timeout) the
 * worker stops it itself. The figures are printed; the assertions are the grid's correctness facts and
 * the bound itself, read from the task's own record of the SIGTERM it got.
 */
const SESSION_TIMEOUT_MS = 4000;
/** ZooKeeper's C client reports the connection lost after 2/3 of the session timeout without a reply. */
const LOSS_NOTICED_MS = (SESSION_TIMEOUT_MS * 2) / 3;
/** The default cutoff stop at this session timeout. */
const DEFAULT_CUTOFF_MS = SESSION_TIMEOUT_MS / 4;
/** For a loaded 2-core machine: timers, the C client's poll loop and the process-group kill run late. */
const SLACK_MS = 3000;

/** One line of the task's own record: a start ("s") or the SIGTERM it got ("t"), with its clock. */
interface Mark {
  kind: "s" | "t";
  attempt: number;
  pid: number;
  at: number;
}

describe("a worker cut off from the ensemble", () => {
  let testNet: EnsembleNet;
  let net: TestNet;
  const grids: TestGrid[] = [];
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    testNet = await startEnsembleNet("zombie-test");
    net = testNet.net;
  }, 240_000);

  afterAll(async () => {
    for (const child of procs) child.kill("SIGKILL");
    for (const grid of grids) await grid.close();
    await testNet?.close();
  });

  /** A grid of its own per test: a root, a master on `m`, and what its task records. */
  async function setUp(m: string, sessionTimeoutMs: number) {
    const grid = new TestGrid(testNet.ensemble.connectString);
    grids.push(grid);
    const log = join(grid.dir, "marks.log");
    const marks = (): Mark[] =>
      existsSync(log)
        ? readFileSync(log, "utf8")
            .trim()
            .split("\n")
            .filter(Boolean)
            .map((line) => {
              const [kind, attempt, pid, at] = line.split(" ");
              return {
                kind: kind as Mark["kind"],
                attempt: Number(attempt),
                pid: Number(pid),
                at: Number(at),
              };
            })
        : [];
    const mark = (kind: Mark["kind"], attempt: number) =>
      marks().find((x) => x.kind === kind && x.attempt === attempt);
    /** On a host of its own; its stderr (the log) goes to `<dir>/<name>.log`; killed after the test. */
    const run = (host: TestHost, bin: string, args: string[]) => {
      procs.push(startOnHost(grid, host, bin, args));
    };
    const timeout = `${sessionTimeoutMs}ms`;
    run(await net.addHost(m), BIN.master, [m, "--session-timeout", timeout]);
    const worker = async (name: string, cutoffStop: string | undefined) => {
      const host = await net.addHost(name);
      const args = [name, "--session-timeout", timeout, "--cwd", grid.dir, "--concurrency", "1"];
      run(host, BIN.worker, cutoffStop === undefined ? args : [...args, "--cutoff-stop", cutoffStop]);
      const zk = await grid.zk();
      await waitFor(async () => (await zk.exists(`${grid.layout.workers}/${name}`)) !== null, {
        timeoutMs: 90_000,
        message: `${name} to register`,
      });
      return host;
    };
    // Attempt 1 sleeps long and notes the SIGTERM it gets; the re-run ends quickly.
    const cmd =
      `echo "s $ZKGRID_TASK_ATTEMPT $$ $(date +%s%3N)" >> ${log}; ` +
      `if [ "$ZKGRID_TASK_ATTEMPT" = 1 ]; then ` +
      `trap 'echo "t 1 $$ $(date +%s%3N)" >> ${log}; exit 143' TERM; sleep 600 & wait; ` +
      `else sleep 1; fi`;
    const submit = async () => {
      const sent = await grid.submit([], JSON.stringify({ id: "long", cmd }));
      expect(sent.code, sent.stderr).toBe(0);
      await waitFor(() => mark("s", 1), { timeoutMs: 90_000, message: "attempt 1 to start" });
    };
    const stopped = () =>
      waitFor(() => mark("t", 1), { timeoutMs: 60_000, intervalMs: 50, message: "attempt 1 to be stopped" });
    /** The task's result, and every final status recorded for it. */
    const outcome = async () => {
      const result = (await grid.waitForResults(["long"], 90_000)).get("long");
      return { result, finals: (await grid.results()).filter((r) => r.id === "long") };
    };
    const workerLog = (name: string) => readFileSync(join(grid.dir, `${name}.log`), "utf8");
    return { grid, marks, mark, worker, submit, stopped, outcome, workerLog };
  }

  it("with the cutoff stop off, keeps running its task after the task is handed out again; one final status is recorded", async () => {
    const { grid, mark, worker, submit, outcome } = await setUp("m1", SESSION_TIMEOUT_MS);
    const w1 = await worker("w1", "off");
    await submit();
    const zombiePid = mark("s", 1)!.pid;
    await worker("w2", "off");
    const zk = await grid.zk();

    let fencedAt = 0;
    const cutAt = Date.now();
    await net.isolate(w1);
    let aliveAtHandOut: boolean;
    try {
      await waitFor(
        async () => {
          if (fencedAt === 0 && (await zk.exists(`${grid.layout.workers}/w1`)) === null)
            fencedAt = Date.now();
          return mark("s", 2) !== undefined;
        },
        { timeoutMs: 90_000, intervalMs: 100, message: "a second attempt on w2" },
      );
      aliveAtHandOut = isAlive(zombiePid);
      // A few seconds more of partition: the cut-off attempt runs on all along.
      await new Promise((wake) => setTimeout(wake, 3000));
    } finally {
      await net.heal(w1);
    }
    const healedAt = Date.now();
    const aliveAtHeal = isAlive(zombiePid);
    // Back on the ensemble, the worker hears its session expired and kills the task.
    await waitFor(() => !isAlive(zombiePid), {
      timeoutMs: 60_000,
      intervalMs: 100,
      message: "the zombie to die",
    });
    const diedAt = Date.now();

    const { result, finals } = await outcome();
    const reRunAt = mark("s", 2)!.at;
    console.log(
      [
        `zombie window, cutoff stop off, session timeout ${SESSION_TIMEOUT_MS} ms:`,
        `  fenced ${fencedAt - cutAt} ms after the cut; attempt 2 started ${reRunAt - cutAt} ms after it`,
        `  the cut-off attempt ran on until ${diedAt - reRunAt} ms after attempt 2 started (the heal came ${healedAt - reRunAt} ms after it)`,
      ].join("\n"),
    );
    expect(aliveAtHandOut).toBe(true);
    expect(aliveAtHeal).toBe(true);
    expect(mark("t", 1), "killed only after the heal, by the session's end").toMatchObject({ kind: "t" });
    expect(result).toMatchObject({ state: "succeeded", attempt: 2, worker: "w2" });
    expect(finals).toHaveLength(1);
  }, 300_000);

  it("with the default cutoff stop, stops its task itself within the bound of the cut, and says so; the new session never reports it", async () => {
    const { mark, worker, submit, stopped, outcome, workerLog } = await setUp("m2", SESSION_TIMEOUT_MS);
    const w3 = await worker("w3", undefined);
    await submit();
    const zombiePid = mark("s", 1)!.pid;
    await worker("w4", undefined);

    const cutAt = Date.now();
    await net.isolate(w3);
    try {
      await stopped();
      await waitFor(() => !isAlive(zombiePid), {
        timeoutMs: 30_000,
        intervalMs: 50,
        message: "its process to end",
      });
      await waitFor(() => mark("s", 2), {
        timeoutMs: 90_000,
        intervalMs: 100,
        message: "a second attempt on w4",
      });
    } finally {
      await net.heal(w3);
    }
    const stoppedAt = mark("t", 1)!.at;
    const reRunAt = mark("s", 2)!.at;
    const { result, finals } = await outcome();
    console.log(
      [
        `zombie window, default cutoff stop (${DEFAULT_CUTOFF_MS} ms), session timeout ${SESSION_TIMEOUT_MS} ms:`,
        `  the cut-off attempt got SIGTERM ${stoppedAt - cutAt} ms after the cut (the loss noticed after ~${Math.round(LOSS_NOTICED_MS)} ms, then ${DEFAULT_CUTOFF_MS} ms)`,
        `  attempt 2 started ${reRunAt - cutAt} ms after the cut: the window is ${Math.max(0, stoppedAt - reRunAt)} ms (${stoppedAt <= reRunAt ? `stopped ${reRunAt - stoppedAt} ms before the re-run` : "overlap"})`,
      ].join("\n"),
    );
    // The task's own clock: it was told to end no later than the loss was noticed plus the bound.
    expect(stoppedAt - cutAt).toBeLessThanOrEqual(LOSS_NOTICED_MS + DEFAULT_CUTOFF_MS + SLACK_MS);
    expect(workerLog("w3")).toMatch(
      /cut off from every ZooKeeper server for \d+ ms .*stopped 1 running tasks/,
    );
    expect(result).toMatchObject({ state: "succeeded", attempt: 2, worker: "w4" });
    expect(finals).toHaveLength(1);
  }, 300_000);

  it("cut off briefly past its cutoff stop but within its session, hands the stopped task back, which runs again only after it ended", async () => {
    // 10 s sessions: the loss is noticed after ~6.7 s, the task stopped 0.5 s later, the heal follows at
    // once, well before the session could expire.
    const { grid, mark, worker, submit, stopped, outcome, workerLog } = await setUp("m3", 10_000);
    const w5 = await worker("w5", "500ms");
    await submit();
    const zk = await grid.zk();
    const owner = (await zk.exists(`${grid.layout.workers}/w5`))?.ephemeralOwner;

    await net.isolate(w5);
    try {
      await stopped();
    } finally {
      await net.heal(w5);
    }
    const { result, finals } = await outcome();
    expect((await zk.exists(`${grid.layout.workers}/w5`))?.ephemeralOwner, "the session survived").toBe(
      owner,
    );
    expect(workerLog("w5")).toMatch(/session \w+ survived: the 1 tasks stopped are handed back/);
    // Handed back as returned: the leader queued it again (one attempt used) and w5 ran attempt 2.
    expect(result).toMatchObject({ state: "succeeded", attempt: 2, worker: "w5" });
    expect(finals).toHaveLength(1);
    expect(mark("s", 2)!.at).toBeGreaterThanOrEqual(mark("t", 1)!.at);
  }, 300_000);
});
