import { randomUUID } from "node:crypto";
import { connect, type ZkClient } from "@zkgrid/core";
import {
  type AssignedTask,
  encodeAssignment,
  encodeMasterInfo,
  encodeResultBatch,
  encodeSubmitBatch,
  encodeTaskStatus,
  encodeWorkerRegistration,
  encodeWorkerReport,
  type GridLayout,
  gridLayout,
  type StatusUpdate,
  type TaskSpec,
  type TaskStatus,
} from "@zkgrid/protocol";
import type {} from "@zkgrid/testing";
import { inject } from "vitest";

export { finalStatus } from "../../../tests/fixtures/statuses.js";

export const connectString = (): string => inject("zkConnectString");

/**
 * Writes a grid's nodes exactly as docs/protocol.md lays them out, playing the leader, the masters,
 * the workers and the submitters. Every client it makes is closed by `close()`, which also removes
 * the grid's root.
 */
export class ProtocolWriter {
  readonly root = `/test-${randomUUID()}`;
  readonly layout: GridLayout = gridLayout(this.root);
  readonly clients: ZkClient[] = [];
  zk!: ZkClient;

  static async create(): Promise<ProtocolWriter> {
    const writer = new ProtocolWriter();
    writer.zk = await writer.client();
    return writer;
  }

  async client(): Promise<ZkClient> {
    const client = await connect({ connectString: connectString(), sessionTimeoutMs: 4_000 });
    this.clients.push(client);
    return client;
  }

  async dirs(): Promise<void> {
    for (const dir of this.layout.dirs) await this.zk.ensurePath(dir);
  }

  /** An election candidate on its own session (so closing that client removes it). */
  async master(name: string): Promise<{ node: string; client: ZkClient }> {
    const client = await this.client();
    const data = encodeMasterInfo({
      v: 1,
      name,
      host: "host-a",
      pid: 4242,
      startedAt: Date.now(),
      httpPort: 9100,
    });
    const path = await client.createProtected(
      `${this.layout.masters}/${this.layout.masterNodePrefix}`,
      data,
      "ephemeral-sequential",
    );
    return { node: path.slice(path.lastIndexOf("/") + 1), client };
  }

  /** A worker registration, owned by its own session as a real worker's is. */
  async worker(
    name: string,
    capacity = 2,
    labels: string[] = [],
  ): Promise<{ session: string; client: ZkClient }> {
    const client = await this.client();
    const session = client.sessionId!;
    const data = encodeWorkerRegistration({
      v: 1,
      name,
      host: "host-w",
      pid: 77,
      capacity,
      labels,
      version: "0.1.0",
      startedAt: Date.now(),
      session,
    });
    await client.create(this.layout.worker(name), data, "ephemeral");
    return { session, client };
  }

  async assign(worker: string, session: string, tasks: AssignedTask[], epoch = 1): Promise<void> {
    const data = encodeAssignment({ v: 1, epoch, worker, session, tasks });
    const path = this.layout.assign(worker);
    if ((await this.zk.exists(path)) === null) await this.zk.create(path, data);
    else await this.zk.set(path, data);
  }

  async queue(tasks: TaskSpec[], submittedAt = Date.now()): Promise<string> {
    const data = encodeSubmitBatch({ v: 1, batchId: `b-${randomUUID()}`, submittedAt, tasks });
    const path = await this.zk.createProtected(
      `${this.layout.queue}/${this.layout.queueNodePrefix}`,
      data,
      "persistent-sequential",
    );
    return path.slice(path.lastIndexOf("/") + 1);
  }

  async results(results: TaskStatus[], epoch = 1): Promise<void> {
    await this.zk.createProtected(
      `${this.layout.results}/${this.layout.resultNodePrefix}`,
      encodeResultBatch({ v: 1, epoch, results }),
      "persistent-sequential",
    );
  }

  async report(worker: string, session: string, updates: StatusUpdate[]): Promise<void> {
    const dir = this.layout.reportDir(worker, session);
    await this.zk.ensurePath(dir);
    await this.zk.create(
      `${dir}/${this.layout.reportNodePrefix}`,
      encodeWorkerReport({ v: 1, worker, session, updates }),
      "persistent-sequential",
    );
  }

  /** A submitter's direct task: `R/inbox/<worker>@<session>/<id>` holding a SubmitBatch of it. */
  async direct(worker: string, session: string, task: TaskSpec, submittedAt = Date.now()): Promise<string> {
    await this.zk.ensurePath(this.layout.inboxDir(worker, session));
    const path = this.layout.inboxTask(worker, session, task.id);
    await this.zk.create(path, encodeSubmitBatch({ v: 1, batchId: task.id, submittedAt, tasks: [task] }));
    return path;
  }

  /** The worker's answer over its direct task's node (or, given the node's own data, its decline). */
  async answer(path: string, data: TaskStatus | Buffer): Promise<void> {
    await this.zk.set(path, Buffer.isBuffer(data) ? data : encodeTaskStatus(data), 0);
  }

  async close(): Promise<void> {
    await this.zk?.deleteRecursive(this.root).catch(() => {});
    for (const client of this.clients.splice(0)) await client.close();
  }
}

export function assigned(id: string, attempt = 1, spec: Partial<TaskSpec> = {}): AssignedTask {
  const now = Date.now();
  return { id, attempt, assignedAt: now, submittedAt: now - 5, spec: { id, cmd: `echo ${id}`, ...spec } };
}
