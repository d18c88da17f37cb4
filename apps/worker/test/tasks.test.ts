import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, expectTypeOf, it } from "vitest";
import { defineHandlers, type HandlerInput, type HandlerOutput } from "../src/index.js";
import { assigned, gridPerTest, isRunning, nextEvent, readPidFile } from "./helpers.js";

const grid = gridPerTest();

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
}

/** The live task launchers of worker `name` that this process started. */
async function launcherPids(name: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8");
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (cmdline.startsWith(`zkgrid-launcher ${name}`) && ppid === process.pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe("running tasks", () => {
  it("runs a shell task and writes stdout.txt, stderr.txt and result.json with the exit code", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "echo hello; echo oops >&2; echo $PWD" })]);

    const final = await grid().final("w1", session, "t1");
    const dir = join(grid().cwd, "w1", "t1");
    expect(final).toMatchObject({
      state: "succeeded",
      exitCode: 0,
      outputDir: "w1/t1",
      stdoutTail: `hello\n${dir}\n`,
      stderrTail: "oops\n",
    });
    expect(final.startedAt).toBeTypeOf("number");
    expect(final.finishedAt).toBeGreaterThanOrEqual(final.startedAt!);
    expect(await readFile(join(dir, "stdout.txt"), "utf8")).toBe(`hello\n${dir}\n`);
    expect(await readFile(join(dir, "stderr.txt"), "utf8")).toBe("oops\n");
    expect(await readJson(join(dir, "result.json"))).toMatchObject({
      id: "t1",
      state: "succeeded",
      exitCode: 0,
      attempt: 1,
      worker: "w1",
      startedAt: final.startedAt,
      finishedAt: final.finishedAt,
      durationMs: final.finishedAt! - final.startedAt!,
    });
  });

  it("runs cmd with args as a program, without a shell", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [
      assigned("t1", { cmd: "printf", args: ["%s|", "a b", "$HOME", "*"] }),
    ]);

    const final = await grid().final("w1", session, "t1");
    expect(final).toMatchObject({ state: "succeeded", exitCode: 0, stdoutTail: "a b|$HOME|*|" });
  });

  it("reports a failing command as failed with its exit code", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "echo before; exit 3" })]);

    const final = await grid().final("w1", session, "t1");
    expect(final).toMatchObject({ state: "failed", exitCode: 3, stdoutTail: "before\n" });
    const result = await readJson(join(grid().cwd, "w1", "t1", "result.json"));
    expect(result).toMatchObject({ state: "failed", exitCode: 3 });
  });

  it("reports a program that cannot be started as failed with the reason", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "/nonexistent/program", args: [] })]);

    const final = await grid().final("w1", session, "t1");
    expect(final.state).toBe("failed");
    expect(final.error).toContain("ENOENT");
  });

  it("gives a task its env and a cwd inside its output folder, but not the worker's ZooKeeper credentials", async () => {
    const previous = process.env.ZKGRID_AUTH;
    process.env.ZKGRID_AUTH = "user:secret";
    try {
      const worker = await grid().start("w1");
      const session = worker.sessionId!;
      await grid().assign("w1", session, [
        assigned("t1", {
          cmd: 'echo "$GREETING:$ZKGRID_TASK_ID:[$ZKGRID_AUTH]"; pwd',
          env: { GREETING: "hi" },
          cwd: "sub/dir",
        }),
      ]);
      const final = await grid().final("w1", session, "t1");
      expect(final.stdoutTail).toBe(`hi:t1:[]\n${join(grid().cwd, "w1", "t1", "sub", "dir")}\n`);
    } finally {
      if (previous === undefined) delete process.env.ZKGRID_AUTH;
      else process.env.ZKGRID_AUTH = previous;
    }
  });

  it("kills the whole process group when timeoutMs passes and reports timed-out", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    // The shell starts a child and waits for it: both must die.
    await grid().assign("w1", session, [
      assigned("t1", { cmd: "sleep 60 & echo $! > child.pid; wait", timeoutMs: 300 }),
    ]);

    const final = await grid().final("w1", session, "t1");
    expect(final).toMatchObject({ state: "timed-out", signal: "SIGTERM" });
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    await waitFor(async () => !(await isRunning(child)), { message: `sleep (pid ${child}) to be gone` });
    const result = await readJson(join(grid().cwd, "w1", "t1", "result.json"));
    expect(result.state).toBe("timed-out");
  });

  it("keeps only the last 4 KiB of each stream in the report, and the whole stream in the file", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "seq 1 20000" })]);

    const final = await grid().final("w1", session, "t1");
    expect(Buffer.byteLength(final.stdoutTail ?? "")).toBe(4096);
    expect(final.stdoutTail?.endsWith("19999\n20000\n")).toBe(true);
    const stdout = await readFile(join(grid().cwd, "w1", "t1", "stdout.txt"), "utf8");
    expect(stdout.endsWith(final.stdoutTail!)).toBe(true);
    expect(stdout.startsWith("1\n2\n3\n")).toBe(true);
  });

  it("refuses a task id that leads outside its folder and writes nothing outside", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    const now = Date.now();
    const task = (id: string, spec: Record<string, unknown>) => ({
      id,
      attempt: 1,
      assignedAt: now,
      submittedAt: now,
      spec: { id, ...spec },
    });
    await grid().assignRaw("w1", {
      v: 1,
      epoch: 1,
      worker: "w1",
      session,
      tasks: [
        task("../x", { cmd: "echo escaped > escaped.txt" }),
        task("esc", { cmd: "echo escaped > escaped.txt", cwd: "../../x" }),
        task("ok", { cmd: "echo fine" }),
      ],
    });

    expect(await grid().final("w1", session, "ok")).toMatchObject({ state: "succeeded" });
    const refused = await grid().final("w1", session, "esc");
    expect(refused.state).toBe("failed");
    expect(refused.error).toContain("cwd");
    const updates = await grid().updates("w1", session);
    expect(updates.map((u) => u.id)).not.toContain("../x");
    expect(grid().logs.some((l) => l.level === "error" && l.msg.includes("../x"))).toBe(true);
    expect(await readdir(grid().cwd)).toEqual(["w1"]);
    expect((await readdir(join(grid().cwd, "w1"))).sort()).toEqual([".lock", "ok"]);
  });

  it("fails the running tasks and kills their groups when the launcher dies, and starts a new one for the next task", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "sleep 60 & echo $! > child.pid; wait" })]);
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    const launchers = await launcherPids("w1");
    expect(launchers).toHaveLength(1);

    process.kill(launchers[0]!, "SIGKILL");
    const final = await grid().final("w1", session, "t1");
    expect(final.state).toBe("failed");
    expect(final.error).toContain("launcher");
    await waitFor(async () => !(await isRunning(child)), { message: "the task's group to be killed" });

    await grid().assign("w1", session, [assigned("t2", { cmd: "echo after" })]);
    expect(await grid().final("w1", session, "t2")).toMatchObject({
      state: "succeeded",
      stdoutTail: "after\n",
    });
  });

  it("with prefetch, registers the larger capacity but still runs at most `concurrency` at once", async () => {
    const worker = await grid().start("w1", { concurrency: 1, prefetch: 3 });
    const session = worker.sessionId!;
    expect((await grid().registration("w1"))?.capacity).toBe(4);
    // Each task holds w1/busy while it runs: a task that finds it taken fails.
    const cmd = "mkdir ../busy || exit 9; sleep 0.1; rmdir ../busy";
    const ids = ["t1", "t2", "t3", "t4"];
    await grid().assign(
      "w1",
      session,
      ids.map((id) => assigned(id, { cmd })),
    );

    for (const id of ids) {
      expect(await grid().final("w1", session, id)).toMatchObject({ state: "succeeded", exitCode: 0 });
    }
  });

  it("runs at most `concurrency` tasks at once and the rest as slots free up", async () => {
    const worker = await grid().start("w1", { concurrency: 1 });
    const session = worker.sessionId!;
    // Each task holds w1/busy while it runs: a task that finds it taken fails.
    const cmd = "mkdir ../busy || exit 9; sleep 0.2; rmdir ../busy";
    await grid().assign(
      "w1",
      session,
      ["t1", "t2", "t3"].map((id) => assigned(id, { cmd })),
    );

    for (const id of ["t1", "t2", "t3"]) {
      expect(await grid().final("w1", session, id)).toMatchObject({ state: "succeeded", exitCode: 0 });
    }
  });
});

