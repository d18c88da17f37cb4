import { expireSession, fourLetterWord, waitFor, withTimeout } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import {
  ChildFollows,
  type ChildrenChange,
  ConnectionLossError,
  type DataChange,
  type FollowErrorAction,
  type FollowEvent,
  Follower,
  type FollowPolicy,
  forEachLimit,
  getOrNull,
  isSessionExpired,
  type Watcher,
} from "../src/index.js";
import {
  connectClient,
  nextEvent,
  replayChildren,
  sharedConnectString,
  TcpProxy,
  testRoot,
  twoClients,
} from "./helpers.js";

/** The paths the server holds a watch on for `client`'s session (ZooKeeper's `wchc`), sorted. */
async function watchedPaths(client: { sessionId: string | undefined }): Promise<string[]> {
  const [host, port] = sharedConnectString().split(",")[0]!.split(":");
  const report = await fourLetterWord(host!, Number(port), "wchc");
  const id = BigInt(`0x${client.sessionId}`);
  const paths: string[] = [];
  let mine = false;
  for (const line of report.split("\n")) {
    if (line.startsWith("0x")) mine = BigInt(line.trim()) === id;
    else if (mine && line.trim().startsWith("/")) paths.push(line.trim());
  }
  return paths.sort();
}

interface Seen {
  events: FollowEvent[];
  errors: Array<{ error: unknown; first: boolean; path: string }>;
}

/** A follower whose policy records what it is told and answers with `action`; `stop` ends its follows. */
function recordingFollower(
  client: Watcher,
  action: (error: unknown) => FollowErrorAction,
): { follower: Follower; seen: Seen; stop: AbortController } {
  const seen: Seen = { events: [], errors: [] };
  const stop = new AbortController();
  const policy: FollowPolicy = {
    signal: stop.signal,
    onError: (error, at) => {
      seen.errors.push({ error, first: at.first, path: at.path });
      return action(error);
    },
    onEvent: (event) => seen.events.push(event),
  };
  return { follower: new Follower(client, policy), seen, stop };
}

