import { randomUUID } from "node:crypto";
import { connect, type ZkClient } from "@zkgrid/core";
import {
  ACCEPTS_REPLY_TO,
  decodeSubmitBatch,
  encodeMasterInfo,
  encodeResultBatch,
  type GridLayout,
  parseSequentialName,
  type TaskSpec,
  type TaskStatus,
} from "@zkgrid/protocol";
import type {} from "@zkgrid/testing";
import { inject } from "vitest";

export { finalStatus } from "../../../tests/fixtures/statuses.js";

export const connectString = (): string => inject("zkConnectString");

/** A grid root no other test uses. */
export const randomRoot = (): string => `/test-${randomUUID()}`;

/** A plain ZooKeeper client for the test to read and write as the leader would. */
export function connectTestClient(): Promise<ZkClient> {
  return connect({ connectString: connectString() });
}

export interface QueueNode {
  name: string;
  dataLength: number;
  submitter: string | undefined;
  tasks: TaskSpec[];
}

/** Every queue node, in sequence order, decoded with the protocol (a node that does not decode fails the test). */
export async function readQueue(zk: ZkClient, layout: GridLayout): Promise<QueueNode[]> {
  if ((await zk.exists(layout.queue)) === null) return [];
  const names = await zk.getChildren(layout.queue);
  const sequenced = names.map((name) => ({ name, seq: parseSequentialName(name)?.sequence ?? -1 }));
  sequenced.sort((a, b) => a.seq - b.seq);
  const nodes: QueueNode[] = [];
  for (const { name } of sequenced) {
    const { data, stat } = await zk.get(`${layout.queue}/${name}`);
    const decoded = decodeSubmitBatch(data);
    if (!decoded.ok) throw new Error(`queue node ${name} does not decode: ${decoded.error.message}`);
    const tasks = decoded.tasks.map((t) => {
      if (!t.ok) throw new Error(`task ${t.index} of ${name} does not decode: ${t.error.message}`);
      return t.task;
    });
    nodes.push({ name, dataLength: stat.dataLength, submitter: decoded.batch.submitter, tasks });
  }
  return nodes;
}

/**
 * Writes one ResultBatch as the leader does: a persistent sequential `R/results/r` node, with the
 * protected-create prefix when `protect` is set (readers must accept both).
 */
export async function writeResults(
  zk: ZkClient,
  layout: GridLayout,
  results: TaskStatus[],
  epoch = 1,
  protect = false,
  place = layout.results,
): Promise<string> {
  await zk.ensurePath(place);
  const path = `${place}/${layout.resultNodePrefix}`;
  const data = encodeResultBatch({ v: 1, epoch, results });
  return protect
    ? zk.createProtected(path, data, "persistent-sequential")
    : zk.create(path, data, "persistent-sequential");
}

/**
 * Plays the leader's part for the tasks of every queue node that appears until `signal` aborts:
 * writes one ResultBatch per queue node with the status `decide` gives each task, then deletes the
 * queue node. Resolves with the ids it answered. With `acceptsReplyTo` it also stands, while it
 * answers, as an election candidate whose info says it takes `replyTo` (as a master of this version
 * does), so that clients set it; without, clients see no master and send results to R/results.
 */
export async function answerQueue(
  zk: ZkClient,
  layout: GridLayout,
  decide: (task: TaskSpec) => TaskStatus,
  signal: AbortSignal,
  options: { acceptsReplyTo?: boolean } = {},
): Promise<string[]> {
  const answered: string[] = [];
  await zk.ensurePath(layout.queue);
  let candidate: string | undefined;
  if (options.acceptsReplyTo) {
    await zk.ensurePath(layout.masters);
    const info = encodeMasterInfo({
      v: 1,
      name: "test-leader",
      host: "test",
      pid: 1,
      startedAt: 1,
      accepts: [ACCEPTS_REPLY_TO],
    });
    candidate = await zk.createProtected(
      `${layout.masters}/${layout.masterNodePrefix}`,
      info,
      "ephemeral-sequential",
    );
  }
  try {
    await answerEach(zk, layout, decide, signal, answered);
  } finally {
    if (candidate !== undefined) await zk.delete(candidate).catch(() => {});
  }
  return answered;
}

async function answerEach(
  zk: ZkClient,
  layout: GridLayout,
  decide: (task: TaskSpec) => TaskStatus,
  signal: AbortSignal,
  answered: string[],
): Promise<void> {
  for await (const change of zk.watchChildren(layout.queue, { signal })) {
    for (const name of change.added) {
      const { data } = await zk.get(`${layout.queue}/${name}`);
      const decoded = decodeSubmitBatch(data);
      if (!decoded.ok) throw new Error(`queue node ${name} does not decode: ${decoded.error.message}`);
      const tasks = decoded.tasks.flatMap((t) => (t.ok ? [t.task] : []));
      // As the leader does: a task's result goes to its reply dir when it names one, else R/results.
      for (const replyTo of new Set(tasks.map((task) => task.replyTo))) {
        const place = replyTo === undefined ? layout.results : layout.replyDir(replyTo);
        const mine = tasks.filter((task) => task.replyTo === replyTo);
        await writeResults(zk, layout, mine.map(decide), 1, false, place);
      }
      await zk.delete(`${layout.queue}/${name}`);
      answered.push(...tasks.map((task) => task.id));
    }
  }
}
