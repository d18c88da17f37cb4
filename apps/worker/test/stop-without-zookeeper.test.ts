import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { startServer, waitFor, type ZkServer } from "@zkgrid/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { assigned, Grid, isRunning, readPidFile, startWorkerBin } from "./helpers.js";

// Each test stops its own ZooKeeper, so it runs one rather than the shared one.
let server: ZkServer;
let grid: Grid;
beforeEach(async () => {
  server = await startServer();
  grid = await Grid.create(server.connectString);
});
afterEach(async () => {
  if (!server.running) await server.restart();
  await grid.cleanup();
  await server.stop();
});

const SLEEPER = "sleep 60 & echo $! > child.pid; wait";
const readText = (file: string) => readFile(file, "utf8").catch(() => "");

describe("a worker whose ZooKeeper stops at the moment it is told to stop", () => {
  it("exits after SIGTERM, kills its tasks at the grace and leaves their output on disk", async () => {
    const bin = startWorkerBin(grid, ["w1", "--cwd", grid.cwd, "--grace", "2s", "--concurrency", "2"]);
    const registration = await waitFor(() => grid.registration("w1"), { message: "the bin to register" });
    await grid.assign("w1", registration.session, [
      assigned("t-long", { cmd: SLEEPER }),
      assigned("t-short", { cmd: "echo started > out.txt; sleep 1; echo finished >> out.txt" }),
    ]);
    const child = await readPidFile(join(grid.cwd, "w1", "t-long", "child.pid"));
    const out = join(grid.cwd, "w1", "t-short", "out.txt");
    await waitFor(async () => (await readText(out)).startsWith("started"), { message: "t-short to start" });

    // As a clean-up script does: SIGTERM to the worker and to ZooKeeper at once.
    bin.child.kill("SIGTERM");
    await server.stop();
    const { code, stderr } = await bin.exited;

    expect({ code, signal: bin.child.signalCode }, stderr).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("stopping without ZooKeeper");
    expect(await isRunning(child)).toBe(false);
    // t-short finished within the grace: its output stays though its report could not be written.
    expect(await readText(out)).toBe("started\nfinished\n");
  });

  it("exits after SIGTERM with no task running, though it cannot delete its registration", async () => {
    const bin = startWorkerBin(grid, ["w1", "--cwd", grid.cwd]);
    // Its own word, not the node: the node can exist before the worker has heard the reply.
    await waitFor(() => bin.stderr().includes("registered on session"), { message: "the bin to register" });

    // ZooKeeper first, so that the delete of the registration cannot slip in before it goes.
    await server.kill();
    bin.child.kill("SIGTERM");
    const { code, stderr } = await bin.exited;

    expect({ code, signal: bin.child.signalCode }, stderr).toEqual({ code: 0, signal: null });
    // It gave up on ZooKeeper rather than waiting for the delete to time out.
    expect(stderr).toContain("stopping without ZooKeeper");
  });
});
