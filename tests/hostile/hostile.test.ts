import { mkdirSync, readdirSync, statSync } from "node:fs";
import { type AddressInfo, connect as connectTcp, createServer, type Socket } from "node:net";
import { join, relative } from "node:path";
import { isNoNode, type ZkClient } from "@zkgrid/core";
import {
  decodeDirectAnswer,
  decodeWorkerRegistration,
  encodeAnswerHello,
  encodeWorkerRegistration,
  isValidTaskId,
  MAX_MESSAGE_BYTES,
  newAnswerKey,
  type TaskStatus,
  unnamedTaskId,
} from "@zkgrid/protocol";
import { connectGrid } from "@zkgrid/submit";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { Cluster } from "../chaos/cluster.js";
import { hostileCorpus, type QueueCase, validTask } from "./corpus.js";
import { clusterPerTest, expectValidTasksSucceed, waitForLeader } from "./harness.js";

const SEED = Number(process.env.HOSTILE_SEED ?? 20_241_125);
const SESSION_TIMEOUT_MS = 4000;

const newCluster = clusterPerTest(SESSION_TIMEOUT_MS);
const start = (): Cluster => newCluster("hostile");

/**
 * A cluster with masters m1 (leading) and m2, and workers w1 and w2 whose working directory is nested two
 * deep; with the suite's client.
 */
async function startGrid(): Promise<{
  c: Cluster;
  zk: ZkClient;
  layout: Cluster["layout"];
  workCwd: string;
}> {
  const c = start();
  const workCwd = join(c.dir, "nest", "work");
  mkdirSync(workCwd, { recursive: true });
  c.startMaster("m1");
  await waitForLeader(c, "m1");
  c.startMaster("m2");
  c.startWorker("w1", { cwd: workCwd, concurrency: 4 });
  c.startWorker("w2", { cwd: workCwd, concurrency: 4 });
  await waitFor(async () => (await c.workerSession("w1")) && (await c.workerSession("w2")), {
    timeoutMs: 60_000,
    message: "workers to register",
  });
  return { c, zk: await c.zk(), layout: c.layout, workCwd };
}

