import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  findZooKeeper,
  fourLetterWord,
  ServerStartError,
  serverMode,
  startServer,
  waitFor,
  type ZkServer,
  ZooKeeperNotFoundError,
  isProcessRunning,
} from "../src/index.js";
import { RawClient } from "./raw-client.js";

describe("the run-wide server from globalSetup", () => {
  it("serves standalone at the injected connect string", async () => {
    const [host, port] = inject("zkConnectString").split(":");
    expect(await serverMode(host!, Number(port))).toBe("standalone");
  });
});

describe("a standalone server", () => {
  let server: ZkServer;
  const root = `/test-${randomUUID()}`;

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("listens on 127.0.0.1 and answers four-letter words", async () => {
    expect(server.connectString).toBe(`127.0.0.1:${server.port}`);
    expect(await server.fourLetterWord("ruok")).toBe("imok");
    expect(await server.mode()).toBe("standalone");
    // tickTime 500 lets a session be as short as 1 s.
    expect(await server.fourLetterWord("conf")).toMatch(/minSessionTimeout=1000/);
  });

  it("keeps its port and data across restart() and runs a new process", async () => {
    await RawClient.with(server.connectString, (client) => client.create(root, "kept"));
    const before = server.pid;
    await server.restart();
    expect(server.pid).not.toBe(before);
    expect(isProcessRunning(before!)).toBe(false);
    expect(await RawClient.with(server.connectString, (again) => again.getString(root))).toBe("kept");
  });

  it("stops answering while paused and answers again after resume()", async () => {
    server.pause();
    try {
      expect(server.isPaused).toBe(true);
      await expect(fourLetterWord("127.0.0.1", server.port, "ruok", 500)).rejects.toThrow(/no reply/);
    } finally {
      server.resume();
    }
    expect(server.isPaused).toBe(false);
    expect(await server.fourLetterWord("ruok")).toBe("imok");
  });

  it("is gone after kill() and serves again after restart()", async () => {
    const pid = server.pid!;
    await server.kill();
    expect(server.running).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(isProcessRunning(pid)).toBe(false);
    await expect(server.fourLetterWord("ruok", 500)).rejects.toThrow();
    await server.restart();
    expect(await server.mode()).toBe("standalone");
  });

  it("releases the process and the port on stop(), even when paused", async () => {
    const other = await startServer();
    const pid = other.pid!;
    other.pause();
    await other.stop();
    expect(isProcessRunning(pid)).toBe(false);
    await expect(fourLetterWord("127.0.0.1", other.port, "ruok", 500)).rejects.toThrow();
    expect(other.logTail()).toMatch(/ZooKeeper/);
  });
});

describe("startServer failures", () => {
  it("fails fast with the server's log when java exits early", async () => {
    const error = await startServer({ config: { tickTime: "not-a-number" } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerStartError);
    expect((error as ServerStartError).message).toMatch(/exited/);
    expect((error as ServerStartError).logTail).toMatch(/not-a-number|NumberFormatException|ConfigException/);
  });
});

describe("findZooKeeper", () => {
  it("finds a ZooKeeper whose classpath exists, with java", async () => {
    const found = await findZooKeeper();
    expect(found.classpath.length).toBeGreaterThan(0);
    expect(found.java).toMatch(/java$/);
  });

  it("names what to install when ZOOKEEPER_HOME holds no ZooKeeper", async () => {
    const empty = mkdtempSync(join(tmpdir(), "zkgrid-empty-"));
    const saved = process.env.ZOOKEEPER_HOME;
    process.env.ZOOKEEPER_HOME = empty;
    try {
      const error = await findZooKeeper({ install: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ZooKeeperNotFoundError);
      expect((error as Error).message).toMatch(/apt-get install zookeeper/);
      expect((error as Error).message).toMatch(/ZOOKEEPER_HOME/);
    } finally {
      if (saved === undefined) delete process.env.ZOOKEEPER_HOME;
      else process.env.ZOOKEEPER_HOME = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe("waitFor", () => {
  it("resolves with the first truthy value of the predicate", async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? `after ${calls}` : undefined), { intervalMs: 1 });
    expect(value).toBe("after 3");
  });

  it("rejects with the last error as cause when the condition never holds", async () => {
    const error = await waitFor(
      () => {
        throw new Error("still down");
      },
      { timeoutMs: 50, intervalMs: 10, message: "server up" },
    ).catch((e: unknown) => e);
    expect((error as Error).name).toBe("WaitTimeoutError");
    expect((error as Error).message).toMatch(/server up/);
    expect(((error as Error).cause as Error).message).toBe("still down");
  });
});
