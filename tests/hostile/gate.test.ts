import { encodeGridGate } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { validTask } from "./corpus.js";
import { gateCorpus } from "./gate-corpus.js";
import { clusterPerTest, expectValidTasksSucceed, waitForLeader } from "./harness.js";

const newCluster = clusterPerTest(4000);

/** The JSON log lines of a process (pino), skipping anything else. */
function logLines(log: string): Array<Record<string, unknown>> {
  return log.split("\n").flatMap((line) => {
    try {
      const value = JSON.parse(line) as unknown;
      return typeof value === "object" && value !== null ? [value as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

describe("hostile gate nodes written straight into ZooKeeper", () => {
  it("a malformed gate, or each malformed part of one, is ignored with a logged reason; the master stays up and leads on", async () => {
    const c = newCluster("hostile-gate");
    c.startMaster("m1");
    await waitForLeader(c, "m1");
    c.startWorker("w1", { concurrency: 4 });
    await waitFor(() => c.workerSession("w1"), { timeoutMs: 60_000, message: "w1 to register" });
    const zk = await c.zk();
    const gatePath = c.layout.gate;
    await zk.create(gatePath, encodeGridGate({ v: 1 }), "persistent");

    for (const [i, hostile] of gateCorpus().entries()) {
      const before = logLines(c.proc("m1")?.log() ?? "").length;
      await zk.set(gatePath, hostile.data);
      await waitFor(
        () => {
          const fresh = logLines(c.proc("m1")?.log() ?? "").slice(before);
          if (hostile.ignored === "whole")
            return fresh.some(
              (l) => l.msg === "gate node unreadable; ignoring it: nothing is paused or limited by it",
            );
          const paths = new Set(
            fresh.filter((l) => l.msg === "part of the gate node ignored").map((l) => l.path),
          );
          return hostile.ignored.every((p) => paths.has(p));
        },
        { timeoutMs: 30_000, message: `case ${i} (${hostile.what}): the leader to log why it ignored it` },
      );
      expect(c.proc("m1")?.alive, `m1 alive after ${hostile.what}`).toBe(true);
    }

    // The last case left only an unknown key: nothing is paused, and tasks run.
    await expectValidTasksSucceed(c, "after-gate-corpus", 5);
    // Bad parts beside a valid pause: the pause holds, the rest is ignored.
    const before = logLines(c.proc("m1")?.log() ?? "").length;
    await zk.set(
      gatePath,
      Buffer.from(
        JSON.stringify({ v: 1, paused: { at: 1 }, pausedLabels: { "x y": { at: 1 } }, limits: "bad" }),
      ),
    );
    await waitFor(
      () =>
        logLines(c.proc("m1")?.log() ?? "")
          .slice(before)
          .some((l) => l.msg === "grid paused: no task starts"),
      { timeoutMs: 30_000, message: "m1 to apply the valid pause" },
    );
    const held = Array.from({ length: 3 }, (_, i) => validTask(`held-${i}`) as { id: string; cmd: string });
    await c.submit(held);

    // A new leader reads the same node the same way: the pause holds across the takeover.
    await c.proc("m1")?.kill();
    c.startMaster("m2");
    await waitForLeader(c, "m2");
    await waitFor(() => logLines(c.proc("m2")?.log() ?? "").some((l) => l.msg === "state rebuilt"), {
      timeoutMs: 60_000,
      message: "m2 to rebuild the grid's state",
    });
    expect((await c.results()).filter((r) => r.id.startsWith("held-"))).toEqual([]);
    await zk.set(gatePath, encodeGridGate({ v: 1 }));
    const results = await c.waitForResults(
      held.map((t) => t.id),
      60_000,
    );
    for (const t of held) expect(results.find((r) => r.id === t.id)?.state, t.id).toBe("succeeded");
    expect(c.proc("m2")?.alive).toBe(true);
  }, 300_000);
});
