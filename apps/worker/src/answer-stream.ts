import { createSocket } from "node:dgram";
import { createServer, isIP, type Server, type Socket } from "node:net";
import type { Logger } from "@zkgrid/core";
import { type AnswerAddress, MAX_ANSWER_HELLO_BYTES, parseAnswerHello } from "@zkgrid/protocol";

/** At most this many submitters' connections at once; more are refused. */
export const MAX_ANSWER_CONNECTIONS = 1024;
/** A connection that has this many bytes of answers it has not read is closed. */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

/**
 * The worker's answer stream (docs/protocol.md, "Answer streams"): a TCP listener where a submitter
 * names a key in a hello (`+<key>`), and where the worker sends the answer of each direct task whose
 * batch carries that key as soon as the task is final, before writing it over the task's node. The
 * node stays the answer of record; the stream only spares the submitter the wait for that write.
 *
 * It owns the listener and the connections. A connection that sends anything but its one hello is
 * closed; nothing a connection sends reaches a task, and an answer goes only to connections that named
 * the key its task's submitter put in the task's batch.
 */
export class AnswerStream {
  readonly #server: Server;
  readonly #log: Logger;
  /** Connections by the key their hello named (two may name one). */
  readonly #byKey = new Map<string, Set<Socket>>();
  #address: AnswerAddress | undefined;
  /** Every open connection, with a hello or not yet. */
  readonly #sockets = new Set<Socket>();
  #sent = 0;

  private constructor(log: Logger) {
    this.#log = log;
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server.maxConnections = MAX_ANSWER_CONNECTIONS;
  }

  /**
   * Listens on `host` (undefined: the local address this host reaches the first of `connectString`'s
   * servers from) and `port` (0: any free one).
   */
  static async listen(
    where: { host: string | undefined; port: number },
    connectString: string,
    log: Logger,
  ): Promise<AnswerStream> {
    const stream = new AnswerStream(log);
    const host = where.host ?? (await localAddressTowards(connectString));
    await new Promise<void>((resolve, reject) => {
      stream.#server.once("error", reject);
      stream.#server.listen({ host, port: where.port }, () => {
        stream.#server.off("error", reject);
        resolve();
      });
    });
    stream.#server.on("error", (error) => log("warn", `answer stream: ${error.message}`));
    const bound = stream.#server.address();
    if (bound === null || typeof bound === "string") throw new Error("the answer stream has no TCP address");
    stream.#address = { host: bound.address, port: bound.port };
    return stream;
  }

  /** Where it listens, as the registration gives it. */
  get address(): AnswerAddress {
    return this.#address as AnswerAddress;
  }

  /** Connections open now (with a hello or not yet). */
  get connections(): number {
    return this.#sockets.size;
  }

  /** Answers sent since it started (one per connection sent to). */
  get answersSent(): number {
    return this.#sent;
  }

  /** Sends `answer` (a final `TaskStatus`'s JSON) to each connection that named `key`; returns how many. */
  send(key: string, answer: Buffer): number {
    const sockets = this.#byKey.get(key);
    if (sockets === undefined) return 0;
    const line = Buffer.concat([answer, NEWLINE]);
    let sent = 0;
    for (const socket of sockets) {
      if (socket.writableLength > MAX_UNREAD_BYTES) {
        this.#refuse(socket, "it left over 4 MiB of answers unread");
        continue;
      }
      socket.write(line);
      sent++;
    }
    this.#sent += sent;
    return sent;
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    // server.close() waits for every connection to end: an idle one would hold a stop for ever.
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    return closed;
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    let pending = "";
    let key: string | undefined;
    socket.setEncoding("utf8");
    const onData = (chunk: string) => {
      pending += chunk;
      const end = pending.indexOf("\n");
      if (end < 0) {
        if (pending.length >= MAX_ANSWER_HELLO_BYTES) this.#refuse(socket, "a line longer than a hello");
        return;
      }
      if (end + 1 < pending.length) return this.#refuse(socket, "more than its one hello");
      const hello = parseAnswerHello(pending.slice(0, end));
      if ("problem" in hello) return this.#refuse(socket, hello.problem);
      key = hello.key;
      const sockets = this.#byKey.get(key);
      if (sockets === undefined) this.#byKey.set(key, new Set([socket]));
      else sockets.add(socket);
      // The hello is all a submitter sends: anything after it breaks the protocol.
      socket.off("data", onData);
      socket.on("data", () => this.#refuse(socket, "more than its one hello"));
    };
    socket.on("data", onData);
    socket.on("error", () => {}); // a reset by the peer: the close below tidies up
    socket.on("close", () => {
      this.#sockets.delete(socket);
      if (key === undefined) return;
      const sockets = this.#byKey.get(key);
      sockets?.delete(socket);
      if (sockets?.size === 0) this.#byKey.delete(key);
    });
  }

  #refuse(socket: Socket, problem: string): void {
    if (socket.destroyed) return;
    this.#log("info", `closed an answer stream connection from ${socket.remoteAddress}: ${problem}`);
    socket.destroy();
  }
}

const NEWLINE = Buffer.from("\n");

/**
 * The local address this host uses to reach the first server of `connectString` (a UDP socket's
 * `connect` picks the route and sends nothing): the address a submitter that reaches the same ensemble
 * most likely reaches this host at. A loopback server gives a loopback address.
 */
export async function localAddressTowards(connectString: string): Promise<string> {
  const first = (connectString.split("/")[0] ?? "").split(",")[0]?.trim() ?? "";
  const { host, port } = splitHostPort(first, 2181);
  const family = isIP(host) === 6 ? "udp6" : "udp4";
  const socket = createSocket(family);
  try {
    return await new Promise<string>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(port, host === "" ? "127.0.0.1" : host, () => resolve(socket.address().address));
    });
  } finally {
    socket.close();
  }
}

/** `host:port`, `[v6]:port`, `host` or `v6` as a host and a port (`fallback` when none is given). */
export function splitHostPort(text: string, fallback: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed !== null)
    return {
      host: bracketed[1] as string,
      port: bracketed[2] === undefined ? fallback : Number(bracketed[2]),
    };
  const colon = text.lastIndexOf(":");
  if (colon < 0 || isIP(text) === 6) return { host: text, port: fallback };
  return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}
