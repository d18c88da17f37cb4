import { startServer } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { errors } from "../src/index.js";
import {
  connectClient,
  nextEvent,
  sharedConnectString,
  startedForBlock,
  TcpProxy,
  testRoot,
} from "./helpers.js";

/** A client behind a proxy that, once told, lets requests through but drops every reply. */
async function clientBehindProxy(root: string) {
  const proxy = await TcpProxy.start(sharedConnectString());
  const lines: string[] = [];
  const zk = await connectClient({
    connectString: proxy.connectString,
    root,
    sessionTimeoutMs: 2000,
    opTimeoutMs: 30_000,
    logger: (_level, msg) => lines.push(msg),
  });
  return { proxy, zk, lines };
}

describe("protected create", () => {
  it("whose reply is lost finds its own node after the reconnect instead of creating a second one", async () => {
    const root = testRoot();
    const { proxy, zk, lines } = await clientBehindProxy(root);
    const observer = await connectClient({ root });
    await zk.ensurePath("/queue");
    const sessionId = zk.sessionId;

    proxy.setMode("drop-replies");
    const created = zk.createProtected("/queue/q", "batch-1", "persistent-sequential");
    // The server creates the node; the client never hears so and gives up on the connection.
    await nextEvent(zk, "suspended");
    expect(await observer.getChildren("/queue")).toHaveLength(1);
    proxy.setMode("pass");

    const path = await created;
    expect(path).toMatch(/^\/queue\/_c_[0-9a-f-]{36}-q\d{10}$/);
    expect(await observer.getChildren("/queue")).toEqual([path.slice("/queue/".length)]);
    expect((await observer.get(path)).data.toString()).toBe("batch-1");
    expect(lines).toContain("protected create found its node after a lost reply");
    expect(zk.sessionId).toBe(sessionId);
  });

  it("of an ephemeral sequential node survives a lost reply in the same session", async () => {
    const root = testRoot();
    const { proxy, zk } = await clientBehindProxy(root);
    await zk.ensurePath("/masters");

    proxy.setMode("drop-replies");
    const created = zk.createProtected("/masters/n_", "me", "ephemeral-sequential");
    await nextEvent(zk, "suspended");
    proxy.setMode("pass");

    const path = await created;
    const children = await zk.getChildren("/masters");
    expect(children).toEqual([path.slice("/masters/".length)]);
    expect((await zk.exists(path))?.ephemeralOwner).toBe(zk.sessionId);
  });

  it("a plain create whose reply is lost is not repeated: it rejects with ConnectionLossError", async () => {
    const root = testRoot();
    const { proxy, zk } = await clientBehindProxy(root);
    const observer = await connectClient({ root });
    await zk.ensurePath("/plain");

    proxy.setMode("drop-replies");
    const created = zk.create("/plain/q", "", "persistent-sequential").catch((e: unknown) => e);
    await nextEvent(zk, "suspended");
    proxy.setMode("pass");
    const error = await created;
    expect(error).toBeInstanceOf(errors.ConnectionLossError);
    expect((error as errors.ConnectionLossError).path).toBe("/plain/q");
    // It did happen, which is why a caller that cannot tell should use createProtected.
    expect(await observer.getChildren("/plain")).toHaveLength(1);
  });

  it("a setOnce whose reply is lost is not repeated: it rejects with ConnectionLossError", async () => {
    const root = testRoot();
    const { proxy, zk } = await clientBehindProxy(root);
    const observer = await connectClient({ root });
    await zk.create("/once", "v0");

    proxy.setMode("drop-replies");
    const written = zk.setOnce("/once", "v1", 0).catch((e: unknown) => e);
    await nextEvent(zk, "suspended");
    proxy.setMode("pass");
    const error = await written;
    expect(error).toBeInstanceOf(errors.ConnectionLossError);
    expect((error as errors.ConnectionLossError).path).toBe("/once");
    // It did happen, once: the node is at version 1.
    const now = await observer.get("/once");
    expect([now.data.toString(), now.stat.version]).toEqual(["v1", 1]);
  });

  it("a conditional set whose reply is lost reports success, not a spurious BadVersion", async () => {
    const root = testRoot();
    const { proxy, zk } = await clientBehindProxy(root);
    await zk.create("/cfg", "v0");

    proxy.setMode("drop-replies");
    const written = zk.set("/cfg", "v1", 0);
    await nextEvent(zk, "suspended");
    proxy.setMode("pass");
    const stat = await written;
    expect(stat.version).toBe(1);
    expect((await zk.get("/cfg")).data.toString()).toBe("v1");
  });
});

describe("protected create with the server paused right after the create is issued", () => {
  const server = startedForBlock(() => startServer());

  it("leaves exactly one node, the one it returns", async () => {
    const root = testRoot();
    const zk = await connectClient({
      connectString: server().connectString,
      root,
      sessionTimeoutMs: 4000,
      opTimeoutMs: 30_000,
    });
    await zk.ensurePath("/queue");
    const suspended = nextEvent(zk, "suspended");
    const created = zk.createProtected("/queue/q", "x", "persistent-sequential");
    server().pause();
    try {
      await suspended;
    } finally {
      server().resume();
    }
    const path = await created;
    expect(await zk.getChildren("/queue")).toEqual([path.slice("/queue/".length)]);
  });
});
