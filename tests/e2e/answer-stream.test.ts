import { existsSync } from "node:fs";
import { connect as connectTcp, type Socket } from "node:net";
import { join } from "node:path";
import { decodeInboxNode, decodeWorkerRegistration, inboxNodeId } from "@zkgrid/protocol";
import { connectGrid } from "@zkgrid/submit";
import { fourLetterWord, startServer, waitFor, type ZkServer } from "@zkgrid/testing";
import { afterEach, expect, it } from "vitest";
import { type Proc, sessionOf, TestGrid } from "./grid.js";

// A ZooKeeper of this file's own: the test freezes it.
let server: ZkServer | undefined;
let grid: TestGrid | undefined;

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail" && grid) console.error(grid.transcript());
  server?.resume();
  await grid?.close();
  await server?.stop();
  grid = undefined;
  server = undefined;
});

/** A ZooKeeper of the test's own and a grid on it; `withLeader`: m1 leading and w1 registered (its session). */
async function ownGrid(
  withLeader: boolean,
): Promise<{ g: TestGrid; session: string | undefined; w1: Proc | undefined }> {
  server = await startServer();
  const g = new TestGrid(server.connectString);
  grid = g;
  if (!withLeader) return { g, session: undefined, w1: undefined };
  g.master("m1");
  const w1 = g.worker("w1");
  return { g, session: await sessionOf(g, "w1"), w1 };
}

it("a lone task's answer reaches its submitter on its worker's answer stream while ZooKeeper is frozen, and the grid then records that same status", async () => {
  const { g } = await ownGrid(true);
  if (server === undefined) throw new Error("no server");
  const zk = await g.zk();
  const reg = decodeWorkerRegistration((await zk.get(g.layout.worker("w1"))).data);
  // The worker reaches this loopback server from a loopback address, so its stream listens there.
  expect(reg.ok && reg.value.answers).toEqual({ host: "127.0.0.1", port: expect.any(Number) });

  const client = await connectGrid({ connectString: server.connectString, root: g.root });
  try {
    const [id] = await client.submit({ cmd: "sleep 1.5; echo streamed" });
    expect(id).toBeDefined();
    const waiting = client.wait(id as string);
    // Frozen once the task runs: from then on, nothing reaches the submitter through ZooKeeper.
    await waitFor(() => existsSync(join(g.dir, "w1", id as string, "stdout.txt")), {
      timeoutMs: 30_000,
      message: "the task to start",
    });
    server.pause();
    const got = await waiting;
    expect(server.isPaused).toBe(true);
    const status = got.get(id as string);
    expect(status).toMatchObject({
      id,
      state: "succeeded",
      attempt: 1,
      worker: "w1",
      stdoutTail: "streamed\n",
    });
    server.resume();
    // The node's answer, written once ZooKeeper is back, is the one the leader records.
    const recorded = await g.waitForResults([id as string], 30_000);
    expect(recorded.get(id as string)).toEqual(status);
    expect(await client.status(id as string)).toEqual(status);
  } finally {
    server.resume();
    await client.close();
  }
}, 120_000);

it("a task carries its client's answer key only when the client uses answer streams and its worker offers one", async () => {
  const { g, session, w1 } = await ownGrid(true);
  const zk = await g.zk();
  const inbox = g.layout.inboxDir("w1", session as string);
  /** Submits a task that runs a while, and returns the answerKey its inbox node carries (or none). */
  const keyOf = async (answerStreams: boolean): Promise<string | undefined> => {
    const client = await connectGrid({ connectString: server!.connectString, root: g.root, answerStreams });
    try {
      const [id] = await client.submit({ cmd: "sleep 0.5; echo keyed" });
      const name = (await zk.getChildren(inbox)).find((n) => inboxNodeId(n) === id);
      expect(name, "the task's inbox node").toBeDefined();
      const node = decodeInboxNode(name as string, Buffer.alloc(0), 0);
      expect(node.kind).toBe("task");
      const got = await client.wait(id as string);
      expect(got.get(id as string)).toMatchObject({ state: "succeeded", stdoutTail: "keyed\n" });
      return node.kind === "task" ? node.answerKey : undefined;
    } finally {
      await client.close();
    }
  };
  expect(await keyOf(true)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(await keyOf(false)).toBeUndefined();

  // A worker started with --answer-address off offers none: its registration names no stream.
  g.worker("w2", ["--answer-address", "off"]);
  await sessionOf(g, "w2");
  const reg = decodeWorkerRegistration((await zk.get(g.layout.worker("w2"))).data);
  expect(reg.ok && reg.value.name === "w2" && !("answers" in reg.value)).toBe(true);

  // Connections that never say hello do not hold up a stop.
  const w1reg = decodeWorkerRegistration((await zk.get(g.layout.worker("w1"))).data);
  if (!w1reg.ok || w1reg.value.answers === undefined) throw new Error("w1 names no answer stream");
  const { host, port } = w1reg.value.answers;
  const idle = await Promise.all(
    [1, 2, 3].map(
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connectTcp({ host, port }, () => resolve(socket));
          socket.on("error", reject);
        }),
    ),
  );
  w1?.kill("SIGTERM");
  expect(await w1?.closed).toBe(0);
  for (const socket of idle) socket.destroy();
}, 120_000);

it("a quick lone task answered on its worker's stream costs its submitter no read of the task's node", async () => {
  const { g } = await ownGrid(true);
  if (server === undefined) throw new Error("no server");
  const { host, port } = { host: server.host, port: server.port };
  /** Packets the server has had from this client's session (requests and pings), from `cons`. */
  const requestsOf = async (sessionId: string | undefined): Promise<number> => {
    const line = (await fourLetterWord(host, port, "cons"))
      .split("\n")
      .find((l) => l.includes(`sid=0x${sessionId},`) || l.includes(`sid=0x${sessionId})`));
    const recved = line === undefined ? undefined : /recved=(\d+)/.exec(line)?.[1];
    if (recved === undefined) throw new Error(`no connection of session ${sessionId} in cons`);
    return Number(recved);
  };
  /** What ten quick lone tasks, one after another, cost a client in requests. */
  const tenLoneTasks = async (answerStreams: boolean): Promise<number> => {
    const client = await connectGrid({ connectString: server!.connectString, root: g.root, answerStreams });
    try {
      // The first lists the workers, opens the stream and reads the reply dir: not counted.
      await client.submitAndWait([{ cmd: "true" }], { timeoutMs: 30_000 });
      const before = await requestsOf(client.zk.sessionId);
      for (let i = 0; i < 10; i++) {
        const got = await client.submitAndWait([{ cmd: `echo ${i}` }], { timeoutMs: 30_000 });
        expect([...got.values()]).toMatchObject([{ state: "succeeded", worker: "w1", stdoutTail: `${i}\n` }]);
      }
      return (await requestsOf(client.zk.sessionId)) - before;
    } finally {
      await client.close();
    }
  };
  const withStreams = await tenLoneTasks(true);
  const withoutStreams = await tenLoneTasks(false);
  // Without a stream each answer is read from its node (a read with a watch): one request more a task.
  expect(withoutStreams - withStreams).toBeGreaterThanOrEqual(8);
}, 120_000);

it("a worker told to listen for answers where it cannot exits 2, naming the address", async () => {
  const { g } = await ownGrid(false);
  const bad = g.worker("w1", ["--answer-address", "192.0.2.1:7000"]);
  expect(await bad.closed).toBe(2);
  expect(bad.output()).toMatch(/zkgrid-worker: .*answerAddress.*cannot listen on 192\.0\.2\.1, port 7000/);
}, 60_000);