describe("in-process handlers", () => {
  const handlers = defineHandlers({
    add: (input: { a: number; b: number }) => ({ sum: input.a + input.b }),
    boom: async (): Promise<never> => {
      throw new Error("boom");
    },
    big: () => "x".repeat(70 * 1024),
    where: (_input: unknown, ctx) => ctx.outputDir,
    // A wrapper that spreads the context keeps every field (a plain object's, as the type says).
    spread: (_input: unknown, ctx) => {
      const copy = { ...ctx };
      return { taskId: copy.taskId, outputDir: copy.outputDir, signal: copy.signal instanceof AbortSignal };
    },
    slow: (_input: unknown, ctx) =>
      new Promise((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve(writeFile(join(ctx.outputDir, "aborted"), ""))),
      ),
  });

  it("keeps each handler's input and output types for a submitter to infer", () => {
    expectTypeOf<HandlerInput<typeof handlers, "add">>().toEqualTypeOf<{ a: number; b: number }>();
    expectTypeOf<HandlerOutput<typeof handlers, "add">>().toEqualTypeOf<{ sum: number }>();
    expect(handlers.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
  });

  it("puts a handler's return value in output and fails the task on a throw or an oversized output", async () => {
    const worker = await grid().start("w1", { handlers });
    const session = worker.sessionId!;
    await grid().assign("w1", session, [
      assigned("t-add", { handler: "add", input: { a: 2, b: 3 } }),
      assigned("t-boom", { handler: "boom" }),
      assigned("t-big", { handler: "big" }),
      assigned("t-where", { handler: "where" }),
      assigned("t-spread", { handler: "spread" }),
      assigned("t-none", { handler: "missing" }),
    ]);

    expect(await grid().final("w1", session, "t-add")).toMatchObject({
      state: "succeeded",
      output: { sum: 5 },
    });
    expect(await grid().final("w1", session, "t-boom")).toMatchObject({ state: "failed", error: "boom" });
    const big = await grid().final("w1", session, "t-big");
    expect(big.state).toBe("failed");
    expect(big.output).toBeUndefined();
    expect(big.error).toContain("65536");
    const where = await grid().final("w1", session, "t-where");
    expect(where.output).toBe(join(grid().cwd, "w1", "t-where"));
    expect((await grid().final("w1", session, "t-spread")).output).toEqual({
      taskId: "t-spread",
      outputDir: join(grid().cwd, "w1", "t-spread"),
      signal: true,
    });
    expect((await grid().final("w1", session, "t-none")).error).toContain("missing");
    const result = await readJson(join(grid().cwd, "w1", "t-big", "result.json"));
    expect(result.output).toHaveLength(70 * 1024);
  });

  it("reports a handler that outlives timeoutMs as timed-out and aborts its signal", async () => {
    const worker = await grid().start("w1", { handlers });
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t-slow", { handler: "slow", timeoutMs: 100 })]);

    const final = await grid().final("w1", session, "t-slow");
    expect(final.state).toBe("timed-out");
    expect(final.output).toBeUndefined();
    await waitFor(() => existsSync(join(grid().cwd, "w1", "t-slow", "aborted")), { message: "the abort" });
  });
});

describe("assignments", () => {
  it("ignores an assignment for another session", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    const other = session === "1234abcd" ? "1234abce" : "1234abcd";
    await grid().assign("w1", other, [assigned("t-other", { cmd: "echo no" })]);
    await grid().assign("w1", session, [assigned("t-mine", { cmd: "echo yes" })]);

    expect((await grid().final("w1", session, "t-mine")).state).toBe("succeeded");
    const updates = await grid().updates("w1", session);
    expect(updates.map((u) => u.id)).not.toContain("t-other");
    expect(await readdir(join(grid().cwd, "w1"))).not.toContain("t-other");
  });

  it("ignores an assignment with an epoch lower than one it has seen", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "true" })], 5);
    expect((await grid().final("w1", session, "t1")).state).toBe("succeeded");
    await grid().assign("w1", session, [assigned("t-stale", { cmd: "true" })], 4);
    await grid().assign("w1", session, [assigned("t2", { cmd: "true" })], 5);

    expect((await grid().final("w1", session, "t2")).state).toBe("succeeded");
    expect((await grid().updates("w1", session)).map((u) => u.id)).not.toContain("t-stale");
  });

  it("runs each (id, attempt) once, and again for a new attempt", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    const t1 = assigned("t1", { cmd: "echo run >> ../runs.txt" });
    await grid().assign("w1", session, [t1]);
    await grid().final("w1", session, "t1");
    // The same assignment rewritten (as a leader does for other tasks) does not run t1 again.
    await grid().assign("w1", session, [t1, assigned("t2", { cmd: "true" })]);
    await grid().final("w1", session, "t2");
    await grid().assign("w1", session, [{ ...t1, attempt: 2 }]);
    await grid().final("w1", session, "t1", 2);

    expect(await readFile(join(grid().cwd, "w1", "runs.txt"), "utf8")).toBe("run\nrun\n");
  });

  it("kills a running task that leaves the assignment and reports it cancelled", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "sleep 60 & echo $! > child.pid; wait" })]);
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    await grid().assign("w1", session, []);

    expect(await grid().final("w1", session, "t1")).toMatchObject({ state: "cancelled", signal: "SIGTERM" });
    await waitFor(async () => !(await isRunning(child)), {
      message: "the cancelled task's child to be gone",
    });
  });

  for (const launcher of ["perl", "spawn"] as const) {
    it(`sends SIGTERM to a task cancelled as soon as it is reported running (${launcher} launcher)`, async () => {
      const worker = await grid().start("w1", launcher === "spawn" ? { perl: false } : {});
      expect(worker.taskLauncher).toBe(launcher);
      const session = worker.sessionId!;
      // The cancel is written the moment the worker reports the task running.
      const cancelled = nextEvent(
        worker,
        (e) => e.type === "update" && e.update.id === "t1" && e.update.state === "running",
      ).then(() => grid().assign("w1", session, []));
      await grid().assign("w1", session, [
        assigned("t1", { cmd: "trap 'echo term > $ZKGRID_OUTPUT_DIR/got-term; exit 143' TERM; sleep 30" }),
      ]);
      await cancelled;

      expect(await grid().final("w1", session, "t1")).toMatchObject({ state: "cancelled" });
      expect(await readFile(join(grid().cwd, "w1", "t1", "got-term"), "utf8")).toBe("term\n");
    });
  }

  for (const launcher of ["perl", "spawn"] as const) {
    it(`sends SIGTERM to a task killed while its launch is under way (${launcher} launcher)`, async () => {
      const worker = await grid().start("w1", launcher === "spawn" ? { perl: false } : {});
      const session = worker.sessionId!;
      // The assignment event follows the launch request at once: the stop's kill comes right after it.
      const stopped = nextEvent(worker, (e) => e.type === "assignment").then(() =>
        worker.stop({ graceMs: 0 }),
      );
      await grid().assign("w1", session, [assigned("t1", { cmd: "sleep 30" })]);
      await stopped;

      expect(await grid().final("w1", session, "t1")).toMatchObject({ state: "returned", signal: "SIGTERM" });
    });
  }

  it("reports a held task that has not started as cancelled, without startedAt, when it leaves the assignment", async () => {
    const worker = await grid().start("w1", { concurrency: 1, prefetch: 1 });
    const session = worker.sessionId!;
    const t1 = assigned("t1", { cmd: "echo $$ > pid; sleep 20" });
    await grid().assign("w1", session, [t1, assigned("t2", { cmd: "sleep 20" })]);
    await readPidFile(join(grid().cwd, "w1", "t1", "pid"));
    await grid().assign("w1", session, [t1]);

    const final = await grid().final("w1", session, "t2");
    expect(final).toMatchObject({ id: "t2", attempt: 1, state: "cancelled" });
    expect(final.startedAt).toBeUndefined();
    expect(existsSync(join(grid().cwd, "w1", "t2"))).toBe(false);
  });
});
