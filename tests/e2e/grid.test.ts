import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, isAlive } from "./grid.js";

const start = gridPerTest();

function pidIn(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

describe("the grid, end to end with real processes", () => {
  it("runs a submitted command, writes its output folder, and --wait returns its exit code", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1");

    const ok = await g.submit(["--cmd", "echo hello from the grid", "--wait", "--json"]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const status = JSON.parse(lines(ok.stdout)[0] ?? "{}");
    expect(status).toMatchObject({ state: "succeeded", exitCode: 0, worker: "w1", attempt: 1 });
    const folder = join(g.dir, "w1", status.id);
    expect(readFileSync(join(folder, "stdout.txt"), "utf8")).toBe("hello from the grid\n");
    expect(JSON.parse(readFileSync(join(folder, "result.json"), "utf8"))).toMatchObject({
      exitCode: 0,
      attempt: 1,
    });

    const bad = await g.submit(["--wait", "--json"], JSON.stringify({ cmd: "echo oops >&2; exit 3" }));
    expect(bad.code).toBe(1);
    const failed = JSON.parse(lines(bad.stdout)[0] ?? "{}");
    expect(failed).toMatchObject({ state: "failed", exitCode: 3 });
    expect(readFileSync(join(g.dir, "w1", failed.id, "stderr.txt"), "utf8")).toBe("oops\n");
  });

  it("a task sent while no worker is up runs when one joins", async () => {
    const g = start();
    g.master("m1");
    const sent = await g.submit([], JSON.stringify({ cmd: "echo late" }));
    expect(sent.code).toBe(0);
    const id = lines(sent.stdout)[0] as string;
    // The leader has seen it and holds it: nothing final yet, however long we look.
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000 });
    expect(await g.results()).toEqual([]);

    g.worker("w1");
    const results = await g.waitForResults([id]);
    expect(results.get(id)).toMatchObject({ state: "succeeded", worker: "w1", attempt: 1 });
    expect(readFileSync(join(g.dir, "w1", id, "stdout.txt"), "utf8")).toBe("late\n");
  });

  it("a standby takes over when the leading master is killed, and every task ends exactly once", async () => {
    const g = start();
    const m1 = g.master("m1");
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000 });
    g.master("m2");
    g.worker("w1", ["--concurrency", "4"]);
    g.worker("w2", ["--concurrency", "4"]);

    const log = join(g.dir, "executions.log");
    const tasks = Array.from({ length: 60 }, (_, i) => ({
      id: `t${i}`,
      cmd: `sleep 0.05; echo t${i} >> ${log}`,
    }));
    const sent = await g.submit([], tasks.map((t) => JSON.stringify(t)).join("\n"));
    expect(sent.code).toBe(0);

    // Kill the leader while tasks are in flight.
    await waitFor(() => existsSync(log) && lines(readFileSync(log, "utf8")).length >= 5, {
      timeoutMs: 30_000,
    });
    m1.kill("SIGKILL");

    const results = await g.waitForResults(
      tasks.map((t) => t.id),
      90_000,
    );
    expect(await g.leaderName()).toBe("m2");
    const all = await g.results();
    const perId = new Map<string, number>();
    for (const r of all) perId.set(r.id, (perId.get(r.id) ?? 0) + 1);
    expect([...perId.values()].every((n) => n === 1)).toBe(true);
    expect(perId.size).toBe(60);
    for (const t of tasks) expect(results.get(t.id)?.state).toBe("succeeded");
    const executions = lines(readFileSync(log, "utf8"));
    expect(executions.sort()).toEqual(tasks.map((t) => t.id).sort());
  });

  it("a task whose worker is killed mid-run runs again elsewhere with attempt 2", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1");
    const marker = join(g.dir, "started.log");
    const sent = await g.submit(
      [],
      JSON.stringify({ id: "slow", cmd: `echo go >> ${marker}; sleep 2; echo done` }),
    );
    expect(sent.code).toBe(0);
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000 });
    g.worker("w2");
    w1.kill("SIGKILL");

    const results = await g.waitForResults(["slow"], 90_000);
    expect(results.get("slow")).toMatchObject({ state: "succeeded", attempt: 2, worker: "w2" });
    expect(readFileSync(join(g.dir, "w2", "slow", "stdout.txt"), "utf8")).toBe("done\n");
  });

  it("a worker stopped past its session timeout starts none of its held tasks on that session when it resumes", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1", ["--concurrency", "1", "--prefetch", "3"]);
    const log = join(g.dir, "starts.log");
    // Each start is logged with its attempt and the time: attempt 1 is the expired session's.
    const cmd = `echo "$ZKGRID_TASK_ID $ZKGRID_TASK_ATTEMPT $(date +%s%3N)" >> ${log}; sleep 0.5`;
    const ids = ["h1", "h2", "h3", "h4"];
    const sent = await g.submit([], ids.map((id) => JSON.stringify({ id, cmd })).join("\n"));
    expect(sent.code).toBe(0);
    await waitFor(() => existsSync(log), { timeoutMs: 30_000 });
    w1.kill("SIGSTOP");
    // h1 ends while w1 is stopped; the other three are held by w1 when its session expires.
    const zk = await g.zk();
    await waitFor(async () => (await zk.exists(`${g.layout.workers}/w1`)) === null, { timeoutMs: 30_000 });
    const expiredBy = Date.now();
    w1.kill("SIGCONT");

    const results = await g.waitForResults(ids, 90_000);
    for (const id of ids) expect(results.get(id)?.state).toBe("succeeded");
    const starts = lines(readFileSync(log, "utf8")).map((l) => l.split(" "));
    const late = starts.filter(([, attempt, at]) => attempt === "1" && Number(at) > expiredBy);
    expect(late).toEqual([]);
  });

  it("the task processes of a SIGKILLed worker die with it, even one that ignores SIGTERM", async () => {
    const g = start();
    g.master("m1");
    const w1 = g.worker("w1", ["--concurrency", "2"]);
    const tasks = [
      { id: "plain", cmd: "echo $$ > sh.pid; sleep 300 & echo $! > child.pid; wait" },
      { id: "stubborn", cmd: "echo $$ > sh.pid; (trap '' TERM; sleep 300) & echo $! > child.pid; wait" },
    ];
    expect((await g.submit([], tasks.map((t) => JSON.stringify(t)).join("\n"))).code).toBe(0);
    const pids: number[] = [];
    for (const t of tasks) {
      for (const file of ["sh.pid", "child.pid"]) {
        const path = join(g.dir, "w1", t.id, file);
        pids.push(await waitFor(() => pidIn(path), { timeoutMs: 30_000, message: `${path} to be written` }));
      }
    }
    expect(pids.every(isAlive)).toBe(true);

    w1.kill("SIGKILL");
    await w1.exited;
    // SIGTERM to each task's process group at once, SIGKILL after the kill grace (5 s by default).
    await waitFor(() => pids.every((pid) => !isAlive(pid)), {
      timeoutMs: 30_000,
      message: "every task process to be gone",
    });
  });

  it("a malformed task becomes rejected with a reason, and the master keeps serving", async () => {
    const g = start();
    const m1 = g.master("m1");
    g.worker("w1");
    const zk = await g.zk();
    await zk.ensurePath(g.layout.queue);
    await zk.create(`${g.layout.queue}/q`, Buffer.from([0xff, 0xfe, 0x00, 0x41]), "persistent-sequential");
    const mixed = {
      v: 1,
      batchId: "b-mixed",
      submittedAt: Date.now(),
      tasks: [
        { id: "bad-type", cmd: 42 },
        { id: "good", cmd: "echo fine" },
      ],
    };
    await zk.create(`${g.layout.queue}/q`, JSON.stringify(mixed), "persistent-sequential");

    const results = await g.waitForResults(["bad-type", "good"]);
    expect(results.get("bad-type")).toMatchObject({ state: "rejected" });
    expect(results.get("bad-type")?.reason).toMatch(/cmd/);
    expect(results.get("good")).toMatchObject({ state: "succeeded" });
    const all = await g.results();
    const unreadable = all.find((r) => r.state === "rejected" && r.id !== "bad-type");
    expect(unreadable?.reason).toMatch(/UTF-8|JSON/i);

    const after = await g.submit(["--cmd", "echo still here", "--wait", "--json"]);
    expect(after.code).toBe(0);
    expect(m1.child.exitCode).toBeNull();
  });

  it("a task id or worker name built to escape is refused and nothing is written outside", async () => {
    const g = start();
    g.master("m1");
    // A name of its own: a stray "x" beside the test's dir, left by anything else, proves nothing.
    const name = `x-${randomUUID().slice(0, 8)}`;
    const outside = resolve(g.dir, "..", name);
    expect(existsSync(outside)).toBe(false);

    const viaFlag = await g.submit(["--cmd", "echo no", "--id", `../${name}`]);
    expect(viaFlag.code).toBe(2);
    expect(viaFlag.stderr).toMatch(/id/);

    const badWorker = g.worker(`../${name}`);
    expect(await badWorker.exited).toBe(2);
    expect(badWorker.output()).toMatch(/worker name/i);

    g.worker("w1");
    const zk = await g.zk();
    await zk.ensurePath(g.layout.queue);
    const raw = {
      v: 1,
      batchId: "b-raw",
      submittedAt: Date.now(),
      tasks: [{ id: `../${name}`, cmd: "echo escaped" }],
    };
    await zk.create(`${g.layout.queue}/q`, JSON.stringify(raw), "persistent-sequential");
    await waitFor(async () => (await g.results()).some((r) => r.state === "rejected"), { timeoutMs: 30_000 });
    const rejected = (await g.results()).find((r) => r.state === "rejected");
    expect(rejected?.reason).toMatch(/id/);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(join(g.dir, name))).toBe(false);
  });

  it("a cancelled task never runs if queued, and is stopped if running", async () => {
    const g = start();
    g.master("m1");
    g.worker("w1", ["--labels", "here"]);
    const marker = join(g.dir, "cancel-started.log");
    const tasks = [
      { id: "long", cmd: `echo $$ >> ${marker}; exec sleep 60`, labels: ["here"] },
      { id: "never", cmd: "echo ran", labels: ["nowhere"] },
    ];
    expect((await g.submit([], tasks.map((t) => JSON.stringify(t)).join("\n"))).code).toBe(0);
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000 });
    const pid = Number(lines(readFileSync(marker, "utf8"))[0]);

    const zk = await g.zk();
    await zk.ensurePath(g.layout.cancel);
    await zk.create(
      `${g.layout.cancel}/c`,
      JSON.stringify({ v: 1, ids: ["long", "never", "no-such-task"], requestedAt: Date.now() }),
      "persistent-sequential",
    );
    const results = await g.waitForResults(["long", "never"]);
    expect(results.get("never")).toMatchObject({ state: "cancelled", reason: "cancelled before it ran" });
    expect(results.get("long")).toMatchObject({ state: "cancelled", worker: "w1" });
    expect(existsSync(join(g.dir, "w1", "never"))).toBe(false);
    await waitFor(() => !processAlive(pid), {
      timeoutMs: 30_000,
      message: "the cancelled task's process to end",
    });
    expect((await g.results()).some((r) => r.id === "no-such-task")).toBe(false);
    await waitFor(async () => (await zk.getChildren(g.layout.cancel)).length === 0, { timeoutMs: 30_000 });
  });

  it("the leader keeps only the newest result nodes it is told to keep", async () => {
    const g = start();
    g.master("m1", ["--keep-results", "2"]);
    g.worker("w1");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const sent = await g.submit(["--cmd", `echo ${i}`, "--wait", "--json"]);
      expect(sent.code).toBe(0);
      ids.push(JSON.parse(lines(sent.stdout)[0] ?? "{}").id);
    }
    const zk = await g.zk();
    // A lone task's answer comes from its worker's inbox: the leader records it in R/results after.
    const kept = await waitFor(
      async () => {
        if ((await zk.getChildren(g.layout.results)).length > 2) return undefined;
        const found = (await g.results()).map((r) => r.id);
        return found.includes(ids[3] as string) ? found : undefined;
      },
      { timeoutMs: 30_000, message: "the newest result kept and older ones pruned" },
    );
    expect(kept).not.toContain(ids[0]);
  });
});

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
