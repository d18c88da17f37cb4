import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expireSession, waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { WorkerEvent, WorkerState } from "../src/index.js";
import { assigned, gridPerTest, isRunning, layout, nextEvent, readPidFile } from "./helpers.js";

const grid = gridPerTest();

const SLEEPER = "sleep 60 & echo $! > child.pid; wait";

describe("stopping", () => {
  it("stop() hands back every unfinished task as returned, then unregisters and closes", async () => {
    const worker = await grid().start("w1", { concurrency: 1 });
    const session = worker.sessionId!;
    const states: WorkerState[] = [];
    const collecting = (async () => {
      for await (const event of worker.events()) if (event.type === "state") states.push(event.state);
    })();
    await grid().assign("w1", session, [
      assigned("t-running", { cmd: SLEEPER }),
      assigned("t-waiting1", { cmd: "true" }),
      assigned("t-waiting2", { cmd: "true" }),
    ]);
    const child = await readPidFile(join(grid().cwd, "w1", "t-running", "child.pid"));

    await worker.stop({ graceMs: 100 });
    await collecting; // the iteration ends with STOPPED

    expect(states).toEqual(["STOPPING", "DRAINING", "STOPPED"]);
    expect(worker.state).toBe("STOPPED");
    const finals = (await grid().updates("w1", session)).filter((u) => u.state !== "running");
    expect(finals).toHaveLength(3);
    const byId = new Map(finals.map((u) => [u.id, u]));
    expect(byId.get("t-running")).toMatchObject({ state: "returned", startedAt: expect.any(Number) });
    expect(byId.get("t-waiting1")?.state).toBe("returned");
    expect(byId.get("t-waiting1")?.startedAt).toBeUndefined();
    expect(byId.get("t-waiting2")?.state).toBe("returned");
    expect(await grid().zk.exists(layout.worker("w1"))).toBeNull();
    expect(await isRunning(child)).toBe(false);
    expect(await readdir(join(grid().cwd, "w1"))).not.toContain(".lock");
  });

  it("stop() with prefetch returns the held tasks and writes every final status, held ones included", async () => {
    const worker = await grid().start("w1", { concurrency: 1, prefetch: 4 });
    const session = worker.sessionId!;
    await grid().assign("w1", session, [
      assigned("t-quick", { cmd: "true" }),
      assigned("t-running", { cmd: SLEEPER }),
      assigned("t-held1", { cmd: "true" }),
      assigned("t-held2", { cmd: "true" }),
      assigned("t-held3", { cmd: "true" }),
    ]);
    await readPidFile(join(grid().cwd, "w1", "t-running", "child.pid"));

    await worker.stop({ graceMs: 100 });

    const finals = (await grid().updates("w1", session)).filter((u) => u.state !== "running");
    expect(Object.fromEntries(finals.map((u) => [u.id, u.state]))).toEqual({
      "t-quick": "succeeded",
      "t-running": "returned",
      "t-held1": "returned",
      "t-held2": "returned",
      "t-held3": "returned",
    });
  });

  it("stop() returns held tasks at once, while a running task still has its grace period", async () => {
    const worker = await grid().start("w1", { concurrency: 1, prefetch: 3 });
    const session = worker.sessionId!;
    await grid().assign("w1", session, [
      assigned("t-running", { cmd: SLEEPER }),
      assigned("t-held1", { cmd: "true" }),
      assigned("t-held2", { cmd: "true" }),
    ]);
    const child = await readPidFile(join(grid().cwd, "w1", "t-running", "child.pid"));

    const stopped = worker.stop({ graceMs: 600_000 });
    const returned = await waitFor(async () => {
      const finals = (await grid().updates("w1", session)).filter((u) => u.state === "returned");
      return finals.length === 2 ? finals.map((u) => u.id).sort() : undefined;
    });
    expect(returned).toEqual(["t-held1", "t-held2"]);
    expect(await isRunning(child)).toBe(true);
    expect(worker.state).toBe("DRAINING");

    await worker.stop({ graceMs: 0 });
    await stopped;
    expect(await isRunning(child)).toBe(false);
  });

  it("stop() lets a running task finish within the grace period", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [
      assigned("t1", { cmd: "while [ ! -e go ]; do sleep 0.05; done; echo done" }),
    ]);
    await waitFor(async () => (await grid().updates("w1", session)).some((u) => u.state === "running"));

    const draining = nextEvent(worker, (e) => e.type === "state" && e.state === "DRAINING");
    const stopped = worker.stop({ graceMs: 60_000 });
    await draining;
    await writeFile(join(grid().cwd, "w1", "t1", "go"), "");
    await stopped;

    const final = (await grid().updates("w1", session)).find((u) => u.id === "t1" && u.state !== "running");
    expect(final).toMatchObject({ state: "succeeded", stdoutTail: "done\n" });
  });
});

