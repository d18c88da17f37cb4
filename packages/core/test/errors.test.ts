import { freePorts } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import { Code, connect, digestAcl, errors } from "../src/index.js";
import { clientThroughProxy, connectClient, nextEvent, testRoot } from "./helpers.js";

async function caught(promise: Promise<unknown>): Promise<errors.ZkError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(errors.ZkError);
  return error as errors.ZkError;
}

describe("typed errors", () => {
  it("throws one class per condition, each with the relative path and the ZooKeeper code", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/n", "x");
    await zk.create("/n/child", "");
    await zk.create("/eph", "", "ephemeral");

    const noNode = await caught(zk.get("/missing"));
    expect(noNode).toBeInstanceOf(errors.NoNodeError);
    expect([noNode.path, noNode.code, noNode.name]).toEqual(["/missing", Code.NO_NODE, "NoNodeError"]);
    expect(errors.isNoNode(noNode)).toBe(true);

    const exists = await caught(zk.create("/n"));
    expect(exists).toBeInstanceOf(errors.NodeExistsError);
    expect([exists.path, exists.code]).toEqual(["/n", Code.NODE_EXISTS]);
    expect(errors.isNodeExists(exists)).toBe(true);

    const badVersion = await caught(zk.set("/n", "y", 7));
    expect(badVersion).toBeInstanceOf(errors.BadVersionError);
    expect([badVersion.path, badVersion.code]).toEqual(["/n", Code.BAD_VERSION]);
    expect(errors.isBadVersion(badVersion)).toBe(true);

    const notEmpty = await caught(zk.delete("/n"));
    expect(notEmpty).toBeInstanceOf(errors.NotEmptyError);
    expect([notEmpty.path, notEmpty.code]).toEqual(["/n", Code.NOT_EMPTY]);

    const ephemeralParent = await caught(zk.create("/eph/child"));
    expect(ephemeralParent).toBeInstanceOf(errors.NoChildrenForEphemeralsError);
    expect([ephemeralParent.path, ephemeralParent.code]).toEqual([
      "/eph/child",
      Code.NO_CHILDREN_FOR_EPHEMERALS,
    ]);

    const badPath = await caught(zk.get("no-leading-slash"));
    expect(badPath).toBeInstanceOf(errors.BadArgumentsError);
    expect([badPath.path, badPath.code]).toEqual(["no-leading-slash", Code.BAD_ARGUMENTS]);
    const trailing = await caught(zk.exists("/a/"));
    expect(trailing).toBeInstanceOf(errors.BadArgumentsError);

    // The server's word for an ephemeral under an ephemeral is not retryable; a connection loss is.
    expect(notEmpty.retryable).toBe(false);
    expect(new errors.ConnectionLossError().retryable).toBe(true);
    expect(errors.isRetryable(new errors.SessionExpiredError())).toBe(true);
  });

  it("reports a missing permission as NoAuthError with its path", async () => {
    const root = testRoot();
    const owner = await connectClient({ root, auth: "bob:pw" });
    const other = await connectClient({ root, auth: "eve:pw" });
    await owner.create("/locked", "x");
    await owner.setAcl("/locked", [digestAcl("bob:pw")]);
    const error = await caught(other.set("/locked", "y"));
    expect(error).toBeInstanceOf(errors.NoAuthError);
    expect([error.path, error.code]).toEqual(["/locked", Code.NO_AUTH]);
  });

  it("rejects with ConnectionLossError when no server answers within connectTimeoutMs", async () => {
    const [port] = await freePorts(1);
    const error = await caught(
      connect({ connectString: `127.0.0.1:${port}`, sessionTimeoutMs: 2000, connectTimeoutMs: 1500 }),
    );
    expect(error).toBeInstanceOf(errors.ConnectionLossError);
    expect(errors.isConnectionLoss(error)).toBe(true);
  });

  it("gives up connecting cleanly when the signal aborts before the first session", async () => {
    const [port] = await freePorts(1);
    const controller = new AbortController();
    const pending = connect({ connectString: `127.0.0.1:${port}`, signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    const error = await caught(pending);
    expect(error).toBeInstanceOf(errors.ClosedError);
  });

  it("an operation that waits longer than opTimeoutMs for a connection rejects with OperationTimeoutError", async () => {
    const { proxy, zk } = await clientThroughProxy({ sessionTimeoutMs: 2000, opTimeoutMs: 300 });
    proxy.setMode("blackhole");
    await nextEvent(zk, "suspended");
    const error = await caught(zk.get("/anything"));
    expect(error).toBeInstanceOf(errors.OperationTimeoutError);
    expect([error.path, error.code, error.retryable]).toEqual(["/anything", Code.OPERATION_TIMEOUT, true]);
  });

  it("closing twice is fine and every call after close rejects with ClosedError", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/x", "1");
    const states: string[] = [];
    zk.on("closed", (ev) => states.push(ev.type));
    await Promise.all([zk.close(), zk.close()]);
    await zk.close();
    await zk.closed();
    expect(zk.state).toBe("closed");
    expect(zk.sessionId).toBeUndefined();
    expect(states).toEqual(["closed"]);

    for (const call of [
      () => zk.get("/x"),
      () => zk.create("/y"),
      () => zk.createProtected("/z"),
      () => zk.set("/x", "2"),
      () => zk.delete("/x"),
      () => zk.exists("/x"),
      () => zk.getChildren("/"),
      () => zk.ensurePath("/a/b"),
      () => zk.sync("/x"),
    ]) {
      const error = await caught(call());
      expect(error).toBeInstanceOf(errors.ClosedError);
      expect(errors.isClosed(error)).toBe(true);
    }
    const watch = zk.watchChildren("/");
    expect(await watch.next()).toEqual({ done: true, value: undefined });
  });

  it("an operation in flight when close() is called rejects with ClosedError", async () => {
    const zk = await connectClient({ root: testRoot() });
    await zk.create("/x", "1");
    const reads = Array.from({ length: 20 }, () =>
      zk.get("/x").then(
        () => "ok",
        (e: unknown) => e,
      ),
    );
    await zk.close();
    for (const result of await Promise.all(reads)) {
      if (result !== "ok") expect(result).toBeInstanceOf(errors.ClosedError);
    }
  });
});
