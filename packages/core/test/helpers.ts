import { randomUUID } from "node:crypto";
import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import { fourLetterWord } from "@zkgrid/testing";
import { afterAll, afterEach, beforeAll, expect, inject } from "vitest";
import {
  type ChildrenChange,
  type ConnectionEvent,
  type ConnectOptions,
  connect,
  type ZkClient,
} from "../src/index.js";

/** A fresh root path per test, so tests never see each other's nodes. */
export function testRoot(): string {
  return `/test-${randomUUID()}`;
}

export function sharedConnectString(): string {
  return inject("zkConnectString");
}

const open = new Set<ZkClient>();
const proxies = new Set<TcpProxy>();

afterEach(async () => {
  const clients = [...open];
  open.clear();
  await Promise.all(clients.map((client) => client.close()));
});

// Hooks run last-registered first: proxies go before clients close. zookeeper_close() blocks the event
// loop while it waits for the server's goodbye, which an in-process proxy could then never forward.
afterEach(async () => {
  await Promise.all([...proxies].map((proxy) => proxy.close()));
});

/**
 * What `start` makes (a server or an ensemble of the block's own), started before the enclosing block's
 * tests and stopped after them; call the returned function in a test to get it.
 */
export function startedForBlock<T extends { stop(): Promise<void> }>(start: () => Promise<T>): () => T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(async () => {
    await started?.stop();
  });
  return () => {
    if (started === undefined) throw new Error("not started: call this inside a test of the block");
    return started;
  };
}

/** connect() with short test timeouts; closed after each test. */
export async function connectClient(options: Partial<ConnectOptions> = {}): Promise<ZkClient> {
  const client = await connect({
    connectString: options.connectString ?? sharedConnectString(),
    sessionTimeoutMs: 4000,
    connectTimeoutMs: 20_000,
    ...options,
  });
  open.add(client);
  return client;
}

/** On a fresh root: `zk`, the client under test, and `other`, a second client that changes its nodes. */
export async function twoClients(
  options: Partial<ConnectOptions> = {},
): Promise<{ root: string; zk: ZkClient; other: ZkClient }> {
  const root = testRoot();
  return { root, zk: await connectClient({ root, ...options }), other: await connectClient({ root }) };
}

/** A client on a fresh root that reaches the shared server through a proxy of its own, to cut it off. */
export async function clientThroughProxy(
  options: Partial<ConnectOptions> = {},
): Promise<{ proxy: TcpProxy; zk: ZkClient }> {
  const proxy = await TcpProxy.start(sharedConnectString());
  return {
    proxy,
    zk: await connectClient({ root: testRoot(), ...options, connectString: proxy.connectString }),
  };
}

/** Records every connection event of `client`. */
export function recordEvents(client: ZkClient): ConnectionEvent[] {
  const events: ConnectionEvent[] = [];
  client.on("*", (ev) => events.push(ev));
  return events;
}

/** Resolves with the next connection event of `type`. */
export function nextEvent<K extends ConnectionEvent["type"]>(
  client: ZkClient,
  type: K,
): Promise<Extract<ConnectionEvent, { type: K }>> {
  return new Promise((resolve) => {
    const off = client.on(type, (ev) => {
      off();
      resolve(ev);
    });
  });
}

/** Applies every diff in order and checks it against the children it claims, returning the final set. */
export function replayChildren(changes: ChildrenChange[]): Set<string> {
  const state = new Set<string>();
  for (const change of changes) {
    for (const name of change.removed) expect(state.delete(name)).toBe(true);
    for (const name of change.added) {
      expect(state.has(name)).toBe(false);
      state.add(name);
    }
    expect([...state].sort()).toEqual(change.children);
  }
  return state;
}

/**
 * How many packets (requests and pings) the server has had from `client`'s connection, from the `cons`
 * four-letter word of the server it is connected to (the shared one unless `connectString` says).
 */
