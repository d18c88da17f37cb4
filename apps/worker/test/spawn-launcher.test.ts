import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { assigned, gridPerTest, isRunning, readPidFile, startWorkerBin, WORKER_BIN } from "./helpers.js";

const grid = gridPerTest();

const NO_PERL = "/nonexistent/perl";

describe("the task launcher", () => {
  it("uses Perl where it runs, and says so", async () => {
    const worker = await grid().start("w1");
    expect(worker.taskLauncher).toBe("perl");
    expect(
      grid().logs.some((l) => l.level === "info" && /^task launcher: perl \(\/.*perl.*\)$/.test(l.msg)),
    ).toBe(true);
  });

  it("where Perl is missing, spawns tasks itself, says what is lost, and runs commands end to end", async () => {
    const worker = await grid().start("w1", { perl: NO_PERL });
    expect(worker.taskLauncher).toBe("spawn");
    const warning = grid().logs.find((l) => l.msg.startsWith("task launcher: plain spawn"));
    expect(warning?.level).toBe("warn");
    expect(warning?.msg).toContain(`${NO_PERL} cannot be run (ENOENT)`);
    expect(warning?.msg).toContain("are not killed with it");

    const session = worker.sessionId!;
    const previous = process.env.ZKGRID_AUTH;
    process.env.ZKGRID_AUTH = "user:secret";
    try {
      await grid().assign("w1", session, [
        assigned("sh", {
          cmd: 'echo "hello:$GREETING:$ZKGRID_TASK_ID:[$ZKGRID_AUTH]"; echo oops >&2; pwd',
          env: { GREETING: "hi" },
          cwd: "sub",
        }),
        assigned("args", { cmd: "printf", args: ["%s|", "a b", "$HOME"] }),
        assigned("exit3", { cmd: "echo before; exit 3" }),
        assigned("missing", { cmd: "/nonexistent/program", args: [] }),
        assigned("badcwd", { cmd: "true", cwd: "/nonexistent/dir" }),
      ]);
      const dir = join(grid().cwd, "w1", "sh");
      expect(await grid().final("w1", session, "sh")).toMatchObject({
        state: "succeeded",
        exitCode: 0,
        outputDir: "w1/sh",
        stdoutTail: `hello:hi:sh:[]\n${join(dir, "sub")}\n`,
        stderrTail: "oops\n",
      });
      expect(await readFile(join(dir, "stdout.txt"), "utf8")).toBe(`hello:hi:sh:[]\n${join(dir, "sub")}\n`);
      expect(JSON.parse(await readFile(join(dir, "result.json"), "utf8"))).toMatchObject({
        state: "succeeded",
        exitCode: 0,
      });
      expect(await grid().final("w1", session, "args")).toMatchObject({
        state: "succeeded",
        stdoutTail: "a b|$HOME|",
      });
      expect(await grid().final("w1", session, "exit3")).toMatchObject({
        state: "failed",
        exitCode: 3,
        stdoutTail: "before\n",
      });
      const missing = await grid().final("w1", session, "missing");
      expect(missing.state).toBe("failed");
      expect(missing.error).toBe("could not start /nonexistent/program: ENOENT (No such file or directory)");
      expect(missing.startedAt).toBeUndefined();
      expect((await grid().final("w1", session, "badcwd")).error).toBe(
        "cwd /nonexistent/dir is not a directory",
      );
    } finally {
      if (previous === undefined) delete process.env.ZKGRID_AUTH;
      else process.env.ZKGRID_AUTH = previous;
    }
  });

  it("without Perl, a timeout and a cancel still kill the task's whole process group", async () => {
    const worker = await grid().start("w1", { perl: NO_PERL });
    const session = worker.sessionId!;
    const tree = "sleep 60 & echo $! > child.pid; wait";
    await grid().assign("w1", session, [
      assigned("slow", { cmd: tree, timeoutMs: 300 }),
      assigned("cancelled", { cmd: tree }),
    ]);
    expect(await grid().final("w1", session, "slow")).toMatchObject({
      state: "timed-out",
      signal: "SIGTERM",
    });
    const slowChild = await readPidFile(join(grid().cwd, "w1", "slow", "child.pid"));
    await waitFor(async () => !(await isRunning(slowChild)), {
      message: "the timed-out task's child to be gone",
    });

    const cancelledChild = await readPidFile(join(grid().cwd, "w1", "cancelled", "child.pid"));
    await grid().assign("w1", session, [], 2);
    expect(await grid().final("w1", session, "cancelled")).toMatchObject({ state: "cancelled" });
    await waitFor(async () => !(await isRunning(cancelledChild)), {
      message: "the cancelled task's child to be gone",
    });
  });

  it("without Perl, stop() returns a task that outlives the grace and kills its process group", async () => {
    const worker = await grid().start("w1", { perl: NO_PERL });
    const session = worker.sessionId!;
    // Ignores SIGTERM: only the SIGKILL after killGraceMs ends it.
    await grid().assign("w1", session, [
      assigned("t1", { cmd: "trap '' TERM; sleep 60 & echo $! > child.pid; wait" }),
    ]);
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    await worker.stop({ graceMs: 100 });
    expect(worker.state).toBe("STOPPED");
    const updates = await grid().updates("w1", session);
    expect(updates.find((u) => u.id === "t1" && u.state !== "running")).toMatchObject({ state: "returned" });
    await waitFor(async () => !(await isRunning(child)), { message: "the returned task's child to be gone" });
  });

  it("the bin with no perl on its PATH spawns tasks itself and runs them", async () => {
    // An empty folder as the whole PATH: no perl. /bin/sh is called by its path, echo is built in.
    const empty = await mkdtemp(join(tmpdir(), "zkgrid-no-perl-"));
    try {
      const bin = startWorkerBin(grid(), ["w1", "--cwd", grid().cwd, "--session-timeout", "4s"], {
        env: { PATH: empty, ZKGRID_PERL: undefined },
      });
      const registration = await waitFor(() => grid().registration("w1"), { message: "the bin to register" });
      expect(bin.stderr()).toContain("task launcher: plain spawn, since perl cannot be run (ENOENT)");
      await grid().assign("w1", registration.session, [assigned("t1", { cmd: "echo from-the-bin" })]);
      expect(await grid().final("w1", registration.session, "t1")).toMatchObject({
        state: "succeeded",
        stdoutTail: "from-the-bin\n",
      });
      bin.child.kill("SIGTERM");
      expect((await bin.exited).code).toBe(0);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it("the bin takes --perl and refuses an empty one", async () => {
    const bin = startWorkerBin(grid(), ["w1", "--cwd", grid().cwd, "--perl", NO_PERL]);
    const registration = await waitFor(() => grid().registration("w1"), { message: "the bin to register" });
    expect(bin.stderr()).toContain(`${NO_PERL} cannot be run (ENOENT)`);
    await grid().assign("w1", registration.session, [assigned("t1", { cmd: "echo ok" })]);
    expect(await grid().final("w1", registration.session, "t1")).toMatchObject({ state: "succeeded" });
    bin.child.kill("SIGTERM");
    expect((await bin.exited).code).toBe(0);

    const empty = await startWorkerBin(grid(), ["w2", "--perl", ""]).exited;
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("--perl: must not be empty");
  });
});

describe("the task launcher without Perl, when the worker process ends", () => {
  it("kills the running tasks' process groups when the worker exits through an uncaught error", async () => {
    // A separate process: it starts a worker in spawn mode, prints its session, and throws on SIGUSR2.
    const script = `
      import { startWorker } from ${JSON.stringify(pathToFileURL(join(dirname(WORKER_BIN), "index.js")).href)};
      const worker = await startWorker({
        name: "w1", connectString: process.env.ZK, root: process.env.ROOT, cwd: process.env.CWD,
        sessionTimeoutMs: 4000, perl: false, logger: () => {},
      });
      process.on("SIGUSR2", () => { throw new Error("boom"); });
      process.stdout.write(worker.sessionId + "\\n");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, ZK: grid().connectString, ROOT: grid().root, CWD: grid().cwd },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    try {
      const session = await waitFor(() => /^(\S+)\n/.exec(stdout)?.[1], {
        message: "the worker to register",
      });
      await grid().assign("w1", session, [assigned("t1", { cmd: "sleep 60 & echo $! > child.pid; wait" })]);
      const sleeper = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
      expect(await isRunning(sleeper)).toBe(true);

      child.kill("SIGUSR2");
      expect(await exited).toBe(1);
      await waitFor(async () => !(await isRunning(sleeper)), { message: "the task's child to be killed" });
    } finally {
      child.kill("SIGKILL");
    }
  });
});
