import { decodeResultBatch, type TaskStatus } from "@zkgrid/protocol";
import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { clusterPerTest, expectValidTasksSucceed, waitForLeader } from "./harness.js";
import { connectGrid } from "@zkgrid/submit";
import {
  BAD_REPLY_ADDRESSES,
  JUNK_REPLY_DIRS,
  NEWER_MASTER_INFO,
  NOT_ACCEPTING_MASTER_INFOS,
  replyTask,
} from "./reply-corpus.js";

const newCluster = clusterPerTest(4000);

describe("hostile reply addresses written straight into ZooKeeper", () => {
  it("a task with a malformed reply address is rejected naming it, junk under R/replies is passed over, and the leader stays up across a takeover", async () => {
    const c = newCluster("hostile-replies");
    c.startMaster("m1");
    await waitForLeader(c, "m1");
    c.startMaster("m2");
    c.startWorker("w1", { concurrency: 4 });
    await waitFor(() => c.workerSession("w1"), { timeoutMs: 60_000, message: "w1 to register" });
    const zk = await c.zk();

    // Junk first: the standby reads R/replies at its takeover below.
    await zk.ensurePath(c.layout.replies);
    for (const junk of JUNK_REPLY_DIRS) {
      await zk.create(`${c.layout.replies}/${junk.name}`, junk.data, "persistent");
      for (const child of junk.children ?? []) {
        await zk.create(`${c.layout.replies}/${junk.name}/${child.name}`, child.data, "persistent");
      }
    }

    const bad = BAD_REPLY_ADDRESSES.map((k, i) => ({
      id: `rb-${i}`,
      what: k.what,
      task: replyTask(`rb-${i}`, k.replyTo),
    }));
    const good = ["rv-0", "rv-1"];
    const batch = {
      v: 1,
      batchId: "b-replies",
      submittedAt: Date.now(),
      tasks: [...bad.map((b) => b.task), ...good.map((id) => replyTask(id, "good-addr"))],
    };
    await zk.create(`${c.layout.queue}/q`, Buffer.from(JSON.stringify(batch)), "persistent-sequential");

    // Rejections are answered in R/results (a rejected task has no usable address); each names it.
    const results = await c.waitForResults(
      bad.map((b) => b.id),
      90_000,
    );
    for (const b of bad) {
      const got = results.filter((r) => r.id === b.id);
      expect(
        got.map((r) => r.state),
        `${b.id} (${b.what})`,
      ).toEqual(["rejected"]);
      expect(got[0]?.reason, `${b.id} (${b.what})`).toMatch(/reply address/);
    }

    // The valid tasks beside them run, and their results are in their reply dir, not in R/results.
    const dir = c.layout.replyDir("good-addr");
    const replied: TaskStatus[] = [];
    await waitFor(
      async () => {
        replied.length = 0;
        for (const name of await zk.getChildren(dir).catch(() => [] as string[])) {
          const got = await zk.get(`${dir}/${name}`);
          const decoded = decodeResultBatch(got.data);
          if (decoded.ok) replied.push(...decoded.value.results);
        }
        return good.every((id) => replied.some((r) => r.id === id));
      },
      { timeoutMs: 90_000, message: "the valid tasks' results in their reply dir" },
    );
    expect(replied.map((r) => [r.id, r.state]).sort()).toEqual(good.map((id) => [id, "succeeded"]));
    expect((await c.results()).filter((r) => good.includes(r.id))).toEqual([]);

    // Takeover over the junk: the new leader serves, and every process is still up.
    await c.proc("m1")?.kill();
    await waitForLeader(c, "m2");
    await expectValidTasksSucceed(c, "after-replies", 5);
    expect(c.proc("m2")?.alive, "m2 alive").toBe(true);
    expect(c.proc("w1")?.alive, "w1 alive").toBe(true);
    // Junk it could not read is left in place, not deleted as if it were a gone submitter's dir.
    expect((await zk.getChildren(`${c.layout.replies}/junk-results`)).sort()).toEqual([
      "garbage",
      "r0000000000",
      "r0000000001",
    ]);
  }, 240_000);

  it("a candidate under R/masters that does not say it takes replyTo keeps a new client's results in R/results; a newer master's info does not hide it", async () => {
    const c = newCluster("hostile-replies-masters");
    c.startMaster("m1");
    await waitForLeader(c, "m1");
    c.startWorker("w1", { concurrency: 4 });
    await waitFor(() => c.workerSession("w1"), { timeoutMs: 60_000, message: "w1 to register" });
    const zk = await c.zk();
    const candidate = `${c.layout.masters}/${c.layout.masterNodePrefix}`;
    const idsIn = async (dir: string) => {
      const ids: string[] = [];
      for (const name of await zk.getChildren(dir).catch(() => [] as string[])) {
        const decoded = decodeResultBatch((await zk.get(`${dir}/${name}`)).data);
        if (decoded.ok) ids.push(...decoded.value.results.map((r) => r.id));
      }
      return ids;
    };
    const submitOnce = async () => {
      const grid = await connectGrid({ connectString: c.options.connectString, root: c.root });
      try {
        const results = await grid.submitAndWait([{ cmd: "true" }, { cmd: "true" }], { timeoutMs: 60_000 });
        expect([...results.values()].map((r) => r.state)).toEqual(["succeeded", "succeeded"]);
        return { ids: [...results.keys()], dir: c.layout.replyDir(grid.replyAddress ?? "none") };
      } finally {
        await grid.close();
      }
    };

    // Standing after the leader, so the election keeps m1.
    for (const info of NOT_ACCEPTING_MASTER_INFOS) {
      const node = await zk.createProtected(candidate, info.data, "ephemeral-sequential");
      const { ids, dir } = await submitOnce();
      expect(await idsIn(c.layout.results), info.what).toEqual(expect.arrayContaining(ids));
      expect(await zk.exists(dir), info.what).toBeNull();
      await zk.delete(node);
    }
    const newer = await zk.createProtected(candidate, NEWER_MASTER_INFO, "ephemeral-sequential");
    const { ids, dir } = await submitOnce();
    expect((await idsIn(dir)).sort()).toEqual([...ids].sort());
    await zk.delete(newer);
    expect(c.proc("m1")?.alive, "m1 alive").toBe(true);
    expect(await c.leaderName()).toBe("m1");
  }, 240_000);
});
