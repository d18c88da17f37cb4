import { expireSession, waitFor } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { type ChildrenChange, errors } from "../src/index.js";
import {
  clientThroughProxy,
  connectClient,
  nextEvent,
  recordEvents,
  replayChildren,
  sharedConnectString,
  testRoot,
  twoClients,
} from "./helpers.js";

describe("session expiry", () => {
  it("replaces the session transparently: expired, then connected with a new id", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/x", "before");
    const events = recordEvents(zk);
    const oldId = zk.sessionId!;
    // Issued between the two sessions: waits for the new one.
    let betweenSessions: Promise<string> | undefined;
    zk.on("expired", () => {
      expect(zk.state).toBe("expired");
      expect(zk.sessionId).toBeUndefined();
      betweenSessions = zk.create("/between", "", "ephemeral");
    });
    const connected = nextEvent(zk, "connected");
    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    const ev = await connected;
    expect(ev.sessionId).not.toBe(oldId);
    expect(zk.sessionId).toBe(ev.sessionId);
    expect(zk.state).toBe("connected");
    // The helper attaches to our session, which drops our connection; we may win the session back
    // (reconnected) before the helper closes it. Then it expires, once, and a new one follows.
    expect(events[0]?.type).toBe("suspended");
    const expiredAt = events.findIndex((e) => e.type === "expired");
    expect(events[expiredAt]).toEqual({ type: "expired", sessionId: oldId });
    expect(events.slice(expiredAt).map((e) => e.type)).toEqual(["expired", "connected"]);
    expect(events.slice(0, expiredAt).every((e) => e.type === "suspended" || e.type === "reconnected")).toBe(
      true,
    );
    // The new session works.
    expect(await betweenSessions).toBe("/between");
    expect((await zk.exists("/between"))?.ephemeralOwner).toBe(ev.sessionId);
    expect((await zk.get("/x")).data.toString()).toBe("before");
  });

  it("keepRunning re-creates ephemeral nodes on every new session", async () => {
    const { zk, other: observer } = await twoClients();
    await zk.ensurePath("/workers");
    const runs: string[] = [];
    const stop = new AbortController();
    const running = zk.keepRunning(
      async ({ client, sessionId, signal }) => {
        expect(signal.aborted).toBe(false);
        runs.push(sessionId);
        await client.create("/workers/w1", sessionId, "ephemeral");
      },
      { signal: stop.signal },
    );
    await waitFor(() => runs.length === 1);
    const first = await observer.get("/workers/w1");
    expect(first.stat.ephemeralOwner).toBe(runs[0]);

    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    await waitFor(() => runs.length === 2);
    const second = await observer.get("/workers/w1");
    expect(second.data.toString()).toBe(runs[1]);
    expect(second.stat.ephemeralOwner).toBe(zk.sessionId);
    expect(runs[1]).not.toBe(runs[0]);

    stop.abort();
    await running;
  });

  it("keepRunning resolves when an action returns completed, and retries a failed action in the next session", async () => {
    const zk = await connectClient({ root: testRoot() });
    let calls = 0;
    await zk.keepRunning(async () => {
      calls++;
      return "completed";
    });
    expect(calls).toBe(1);

    let attempts = 0;
    const done = zk.keepRunning(async ({ client }) => {
      attempts++;
      if (attempts === 1) {
        // Fails like an op in flight at expiry would.
        await expireSession(sharedConnectString(), client.sessionCredentials()!);
        throw new errors.SessionExpiredError({ path: "/x" });
      }
      return "completed";
    });
    await done;
    expect(attempts).toBe(2);
  });

  it("watches come back after expiry and report what changed while the session was gone", async () => {
    const { zk, other } = await twoClients();
    await zk.ensurePath("/workers");
    const stop = new AbortController();
    const running = zk.keepRunning(
      async ({ client }) => {
        await client.create("/workers/a-", "", "ephemeral-sequential");
      },
      { signal: stop.signal },
    );
    const seen: ChildrenChange[] = [];
    const watch = zk.watchChildren("/workers");
    const consume = (async () => {
      for await (const change of watch) seen.push(change);
    })();
    const dataWatch = zk.watchData("/config");
    expect((await dataWatch.next()).value).toBeNull();

    await waitFor(() => seen.at(-1)?.children.length === 1);
    const mine = seen.at(-1)!.children[0]!;
    await other.create("/workers/b1", "");
    await waitFor(() => seen.at(-1)?.children.includes("b1"));

    const expired = nextEvent(zk, "expired");
    await expireSession(sharedConnectString(), zk.sessionCredentials()!);
    await expired;
    // Changes while our client is between sessions.
    await other.create("/workers/b2", "");
    await other.delete("/workers/b1");
    await other.create("/config", "v2");

    await waitFor(async () => {
      const real = await other.getChildren("/workers");
      const last = seen.at(-1)!;
      return real.length === 2 && JSON.stringify(last.children) === JSON.stringify(real);
    });
    const last = seen.at(-1)!;
    expect(last.children).toContain("b2");
    expect(last.children).not.toContain("b1");
    expect(last.children).not.toContain(mine);
    // Replaying every diff from nothing gives the final state.
    expect([...replayChildren(seen)].sort()).toEqual(seen.at(-1)!.children);
    const data = (await dataWatch.next()).value;
    expect(data?.data.toString()).toBe("v2");

    watch.stop();
    dataWatch.stop();
    await consume;
    stop.abort();
    await running;
  });

  it("an operation in flight when its session expires rejects with SessionExpiredError", async () => {
    const { proxy, zk } = await clientThroughProxy({ sessionTimeoutMs: 2000 });
    await zk.create("/x", "1");
    const credentials = zk.sessionCredentials()!;
    const events = recordEvents(zk);

    proxy.setMode("blackhole");
    const inFlight = zk.get("/x").then(
      () => "succeeded",
      (e: unknown) => e,
    );
    await nextEvent(zk, "suspended");
    await expireSession(sharedConnectString(), credentials);
    const connected = nextEvent(zk, "connected");
    proxy.setMode("pass");

    const error = await inFlight;
    expect(error).toBeInstanceOf(errors.SessionExpiredError);
    expect((error as errors.SessionExpiredError).path).toBe("/x");
    await connected;
    expect(events.map((e) => e.type)).toEqual(["suspended", "expired", "connected"]);
    // Issued now, it runs in the new session.
    expect((await zk.get("/x")).data.toString()).toBe("1");
  });
});
