import type { TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, inject } from "vitest";
import { assertBuilt, Cluster } from "../chaos/cluster.js";
import { validTask } from "./corpus.js";

/**
 * One cluster per test on the suite's ZooKeeper, made by the returned function: after each test it is
 * closed, and when the test failed its transcript is printed and its dir kept.
 */
export function clusterPerTest(sessionTimeoutMs: number): (label: string) => Cluster {
  let cluster: Cluster | undefined;
  afterEach(async (ctx) => {
    const failed = ctx.task.result?.state === "fail";
    if (failed && cluster) console.error(cluster.transcript());
    await cluster?.close({ keepDir: failed });
    cluster = undefined;
  });
  return (label) => {
    assertBuilt();
    cluster = new Cluster({ connectString: inject("zkConnectString"), sessionTimeoutMs, label });
    return cluster;
  };
}

export async function waitForLeader(c: Cluster, name: string): Promise<void> {
  await waitFor(async () => (await c.leaderName()) === name, {
    timeoutMs: 60_000,
    message: `${name} to lead`,
  });
}

/** Submits `n` valid tasks `<prefix>-<i>` and expects each to have exactly one result, succeeded; returns their ids. */
export async function expectValidTasksSucceed(c: Cluster, prefix: string, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  await c.submit(ids.map((id) => validTask(id) as { id: string; cmd: string }));
  const states = new Map<string, TaskStatus["state"][]>();
  for (const r of await c.waitForResults(ids, 90_000))
    states.set(r.id, [...(states.get(r.id) ?? []), r.state]);
  for (const id of ids) expect(states.get(id), id).toEqual(["succeeded"]);
  return ids;
}