describe("Follower.children", () => {
  it("resolves once the first listing is handled, then hands over each change as added and removed", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/dir/a");
    const { follower, seen, stop } = recordingFollower(zk, () => "fail");
    const changes: ChildrenChange[] = [];
    let handling = false;
    await follower.children("/dir", async (change) => {
      // One change at a time: the next is read only after this handler's promise settles.
      expect(handling).toBe(false);
      handling = true;
      await new Promise((resolve) => setImmediate(resolve));
      changes.push(change);
      handling = false;
    });
    expect(changes).toEqual([expect.objectContaining({ children: ["a"], added: ["a"], removed: [] })]);

    await other.create("/dir/b");
    await other.delete("/dir/a");
    await other.create("/dir/c");
    await waitFor(() => changes.at(-1)?.children.join() === "b,c", { message: "b and c listed" });
    expect([...replayChildren(changes)].sort()).toEqual(["b", "c"]);
    expect(seen.events.map((e) => e.type)).toEqual(changes.map(() => "children"));
    expect(seen.events.every((e) => e.path === "/dir")).toBe(true);
    expect(seen.errors).toEqual([]);
    stop.abort();
  });

  it("follows a dir that does not exist yet, and its deletion and re-creation", async () => {
    const { zk, other } = await twoClients();
    const { follower } = recordingFollower(zk, () => "fail");
    const changes: ChildrenChange[] = [];
    const stop = new AbortController();
    await follower.children("/later", (c) => void changes.push(c), { signal: stop.signal });
    expect(changes).toEqual([expect.objectContaining({ exists: false, children: [] })]);

    await other.ensurePath("/later/x");
    await waitFor(() => changes.at(-1)?.children.includes("x"), { message: "x listed" });
    await other.deleteRecursive("/later");
    await waitFor(() => changes.at(-1)?.exists === false, { message: "deletion seen" });
    await other.ensurePath("/later/y");
    await waitFor(() => changes.at(-1)?.children.includes("y"), { message: "y listed" });
    expect([...replayChildren(changes)]).toEqual(["y"]);
    stop.abort();
  });

  it("a handler error before the first state rejects the follow when the policy says fail", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/dir");
    const { follower, seen } = recordingFollower(zk, () => "fail");
    const refused = new Error("cannot take this listing");
    await expect(
      follower.children("/dir", () => {
        throw refused;
      }),
    ).rejects.toBe(refused);
    expect(seen.errors).toEqual([{ error: refused, first: true, path: "/dir" }]);
  });

  it("after the first state, a failing follow tells the policy and ends: it re-arms no watch", async () => {
    const { root, zk, other } = await twoClients();
    await zk.create("/node", "good");
    const { follower, seen } = recordingFollower(zk, () => "fail");
    const handled: string[] = [];
    await follower.data("/node", (c) => {
      handled.push(c?.data.toString() ?? "gone");
      if (c?.data.toString() === "bad") throw new Error("bad data");
    });
    await other.set("/node", "bad");
    await waitFor(() => seen.errors.length === 1, { message: "the error reaches the policy" });
    expect(seen.errors[0]).toMatchObject({ first: false, path: "/node" });
    // The read of "bad" armed the last watch; this write fires it, and an ended follow arms no other.
    await other.set("/node", "after");
    await waitFor(async () => !(await watchedPaths(zk)).includes(`${root}/node`), { message: "no watch" });
    expect(handled).toEqual(["good", "bad"]);
  });

  it("retry: a failed handler runs again with the newest listing, diffed against the last one it handled", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/dir/a");
    const { follower, seen, stop } = recordingFollower(zk, () => "retry");
    const handled: ChildrenChange[] = [];
    let failOnce = true;
    await follower.children("/dir", async (c) => {
      if (c.children.includes("b") && failOnce) {
        failOnce = false;
        // While it fails, the dir changes again: the retry sees both changes at once.
        await other.delete("/dir/a");
        await other.create("/dir/c");
        throw new ConnectionLossError();
      }
      handled.push(c);
    });
    await other.create("/dir/b");
    await waitFor(() => handled.at(-1)?.children.join() === "b,c", { message: "b and c handled" });
    expect(seen.errors).toHaveLength(1);
    expect(handled).toEqual([
      expect.objectContaining({ children: ["a"], added: ["a"], removed: [] }),
      expect.objectContaining({ children: ["b", "c"], added: ["b", "c"], removed: ["a"] }),
    ]);
    stop.abort();
  });

  it("keeps following through a lost connection: changes made meanwhile arrive after the reconnect", async () => {
    const proxy = await TcpProxy.start(sharedConnectString());
    // The client notices the cut at 2/3 of its session timeout and must be back before the rest runs
    // out, or the session expires and no "reconnected" comes: 10 s leaves 3.3 s for a loaded machine.
    const { zk, other } = await twoClients({ connectString: proxy.connectString, sessionTimeoutMs: 10_000 });
    await zk.ensurePath("/dir");
    const { follower, seen, stop } = recordingFollower(zk, () => "fail");
    const changes: ChildrenChange[] = [];
    await follower.children("/dir", (c) => void changes.push(c));

    const suspended = nextEvent(zk, "suspended");
    const expired = nextEvent(zk, "expired").then(() => "expired");
    proxy.setMode("blackhole");
    await withTimeout(suspended, 30_000, "the client noticing the cut");
    await other.create("/dir/while-down");
    const reconnected = nextEvent(zk, "reconnected");
    proxy.setMode("pass");
    // An expiry would mean the cut outlasted the session: then there is no reconnect to test.
    const back = Promise.race([reconnected.then(() => "reconnected"), expired]);
    expect(await withTimeout(back, 30_000, "the reconnect after the cut")).toBe("reconnected");
    await waitFor(() => changes.at(-1)?.children.includes("while-down"), { message: "change seen" });
    expect([...replayChildren(changes)]).toEqual(["while-down"]);
    expect(seen.errors).toEqual([]);
    stop.abort();
  });
});

describe("Follower across a session expiry", () => {
  it("a client's follow goes on in the new session (the observer's way: nothing to report)", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/dir");
    const { follower, seen, stop } = recordingFollower(zk, () => "end");
    const changes: ChildrenChange[] = [];
    await follower.children("/dir", (c) => void changes.push(c));
    const renewed = nextEvent(zk, "connected");
    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    await renewed;
    await other.create("/dir/after-expiry");
    await waitFor(() => changes.at(-1)?.children.includes("after-expiry"), { message: "change seen" });
    expect(seen.errors).toEqual([]);
    stop.abort();
  });

  it("a handler bound to the expired session fails, and the policy hears it (the leader's way: end the term)", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/dir");
    const bound = zk.boundTo(zk.sessionId!);
    const ended: unknown[] = [];
    const { follower } = recordingFollower(zk, (error) => {
      ended.push(error);
      return "fail";
    });
    const handled: string[][] = [];
    await follower.children("/dir", async () => {
      handled.push(await bound.getChildren("/dir"));
    });
    expect(handled).toEqual([[]]);

    const renewed = nextEvent(zk, "connected");
    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    await renewed;
    await other.create("/dir/x");
    await waitFor(() => ended.length === 1, { message: "the policy hears of the expiry" });
    expect(isSessionExpired(ended[0])).toBe(true);
    expect(handled).toEqual([[]]);

    // A follow through the bound view itself ends with its session: it resolves, handling nothing.
    const late: unknown[] = [];
    await follower.children("/dir", (c) => void late.push(c));
    await new Follower(bound, { signal: new AbortController().signal, onError: () => "fail" }).children(
      "/dir",
      (c) => void late.push(c),
    );
    expect(late).toEqual([expect.objectContaining({ children: ["x"] })]);
  });
});

