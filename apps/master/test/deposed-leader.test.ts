import { randomUUID } from "node:crypto";
import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import { connect, type ZkClient } from "@zkgrid/core";
import { decodeResultBatch, gridLayout } from "@zkgrid/protocol";
import { expireSession, waitFor } from "@zkgrid/testing";
import { afterEach, expect, inject, it } from "vitest";
import { type Master, startMaster } from "../src/index.js";

/** ZooKeeper request types that change data (zookeeper.h ZOO_*_OP). */
const WRITE_OPS = new Set([1, 2, 5, 7, 14, 15, 19, 21]);

/**
 * A loopback proxy in front of ZooKeeper that, once armed, freezes at the next write request: that
 * request and everything the client sends after it are held back (never reach the server), while the
 * server's messages still reach the client. The client has a write in flight that it believes may land.
 */
class WriteFreezingProxy {
  readonly connectString: string;
  armed = false;
  frozen = false;
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly server: Server,
    port: number,
  ) {
    this.connectString = `127.0.0.1:${port}`;
  }

  static async start(target: string): Promise<WriteFreezingProxy> {
    const [host, port] = target.split(":");
    let proxy!: WriteFreezingProxy;
    const server = createServer((client) => {
      const upstream = connectTcp({ host, port: Number(port) });
      for (const socket of [client, upstream]) {
        proxy.#sockets.add(socket);
        socket.on("error", () => {});
        socket.on("close", () => {
          proxy.#sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      upstream.on("data", (chunk) => client.write(chunk));
      let pending = Buffer.alloc(0);
      let handshakeSeen = false;
      client.on("data", (chunk) => {
        if (proxy.frozen) return;
        pending = Buffer.concat([pending, chunk]);
        // Frames: a 4-byte length, then (after the connect request) xid and op type.
        while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
          const frame = pending.subarray(0, 4 + pending.readInt32BE(0));
          if (handshakeSeen && proxy.armed && frame.length >= 12 && WRITE_OPS.has(frame.readInt32BE(8))) {
            proxy.frozen = true;
            return;
          }
          handshakeSeen = true;
          pending = pending.subarray(frame.length);
          upstream.write(frame);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no port");
    proxy = new WriteFreezingProxy(server, address.port);
    return proxy;
  }

  /** Drops every connection and forwards normally again. */
  release(): void {
    this.armed = false;
    this.frozen = false;
    for (const socket of this.#sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.release();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function statusesIn(zk: ZkClient, resultsDir: string): Promise<Array<{ epoch: number; id: string }>> {
  const found: Array<{ epoch: number; id: string }> = [];
  for (const name of await zk.getChildren(resultsDir)) {
    const decoded = decodeResultBatch((await zk.get(`${resultsDir}/${name}`)).data);
    if (!decoded.ok) throw new Error(`unreadable result node ${name}`);
    for (const status of decoded.value.results) found.push({ epoch: decoded.value.epoch, id: status.id });
  }
  return found;
}

it("a leader whose session expired with a result write in flight never lands it, and steps down without crashing", async () => {
  const direct = inject("zkConnectString");
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const proxy = await WriteFreezingProxy.start(direct);
  cleanups.push(() => proxy.close());
  const start = async (name: string, connectString: string): Promise<Master> => {
    const master = await startMaster({ name, connectString, root, sessionTimeoutMs: 4000 });
    cleanups.push(() => master.stop());
    return master;
  };
  const a = await start("a", proxy.connectString);
  await a.leading();
  const epochA = a.stats()!.epoch;
  const b = await start("b", direct);
  expect(b.role).toBe("standby");
  const zk = await connect({ connectString: direct });
  cleanups.push(() => zk.close());

  // A reads the junk queue node and sends a `rejected` result for it: that write is held back.
  proxy.armed = true;
  await zk.create(`${layout.queue}/${layout.queueNodePrefix}`, "not json", "persistent-sequential");
  await waitFor(() => proxy.frozen);
  const credentials = a.client.sessionCredentials()!;
  await expireSession(direct, credentials);

  // B takes over, finds the queue node unanswered and answers it in its own term.
  await b.leading();
  const epochB = b.stats()!.epoch;
  expect(epochB).toBeGreaterThan(epochA);
  await waitFor(async () => (await statusesIn(zk, layout.results)).length > 0);

  // A reconnects, hears that its session is gone, and is a standby on a new session.
  proxy.release();
  await waitFor(() => a.role === "standby" && a.client.sessionId !== undefined);
  expect(a.client.sessionId).not.toBe(credentials.id);
  // Requests of one session are handled in order: anything A sent earlier on it has been handled.
  for (let i = 0; i < 3; i++) await a.client.exists(layout.results);

  const statuses = await statusesIn(zk, layout.results);
  expect(statuses).toHaveLength(1);
  expect(statuses[0]?.epoch).toBe(epochB);
  const requeuedByA = [];
  for (const name of await zk.getChildren(layout.queue)) {
    const data = (await zk.get(`${layout.queue}/${name}`)).data.toString();
    if (data.includes(`"leader@${epochA}"`)) requeuedByA.push(name);
  }
  expect(requeuedByA).toEqual([]);
}, 120_000);
