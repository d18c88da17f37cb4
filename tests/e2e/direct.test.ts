import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ZkClient } from "@zkgrid/core";
import {
  decodeInboxNode,
  encodeSubmitBatch,
  inboxNodeId,
  inboxNodeName,
  type TaskSpec,
  type TaskStatus,
} from "@zkgrid/protocol";
import { connectGrid } from "@zkgrid/submit";
import { waitFor } from "@zkgrid/testing";
import { afterEach, describe, expect, it } from "vitest";
import { BIN, gridPerTest, isAlive, type Proc, sessionOf, type TestGrid } from "./grid.js";

const start = gridPerTest();
const watches: Array<{ stop(): void }> = [];

afterEach(() => {
  for (const w of watches.splice(0)) w.stop();
});

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** The leader's name once one leads. */
async function leaderIs(g: TestGrid, name: string): Promise<void> {
  await waitFor(async () => (await g.leaderName()) === name, {
    timeoutMs: 30_000,
    message: `${name} to lead`,
  });
}

/**
 * m1 leading with a session that outlives a pause (it stays the one candidate, and the leader), and w1
 * registered: for tests that stop the leader while a lone task is answered.
 */
async function pausableLeader(g: TestGrid): Promise<{ m1: Proc; session: string }> {
  const m1 = g.spawn(BIN.master, ["m1", "--session-timeout", "30s"]);
  g.worker("w1");
  const session = await sessionOf(g, "w1");
  await leaderIs(g, "m1");
  return { m1, session };
}

/** Waits until the inbox node at `path` holds its worker's answer. */
async function answered(zk: ZkClient, name: string, path: string): Promise<void> {
  const kind = async () => {
    const { data, stat } = await zk.get(path);
    return decodeInboxNode(name, data, stat.version).kind;
  };
  await waitFor(async () => (await kind()) === "outcome", {
    timeoutMs: 30_000,
    message: "the worker's answer over the node",
  });
}

interface Sent {
  path: string;
  /** The node's name: the task's id, or the id and the task (`inboxNodeName`). */
  name: string;
  /** The data the node was created with (none when its name carries the task). */
  data: Buffer;
  task: TaskSpec;
  submittedAt: number;
  /** Every state the node was seen in, in order (null: deleted). */
  seen: Array<{ data: Buffer; ctime: number; version: number } | null>;
}

/**
 * Puts `task` in `worker@session`'s inbox as a submitter would, and watches its node from then on: the
 * task in the node's name with no data (as a submitter sends a small task), or in its data.
 */
async function putDirect(
  g: TestGrid,
  worker: string,
  session: string,
  task: TaskSpec,
  carried: "in its name" | "in its data" = "in its name",
): Promise<Sent> {
  const zk = await g.zk();
  const submittedAt = Date.now();
  const batch = encodeSubmitBatch({ v: 1, batchId: randomUUID(), submittedAt, tasks: [task] });
  const name = carried === "in its name" ? inboxNodeName(task.id, batch) : task.id;
  expect(name === task.id).toBe(carried === "in its data");
  const path = `${g.layout.inboxDir(worker, session)}/${name}`;
  const data = name === task.id ? batch : Buffer.alloc(0);
  await zk.create(path, data, "persistent");
  return { path, name, data, task, submittedAt, seen: watchNode(zk, path) };
}

function watchNode(zk: ZkClient, path: string): Sent["seen"] {
  const seen: Sent["seen"] = [];
  const stream = zk.watchData(path);
  watches.push(stream);
  void (async () => {
    for await (const change of stream) {
      seen.push(
        change === null
          ? null
          : { data: change.data, ctime: change.stat.ctime, version: change.stat.version },
      );
      if (change === null) break;
    }
  })().catch(() => {});
  return seen;
}

