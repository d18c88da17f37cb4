import { waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { ChildrenChange, DataChange } from "../src/index.js";
import { connectClient, replayChildren, requestsFrom, sleep, testRoot, twoClients } from "./helpers.js";

describe("watchChildren", () => {
  it("first yields the current children as added, then the diffs", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/dir/a");
    const watch = zk.watchChildren("/dir");
    const first = (await watch.next()).value as ChildrenChange;
    expect(first).toMatchObject({ children: ["a"], added: ["a"], removed: [], exists: true });
    expect(first.stat?.numChildren).toBe(1);

    await other.create("/dir/b");
    expect((await watch.next()).value).toMatchObject({ children: ["a", "b"], added: ["b"], removed: [] });
    await other.delete("/dir/a");
    expect((await watch.next()).value).toMatchObject({ children: ["b"], added: [], removed: ["a"] });
    watch.stop();
    expect(await watch.next()).toEqual({ done: true, value: undefined });
  });

  it("waits for a missing node to be created and reports its deletion", async () => {
    const { zk, other } = await twoClients();
    const watch = zk.watchChildren("/later");
    expect((await watch.next()).value).toEqual({
      children: [],
      added: [],
      removed: [],
      exists: false,
      stat: null,
    });

    await other.ensurePath("/later/x");
    const created = (await watch.next()).value as ChildrenChange;
    expect(created.exists).toBe(true);
    // The node and its child may arrive as one state or two; either way the end state is the same.
    if (created.children.length === 0) {
      expect((await watch.next()).value).toMatchObject({ children: ["x"], added: ["x"] });
    } else {
      expect(created).toMatchObject({ children: ["x"], added: ["x"] });
    }
    await other.deleteRecursive("/later");
    // The child goes first, then the node: one or two states.
    const removed: string[] = [];
    let deleted: ChildrenChange;
    do {
      deleted = (await watch.next()).value as ChildrenChange;
      removed.push(...deleted.removed);
    } while (deleted.exists);
    expect(removed).toEqual(["x"]);
    expect(deleted).toMatchObject({ children: [], exists: false, stat: null });
    await watch.return?.();
  });

  it("under 200 rapid creates and deletes from another client ends on the real state with consistent diffs", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/busy");
    const seen: ChildrenChange[] = [];
    const watch = zk.watchChildren("/busy");
    const consume = (async () => {
      for await (const change of watch) seen.push(change);
    })();
    await waitFor(() => seen.length === 1);

    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      writes.push(other.create(`/busy/n${i}`, ""));
      if (i % 3 === 2) writes.push(other.delete(`/busy/n${i - 1}`));
    }
    await Promise.all(writes);
    const real = await other.getChildren("/busy");
    expect(real.length).toBe(200 - 66);
    await waitFor(() => JSON.stringify(seen.at(-1)?.children) === JSON.stringify(real), {
      timeoutMs: 20_000,
    });
    expect([...replayChildren(seen)].sort()).toEqual(real);
    // Never the same state twice in a row.
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.added.length + seen[i]!.removed.length).toBeGreaterThan(0);
    }
    watch.stop();
    await consume;
  });

  it("with perChild, learns of each child from its own event: the same diffs, without a listing per change", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/each");
    const seen: ChildrenChange[] = [];
    const watch = zk.watchChildren("/each", { perChild: true });
    const consume = (async () => {
      for await (const change of watch) seen.push(change);
    })();
    await waitFor(() => seen.length === 1);

    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      writes.push(other.create(`/each/n${i}`, ""));
      if (i % 3 === 2) writes.push(other.delete(`/each/n${i - 1}`));
    }
    // A child's data and a grandchild change nothing in the stream.
    writes.push(other.set("/each/n0", "x"), other.create("/each/n0/deeper", ""));
    await Promise.all(writes);
    const real = await other.getChildren("/each");
    expect(real.length).toBe(100 - 33);
    await waitFor(() => JSON.stringify(seen.at(-1)?.children) === JSON.stringify(real), {
      timeoutMs: 20_000,
    });
    expect([...replayChildren(seen)].sort()).toEqual(real);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.added.length + seen[i]!.removed.length).toBeGreaterThan(0);
    }
    // One child at a time, each seen before the next is made: listing after each change would send 20
    // requests; the events need none (the client may ping meanwhile).
    const requestsBefore = await requestsFrom(zk);
    for (let i = 0; i < 20; i++) {
      await other.create(`/each/one${i}`, "");
      await waitFor(() => seen.at(-1)?.children.includes(`one${i}`) === true);
    }
    expect((await requestsFrom(zk)) - requestsBefore).toBeLessThan(5);
    watch.stop();
    await consume;
  });

  it("gives a slow consumer the latest state with the net changes since what it saw last", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/slow/keep");
    await zk.ensurePath("/slow/gone");
    const watch = zk.watchChildren("/slow");
    expect((await watch.next()).value).toMatchObject({ children: ["gone", "keep"] });

    // Many changes while nobody reads.
    for (let i = 0; i < 20; i++) await zk.create(`/slow/tmp${i}`);
    for (let i = 0; i < 20; i++) await zk.delete(`/slow/tmp${i}`);
    await zk.delete("/slow/gone");
    await zk.create("/slow/new");
    await waitFor(async () => (await zk.getChildren("/slow")).includes("new"));
    await sleep(200);

    const change = (await watch.next()).value as ChildrenChange;
    expect(change.children).toEqual(["keep", "new"]);
    expect(change.added).toEqual(["new"]);
    expect(change.removed).toEqual(["gone"]);
    watch.stop();
  });

  it("ends on stop(), on break, on abort and when the client closes", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/d");

    const viaBreak = zk.watchChildren("/d");
    for await (const change of viaBreak) {
      expect(change.exists).toBe(true);
      break;
    }
    expect(await viaBreak.next()).toEqual({ done: true, value: undefined });

    const controller = new AbortController();
    const viaAbort = zk.watchChildren("/d", { signal: controller.signal });
    await viaAbort.next();
    const pending = viaAbort.next();
    controller.abort();
    expect(await pending).toEqual({ done: true, value: undefined });

    const viaStop = zk.watchData("/d");
    await viaStop.next();
    const pendingStop = viaStop.next();
    viaStop.stop();
    expect(await pendingStop).toEqual({ done: true, value: undefined });

    const viaClose = zk.watchChildren("/d");
    await viaClose.next();
    const ended = (async () => {
      let count = 0;
      for await (const _ of viaClose) count++;
      return count;
    })();
    await zk.close();
    expect(await ended).toBe(0);
  });

  it("with settleMs, children created one after another while it settles come in one change", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/d");
    const watch = zk.watchChildren("/d", { settleMs: 2_000 });
    expect((await watch.next()).value).toMatchObject({ children: [], added: [] });

    const names = ["c1", "c2", "c3", "c4", "c5"];
    for (const name of names) await other.create(`/d/${name}`);
    const change = (await watch.next()).value as ChildrenChange;
    expect(change).toMatchObject({ children: names, added: names, removed: [] });
    watch.stop();
  });

  it("with settleMs, the first read is not delayed, and stop() during the settle wait ends the stream", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/d");
    // Longer than the test may run: only the first read, and stop(), can end the waits below.
    const watch = zk.watchChildren("/d", { settleMs: 3_600_000 });
    expect((await watch.next()).value).toMatchObject({ children: [], exists: true });

    await zk.create("/d/a");
    // A reply read after the change comes after its watch event: the watch is settling now.
    await zk.exists("/d");
    const pending = watch.next();
    watch.stop();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(await watch.next()).toEqual({ done: true, value: undefined });
  });
});

