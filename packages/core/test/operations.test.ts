import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { digestAcl, errors, OPEN_ACL, Perms } from "../src/index.js";
import { connectClient, sharedConnectString, testRoot } from "./helpers.js";

/** `node -e LOOK <addon> <connect> <path>`: prints whether the node exists, read by a client of its own. */
const LOOK = `
const [addon, connect, path] = process.argv.slice(1);
const ZooKeeper = require(addon);
const zk = new ZooKeeper({ connect, timeout: 10000, debug_level: 0 });
zk.on("connect", async () => {
  const there = await zk.pathExists(path, false);
  process.stdout.write(there ? "exists" : "absent");
  zk.close();
});
zk.init({});`;

describe("operations", () => {
  it("creates the root if absent and keeps every path relative to it", async () => {
    const root = `${testRoot()}/nested/root`;
    const zk = await connectClient({ root });
    const outside = await connectClient();
    expect(await outside.exists(root)).not.toBeNull();

    expect(await zk.create("/a", "x")).toBe("/a");
    expect((await outside.get(`${root}/a`)).data.toString()).toBe("x");
    expect(await zk.getChildren("/")).toEqual(["a"]);
    expect(zk.root).toBe(root);
  });

  it("returns the created name of sequential nodes, relative to the root", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.ensurePath("/q");
    const first = await zk.create("/q/item-", "1", "persistent-sequential");
    const second = await zk.create("/q/item-", "2", "ephemeral-sequential");
    expect(first).toMatch(/^\/q\/item-\d{10}$/);
    expect(second).toMatch(/^\/q\/item-\d{10}$/);
    expect(second > first).toBe(true);
    expect(await zk.getChildren("/q")).toEqual([first.slice(3), second.slice(3)]);
  });

  it("marks ephemeral nodes with the session id in the same hex form as sessionId", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/e", "", "ephemeral");
    await zk.create("/p", "");
    const ephemeral = await zk.exists("/e");
    const persistent = await zk.exists("/p");
    expect(ephemeral?.ephemeralOwner).toBe(zk.sessionId);
    expect(zk.sessionId).toMatch(/^[0-9a-f]+$/);
    expect(persistent?.ephemeralOwner).toBe("0");
  });

  it("writes and deletes conditionally on the version", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/v", "0");
    const stat1 = await zk.set("/v", "1", 0);
    expect(stat1.version).toBe(1);
    await expect(zk.set("/v", "2", 0)).rejects.toBeInstanceOf(errors.BadVersionError);
    const stat2 = await zk.set("/v", "2");
    expect(stat2.version).toBe(2);
    const { data, stat } = await zk.get("/v");
    expect(data.toString()).toBe("2");
    expect(typeof stat.mtime).toBe("number");
    await expect(zk.delete("/v", 1)).rejects.toBeInstanceOf(errors.BadVersionError);
    await zk.delete("/v", 2);
    expect(await zk.exists("/v")).toBeNull();
  });

  it("applies calls made in one turn in the order made, whatever the operation (a bound view too)", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.ensurePath("/order");
    await zk.create("/order/a", "0");
    for (const client of [zk, zk.boundTo(zk.sessionId ?? "")]) {
      // A protected create, then a write: the create is applied first.
      const [created, written] = await Promise.all([
        client.createProtected("/order/n-", "x", "persistent-sequential"),
        client.setOnce("/order/a", "1"),
      ]);
      const node = await zk.exists(created);
      expect(node?.czxid).toBeLessThan(written.mzxid);
      // And the other way round.
      const [rewritten, second] = await Promise.all([
        client.set("/order/a", "2"),
        client.createProtected("/order/n-", "y", "persistent-sequential"),
      ]);
      expect(rewritten.mzxid).toBeLessThan((await zk.exists(second))?.czxid ?? 0);
    }
  });

  it("sends a call before it returns when the session is ready, ahead of the rest of the turn", async () => {
    const root = testRoot();
    const zk = await connectClient({ root });
    await zk.ensurePath("/sent");
    const created = zk.create("/sent/n", "x");
    // This process's event loop is blocked until the child has looked: a request left for a later
    // turn of the loop could not have reached the server yet.
    const addon = createRequire(import.meta.url).resolve("zookeeper");
    const look = (path: string) =>
      execFileSync(process.execPath, ["-e", LOOK, addon, sharedConnectString(), path], {
        encoding: "utf8",
        timeout: 30_000,
      });
    expect(look(`${root}/sent/n`)).toBe("exists");
    expect(await created).toBe("/sent/n");
  });

  it("setOnce writes conditionally on the version, like set", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/once", "v0");
    expect((await zk.setOnce("/once", "v1", 0)).version).toBe(1);
    const error = await zk.setOnce("/once", "v2", 0).catch((e: unknown) => e);
    expect(errors.isBadVersion(error)).toBe(true);
    expect((await zk.get("/once")).data.toString()).toBe("v1");
  });

  it("ensurePath creates missing ancestors and accepts existing ones", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.ensurePath("/a/b/c");
    await zk.ensurePath("/a/b/c");
    await zk.ensurePath("/a/b/d");
    expect(await zk.getChildren("/a/b")).toEqual(["c", "d"]);
  });

  it("deleteRecursive removes a whole tree and accepts a missing node", async () => {
    const zk = await connectClient({ root: testRoot() });
    for (let i = 0; i < 30; i++) await zk.ensurePath(`/t/${i % 3}/${i}`);
    await zk.deleteRecursive("/t");
    expect(await zk.exists("/t")).toBeNull();
    await zk.deleteRecursive("/t");
    await zk.deleteRecursive("/never-was");
  });

  it("stores and reads binary data and empty nodes", async () => {
    const zk = await connectClient({ root: testRoot() });
    const bytes = new Uint8Array([0, 1, 2, 255]);
    await zk.create("/bin", bytes);
    expect([...(await zk.get("/bin")).data]).toEqual([0, 1, 2, 255]);
    await zk.create("/empty");
    expect((await zk.get("/empty")).data.length).toBe(0);
  });

  it("reads a node close to 1 MiB without the addon declaring the session expired", async () => {
    const zk = await connectClient({ root: testRoot() });
    const events: string[] = [];
    zk.on("*", (ev) => events.push(ev.type));
    const big = Buffer.alloc(1000 * 1024, 7);
    await zk.create("/big", big);
    for (let i = 0; i < 5; i++) {
      const { data } = await zk.get("/big");
      expect(data.equals(big)).toBe(true);
    }
    expect(events).toEqual([]);
    expect(zk.state).toBe("connected");
  });

  it("syncs, and reads and writes ACLs; digest auth is added to every session", async () => {
    const root = testRoot();
    const owner = await connectClient({ root, auth: "alice:secret" });
    const stranger = await connectClient({ root });
    await owner.create("/private", "hidden");
    await owner.setAcl("/private", [digestAcl("alice:secret", Perms.ALL)]);
    await owner.sync("/private");
    expect((await owner.get("/private")).data.toString()).toBe("hidden");
    const { acl } = await owner.getAcl("/private");
    expect(acl).toEqual([digestAcl("alice:secret")]);
    const denied = await stranger.get("/private").catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(errors.NoAuthError);
    await owner.setAcl("/private", [...OPEN_ACL]);
    expect((await stranger.get("/private")).data.toString()).toBe("hidden");
  });

  it("getAcl of a missing node rejects with NoNodeError (the addon would crash the process on it)", async () => {
    const zk = await connectClient({ root: testRoot() });
    for (let i = 0; i < 20; i++) {
      expect(await zk.getAcl("/missing").catch((e: unknown) => e)).toBeInstanceOf(errors.NoNodeError);
    }
    expect(zk.state).toBe("connected");
  });
});