/** The worker's answer in one seen state: its final status, "declined" (the task written back), or undefined. */
function answerIn(sent: Sent, state: Sent["seen"][number]): TaskStatus | "declined" | undefined {
  if (state === null) return undefined;
  const node = decodeInboxNode(sent.name, state.data, state.version);
  if (node.kind === "outcome") return node.status;
  return node.kind === "task" && state.version > 0 ? "declined" : undefined;
}

/** Waits until the node is deleted; returns the worker's answer the node held first. */
async function answerOf(sent: Sent): Promise<{ answer: TaskStatus | "declined"; ctime: number }> {
  await waitFor(() => sent.seen.at(-1) === null, {
    timeoutMs: 60_000,
    message: `${sent.path} to be deleted`,
  });
  for (const state of sent.seen) {
    const answer = answerIn(sent, state);
    if (answer !== undefined && state !== null) return { answer, ctime: state.ctime };
  }
  throw new Error(`no answer was seen over ${sent.path}`);
}

/** The worker's final status over the node (fails the test if it declined). */
async function statusOf(sent: Sent): Promise<{ status: TaskStatus; ctime: number }> {
  const { answer, ctime } = await answerOf(sent);
  if (answer === "declined") throw new Error(`${sent.path} was declined`);
  return { status: answer, ctime };
}

function countIds(results: TaskStatus[]): Map<string, TaskStatus[]> {
  const byId = new Map<string, TaskStatus[]>();
  for (const r of results) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
  return byId;
}

/** A grid of master m1, leading, and worker w1 (started with `workerFlags`): w1's process and its session. */
async function m1AndW1(workerFlags: string[] = []) {
  const g = start();
  g.master("m1");
  const w1 = g.worker("w1", workerFlags);
  const session = await sessionOf(g, "w1");
  await leaderIs(g, "m1");
  return { g, w1, session };
}

/** w1 is still up, and a valid direct task `id` put in its inbox succeeds as attempt 1, on w1, once. */
async function expectW1StillRunsDirect(g: TestGrid, w1: Proc, session: string, id: string) {
  expect(w1.child.exitCode).toBeNull();
  const sent = await putDirect(g, "w1", session, { id, cmd: `echo ${id}` });
  expect((await statusOf(sent)).status).toMatchObject({ state: "succeeded", attempt: 1 });
  expect((await g.waitForResults([id])).get(id)).toMatchObject({ state: "succeeded", worker: "w1" });
}

