import { expireSession } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { errors } from "../src/index.js";
import { clientThroughProxy, connectClient, nextEvent, sharedConnectString, testRoot } from "./helpers.js";

describe("a session-bound view", () => {
  it("refuses create, createProtected, set and delete once its session expired, and nothing lands", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/dir");
    await zk.create("/dir/victim", "v0");
    const bound = zk.boundTo(zk.sessionId!);
    expect(bound.live).toBe(true);
    expect(await bound.getChildren("/dir")).toEqual(["victim"]);

    const connected = nextEvent(zk, "connected");
    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    await connected;

    expect(bound.live).toBe(false);
    const attempts = [
      bound.create("/dir/late", "x"),
      bound.createProtected("/dir/late-", "x", "persistent-sequential"),
      bound.set("/dir/victim", "x"),
      bound.delete("/dir/victim"),
      bound.ensurePath("/other"),
    ];
    for (const result of await Promise.allSettled(attempts)) {
      expect(result.status).toBe("rejected");
      expect(errors.isSessionExpired((result as PromiseRejectedResult).reason)).toBe(true);
    }
    // The client itself works on its new session, and sees that nothing landed.
    expect(await zk.getChildren("/dir")).toEqual(["victim"]);
    expect((await zk.get("/dir/victim")).data.toString()).toBe("v0");
    expect(await zk.exists("/other")).toBeNull();
  });

  it("drops a write in flight when its session expires, where the unbound client repeats it on the next session", async () => {
    const { proxy, zk } = await clientThroughProxy();
    await zk.create("/dir");
    const credentials = zk.sessionCredentials()!;
    const bound = zk.boundTo(credentials.id);

    // Cut off: both creates are sent into the void and wait for their reply.
    proxy.setMode("blackhole");
    const boundWrite = bound.createProtected("/dir/bound-", "x", "persistent-sequential").catch((e) => e);
    const plainWrite = zk.createProtected("/dir/plain-", "x", "persistent-sequential");
    await expireSession(sharedConnectString(), credentials);
    const connected = nextEvent(zk, "connected");
    proxy.setMode("pass");
    const newSession = (await connected).sessionId;
    expect(newSession).not.toBe(credentials.id);

    expect(errors.isSessionExpired(await boundWrite)).toBe(true);
    const plain = await plainWrite;
    expect((await zk.getChildren("/dir")).map((name) => `/dir/${name}`)).toEqual([plain]);
  });

  it("bound to a session that is not the current one, refuses every operation at once", async () => {
    const zk = await connectClient({ root: testRoot() });
    const stale = zk.boundTo("1234abcd");
    expect(stale.live).toBe(false);
    await expect(stale.exists("/")).rejects.toSatisfy(errors.isSessionExpired);
    await expect(stale.create("/x")).rejects.toSatisfy(errors.isSessionExpired);
    expect(await zk.exists("/x")).toBeNull();
  });
});
