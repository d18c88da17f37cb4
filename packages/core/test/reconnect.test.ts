import { startEnsemble, startServer, waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import type { ChildrenChange, DataChange } from "../src/index.js";
import {
  connectClient,
  nextEvent,
  recordEvents,
  requestsFrom,
  sharedConnectString,
  startedForBlock,
  TcpProxy,
  testRoot,
} from "./helpers.js";

describe("reconnect after a server restart", () => {
  const server = startedForBlock(() => startServer());

  it("keeps the same session: suspended, then reconnected; operations issued meanwhile wait and succeed", async () => {
    const zk = await connectClient({
      connectString: server().connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    const sessionId = zk.sessionId;
    await zk.create("/eph", "mine", "ephemeral");
    const events = recordEvents(zk);

    const suspended = nextEvent(zk, "suspended");
    await server().stop();
    await suspended;
    expect(zk.state).toBe("suspended");
    // Issued while there is no connection: waits instead of failing.
    const pendingRead = zk.get("/eph");
    const pendingWrite = zk.create("/written-while-down", "x");

    const reconnected = nextEvent(zk, "reconnected");
    await server().restart();
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
      connectString: server().connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    await zk.ensurePath("/dir");
    const watch = zk.watchChildren("/dir");
    expect((await watch.next()).value).toMatchObject({ children: [], exists: true });

    const reconnected = nextEvent(zk, "reconnected");
    await server().restart();
    await reconnected;
    const other = await connectClient({ connectString: server().connectString, root: zk.root });
    await other.create("/dir/after-restart", "");
    const change = (await watch.next()).value;
    expect(change).toMatchObject({ children: ["after-restart"], added: ["after-restart"], removed: [] });
    watch.stop();
  });

  it("a perChild watch adds its persistent watch again after the restart, and reports changes from events", async () => {
    const zk = await connectClient({
      connectString: server().connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    await zk.ensurePath("/each/before");
    const watch = zk.watchChildren("/each", { perChild: true });
    expect((await watch.next()).value).toMatchObject({ children: ["before"], exists: true });

    const reconnected = nextEvent(zk, "reconnected");
    await server().restart();
    await reconnected;
    const other = await connectClient({ connectString: server().connectString, root: zk.root });
    await other.create("/each/after-restart", "");
    expect((await watch.next()).value).toMatchObject({
      children: ["after-restart", "before"],
      added: ["after-restart"],
      removed: [],
    });
    // From events, not listings: ten more changes, each seen before the next is made, and the watching
    // client sends no request for them (listing after each would send ten).
    const requestsBefore = await requestsFrom(zk, server().connectString);
    for (let i = 0; i < 10; i++) {
      await other.create(`/each/more${i}`, "");
      expect(((await watch.next()).value as ChildrenChange).added).toEqual([`more${i}`]);
    }
    await other.delete("/each/before");
    expect((await watch.next()).value).toMatchObject({ added: [], removed: ["before"] });
    expect((await requestsFrom(zk, server().connectString)) - requestsBefore).toBeLessThan(5);
    watch.stop();
  });

  it("closes promptly while the server is down", async () => {
    const zk = await connectClient({ connectString: server().connectString, root: testRoot() });
    const suspended = nextEvent(zk, "suspended");
    await server().kill();
    await suspended;
    const pending = zk.exists("/anything").catch((e: unknown) => e);
    await zk.close();
    expect(zk.state).toBe("closed");
    expect(String(await pending)).toMatch(/closed/);
    await server().restart();
    await waitFor(async () => (await server().mode()) !== undefined);
  });
});

describe("a call on a connection that was reset", () => {
  it("resumes the same session on a new handle instead of crashing the process", async () => {
    const proxy = await TcpProxy.start(sharedConnectString());
    const lines: string[] = [];
    const zk = await connectClient({
      connectString: proxy.connectString,
      root: testRoot(),
      logger: (_level, msg) => lines.push(msg),
    });
    await zk.create("/x", "1");
    const sessionId = zk.sessionId;
    const events = recordEvents(zk);
    const watch = zk.watchData("/x");
    expect(((await watch.next()).value as DataChange).data.toString()).toBe("1");

    proxy.resetAll();
    // Calls issued in the same tick, before the addon polls its socket again: their send fails and the
    // C client closes the socket behind the addon's back.
    const reads = await Promise.all(Array.from({ length: 10 }, () => zk.get("/x")));
    expect(reads.every((r) => r.data.toString() === "1")).toBe(true);

    expect(zk.sessionId).toBe(sessionId);
    await waitFor(() => events.some((e) => e.type === "reconnected"));
    expect(events.map((e) => e.type)).toEqual(["suspended", "reconnected"]);
    expect(lines.some((line) => line.includes("broke during a call"))).toBe(true);
    // The watch moved to the new handle with the session.
    await zk.set("/x", "2");
    expect(((await watch.next()).value as DataChange).data.toString()).toBe("2");
    watch.stop();
  });
});

describe("failover within an ensemble", () => {
  const ensemble = startedForBlock(() => startEnsemble(3));

  it("keeps the session when the member it is connected to dies", async () => {
    const zk = await connectClient({
      connectString: ensemble().connectString,
      root: testRoot(),
      sessionTimeoutMs: 10_000,
      opTimeoutMs: 60_000,
    });
    await zk.create("/eph", "", "ephemeral");
    const sessionId = zk.sessionId!;
    // `cons` lists each member's client connections with their session ids.
    const holders = await Promise.all(
      ensemble().members.map(async (member) =>
        (await member.fourLetterWord("cons")).includes(`sid=0x${sessionId}`),
      ),
    );
    const member = ensemble().members[holders.indexOf(true)]!;
    const events = recordEvents(zk);

    const reconnected = nextEvent(zk, "reconnected");
    await member.kill();
    expect((await reconnected).sessionId).toBe(sessionId);
    expect(events.map((e) => e.type)).toEqual(["suspended", "reconnected"]);
    expect((await zk.exists("/eph"))?.ephemeralOwner).toBe(sessionId);
    await member.restart({ waitUntilServing: false });
  });
});

describe("a reply delivered out of order", () => {
  it("is a connection loss: the C client drops the connection, and the calls pending on it resume on the same session", async () => {
    const proxy = await TcpProxy.start(sharedConnectString());
    const zk = await connectClient({
      connectString: proxy.connectString,
      root: testRoot(),
      opTimeoutMs: 60_000,
    });
    await zk.create("/a", "first");
    await zk.create("/b", "second");
    const sessionId = zk.sessionId;
    const events = recordEvents(zk);
    const reconnected = nextEvent(zk, "reconnected");

    proxy.setMode("swap-replies");
    // Two reads in flight: their replies reach the client each in the other's place.
    const [a, b] = await Promise.all([zk.get("/a"), zk.get("/b")]);
    expect(proxy.swapped).toBe(1);
    expect((await reconnected).sessionId).toBe(sessionId);
    expect(events.map((e) => e.type)).toEqual(["suspended", "reconnected"]);
    expect(a.data.toString()).toBe("first");
    expect(b.data.toString()).toBe("second");
    expect(zk.sessionId).toBe(sessionId);
  });
});
