import { randomUUID } from "node:crypto";
import { connect, type SessionBoundClient, type ZkClient } from "@zkgrid/core";
import { encodeWorkerRegistration, gridLayout } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, inject, it } from "vitest";
import { type Master, startMaster } from "../src/index.js";

const clients: ZkClient[] = [];
const masters: Master[] = [];

afterEach(async () => {
  for (const m of masters.splice(0)) await m.stop();
  for (const c of clients.splice(0).reverse()) await c.close();
});

async function client(): Promise<ZkClient> {
  const zk = await connect({ connectString: inject("zkConnectString"), sessionTimeoutMs: 4_000 });
  clients.push(zk);
  return zk;
}

/**
 * The client given to the master, with the `get` of each leader term counted by path: the leader's
 * reads go through the session-bound view that `boundTo` makes.
 */
function recordingReads(zk: ZkClient, reads: Map<string, number>): ZkClient {
  const countGets = (bound: SessionBoundClient): SessionBoundClient =>
    new Proxy(bound, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (key === "get")
          return (path: string) => {
            reads.set(path, (reads.get(path) ?? 0) + 1);
            return target.get(path);
          };
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return new Proxy(zk, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (key === "boundTo") return (sessionId: string) => countGets(target.boundTo(sessionId));
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

it("a worker joining makes the leader read its own registration only, not every worker's again", async () => {
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const reads = new Map<string, number>();
  const master = await startMaster({
    name: "m1",
    root,
    client: recordingReads(await client(), reads),
  });
  masters.push(master);
  await master.leading();

  // One session holds every registration: each join is its own change to R/workers.
  const workers = await client();
  const names = Array.from({ length: 20 }, (_, i) => `w${i}`);
  for (const [i, name] of names.entries()) {
    const registration = encodeWorkerRegistration({
      v: 1,
      name,
      host: "host-w",
      pid: 77,
      capacity: 1,
      labels: [],
      version: "0.1.0",
      startedAt: Date.now(),
      session: workers.sessionId ?? "",
    });
    await workers.create(layout.worker(name), registration, "ephemeral");
    await waitFor(() => master.stats()?.workers === i + 1, { timeoutMs: 20_000 });
  }

  for (const name of names) expect(reads.get(layout.worker(name)), name).toBe(1);
});