export async function requestsFrom(client: ZkClient, connectString = sharedConnectString()): Promise<number> {
  const sid = `0x${client.sessionId}`;
  for (const server of connectString.split(",")) {
    const [host = "127.0.0.1", port = "2181"] = server.split(":");
    const cons = await fourLetterWord(host, Number(port), "cons");
    const line = cons.split("\n").find((l) => l.includes(`sid=${sid},`) || l.includes(`sid=${sid})`));
    const recved = line === undefined ? undefined : /recved=(\d+)/.exec(line)?.[1];
    if (recved !== undefined) return Number(recved);
  }
  throw new Error(`no connection of session ${sid} in the cons of ${connectString}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export type ProxyMode = "pass" | "blackhole" | "drop-replies" | "swap-replies";

/**
 * A loopback TCP proxy in front of a ZooKeeper server, to cut a client off the way a network partition
 * does: "blackhole" forwards nothing either way (connections stay open, like a paused server);
 * "drop-replies" forwards requests but drops every reply (the server acts, the client never hears);
 * "swap-replies" delivers the next two replies to requests (xid > 0) in each other's place, once, then passes.
 */
export class TcpProxy {
  readonly connectString: string;
  #mode: ProxyMode = "pass";
  readonly #server: Server;
  readonly #sockets: Set<Socket>;
  /** How many pairs of replies "swap-replies" has delivered out of order. */
  swapped = 0;

  private constructor(server: Server, port: number, sockets: Set<Socket>) {
    this.#server = server;
    this.#sockets = sockets;
    this.connectString = `127.0.0.1:${port}`;
  }

  static async start(target: string): Promise<TcpProxy> {
    const [host, portText] = target.split(":");
    const port = Number(portText);
    let proxy: TcpProxy | undefined;
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connectTcp({ host, port });
      const pair = [client, upstream];
      for (const socket of pair) {
        sockets.add(socket);
        socket.on("error", () => {});
        socket.on("close", () => {
          sockets.delete(socket);
          for (const other of pair) other.destroy();
        });
      }
      client.on("data", (chunk) => {
        if (proxy?.mode !== "blackhole") upstream.write(chunk);
      });
      upstream.on("data", (chunk) => {
        if (proxy?.mode === "pass") client.write(chunk);
        if (proxy?.mode === "swap-replies") proxy.#swap(chunk, client);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no port");
    proxy = new TcpProxy(server, address.port, sockets);
    proxies.add(proxy);
    return proxy;
  }

  #pending = Buffer.alloc(0);
  #held: Buffer | undefined;

  // Replies are frames: a 4-byte length, then the reply header, whose first field is the xid. One pair of
  // replies to requests is swapped, on whichever connection has them; everything else passes in order.
  #swap(chunk: Buffer, client: Socket): void {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 4 && this.#pending.length >= 4 + this.#pending.readInt32BE(0)) {
      const frame = this.#pending.subarray(0, 4 + this.#pending.readInt32BE(0));
      this.#pending = this.#pending.subarray(frame.length);
      if (this.#mode !== "swap-replies" || frame.length < 8 || frame.readInt32BE(4) <= 0) {
        client.write(frame);
      } else if (this.#held === undefined) {
        this.#held = frame;
      } else {
        client.write(frame);
        client.write(this.#held);
        this.#held = undefined;
        this.swapped++;
        this.#mode = "pass";
      }
    }
    if (this.#mode === "pass" && this.#pending.length > 0) {
      client.write(this.#pending);
      this.#pending = Buffer.alloc(0);
    }
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Switches mode; leaving a lossy mode drops every open connection (their byte streams are broken). */
  setMode(mode: ProxyMode): void {
    const wasLossy = this.#mode !== "pass";
    this.#mode = mode;
    if (mode === "pass" && wasLossy) this.cutAll();
  }

  /** Resets (RST) every open connection at once, as a crashed peer or a middlebox would. */
  resetAll(): void {
    for (const socket of this.#sockets) socket.resetAndDestroy();
    this.#sockets.clear();
  }

  cutAll(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  async close(): Promise<void> {
    proxies.delete(this);
    this.cutAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
