import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, digestAcl, errors, formatAcl, Perms, type ZkClient } from "@zkgrid/core";
import { startMaster } from "@zkgrid/master";
import { connectGrid } from "@zkgrid/submit";
import { startServer, waitFor, type ZkServer } from "@zkgrid/testing";
import { silentLogger, startWorker } from "@zkgrid/worker";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { BIN, type Proc, TestGrid } from "./grid.js";

// Unique, so that finding it anywhere (ps, logs) can only mean a leak.
const PASSWORD = `pw-${randomUUID()}`;
const GRID = `grid:${PASSWORD}`;
const OTHER = `eve:eve-${randomUUID()}`;

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

function credentialsFile(dir: string, name: string, credentials: string): string {
  const path = join(dir, `${name}.cred`);
  writeFileSync(path, `# ${name}\n${credentials}\n`, { mode: 0o600 });
  return path;
}

async function exitOf(proc: Proc): Promise<number | null> {
  return proc.exited;
}

describe("a grid on a server that refuses unauthenticated clients, with ACLs", () => {
  let server: ZkServer;
  let g: TestGrid;
  let gridCred: string;
  let otherCred: string;
  let master: Proc;
  let worker: Proc;
  let envWorker: Proc;
  const clients: ZkClient[] = [];

  beforeAll(async () => {
    server = await startServer({ requireAuth: true });
    g = new TestGrid(server.connectString, { auth: GRID });
    gridCred = credentialsFile(g.dir, "grid", GRID);
    otherCred = credentialsFile(g.dir, "eve", OTHER);
    master = g.master("m1", ["--auth", gridCred, "--log-level", "debug"]);
    worker = g.worker("w1", ["--auth", gridCred, "--labels", "file", "--log-level", "debug"]);
    // Credentials in the environment are visible to `ps e`; its tasks still must not inherit them.
    envWorker = g.worker("w2", ["--labels", "env", "--log-level", "debug"], { ZKGRID_AUTH: GRID });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail") console.error(g.transcript());
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await g?.close();
    await server?.stop();
  });

  it("runs a task end to end; the password is in no argv, no task's environment and no log", async () => {
    const ran = await g.submit(["--auth", gridCred, "--cmd", "echo ran", "--wait", "--json"]);
    expect(ran.stderr).toBe("");
    expect(ran.code).toBe(0);
    expect(JSON.parse(lines(ran.stdout)[0] ?? "{}")).toMatchObject({
      state: "succeeded",
      stdoutTail: "ran\n",
    });

    // Two tasks that stay running while ps looks: one on each worker.
    const tasks = [
      { id: "on-file", cmd: "echo $$ > task.pid; exec sleep 120", labels: ["file"] },
      { id: "on-env", cmd: "echo $$ > task.pid; exec sleep 120", labels: ["env"] },
    ];
    const sent = await g.submit(["--auth", gridCred], tasks.map((t) => JSON.stringify(t)).join("\n"));
    expect(sent.code).toBe(0);
    const pidFiles = [join(g.dir, "w1", "on-file", "task.pid"), join(g.dir, "w2", "on-env", "task.pid")];
    await waitFor(() => pidFiles.every((f) => existsSync(f) && readFileSync(f, "utf8").endsWith("\n")), {
      timeoutMs: 60_000,
      message: "both tasks running",
    });
    const taskPids = pidFiles.map((f) => readFileSync(f, "utf8").trim());

    expect(execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })).not.toContain(PASSWORD);
    const environment = (pids: Array<number | string | undefined>) =>
      execFileSync("ps", ["eww", "-o", "args=", "-p", pids.join(",")], { encoding: "utf8" });
    const quiet = environment([master.child.pid, worker.child.pid, ...taskPids]);
    // ps does show the environments: the tasks' own variables are there.
    expect(quiet).toContain("ZKGRID_TASK_ID=on-env");
    expect(quiet).toContain("ZKGRID_TASK_ID=on-file");
    expect(quiet).not.toContain(PASSWORD);
    // The one place it is: the environment of the worker that was given ZKGRID_AUTH.
    expect(environment([envWorker.child.pid])).toContain(PASSWORD);

    const cancelled = await g.submit(["cancel", "--auth", gridCred, "on-file", "on-env"]);
    expect(cancelled.stderr).toBe("");
    expect(cancelled.code).toBe(0);
    const status = await g.submit(["status", "--auth", gridCred, "--json"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ leader: { name: "m1" } });

    for (const text of [g.transcript(), ran.stdout, ran.stderr, sent.stdout, sent.stderr, status.stdout]) {
      expect(text).not.toContain(PASSWORD);
    }
    // The logs are there to look in (debug level).
    expect(master.output()).toContain("session established");
  });

  it("a client without credentials can neither submit nor read results, and says why", async () => {
    const submitted = await g.submit(["--cmd", "echo sneaky"]);
    expect(submitted.code).toBe(1);
    expect(submitted.stderr).toMatch(/authentication required/);
    const status = await g.submit(["status"]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/authentication required/);

    const anonymous = await connect({ connectString: server.connectString });
    clients.push(anonymous);
    const read = await anonymous.getChildren(g.layout.results).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(errors.AuthRequiredError);
    await anonymous.closed();
  });

  it("a master or worker started without credentials exits 1 with the cause instead of retrying", async () => {
    const anonMaster = g.master("m-anon");
    const anonWorker = g.worker("w-anon");
    expect(await exitOf(anonMaster)).toBe(1);
    expect(await exitOf(anonWorker)).toBe(1);
    expect(anonMaster.output()).toMatch(/authentication required/);
    expect(anonWorker.output()).toMatch(/authentication required/);
  });

  it("a client with other credentials passes the server's check, but the ACLs keep it out", async () => {
    const refused = await g.submit(["--auth", otherCred, "--cmd", "echo sneaky"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not authorized/);

    const own = await g.zk();
    const resultNodes = await own.getChildren(g.layout.results);
    expect(resultNodes.length).toBeGreaterThan(0);
    const stranger = await connect({ connectString: server.connectString, auth: OTHER });
    clients.push(stranger);
    for (const attempt of [
      () => stranger.getChildren(g.layout.results),
      () => stranger.get(`${g.layout.results}/${resultNodes[0]}`),
      () => stranger.create(`${g.layout.queue}/q-`, "{}", "persistent-sequential"),
      () => stranger.getChildren(g.layout.workers),
    ]) {
      expect(await attempt().catch((e: unknown) => e)).toBeInstanceOf(errors.NoAuthError);
    }

    const otherMaster = g.master("m-eve", ["--auth", otherCred]);
    const otherWorker = g.worker("w-eve", ["--auth", otherCred]);
    expect(await exitOf(otherMaster)).toBe(1);
    expect(await exitOf(otherWorker)).toBe(1);
    expect(otherMaster.output()).toMatch(/not authorized/);
    expect(otherWorker.output()).toMatch(/not authorized/);
  });
});