describe("Follower.data", () => {
  it("hands over each change, null while the node is gone, and the node again once recreated", async () => {
    const { zk, other } = await twoClients();
    const { follower, seen, stop } = recordingFollower(zk, () => "fail");
    const states: Array<string | null> = [];
    await follower.data("/cfg", (c: DataChange | null) => void states.push(c ? c.data.toString() : null));
    expect(states).toEqual([null]);
    await other.create("/cfg", "one");
    await waitFor(() => states.at(-1) === "one", { message: "created" });
    await other.set("/cfg", "two");
    await waitFor(() => states.at(-1) === "two", { message: "changed" });
    await other.delete("/cfg");
    await waitFor(() => states.at(-1) === null, { message: "deleted" });
    await other.create("/cfg", "three");
    await waitFor(() => states.at(-1) === "three", { message: "recreated" });
    expect(seen.events.every((e) => e.type === "data" && e.path === "/cfg")).toBe(true);
    stop.abort();
  });

  it("ends when the handler returns false, or with untilGone once the node is deleted: no watch is left", async () => {
    const { root, zk, other } = await twoClients();
    await zk.create("/task", "waiting");
    await zk.create("/once", "x");
    const { follower } = recordingFollower(zk, () => "fail");
    const seenTask: string[] = [];
    await follower.data("/task", (c) => {
      seenTask.push(c?.data.toString() ?? "gone");
      return c?.data.toString() === "waiting";
    });
    const seenOnce: Array<string | null> = [];
    await follower.data("/once", (c) => void seenOnce.push(c ? c.data.toString() : null), {
      untilGone: true,
    });
    expect(await watchedPaths(zk)).toEqual([`${root}/once`, `${root}/task`]);
    await other.set("/task", "answer");
    await other.delete("/once");
    await waitFor(() => seenTask.length === 2 && seenOnce.length === 2, { message: "both ends handled" });
    // The answer fired the last watch on /task, and a deleted node leaves none with untilGone: a follow
    // still running would have armed a new one.
    await other.set("/task", "later");
    await other.create("/once", "again");
    await waitFor(async () => (await watchedPaths(zk)).length === 0, { message: "no watch left" });
    expect(seenTask).toEqual(["waiting", "answer"]);
    expect(seenOnce).toEqual(["x", null]);
  });
});

describe("ChildFollows", () => {
  it("follows each child until it is removed, forgetting it then, and skips children it does not open", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/workers");
    await zk.create("/workers/w1", "1");
    await zk.create("/workers/not-a-worker", "?");
    const { follower, stop } = recordingFollower(zk, () => "fail");
    const data = new Map<string, string>();
    const forgotten: string[] = [];
    const follows = new ChildFollows<{ name: string }>({
      open: (name) => (name.startsWith("w") ? { name } : undefined),
      follow: (name, _entry, signal) =>
        follower.data(
          `/workers/${name}`,
          (c) => {
            if (c) data.set(name, c.data.toString());
          },
          { signal },
        ),
      forget: (name) => {
        forgotten.push(name);
        data.delete(name);
      },
    });
    await follower.children("/workers", (c) => follows.update(c));
    // The first listing resolves only once each child's first state is read.
    expect([...data]).toEqual([["w1", "1"]]);
    expect([...follows].map(([name]) => name)).toEqual(["w1"]);

    await other.create("/workers/w2", "2");
    await waitFor(() => data.get("w2") === "2", { message: "w2 read" });
    await other.set("/workers/w1", "1b");
    await waitFor(() => data.get("w1") === "1b", { message: "w1 changed" });
    await other.delete("/workers/w1");
    await waitFor(() => forgotten.includes("w1"), { message: "w1 forgotten" });
    expect(follows.has("w1")).toBe(false);
    expect([...follows.values()]).toEqual([{ name: "w2" }]);

    follows.delete("w2");
    expect(follows.get("w2")).toBeUndefined();
    stop.abort();
  });
});

describe("reads", () => {
  it("getOrNull reads a node or gives null for a missing one", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.create("/here", "x");
    expect((await getOrNull(zk, "/here"))?.data.toString()).toBe("x");
    expect(await getOrNull(zk, "/missing")).toBeNull();
  });

  it("forEachLimit visits every item with at most `limit` in flight", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/n");
    const names = Array.from({ length: 20 }, (_, i) => `c${i}`);
    await Promise.all(names.map((n) => zk.create(`/n/${n}`, n)));
    let inFlight = 0;
    let most = 0;
    const read: string[] = [];
    await forEachLimit(names, 3, async (name) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      read.push((await zk.get(`/n/${name}`)).data.toString());
      inFlight -= 1;
    });
    expect(read.sort()).toEqual([...names].sort());
    expect(most).toBeLessThanOrEqual(3);
  });
});