describe("watchData", () => {
  it("yields null while absent, then every new version, then null after deletion", async () => {
    const { zk, other } = await twoClients();
    const watch = zk.watchData("/cfg");
    expect((await watch.next()).value).toBeNull();

    await other.create("/cfg", "v1");
    const v1 = (await watch.next()).value as DataChange;
    expect(v1.data.toString()).toBe("v1");
    expect(v1.stat.version).toBe(0);

    await other.set("/cfg", "v2");
    const v2 = (await watch.next()).value as DataChange;
    expect(v2.data.toString()).toBe("v2");
    expect(v2.stat.version).toBe(1);

    await other.delete("/cfg");
    expect((await watch.next()).value).toBeNull();
    watch.stop();
  });

  it("with untilGone, a deleted node yields null and leaves no watch that reports it made again", async () => {
    const { zk, other } = await twoClients();
    expect((await zk.watchData("/absent", { untilGone: true }).next()).value).toBeNull();
    await zk.create("/once", "a");
    const watch = zk.watchData("/once", { untilGone: true });
    expect(((await watch.next()).value as DataChange).data.toString()).toBe("a");
    await other.set("/once", "b");
    expect(((await watch.next()).value as DataChange).data.toString()).toBe("b");
    await other.delete("/once");
    expect((await watch.next()).value).toBeNull();
    // Made again: nothing is watching it, so the stream has nothing new to say. A sentinel write to
    // another watched node, made after, arrives first and proves the recreate went unreported.
    const sentinel = zk.watchData("/sentinel");
    expect((await sentinel.next()).value).toBeNull();
    await other.create("/once", "c");
    await other.create("/sentinel", "s");
    expect(((await sentinel.next()).value as DataChange).data.toString()).toBe("s");
    const pending = watch.next();
    watch.stop();
    expect(await pending).toEqual({ done: true, value: undefined });
    sentinel.stop();
  });

  it("coalesces many writes into the latest value for a slow consumer", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.create("/counter", "0");
    const watch = zk.watchData("/counter");
    expect(((await watch.next()).value as DataChange).data.toString()).toBe("0");
    for (let i = 1; i <= 50; i++) await zk.set("/counter", String(i));
    await sleep(200);
    const values: string[] = [];
    for await (const change of watch) {
      values.push((change as DataChange).data.toString());
      if (values.at(-1) === "50") break;
    }
    expect(values.at(-1)).toBe("50");
    expect(values.length).toBeLessThan(50);
  });
});