/** A raw connection to a worker's answer stream: what it received, line by line, and whether it closed. */
async function openTap(address: { host: string; port: number }): Promise<{
  socket: Socket;
  lines(): string[];
  readonly closed: boolean;
}> {
  const socket = connectTcp({ host: address.host, port: address.port });
  let received = "";
  let closed = false;
  socket.on("data", (chunk) => {
    received += chunk.toString();
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return {
    socket,
    lines: () => received.split("\n").slice(0, -1),
    get closed() {
      return closed;
    },
  };
}

function byId(results: TaskStatus[]): Map<string, TaskStatus[]> {
  const out = new Map<string, TaskStatus[]>();
  for (const r of results) out.set(r.id, [...(out.get(r.id) ?? []), r]);
  return out;
}

/** Every file under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(`${relative(base, path)}/`, ...walk(path, base));
    else out.push(relative(base, path));
  }
  return out;
}

/**
 * Nothing may be written outside a worker's output folders: the run dir holds only logs, the (empty)
 * default work dir and the nested one; the nested one only the workers' dirs, and those only task
 * folders of valid tasks with the files a worker writes.
 */
function expectNothingOutsideOutputFolders(c: Cluster, workCwd: string, validIds: Set<string>): void {
  expect(readdirSync(c.dir).sort()).toEqual(["logs", "nest", "work"]);
  expect(readdirSync(c.workDir)).toEqual([]);
  expect(readdirSync(join(c.dir, "nest"))).toEqual(["work"]);
  const strays: string[] = [];
  for (const path of walk(workCwd)) {
    const [worker, task, file, ...deeper] = path.split("/");
    if (worker !== "w1" && worker !== "w2") strays.push(path);
    else if (task === undefined || task === "") continue;
    else if (task === ".lock" && file === undefined) continue;
    else if (!validIds.has(task)) strays.push(path);
    else if (file !== undefined && file !== "" && !["stdout.txt", "stderr.txt", "result.json"].includes(file))
      strays.push(path);
    else if (deeper.length > 0) strays.push(path);
  }
  expect(strays).toEqual([]);
}

/**
 * The grid still serves: valid tasks run, then again after the leading master is killed and the standby
 * rebuilds its state over whatever junk the test left. Returns the ids it ran.
 */
async function expectServesAcrossTakeover(c: Cluster, prefix: string): Promise<Set<string>> {
  const before = await expectValidTasksSucceed(c, `${prefix}-before`, 10);
  const leader = await c.leaderName();
  expect(leader).toBeDefined();
  await c.proc(leader as string)?.kill();
  c.startMaster(`${leader}-again`);
  const after = await expectValidTasksSucceed(c, `${prefix}-after`, 10);
  for (const p of c.procs) if (p.name !== leader) expect(p.alive, `${p.name} alive`).toBe(true);
  return new Set([...before, ...after]);
}

async function createQueueNode(zk: ZkClient, c: Cluster, data: Buffer, i: number): Promise<string> {
  // Half of them as a protected create, as the submit library does: the prefix is not part of the id.
  const path =
    i % 2 === 0
      ? await zk.create(`${c.layout.queue}/q`, data, "persistent-sequential")
      : await zk.createProtected(`${c.layout.queue}/q`, data, "persistent-sequential");
  return path.slice(path.lastIndexOf("/") + 1);
}

describe("hostile input written straight into ZooKeeper", () => {
  it("rejects each of more than 1000 malformed tasks and queue nodes with a reason, and runs the valid tasks beside them", async () => {
    const { c, zk, workCwd } = await startGrid();

    const corpus = hostileCorpus(SEED, "h");
    const caseCount = corpus.reduce((n, k) => n + k.rejected.length, 0);
    expect(caseCount).toBeGreaterThanOrEqual(2000);

    const expected = new Map<string, { reason: RegExp; label: string }>();
    const valid = new Set<string>();
    const written: Array<{ k: QueueCase; node: string }> = [];
    const half = Math.floor(corpus.length / 2);
    for (let i = 0; i < corpus.length; i += 16) {
      if (i >= half && i - 16 < half) {
        // Half-way: the leading master dies and the standby takes over with this corpus in the queue.
        await c.proc("m1")?.kill();
        c.startMaster("m3");
      }
      const chunk = corpus.slice(i, i + 16);
      const nodes = await Promise.all(chunk.map((k, j) => createQueueNode(zk, c, k.data, i + j)));
      chunk.forEach((k, j) => {
        written.push({ k, node: nodes[j] as string });
      });
    }
    for (const { k, node } of written) {
      for (const r of k.rejected) {
        const id = "id" in r.at ? r.at.id : unnamedTaskId(node, r.at.index);
        expect(isValidTaskId(id), `expected id ${id}`).toBe(true);
        expected.set(id, { reason: r.reason, label: r.what ?? k.label });
      }
      for (const id of k.valid) valid.add(id);
    }

    const all = await c.waitForResults([...expected.keys(), ...valid], 240_000);
    const results = byId(all);
    const problems: string[] = [];
    for (const [id, { reason, label }] of expected) {
      const got = results.get(id) ?? [];
      const first = got[0];
      if (got.length !== 1) problems.push(`${id} (${label}): ${got.length} final statuses`);
      if (first?.state !== "rejected") problems.push(`${id} (${label}): state ${first?.state}`);
      else if (!first.reason || !reason.test(first.reason))
        problems.push(`${id} (${label}): reason ${JSON.stringify(first.reason)} does not match ${reason}`);
      else if (Buffer.byteLength(first.reason) > MAX_MESSAGE_BYTES)
        problems.push(`${id}: reason longer than ${MAX_MESSAGE_BYTES} bytes`);
    }
    for (const id of valid) {
      const got = results.get(id) ?? [];
      if (got.length !== 1 || got[0]?.state !== "succeeded")
        problems.push(`valid ${id}: ${got.map((r) => r.state).join(",") || "no status"}`);
    }
    const unexpected = [...results.keys()].filter((id) => !expected.has(id) && !valid.has(id));
    expect(problems.slice(0, 20)).toEqual([]);
    expect(unexpected).toEqual([]);
    console.log(
      `hostile corpus: ${written.length} queue nodes, ${expected.size} rejections checked, ${valid.size} valid tasks run beside them`,
    );

    // Every node is consumed, and every process is still up (m1 was killed on purpose).
    await waitFor(async () => (await zk.getChildren(c.layout.queue)).length === 0, {
      timeoutMs: 60_000,
      message: "the queue to drain",
    });
    for (const name of ["m2", "m3", "w1", "w2"]) expect(c.proc(name)?.alive, `${name} alive`).toBe(true);
    expectNothingOutsideOutputFolders(c, workCwd, valid);
  }, 420_000);

  it("a junk child with an invalid name under R/workers or R/assign is ignored, also on takeover", async () => {
    const { c, zk, workCwd } = await startGrid();
    await zk.create(`${c.layout.workers}/bad name`, "{}");
    await zk.create(`${c.layout.assignDir}/bad name`, "garbage");
    await zk.create(`${c.layout.workers}/junk-reg`, Buffer.from([0xc0, 0x80]));
    await zk.create(`${c.layout.assignDir}/nobody`, "garbage");
    const ids = await expectServesAcrossTakeover(c, "junk-names");
    expectNothingOutsideOutputFolders(c, workCwd, ids);
  }, 300_000);

  it("a persistent fake registration under R/workers is given no task", async () => {
    const { c, zk } = await startGrid();
    const registration = {
      v: 1 as const,
      name: "ghost",
      host: "nowhere",
      pid: 1,
      capacity: 1000,
      labels: [],
      version: "0.0.0",
      startedAt: Date.now(),
      session: "abc123",
    };
    // Not ephemeral: no session owns it, so no worker will ever run what it is given.
    await zk.create(`${c.layout.workers}/ghost`, encodeWorkerRegistration(registration));
    await expectServesAcrossTakeover(c, "ghost");
    const assigned = await zk.get(c.layout.assign("ghost")).catch(() => undefined);
    expect(assigned?.data.toString() ?? "").not.toMatch(/"id"/);
  }, 300_000);

  it("garbage written over a worker's assignment loses none of its tasks", async () => {
    const { c, zk } = await startGrid();
    const slow = Array.from({ length: 8 }, (_, i) => ({ id: `slow-${i}`, cmd: "sleep 2; echo slow" }));
    await c.submit(slow);
    await waitFor(
      async () => {
        const got = await zk.get(c.layout.assign("w1")).catch(() => undefined);
        return got?.data.toString().includes("slow-") === true;
      },
      { timeoutMs: 60_000, message: "w1 to hold slow tasks" },
    );
    await zk.set(c.layout.assign("w1"), Buffer.from([0xff, 0x00, 0x7b]));
    await zk.set(c.layout.assign("w2"), '{"v":1,"epoch":"x"}').catch(() => {});
    const all = await c.waitForResults(
      slow.map((t) => t.id),
      90_000,
    );
    const results = byId(all);
    for (const t of slow) {
      expect(
        results.get(t.id)?.map((r) => r.state),
        t.id,
      ).toEqual(["succeeded"]);
    }
    await expectServesAcrossTakeover(c, "after-assign-garbage");
  }, 300_000);

  it("junk under R/reports and unreadable report nodes are dropped without harm", async () => {
    const { c, zk, layout } = await startGrid();
    for (const name of ["junk", "w9@ZZ", "w1@0", "a b@1", "nobody@abc123"]) {
      await zk.create(`${layout.reports}/${name}`, "x");
    }
    await zk.create(`${layout.reports}/nobody@abc123/r0000000001`, Buffer.from([0xff]));
    const w2Session = await c.workerSession("w2");
    expect(w2Session).toBeDefined();
    const w2Dir = `${layout.reports}/w2@${w2Session}`;
    await zk.create(`${w2Dir}/r`, Buffer.from([0xfe, 0xff]), "persistent-sequential");
    await zk.create(
      `${w2Dir}/r`,
      '{"v":1,"worker":"w2","session":"zz","updates":"all done"}',
      "persistent-sequential",
    );
    // A draining flag that is not a boolean: the whole report is refused, so w2 is not taken for stopping.
    await zk.create(
      `${w2Dir}/r`,
      `{"v":1,"worker":"w2","session":"${w2Session}","draining":"yes","updates":[]}`,
      "persistent-sequential",
    );
    const nested = await zk.create(`${w2Dir}/r`, "{}", "persistent-sequential");
    await zk.create(`${nested}/child`, "x");
    await expectServesAcrossTakeover(c, "after-report-junk");
    for (const name of ["w1", "w2"]) expect(c.proc(name)?.alive, `${name} alive`).toBe(true);
  }, 300_000);

  it("queue nodes deleted or overwritten right after they are created end with at most one status", async () => {
    const { c, zk, layout } = await startGrid();
    const vanished: string[] = [];
    const overwritten: Array<{ id: string; node: string }> = [];
    for (let i = 0; i < 20; i++) {
      const gone = `gone-${i}`;
      vanished.push(gone);
      const path = await zk.create(
        `${layout.queue}/q`,
        JSON.stringify(batchOf([validTask(gone)])),
        "persistent-sequential",
      );
      await zk.delete(path).catch(() => {});
      const changed = `changed-${i}`;
      const changedPath = await zk.create(
        `${layout.queue}/q`,
        JSON.stringify(batchOf([validTask(changed)])),
        "persistent-sequential",
      );
      await zk.set(changedPath, Buffer.from([0x80, 0x81])).catch(() => {});
      overwritten.push({ id: changed, node: changedPath.slice(changedPath.lastIndexOf("/") + 1) });
    }
    // Submitted after them, so once these are done the leader has seen (or missed) every node above.
    await expectServesAcrossTakeover(c, "after-vanish");
    const results = byId(await c.results());
    const problems: string[] = [];
    for (const id of vanished) {
      const got = results.get(id) ?? [];
      if (got.length > 1 || (got[0] && got[0].state !== "succeeded"))
        problems.push(`${id}: ${got.map((r) => r.state).join(",")}`);
    }
    for (const { id, node } of overwritten) {
      // The leader read either version: the task ran, or the garbage was rejected under the node's name.
      const ran = results.get(id) ?? [];
      const rejected = results.get(unnamedTaskId(node, 0)) ?? [];
      const outcome = [...ran.map((r) => `ran:${r.state}`), ...rejected.map((r) => `node:${r.state}`)];
      if (
        outcome.length > 1 ||
        (outcome[0] !== undefined && !["ran:succeeded", "node:rejected"].includes(outcome[0]))
      ) {
        problems.push(`${id}: ${outcome.join(",")}`);
      }
    }
    expect(problems).toEqual([]);
  }, 300_000);

  it("queue nodes with names no submitter would choose run when valid and are rejected by name when not", async () => {
    const { c, zk, layout, workCwd } = await startGrid();
    const valid = new Set<string>();
    const oddNames = ["junk", "x..y", "a b", "ünïcode", "n".repeat(300), "q-no-sequence"];
    for (const [i, name] of oddNames.entries()) {
      valid.add(`odd-${i}`);
      await zk.create(`${layout.queue}/${name}`, JSON.stringify(batchOf([validTask(`odd-${i}`)])));
      await zk.create(`${layout.queue}/${name}-garbage`, Buffer.from([0xff, 0xfe]));
    }
    // A queue node with a child cannot be deleted; its task still runs once. The child can only be
    // made after the node, and a leader that is quick enough hands the task out and deletes the node in
    // between: then that task ran as any other, and the next try makes another node.
    for (let attempt = 0; ; attempt++) {
      const id = `parent-${attempt}`;
      const withChild = await zk.create(
        `${layout.queue}/q`,
        JSON.stringify(batchOf([validTask(id)])),
        "persistent-sequential",
      );
      valid.add(id);
      const made = await zk.create(`${withChild}/child`, "x").then(
        () => true,
        (err: unknown) => {
          if (isNoNode(err) && attempt < 20) return false;
          throw err;
        },
      );
      if (made) break;
    }

    const all = await c.waitForResults(valid, 90_000);
    const results = byId(all);
    const problems: string[] = [];
    for (const id of valid) {
      const got = results.get(id) ?? [];
      if (got.length !== 1 || got[0]?.state !== "succeeded")
        problems.push(`${id}: ${got.map((r) => r.state).join(",")}`);
    }
    for (const name of oddNames) {
      // Whatever id a node name that makes no valid task id gets, its rejection names the node.
      const hits = all.filter(
        (r) => r.state === "rejected" && r.reason?.startsWith(`queue node ${name.slice(0, 30)}`),
      );
      if (hits.length !== 1)
        problems.push(`garbage node ${name.slice(0, 40)}-garbage: ${hits.length} rejections`);
    }
    expect(problems).toEqual([]);
    for (const id of await expectServesAcrossTakeover(c, "after-odd-names")) valid.add(id);
    expectNothingOutsideOutputFolders(c, workCwd, valid);
  }, 300_000);

  it("inbox nodes whose names carry junk are each rejected once under the name's id and run nothing, and a name carrying a valid task runs once whatever junk its data holds", async () => {
    const { c, zk, layout, workCwd } = await startGrid();
    const session = await c.workerSession("w1");
    expect(session).toBeDefined();
    const inbox = layout.inboxDir("w1", session as string);
    const b64 = (value: unknown) =>
      (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString("base64url");
    const junk: Array<{ name: string; reason: RegExp }> = [
      { name: "n-alphabet~not*base64", reason: /name: .*not base64url/ },
      { name: "n-padded~e30=", reason: /name: .*not base64url/ },
      { name: "n-one-char~A", reason: /name: .*not base64url/ },
      { name: `n-long~${"A".repeat(516)}`, reason: /over 384 bytes/ },
      { name: `n-bytes~${b64(Buffer.from([0xff, 0xfe, 0x00]))}`, reason: /UTF-8|JSON/ },
      { name: `n-array~${b64([1, 2])}`, reason: /object/ },
      {
        name: `n-two~${b64(batchOf([validTask("n-two"), validTask("n-two-b")]))}`,
        reason: /exactly one task/,
      },
      {
        name: `n-other~${b64(batchOf([validTask("someone-else")]))}`,
        reason: /tasks\[0\]\.id: expected "n-other"/,
      },
      {
        name: `n-requeued~${b64({ ...batchOf([validTask("n-requeued")]), requeued: { "n-requeued": { attemptsUsed: 1, submittedAt: 1 } } })}`,
        reason: /requeued/,
      },
      {
        name: `n-bad-task~${b64(batchOf([{ id: "n-bad-task" }]))}`,
        reason: /exactly one of "cmd" or "handler"/,
      },
      { name: `..~${b64(batchOf([validTask("..")]))}`, reason: /tasks\[0\]\.id/ },
    ];
    // Created at version 0 in one write each: a worker that took the name would run these, so none is valid.
    for (const j of junk) await zk.create(`${inbox}/${j.name}`, Buffer.alloc(0), "persistent");
    // A valid task in the name with junk data: at version 0 the name is the whole task, so it runs.
    const runs = `n-runs~${b64(batchOf([validTask("n-runs")]))}`;
    await zk.create(`${inbox}/${runs}`, Buffer.from([0xff, 0x00]), "persistent");

    const valid = await expectServesAcrossTakeover(c, "after-inbox-junk");
    valid.add("n-runs");
    const results = await waitFor(
      async () => {
        const all = await c.results();
        const found = junk.every((j) => all.some((r) => r.reason?.includes(`/${j.name}: `)));
        return found && all.some((r) => r.id === "n-runs") ? all : undefined;
      },
      { timeoutMs: 60_000, message: "a result for every junk inbox node and for n-runs" },
    );
    for (const j of junk) {
      const mine = results.filter((r) => r.reason?.startsWith(`inbox node w1@${session}/${j.name}: `));
      expect(mine, j.name.slice(0, 40)).toHaveLength(1);
      expect(mine[0]).toMatchObject({ state: "rejected" });
      expect(mine[0]?.reason).toMatch(j.reason);
    }
    const ran = results.filter((r) => r.id === "n-runs");
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatchObject({ state: "succeeded", attempt: 1 });
    await waitFor(async () => (await zk.getChildren(inbox)).length === 0, {
      timeoutMs: 30_000,
      message: "the junk inbox nodes to be deleted",
    });
    expectNothingOutsideOutputFolders(c, workCwd, valid);
    for (const name of ["w1", "w2"]) expect(c.proc(name)?.alive, `${name} alive`).toBe(true);
  }, 300_000);

  it("connections to a worker's answer stream that send junk are closed, a wrong key is never answered, and the worker answers the right key and serves on", async () => {
    const { c, zk, layout, workCwd } = await startGrid();
    const session = (await c.workerSession("w1")) as string;
    const reg = decodeWorkerRegistration((await zk.get(layout.worker("w1"))).data);
    if (!reg.ok || reg.value.answers === undefined) throw new Error("w1 names no answer stream");
    const address = reg.value.answers;
    const key = () => newAnswerKey();
    const junk: Array<string | Buffer> = [
      "GET / HTTP/1.1\r\nHost: w1\r\n\r\n",
      `+${"A".repeat(200)}`,
      "+short\n",
      `+${key()}\n+${key()}\n`,
      `+${key()}\nmore after the hello`,
      Buffer.from([0xff, 0xfe, 0x00, 0x0a]),
      `${key()}\n`,
    ];
    const taps = await Promise.all(
      junk.map(async (bytes) => {
        const tap = await openTap(address);
        tap.socket.write(bytes);
        return tap;
      }),
    );
    for (const [i, tap] of taps.entries())
      await waitFor(() => tap.closed, { timeoutMs: 10_000, message: `junk connection ${i} to be closed` });
    // Idle connections are no harm either.
    const idle = await Promise.all(Array.from({ length: 20 }, () => openTap(address)));
    const wrong = await openTap(address);
    wrong.socket.write(encodeAnswerHello(key()));
    const rightKey = key();
    const right = await openTap(address);
    right.socket.write(encodeAnswerHello(rightKey));
    // A direct task carrying the right key, and one carrying a key nobody named.
    expect(await c.submitDirect({ id: "s-right", cmd: "echo ok" }, "w1", session, false, rightKey)).toBe(
      true,
    );
    expect(await c.submitDirect({ id: "s-nobody", cmd: "echo ok" }, "w1", session, true, key())).toBe(true);
    const recorded = await c.waitForResults(["s-right", "s-nobody"], 60_000);
    await waitFor(() => right.lines().length > 0, { timeoutMs: 10_000, message: "the answer on the stream" });
    const streamed = right.lines().map((line) => decodeDirectAnswer(Buffer.from(line)));
    expect(streamed).toHaveLength(1);
    expect(streamed[0]).toEqual({ ok: true, value: recorded.find((r) => r.id === "s-right") });
    expect(recorded.find((r) => r.id === "s-nobody")).toMatchObject({ state: "succeeded", attempt: 1 });
    expect(wrong.lines()).toEqual([]);
    expect(wrong.closed || right.closed).toBe(false);
    for (const tap of [...idle, wrong, right]) tap.socket.destroy();

    const valid = await expectServesAcrossTakeover(c, "after-stream-junk");
    for (const id of ["s-right", "s-nobody"]) valid.add(id);
    expectNothingOutsideOutputFolders(c, workCwd, valid);
    for (const name of ["w1", "w2"]) expect(c.proc(name)?.alive, `${name} alive`).toBe(true);
  }, 300_000);

  it("a client whose workers' registrations name a junk answer stream, or one nobody listens on, still gets every lone task's answer, from the nodes", async () => {
    const { c, zk, layout } = await startGrid();
    // A "stream" that answers a hello with a forged answer of a task nobody sent, then junk.
    const hellos: string[] = [];
    const junkServer = createServer((socket) => {
      socket.on("data", (chunk) => {
        hellos.push(chunk.toString());
        const forged = { v: 1, id: "never-sent", state: "succeeded", attempt: 1, worker: "w1" };
        socket.write(`${JSON.stringify(forged)}\nthis is not an answer\n`);
      });
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => junkServer.listen(0, "127.0.0.1", resolve));
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    try {
      const redirect = async (worker: string, port: number) => {
        const path = layout.worker(worker);
        const { data, stat } = await zk.get(path);
        const reg = decodeWorkerRegistration(data);
        if (!reg.ok) throw reg.error;
        await zk.set(
          path,
          encodeWorkerRegistration({ ...reg.value, answers: { host: "127.0.0.1", port } }),
          stat.version,
        );
      };
      await redirect("w1", (junkServer.address() as AddressInfo).port);
      await redirect("w2", closedPort);
      const client = await connectGrid({ connectString: c.options.connectString, root: c.root });
      try {
        for (let i = 0; i < 8; i++) {
          const got = await client.submitAndWait({ cmd: `echo lone-${i}` });
          const status = [...got.values()][0];
          expect(status, `lone task ${i}`).toMatchObject({
            state: "succeeded",
            attempt: 1,
            stdoutTail: `lone-${i}\n`,
          });
          expect(["w1", "w2"]).toContain(status?.worker);
        }
      } finally {
        await client.close();
      }
      // The client did reach the junk stream (its hello names a key), and took nothing from it.
      expect(hellos.some((h) => /^\+[A-Za-z0-9_-]{22}\n/.test(h))).toBe(true);
      expect((await c.results()).some((r) => r.id === "never-sent")).toBe(false);
    } finally {
      junkServer.close();
    }
    for (const name of ["w1", "w2"]) expect(c.proc(name)?.alive, `${name} alive`).toBe(true);
  }, 300_000);

  it("a persistent junk node under R/masters does not keep every master from leading", async () => {
    const c = start();
    const zk = await c.zk();
    await zk.ensurePath(c.layout.masters);
    // Sorts before every real candidate by its sequence number, and never goes away.
    await zk.create(`${c.layout.masters}/n_0000000000`, "junk");
    await zk.create(
      `${c.layout.masters}/_c_00000000-0000-0000-0000-000000000000-n_`,
      "{}",
      "persistent-sequential",
    );
    c.startMaster("m1");
    c.startWorker("w1", { concurrency: 2 });
    await c.submit([validTask("after-junk-candidate") as { id: string; cmd: string }]);
    const all = await c.waitForResults(["after-junk-candidate"], 90_000);
    expect(all.find((r) => r.id === "after-junk-candidate")?.state).toBe("succeeded");
    expect(c.proc("m1")?.alive).toBe(true);
  }, 180_000);
});

function batchOf(tasks: unknown[]): Record<string, unknown> {
  return { v: 1, batchId: `b-${Math.random().toString(36).slice(2, 10)}`, submittedAt: Date.now(), tasks };
}