describe("embedding", () => {
  it("runs on a client the host process brings, and leaves it open when it stops", async () => {
    const client = await grid().client();
    const worker = await grid().start("w1", { client });
    expect(worker.sessionId).toBe(client.sessionId);
    await grid().assign("w1", client.sessionId!, [assigned("t1", { cmd: "true" })]);
    expect((await grid().final("w1", client.sessionId!, "t1")).state).toBe("succeeded");

    await worker.stop();

    expect(client.state).toBe("connected");
    expect(await client.exists(layout.worker("w1"))).toBeNull();
  });
});

describe("losing the session", () => {
  it("on session expiry kills the old session's task and re-registers with a new report dir", async () => {
    const worker = await grid().start("w1");
    const first = worker.sessionId!;
    const cmd = `if [ "$ZKGRID_TASK_ATTEMPT" = 1 ]; then ${SLEEPER}; fi; echo attempt $ZKGRID_TASK_ATTEMPT`;
    await grid().assign("w1", first, [assigned("t1", { cmd })]);
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    const ended = nextEvent(
      worker,
      (e): e is Extract<WorkerEvent, { type: "session-ended" }> => e.type === "session-ended",
    );
    const registered = nextEvent(
      worker,
      (e): e is Extract<WorkerEvent, { type: "registered" }> => e.type === "registered",
    );

    await expireSession(grid().connectString, worker.client.sessionCredentials()!);

    expect(await ended).toMatchObject({ sessionId: first, reason: "expired" });
    const second = (await registered).sessionId;
    expect(second).not.toBe(first);
    expect(worker.sessionId).toBe(second);
    await waitFor(async () => !(await isRunning(child)), { message: "the old session's task to be killed" });
    expect(await grid().registration("w1")).toMatchObject({ session: second });
    expect(await grid().zk.exists(layout.reportDir("w1", second))).not.toBeNull();
    // The killed attempt's result was dropped, not reported.
    const old = await grid().updates("w1", first);
    expect(old.filter((u) => u.state !== "running")).toEqual([]);

    // The leader hands the task out again on the new session.
    await grid().assign("w1", second, [assigned("t1", { cmd }, 2)]);
    expect(await grid().final("w1", second, "t1", 2)).toMatchObject({
      state: "succeeded",
      stdoutTail: "attempt 2\n",
    });
  });

  it("once fenced (registration and report dir deleted) kills the session's tasks and starts nothing more on it", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: SLEEPER })]);
    const child = await readPidFile(join(grid().cwd, "w1", "t1", "child.pid"));
    const fenced = nextEvent(worker, (e) => e.type === "session-ended" && e.reason === "fenced");

    // The leader fences a session once its registration is gone; the next report (t2's) finds its dir gone.
    await grid().zk.delete(layout.worker("w1"));
    await grid().zk.deleteRecursive(layout.reportDir("w1", session));
    await grid().assign("w1", session, [assigned("t1", { cmd: SLEEPER }), assigned("t2", { cmd: "true" })]);
    await fenced;

    await waitFor(async () => !(await isRunning(child)), {
      message: "the fenced session's task to be killed",
    });
    const seen = nextEvent(worker, (e) => e.type === "assignment" && e.tasks.some((t) => t.id === "t3"));
    await grid().assign("w1", session, [assigned("t3", { cmd: "true" })]);
    await seen;
    expect(await readdir(join(grid().cwd, "w1"))).not.toContain("t3");
    // The killed run lets go once its process group is gone and its files are closed, which can
    // come after the assignment above was read.
    await waitFor(async () => worker.running === 0, { message: "the killed run to end" });
    expect(await readdir(join(grid().cwd, "w1"))).not.toContain("t3");
  });

  it("a report dir deleted by another client while the session lives is made again, and its statuses reported again", async () => {
    const worker = await grid().start("w1");
    const session = worker.sessionId!;
    await grid().assign("w1", session, [assigned("t1", { cmd: "echo one" })]);
    expect(await grid().final("w1", session, "t1")).toMatchObject({
      state: "succeeded",
      stdoutTail: "one\n",
    });

    // Not the leader: it fences only sessions whose registration is gone, and this one's is not.
    await grid().zk.deleteRecursive(layout.reportDir("w1", session));
    await grid().assign("w1", session, [
      assigned("t1", { cmd: "echo one" }),
      assigned("t2", { cmd: "echo two" }),
    ]);

    // t2's report finds the dir gone; t1's status, lost with the dir, comes again (t1 is still assigned).
    expect(await grid().final("w1", session, "t2")).toMatchObject({
      state: "succeeded",
      stdoutTail: "two\n",
    });
    expect(await grid().final("w1", session, "t1")).toMatchObject({
      state: "succeeded",
      stdoutTail: "one\n",
    });
    expect(worker.sessionId).toBe(session);
    expect(grid().logs.some((l) => l.level === "warn" && l.msg.includes("was deleted while session"))).toBe(
      true,
    );

    // The session keeps taking work.
    await grid().assign("w1", session, [assigned("t3", { cmd: "echo three" })]);
    expect(await grid().final("w1", session, "t3")).toMatchObject({
      state: "succeeded",
      stdoutTail: "three\n",
    });
  });
});
