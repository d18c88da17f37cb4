import { randomUUID } from "node:crypto";
import { connect, type ZkClient } from "@zkgrid/core";
import { encodeSubmitBatch, gridLayout, type TaskSpec } from "@zkgrid/protocol";
import { fourLetterWord, startServer, waitFor, type ZkServer } from "@zkgrid/testing";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { startMaster } from "../src/index.js";
import { registerStandIn } from "./stand-ins.js";

// A server of its own: its watch counts are this test's alone.
let server: ZkServer;
const clients: ZkClient[] = [];

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(async () => {
  for (const client of clients.splice(0).reverse()) await client.close();
});

async function client(): Promise<ZkClient> {
  const zk = await connect({ connectString: server.connectString, sessionTimeoutMs: 4_000 });
  clients.push(zk);
  return zk;
}

async function fourLetters(word: string): Promise<string> {
  const [host, port] = server.connectString.split(":");
  return fourLetterWord(host ?? "127.0.0.1", Number(port), word);
}

/**
 * The server's watches: the paths of `sessionId`'s data watches (`wchc`, which lists no children
 * watch), and the count of every session's watches of both kinds (`mntr`'s zk_watch_count).
 */
async function watches(sessionId: string): Promise<{ data: string[]; total: number }> {
  const id = BigInt(`0x${sessionId}`);
  const data: string[] = [];
  let mine = false;
  for (const line of (await fourLetters("wchc")).split("\n")) {
    if (line.startsWith("0x")) mine = BigInt(line.trim()) === id;
    else if (mine && line.trim().startsWith("/")) data.push(line.trim());
  }
  const total = Number(/zk_watch_count\s+(\d+)/.exec(await fourLetters("mntr"))?.[1] ?? Number.NaN);
  return { data: data.sort(), total };
}

it("a leader watches the grid's dirs, each worker session's report dir and inbox, each worker's registration, the gate and waiting direct tasks: no queue or result node", async () => {
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const zk = await client();
  for (const dir of layout.dirs) await zk.ensurePath(dir);

  const sessions: Record<string, string> = {};
  for (const name of ["w1", "w2"]) {
    const session = await registerStandIn(await client(), layout, name, 2);
    sessions[name] = session;
    await zk.ensurePath(layout.inboxDir(name, session));
  }
  const direct: TaskSpec = { id: "direct-1", cmd: "true" };
  const waiting = layout.inboxTask("w1", sessions.w1 ?? "", direct.id);
  await zk.create(
    waiting,
    encodeSubmitBatch({ v: 1, batchId: direct.id, submittedAt: Date.now(), tasks: [direct] }),
  );
  const tasks = ["q1", "q2", "q3"].map((id): TaskSpec => ({ id, cmd: "true" }));
  await zk.createProtected(
    `${layout.queue}/${layout.queueNodePrefix}`,
    encodeSubmitBatch({ v: 1, batchId: `b-${randomUUID()}`, submittedAt: Date.now(), tasks }),
    "persistent-sequential",
  );

  const own = await client();
  const master = await startMaster({ name: "m", root, client: own });
  try {
    await waitFor(async () => (await zk.exists(layout.assign("w2"))) !== null, {
      timeoutMs: 20_000,
      message: "the leader assigns the queued tasks",
    });
    const children = [
      layout.workers,
      layout.queue,
      layout.reports,
      layout.inbox,
      layout.cancel,
      layout.schedules,
      layout.reportDir("w1", sessions.w1 ?? ""),
      layout.reportDir("w2", sessions.w2 ?? ""),
      layout.inboxDir("w1", sessions.w1 ?? ""),
      layout.inboxDir("w2", sessions.w2 ?? ""),
    ];
    const candidate = (await zk.getChildren(layout.masters)).map((n) => `${layout.masters}/${n}`);
    // The waiting direct task, the gate, each worker's registration (its capacity changes with its
    // prefetch), and the election's watch on the master's own candidate node.
    const data = [waiting, layout.gate, layout.worker("w1"), layout.worker("w2"), ...candidate].sort();
    const expected = { data, total: children.length + data.length };
    // Watches are armed as the leader reads: wait for them to settle, then show any difference.
    let seen: { data: string[]; total: number } = { data: [], total: 0 };
    await waitFor(
      async () => {
        seen = await watches(own.sessionId ?? "");
        return JSON.stringify(seen) === JSON.stringify(expected);
      },
      { timeoutMs: 20_000 },
    ).catch(() => {});
    expect(seen).toEqual(expected);
  } finally {
    await master.stop();
  }
});