describe("--auth on the command line", () => {
  it("every program refuses a literal user:password (exit 2), says how to pass it, and does not echo it", () => {
    const dir = mkdtempSync(join(tmpdir(), "zkgrid-auth-"));
    const runs: Array<[string, string[]]> = [
      [BIN.master, ["m1"]],
      [BIN.worker, ["w1", "--cwd", dir]],
      [BIN.submit, ["--cmd", "true"]],
      ...["status", "tasks", "dashboard"].map((c): [string, string[]] => [BIN.submit, [c]]),
      [BIN.submit, ["task", "t1"]],
      [BIN.submit, ["cancel", "t1"]],
    ];
    for (const [bin, args] of runs) {
      let status: number | null = null;
      let stderr = "";
      try {
        execFileSync(process.execPath, [bin, ...args, "--auth", GRID, "--connect", "127.0.0.1:1"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 20_000,
        });
      } catch (error) {
        const e = error as { status: number | null; stderr: string };
        status = e.status;
        stderr = e.stderr;
      }
      expect([args[0], status]).toEqual([args[0], 2]);
      expect(stderr).toMatch(/--auth takes the path of a file/);
      expect(stderr).toMatch(/ZKGRID_AUTH/);
      expect(stderr).not.toContain(PASSWORD);
    }
  });
});

describe("ACLs alone, on a server that lets anyone connect", () => {
  it("separate master, worker and submitter identities that list each other work; a stranger reads nothing", async () => {
    const root = `/e2e-${randomUUID()}`;
    const ids = { master: "master:m-secret", worker: "worker:w-secret", submit: "submit:s-secret" };
    const connectString = inject("zkConnectString");
    const aclFor = (self: string) =>
      Object.values(ids)
        .filter((c) => c !== self)
        .map((c) => digestAcl(c, Perms.ALL));
    const cwd = mkdtempSync(join(tmpdir(), "zkgrid-auth-"));
    const master = await startMaster({
      name: "m1",
      connectString,
      root,
      auth: ids.master,
      acl: aclFor(ids.master),
    });
    const worker = await startWorker({
      name: "w1",
      connectString,
      root,
      cwd,
      auth: ids.worker,
      acl: aclFor(ids.worker),
      logger: silentLogger,
    });
    const grid = await connectGrid({ connectString, root, auth: ids.submit, acl: aclFor(ids.submit) });
    const stranger = await connect({ connectString });
    try {
      const [id] = await grid.submit([{ cmd: "echo separate" }]);
      const results = await grid.wait([id!], { timeoutMs: 60_000 });
      expect(results.get(id!)).toMatchObject({ state: "succeeded", stdoutTail: "separate\n" });

      // ZKGRID_ACL's form of the same entries parses back to them.
      expect(aclFor(ids.master).map(formatAcl).join(",")).toMatch(
        /^digest:worker:[^:]+:cdrwa,digest:submit:/,
      );
      const layout = grid.layout;
      // A lone task goes straight to the worker, so its result can come before the leader has put its
      // ACL on the worker's (empty) assignment node: the window between a create and its setAcl.
      await waitFor(
        async () => {
          const got = await grid.zk.getAcl(layout.assign("w1")).catch(() => undefined);
          return got?.acl.every((entry) => entry.scheme === "digest") === true;
        },
        { timeoutMs: 30_000, message: "the assignment node's ACL" },
      );
      for (const attempt of [
        () => stranger.getChildren(layout.results),
        () => stranger.getChildren(layout.queue),
        () => stranger.create(`${layout.queue}/q-`, "{}", "persistent-sequential"),
        () => stranger.set(layout.assign("w1"), "{}"),
      ]) {
        expect(await attempt().catch((e: unknown) => e)).toBeInstanceOf(errors.NoAuthError);
      }
    } finally {
      await grid.close();
      await worker.stop({ graceMs: 0 });
      await master.stop();
      await stranger.close();
      const admin = await connect({ connectString, auth: ids.master });
      await admin.deleteRecursive(root).catch(() => {});
      await admin.close();
    }
  });
});
