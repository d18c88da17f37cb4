import { randomUUID } from "node:crypto";
import { encodeSubmitBatch } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { afterEach, expect, it } from "vitest";
import { observeGrid } from "../src/index.js";
import { connectString, ProtocolWriter } from "./helpers.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

it("shows a task whose runAt or retry backoff is ahead as delayed, with its due time and history", async () => {
  const g = await ProtocolWriter.create();
  cleanups.push(() => g.close());
  await g.dirs();
  const later = Date.now() + 600_000;
  // The first node outlived the retried task's first hand-out: the requeued copy is the one that counts.
  await g.queue([
    { id: "at-later", cmd: "true", runAt: later },
    { id: "retried", cmd: "false", retry: {} },
    { id: "now", cmd: "true", runAt: 1 },
  ]);
  const history = [{ attempt: 1, outcome: "failed" as const, worker: "w1", exitCode: 1 }];
  await g.zk.createProtected(
    `${g.layout.queue}/${g.layout.queueNodePrefix}`,
    encodeSubmitBatch({
      v: 1,
      batchId: `b-${randomUUID()}`,
      submittedAt: Date.now(),
      submitter: "leader@1",
      tasks: [{ id: "retried", cmd: "false", retry: {} }],
      requeued: { retried: { attemptsUsed: 1, submittedAt: 5, notBefore: later + 1, history } },
    }),
    "persistent-sequential",
  );

  const observer = await observeGrid({ connectString: connectString(), root: g.root });
  cleanups.push(() => observer.close());
  const snapshot = await waitFor(
    () => {
      const s = observer.snapshot();
      return s.counts.delayed === 2 ? s : undefined;
    },
    { timeoutMs: 10_000, message: "two delayed tasks" },
  );
  expect(snapshot.counts.queued).toBe(1);
  expect(snapshot.queue.depth).toBe(3);
  const delayed = observer.tasks({ state: "delayed" });
  expect(delayed.map((t) => t.id).sort()).toEqual(["at-later", "retried"]);
  expect(delayed.find((t) => t.id === "at-later")).toMatchObject({ dueAt: later, attempt: 0 });
  expect(await observer.task("retried")).toMatchObject({
    state: "delayed",
    dueAt: later + 1,
    attempt: 1,
    submittedAt: 5,
    history,
  });
  expect(await observer.task("now")).toMatchObject({ state: "queued" });
});
