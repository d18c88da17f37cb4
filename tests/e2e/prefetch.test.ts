import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeAssignment, decodeWorkerRegistration } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { gridPerTest, sessionOf } from "./grid.js";

const start = gridPerTest();

describe("defaults that keep a worker fed", () => {
  it("a worker without --prefetch asks for more under a deep queue, the leader gives it more than --concurrency, and it asks for no more once idle", async () => {
    const g = start();
    const handlers = join(g.dir, "handlers.mjs");
    writeFileSync(handlers, "export default { noop: () => undefined };\n");
    const master = g.master("m1");
    g.worker("w1", ["--concurrency", "2", "--handlers", handlers]);
    await sessionOf(g, "w1");

    // What the test sees of w1's registration and assignment while the queue drains.
    const zk = await g.zk();
    const watching = new AbortController();
    const seen = { capacity: 0, listed: 0 };
    void (async () => {
      for await (const change of zk.watchData(g.layout.worker("w1"), { signal: watching.signal })) {
        const reg = change === null ? undefined : decodeWorkerRegistration(change.data);
        if (reg?.ok) seen.capacity = Math.max(seen.capacity, reg.value.capacity);
      }
    })().catch(() => {});
    void (async () => {
      for await (const change of zk.watchData(g.layout.assign("w1"), { signal: watching.signal })) {
        const assignment = change === null ? undefined : decodeAssignment(change.data);
        if (assignment?.ok) seen.listed = Math.max(seen.listed, assignment.value.tasks.length);
      }
    })().catch(() => {});

    const ids = Array.from({ length: 3_000 }, (_, i) => `n${i}`);
    const sent = await g.submit([], ids.map((id) => JSON.stringify({ id, handler: "noop" })).join("\n"));
    expect(sent.code).toBe(0);
    const results = await g.waitForResults(ids, 120_000);
    for (const id of ids) expect(results.get(id)?.state).toBe("succeeded");

    // Its registration asked for more than --concurrency, within the bound (32 with --concurrency 2),
    // and the leader followed it: an assignment listed more tasks than w1 runs at once.
    await waitFor(() => seen.capacity > 2 && seen.listed > 2, { message: "a larger capacity, followed" });
    expect(seen.capacity).toBeLessThanOrEqual(2 + 32);
    expect(seen.listed).toBeLessThanOrEqual(2 + 32);
    // Idle: back to --concurrency.
    await waitFor(
      async () => {
        const got = await zk.get(g.layout.worker("w1"));
        const reg = decodeWorkerRegistration(got.data);
        return reg.ok && reg.value.capacity === 2;
      },
      { message: "the capacity back at --concurrency" },
    );
    watching.abort();

    // At the default log level the master writes a count of finished tasks, not a line per task.
    await waitFor(() => master.output().includes('"msg":"tasks finished"'), {
      timeoutMs: 30_000,
      message: "the master's summary line",
    });
    expect(master.output()).not.toContain('"msg":"task finished"');
  });
});