describe("direct tasks put in a worker session's inbox", () => {
  it.each(["in its name", "in its data"] as const)(
    "a direct task carried %s runs once at once, its answer lands over its node, and the leader's result equals the one built from that answer",
    async (carried) => {
      const { g, session } = await m1AndW1(["--concurrency", "2"]);
      const log = join(g.dir, "direct-runs.log");
      const task: TaskSpec = {
        id: "d1",
        cmd: `echo ran >> ${log}; echo hello direct`,
        meta: { owner: "tests" },
      };

      const sent = await putDirect(g, "w1", session, task, carried);
      const { status, ctime } = await statusOf(sent);
      // Taken from the name without a read, the task's assignedAt is the worker's clock as it saw the node.
      const assignedAt = carried === "in its data" ? ctime : status.assignedAt;
      expect(status.assignedAt).toBeGreaterThanOrEqual(sent.submittedAt);
      expect(status.assignedAt).toBeLessThanOrEqual(status.startedAt ?? 0);
      expect(status).toMatchObject({
        v: 1,
        id: "d1",
        attempt: 1,
        state: "succeeded",
        exitCode: 0,
        worker: "w1",
        submittedAt: sent.submittedAt,
        assignedAt,
        meta: { owner: "tests" },
      });
      expect(status.startedAt).toBeTypeOf("number");

      // The leader records the answer as it is: the submitter and R/results agree.
      const results = await g.waitForResults(["d1"]);
      expect(results.get("d1")).toEqual(status);

      const zk = await g.zk();
      expect(await zk.exists(sent.path)).toBeNull();
      expect(await zk.exists(g.layout.inboxDir("w1", session))).not.toBeNull();
      const folder = join(g.dir, "w1", "d1");
      expect(existsSync(folder)).toBe(true);
      expect(readFileSync(join(folder, "stdout.txt"), "utf8")).toBe("hello direct\n");
      expect(lines(readFileSync(log, "utf8"))).toEqual(["ran"]);
      expect(countIds(await g.results()).get("d1")).toHaveLength(1);
    },
  );

  it.each(["in its name", "in its data"] as const)(
    "a worker with no free slot declines a direct task carried %s by writing it back unchanged, and the task then runs through the queue as attempt 1",
    async (carried) => {
      const g = start();
      g.master("m1");
      g.worker("w1", ["--concurrency", "1"]);
      const session = await sessionOf(g, "w1");
      const busy = join(g.dir, "busy.started");
      const sentBusy = await g.submit([], JSON.stringify({ id: "busy", cmd: `touch ${busy}; sleep 3` }));
      expect(sentBusy.code).toBe(0);
      await waitFor(() => existsSync(busy), { timeoutMs: 30_000, message: "the busy task to start" });

      const sent = await putDirect(g, "w1", session, { id: "later", cmd: "echo later" }, carried);
      const { answer } = await answerOf(sent);
      expect(answer).toBe("declined");
      // Unchanged: the same data (none, when the name carries the task) at version 1.
      // (Compared with the data created: the worker may write it back before the test's watch first reads.)
      const declined = sent.seen.find((state) => state !== null && state.version === 1);
      expect(declined?.data.equals(sent.data)).toBe(true);
      expect(declined?.data.length === 0).toBe(carried === "in its name");

      const results = await g.waitForResults(["busy", "later"]);
      expect(results.get("busy")).toMatchObject({ state: "succeeded", attempt: 1 });
      expect(results.get("later")).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
      expect(readFileSync(join(g.dir, "w1", "later", "stdout.txt"), "utf8")).toBe("later\n");
      const counts = countIds(await g.results());
      expect(counts.get("later")).toHaveLength(1);
    },
  );

  it("cancelling a running direct task ends it cancelled, kills its process and deletes its node, and the worker keeps serving", async () => {
    const { g, w1, session } = await m1AndW1();
    const sent = await putDirect(g, "w1", session, { id: "long", cmd: "echo $$ > task.pid; exec sleep 30" });
    const pidFile = join(g.dir, "w1", "long", "task.pid");
    const pid = await waitFor(
      () => {
        if (!existsSync(pidFile)) return undefined;
        const n = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
        return Number.isSafeInteger(n) && n > 0 ? n : undefined;
      },
      { timeoutMs: 30_000, message: "the direct task to start" },
    );
    expect(isAlive(pid)).toBe(true);

    const cancelled = await g.submit(["cancel", "long", "--json"]);
    expect(cancelled.stderr).toBe("");
    expect(cancelled.code).toBe(0);
    const results = await g.waitForResults(["long"]);
    expect(results.get("long")).toMatchObject({
      state: "cancelled",
      worker: "w1",
      attempt: 1,
      reason: "cancelled while its worker held it",
    });
    await waitFor(() => !isAlive(pid), { timeoutMs: 30_000, message: "the cancelled task's process to end" });
    const zk = await g.zk();
    await waitFor(async () => (await zk.exists(sent.path)) === null, { timeoutMs: 30_000 });
    expect(countIds(await g.results()).get("long")).toHaveLength(1);

    await expectW1StillRunsDirect(g, w1, session, "after");
  });

  it("a direct task whose worker dies mid-run runs again elsewhere with attempt 2, and the dead session's inbox is deleted", async () => {
    const { g, w1, session } = await m1AndW1();
    const marker = join(g.dir, "orphan.started");
    await putDirect(g, "w1", session, {
      id: "orphan",
      // Long enough to outlive w2's start on a loaded machine: w1 must die while it runs.
      cmd: `echo $ZKGRID_TASK_ATTEMPT >> ${marker}; sleep 6; echo done`,
    });
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000, message: "the direct task to start" });
    g.worker("w2");
    await sessionOf(g, "w2");
    w1.kill("SIGKILL");

    const results = await g.waitForResults(["orphan"], 90_000);
    expect(results.get("orphan")).toMatchObject({ state: "succeeded", attempt: 2, worker: "w2" });
    expect(readFileSync(join(g.dir, "w2", "orphan", "stdout.txt"), "utf8")).toBe("done\n");
    const zk = await g.zk();
    await waitFor(async () => (await zk.exists(g.layout.inboxDir("w1", session))) === null, {
      timeoutMs: 30_000,
      message: "the dead session's inbox to be deleted",
    });
    expect(countIds(await g.results()).get("orphan")).toHaveLength(1);
    expect(lines(readFileSync(marker, "utf8"))).toEqual(["1", "2"]);
  }, 120_000);

  it("an invalid inbox node becomes a rejected result naming the problem, and the worker still runs a valid direct task", async () => {
    const { g, w1, session } = await m1AndW1();
    const zk = await g.zk();
    await zk.create(g.layout.inboxTask("w1", session, "bad-json"), "{ not json", "persistent");
    const two = {
      v: 1,
      batchId: randomUUID(),
      submittedAt: Date.now(),
      tasks: [
        { id: "two", cmd: "echo one" },
        { id: "two-b", cmd: "echo two" },
      ],
    };
    await zk.create(g.layout.inboxTask("w1", session, "two"), JSON.stringify(two), "persistent");
    // Names that carry a task: one not in base64url, one of another id, one with no task at all.
    const inbox = g.layout.inboxDir("w1", session);
    await zk.create(`${inbox}/bad-name~not*base64`, Buffer.alloc(0), "persistent");
    const other = encodeSubmitBatch({
      v: 1,
      batchId: randomUUID(),
      submittedAt: Date.now(),
      tasks: [{ id: "other", cmd: "echo other" }],
    });
    await zk.create(`${inbox}/${inboxNodeName("other", other).replace(/^other/, "mask")}`, "", "persistent");
    await zk.create(`${inbox}/empty~${Buffer.from("{}").toString("base64url")}`, "", "persistent");

    const results = await g.waitForResults(["bad-json", "two", "bad-name", "mask", "empty"]);
    expect(results.get("bad-json")).toMatchObject({ state: "rejected" });
    expect(results.get("bad-json")?.reason).toMatch(/JSON/i);
    expect(results.get("two")).toMatchObject({ state: "rejected" });
    expect(results.get("two")?.reason).toMatch(/exactly one task/);
    expect(results.get("bad-name")).toMatchObject({ state: "rejected" });
    expect(results.get("bad-name")?.reason).toMatch(/not base64url/);
    expect(results.get("mask")).toMatchObject({ state: "rejected" });
    expect(results.get("mask")?.reason).toMatch(/tasks\[0\]\.id: expected "mask"/);
    expect(results.get("empty")).toMatchObject({ state: "rejected" });
    expect(results.get("empty")?.reason).toMatch(/v: required/);
    for (const id of ["mask", "other", "empty"]) expect(existsSync(join(g.dir, "w1", id))).toBe(false);
    await waitFor(async () => (await zk.getChildren(g.layout.inboxDir("w1", session))).length === 0, {
      timeoutMs: 30_000,
      message: "the invalid nodes to be deleted",
    });
    expect(existsSync(join(g.dir, "w1", "two"))).toBe(false);
    expect((await g.results()).some((r) => r.id === "two-b")).toBe(false);

    await expectW1StillRunsDirect(g, w1, session, "valid");
  });

  it("a direct task answered while no master leads gets its result, the answer itself, once a master leads", async () => {
    const g = start();
    g.worker("w1");
    const session = await sessionOf(g, "w1");
    const task: TaskSpec = { id: "alone", cmd: "echo alone", meta: { kept: true } };
    const sent = await putDirect(g, "w1", session, task);
    await waitFor(() => sent.seen.some((s) => typeof answerIn(sent, s) === "object"), {
      timeoutMs: 30_000,
      message: "the worker's answer",
    });

    g.master("m1");
    const { status } = await statusOf(sent);
    // The answer carries all the task's status needs: its submit time and meta survive.
    expect(status).toMatchObject({
      state: "succeeded",
      attempt: 1,
      submittedAt: sent.submittedAt,
      meta: { kept: true },
    });
    expect(status.assignedAt).toBeGreaterThanOrEqual(sent.submittedAt);
    const results = await g.waitForResults(["alone"]);
    expect(results.get("alone")).toEqual(status);
    expect(countIds(await g.results()).get("alone")).toHaveLength(1);
  });

  it("zkgrid-submit --wait that misses its lone task's answer finds the result the leader recorded in R/results, for want of the task's reply address", async () => {
    const g = start();
    const { m1, session } = await pausableLeader(g);
    const zk = await g.zk();
    const inbox = g.layout.inboxDir("w1", session);

    // The leader reads nothing until the task is answered: it learns of it from the answer alone.
    m1.kill("SIGSTOP");
    const go = join(g.dir, "go");
    const cmd = `while [ ! -e ${go} ]; do sleep 0.05; done; echo late`;
    const submitter = g.spawn(BIN.submit, ["--cmd", cmd, "--wait", "--json"]);
    const [name] = await waitFor(
      async () => {
        const names = await zk.getChildren(inbox);
        return names.length > 0 ? names : undefined;
      },
      { timeoutMs: 30_000, message: "the lone task in w1's inbox" },
    );
    const id = inboxNodeId(name as string);
    const path = `${inbox}/${name}`;
    const { data, stat } = await zk.get(path);
    const sent = decodeInboxNode(name as string, data, stat.version);
    expect(sent.kind === "task" && sent.task.replyTo).toBeTypeOf("string");
    // The submitter misses whatever its node shows until the leader has deleted it.
    submitter.kill("SIGSTOP");
    writeFileSync(go, "");
    await answered(zk, name as string, path);
    m1.kill("SIGCONT");
    await waitFor(async () => (await zk.exists(path)) === null, {
      timeoutMs: 30_000,
      message: "the leader to record the answer and delete its node",
    });
    const shared = await zk.getChildren(g.layout.results);
    expect(shared.filter((n) => /\d{10}$/.test(n))).toHaveLength(1);

    submitter.kill("SIGCONT");
    expect(await g.exitOf(submitter, 30_000)).toBe(0);
    const printed = lines(submitter.output()).filter((l) => l.startsWith("{"));
    expect(printed.map((l) => JSON.parse(l) as TaskStatus)).toEqual([
      expect.objectContaining({ id, state: "succeeded", attempt: 1, worker: "w1", stdoutTail: "late\n" }),
    ]);
  });

  it("a second wait on a lone task, after a first one timed out and its answer went by, finds the result the leader recorded in R/results", async () => {
    const g = start();
    const { m1, session } = await pausableLeader(g);
    const client = await connectGrid({ connectString: g.connectString, root: g.root });
    try {
      // The leader reads nothing until the task is answered: it learns of it from the answer alone.
      m1.kill("SIGSTOP");
      const go = join(g.dir, "go-again");
      const [id] = await client.submit({ cmd: `while [ ! -e ${go} ]; do sleep 0.05; done; echo late` });
      await expect(client.wait(id as string, { timeoutMs: 200 })).rejects.toThrow();
      // The answer comes while nobody waits: the ended wait's taker is handed it.
      writeFileSync(go, "");
      const zk = await g.zk();
      const inbox = g.layout.inboxDir("w1", session);
      const name = (await zk.getChildren(inbox)).find((n) => inboxNodeId(n) === id);
      expect(name).toBeTypeOf("string");
      const path = `${inbox}/${name}`;
      await answered(zk, name as string, path);
      m1.kill("SIGCONT");
      await waitFor(
        async () => {
          const names = await zk.getChildren(g.layout.results);
          return names.some((n) => /\d{10}$/.test(n));
        },
        { timeoutMs: 30_000, message: "the leader to record the answer in R/results" },
      );
      const results = await client.wait(id as string, { timeoutMs: 30_000 });
      expect(results.get(id as string)).toMatchObject({
        id,
        state: "succeeded",
        worker: "w1",
        stdoutTail: "late\n",
      });
    } finally {
      await client.close();
    }
  });

  it("a direct task declined while no master leads is queued once a master leads, and runs on a worker that can take it", async () => {
    const g = start();
    g.worker("w1");
    const session = await sessionOf(g, "w1");
    const sent = await putDirect(g, "w1", session, { id: "unfit", cmd: "echo fits", labels: ["gpu"] });
    await waitFor(() => sent.seen.some((s) => answerIn(sent, s) === "declined"), {
      timeoutMs: 30_000,
      message: "the worker to decline",
    });

    g.master("m1");
    expect((await answerOf(sent)).answer).toBe("declined");
    g.worker("w2", ["--labels", "gpu"]);
    const results = await g.waitForResults(["unfit"]);
    expect(results.get("unfit")).toMatchObject({ state: "succeeded", attempt: 1, worker: "w2" });
    expect(readFileSync(join(g.dir, "w2", "unfit", "stdout.txt"), "utf8")).toBe("fits\n");
    expect(existsSync(join(g.dir, "w1", "unfit"))).toBe(false);
  });

  it("direct tasks running while the leader dies each get one result and run once", async () => {
    const g = start();
    const m1 = g.master("m1");
    await leaderIs(g, "m1");
    g.master("m2");
    g.worker("w1", ["--concurrency", "2"]);
    const session = await sessionOf(g, "w1");
    const log = join(g.dir, "runs.log");
    const gate = join(g.dir, "leader-killed");
    // "short" ends while no master leads (the dead leader's session lingers); "long" after the takeover.
    const tasks: TaskSpec[] = [
      { id: "short", cmd: `echo short >> ${log}; while [ ! -e ${gate} ]; do sleep 0.1; done; sleep 0.5` },
      { id: "long", cmd: `echo long >> ${log}; while [ ! -e ${gate} ]; do sleep 0.1; done; sleep 8` },
    ];
    const sent = await Promise.all(tasks.map((t) => putDirect(g, "w1", session, t)));
    await waitFor(() => existsSync(log) && lines(readFileSync(log, "utf8")).length === 2, {
      timeoutMs: 30_000,
      message: "both direct tasks to start",
    });
    // Both are held by the leader before it dies.
    await waitFor(async () => (await g.leaderName()) === "m1", { timeoutMs: 30_000 });
    m1.kill("SIGKILL");
    await m1.exited;
    writeFileSync(gate, "");

    const results = await g.waitForResults(["short", "long"], 90_000);
    expect(await g.leaderName()).toBe("m2");
    for (const id of ["short", "long"])
      expect(results.get(id)).toMatchObject({ state: "succeeded", attempt: 1, worker: "w1" });
    const byId = countIds(await g.results());
    for (const id of ["short", "long"]) {
      const all = byId.get(id) ?? [];
      expect(all.length).toBeGreaterThanOrEqual(1);
      for (const r of all) expect(r).toEqual(all[0]);
    }
    expect(lines(readFileSync(log, "utf8")).sort()).toEqual(["long", "short"]);
    const zk = await g.zk();
    for (const s of sent) {
      await waitFor(async () => (await zk.exists(s.path)) === null, { timeoutMs: 30_000 });
    }
  }, 120_000);
});
