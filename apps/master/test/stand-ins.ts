import { connect, type ZkClient } from "@zkgrid/core";
import { decodeAssignment, encodeWorkerRegistration, type gridLayout } from "@zkgrid/protocol";
import { inject } from "vitest";

type Layout = ReturnType<typeof gridLayout>;

const clients: ZkClient[] = [];

/** A client of the shared server, closed by `closeClients()`. */
export async function client(): Promise<ZkClient> {
  const zk = await connect({ connectString: inject("zkConnectString"), sessionTimeoutMs: 4_000 });
  clients.push(zk);
  return zk;
}

/** Closes every client made by `client()`, newest first (call it after stopping the masters). */
export async function closeClients(): Promise<void> {
  for (const c of clients.splice(0).reverse()) await c.close();
}

/** A stand-in worker: a session of its own with a report dir and a registration, and nothing else. */
export async function standInWorker(layout: Layout, name: string, capacity: number) {
  const zk = await client();
  return { zk, name, session: await registerStandIn(zk, layout, name, capacity) };
}

/** Makes `zk`'s session a stand-in worker (see standInWorker) on any server; returns its session id. */
export async function registerStandIn(zk: ZkClient, layout: Layout, name: string, capacity: number) {
  const session = zk.sessionId ?? "";
  await zk.ensurePath(layout.reportDir(name, session));
  const registration = encodeWorkerRegistration({
    v: 1,
    name,
    host: "host-w",
    pid: 77,
    capacity,
    labels: [],
    version: "0.1.0",
    startedAt: Date.now(),
    session,
  });
  await zk.create(layout.worker(name), registration, "ephemeral");
  return session;
}

/** `worker`'s assignment node: its tasks (none while it has no node) and its Stat. */
export async function assignmentOf(zk: ZkClient, layout: Layout, worker: string) {
  const got = await zk.get(layout.assign(worker)).catch(() => undefined);
  const decoded = got ? decodeAssignment(got.data) : undefined;
  return { tasks: decoded?.ok ? decoded.value.tasks : [], stat: got?.stat };
}
