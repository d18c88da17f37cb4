import { randomUUID } from "node:crypto";
import { connect } from "@zkgrid/core";
import { decodeResultBatch, gridLayout, type TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, inject, it } from "vitest";
import { startMaster } from "../src/index.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

it("a queue node with an unsupported v, or none, rejects each task with a valid id under that id", async () => {
  const connectString = inject("zkConnectString");
  const root = `/test-${randomUUID()}`;
  const layout = gridLayout(root);
  const master = await startMaster({ name: "m", connectString, root, sessionTimeoutMs: 4000 });
  cleanups.push(() => master.stop());
  await master.leading();
  const zk = await connect({ connectString });
  cleanups.push(async () => {
    await zk.deleteRecursive(root);
    await zk.close();
  });

  const batches = [
    {
      v: 2,
      tasks: [
        { id: "v2-a", cmd: "true" },
        { id: "v2-b", cmd: "true" },
      ],
    },
    { v: "1", tasks: [{ id: "v-text", cmd: "true" }] },
    {
      tasks: [
        { id: "no-v", cmd: "true" },
        { id: "../bad", cmd: "true" },
      ],
    },
  ];
  const names: string[] = [];
  for (const b of batches) {
    const data = JSON.stringify({ ...b, batchId: randomUUID(), submittedAt: Date.now() });
    const path = await zk.create(`${layout.queue}/${layout.queueNodePrefix}`, data, "persistent-sequential");
    names.push(path.slice(path.lastIndexOf("/") + 1));
  }

  const wanted = ["v2-a", "v2-b", "v-text", "no-v"];
  const byId = new Map<string, TaskStatus>();
  await waitFor(
    async () => {
      byId.clear();
      for (const name of await zk.getChildren(layout.results)) {
        const decoded = decodeResultBatch((await zk.get(`${layout.results}/${name}`)).data);
        if (decoded.ok) for (const r of decoded.value.results) byId.set(r.id, r);
      }
      return wanted.every((id) => byId.has(id));
    },
    { timeoutMs: 30_000, message: "a rejected status for every task with a valid id" },
  );
  for (const id of wanted) {
    expect(byId.get(id)).toMatchObject({ state: "rejected", attempt: 0 });
    expect(byId.get(id)?.reason).toMatch(/^queue node q\d+: v: /);
  }
  // The task without a valid id is named after its place in the node; nothing goes under q<seq>.0.
  expect([...byId.keys()].filter((id) => !wanted.includes(id))).toEqual([`${names[2]}.1`]);
  await waitFor(async () => (await zk.getChildren(layout.queue)).length === 0, {
    timeoutMs: 30_000,
    message: "the rejected queue nodes to be deleted",
  });
});
