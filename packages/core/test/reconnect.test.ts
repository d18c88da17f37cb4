import { startServer, waitFor, type ZkServer } from "@zkgrid/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectClient, nextEvent, recordEvents, testRoot } from "./helpers.js";

describe("reconnect after a server restart", () => {
  let server: ZkServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("keeps the same session: suspended, then reconnected; operations issued meanwhile wait and succeed", async () => {
    const zk = await connectClient({
      connectString: server.connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    const sessionId = zk.sessionId;
    await zk.create("/eph", "mine", "ephemeral");
    const events = recordEvents(zk);

    const suspended = nextEvent(zk, "suspended");
    await server.stop();
    await suspended;
    expect(zk.state).toBe("suspended");
    // Issued while there is no connection: waits instead of failing.
    const pendingRead = zk.get("/eph");
    const pendingWrite = zk.create("/written-while-down", "x");

    const reconnected = nextEvent(zk, "reconnected");
    await server.restart();
    expect((await reconnected).sessionId).toBe(sessionId);
    expect(zk.state).toBe("connected");
    expect(zk.sessionId).toBe(sessionId);
    expect(events.map((e) => e.type)).toEqual(["suspended", "reconnected"]);

    expect((await pendingRead).data.toString()).toBe("mine");
    expect(await pendingWrite).toBe("/written-while-down");
    expect((await zk.exists("/eph"))?.ephemeralOwner).toBe(sessionId);
  });

  it("a watch armed before the restart reports a change made after it", async () => {
    const zk = await connectClient({
      connectString: server.connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    await zk.ensurePath("/dir");
    const watch = zk.watchChildren("/dir");
    expect((await watch.next()).value).toMatchObject({ children: [], exists: true });

    const reconnected = nextEvent(zk, "reconnected");
    await server.restart();
    await reconnected;
    const other = await connectClient({ connectString: server.connectString, root: zk.root });
    await other.create("/dir/after-restart", "");
    const change = (await watch.next()).value;
    expect(change).toMatchObject({ children: ["after-restart"], added: ["after-restart"], removed: [] });
    watch.stop();
  });

  it("closes promptly while the server is down", async () => {
    const zk = await connectClient({ connectString: server.connectString, root: testRoot() });
    const suspended = nextEvent(zk, "suspended");
    await server.kill();
    await suspended;
    const pending = zk.exists("/anything").catch((e: unknown) => e);
    await zk.close();
    expect(zk.state).toBe("closed");
    expect(String(await pending)).toMatch(/closed/);
    await server.restart();
    await waitFor(async () => (await server.mode()) !== undefined);
  });
});
