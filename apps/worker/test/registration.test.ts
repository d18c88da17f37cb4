import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { encodeWorkerRegistration } from "@zkgrid/protocol";
import { expireSession, waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import {
  startWorker,
  VERSION,
  WorkerLockedError,
  WorkerNameTakenError,
  WorkerOptionError,
} from "../src/index.js";
import { gridPerTest, layout } from "./helpers.js";

const grid = gridPerTest();

describe("registration", () => {
  it("registers its name, capacity, labels and session, with its report dir in place", async () => {
    const worker = await grid().start("w1", { concurrency: 3, labels: ["gpu", "linux"] });

    expect(worker.state).toBe("RUNNING");
    const session = worker.sessionId!;
    expect(await grid().registration("w1")).toEqual({
      v: 1,
      name: "w1",
      host: hostname(),
      pid: process.pid,
      capacity: 3,
      labels: ["gpu", "linux"],
      version: VERSION,
      startedAt: expect.any(Number),
      session,
      // The answer stream, on the address the worker reaches this loopback server from.
      answers: { host: "127.0.0.1", port: expect.any(Number) },
    });
    const stat = await grid().zk.exists(layout.worker("w1"));
    expect(stat?.ephemeralOwner).toBe(session);
    expect(await grid().zk.exists(layout.reportDir("w1", session))).not.toBeNull();
  });

  it("refuses bad options with a WorkerOptionError naming the option, before it connects", async () => {
    for (const [options, option] of [
      [{ concurrency: 0 }, "concurrency"],
      [{ prefetch: -1 }, "prefetch"],
      [{ prefetch: 1.5 }, "prefetch"],
      [{ concurrency: 60_000, prefetch: 60_000 }, "prefetch"],
      [{ graceMs: Number.NaN }, "graceMs"],
      [{ killGraceMs: -1 }, "killGraceMs"],
      [{ sessionTimeoutMs: 0 }, "sessionTimeoutMs"],
      [{ labels: ["no spaces"] }, "labels"],
      [{ perl: "" }, "perl"],
    ] as const) {
      const error = await startWorker(grid().workerOptions("w1", options)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerOptionError);
      expect(error).toMatchObject({ option });
    }
    expect(await grid().registration("w1")).toBeNull();
  });

  it("refuses a second worker with a live name, naming the live one", async () => {
    const first = await grid().start("w1");
    const otherCwd = await mkdtemp(join(tmpdir(), "zkgrid-worker-test-"));

    const second = startWorker(grid().workerOptions("w1", { cwd: otherCwd, nameWaitMs: 500 }));
    const error = await second.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkerNameTakenError);
    const taken = error as WorkerNameTakenError;
    expect(taken.holder).toEqual({ host: hostname(), pid: process.pid, session: first.sessionId });
    expect(taken.message).toContain(`session ${first.sessionId}`);
    expect(taken.message).toContain(`pid ${process.pid}`);
    expect((await grid().registration("w1"))?.session).toBe(first.sessionId);
    expect(first.state).toBe("RUNNING");
  });

  it("refuses a second local worker with the same name and cwd at once, by its lock file", async () => {
    await grid().start("w1");

    await expect(startWorker(grid().workerOptions("w1"))).rejects.toBeInstanceOf(WorkerLockedError);
  });

  it("accepts the same name once the crashed holder's session ends, and takes over a stale lock", async () => {
    // A crashed worker: its registration lives on with its session, its lock names a dead pid.
    const ghost = await grid().client();
    await ghost.ensurePath(layout.workers);
    await ghost.create(
      layout.worker("w1"),
      encodeWorkerRegistration({
        v: 1,
        name: "w1",
        host: "ghost",
        pid: 999_999,
        capacity: 1,
        labels: [],
        version: "0.0.0",
        startedAt: 1,
        session: ghost.sessionId!,
      }),
      "ephemeral",
    );
    const deadPid = spawnSync("true").pid!;
    await mkdir(join(grid().cwd, "w1"), { recursive: true });
    await writeFile(join(grid().cwd, "w1", ".lock"), `${deadPid}\n`);

    const ghostSession = ghost.sessionId!;

    const starting = startWorker(grid().workerOptions("w1", { nameWaitMs: 60_000 }));
    await waitFor(() => grid().logs.some((l) => l.msg.includes(`held by session ${ghostSession}`)));
    await expireSession(grid().connectString, ghost.sessionCredentials()!);
    const worker = await starting;
    grid().workers.push(worker);

    expect(worker.sessionId).not.toBe(ghostSession);
    expect(await grid().registration("w1")).toMatchObject({ host: hostname(), session: worker.sessionId });
  });
});
