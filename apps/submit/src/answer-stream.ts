import { connect, type Socket } from "node:net";
import {
  type AnswerAddress,
  decodeDirectAnswer,
  encodeAnswerHello,
  MAX_ANSWER_LINE_BYTES,
  newAnswerKey,
  type TaskStatus,
} from "@zkgrid/protocol";

/** How long a connection to a worker's answer stream may take to open before it is given up. */
export const CONNECT_TIMEOUT_MS = 2_000;
/** After a stream could not be reached, tasks for its worker do without it for this long. */
export const UNREACHABLE_PAUSE_MS = 30_000;

/** A worker whose registration names an answer stream. */
export interface StreamTarget {
  readonly worker: string;
  readonly answers: AnswerAddress;
}

/** Logs what the streams skip; never throws. */
export type StreamLogger = (level: "warn" | "info", msg: string, fields?: Record<string, unknown>) => void;

/** Hears each answer a worker's stream sends: `worker` is the worker whose stream it came from. */
export type StreamDelivery = (worker: string, status: TaskStatus) => void;

interface Line {
  socket: Socket;
  /** The key its hello named: the tasks sent to its worker carry it. */
  key: string;
  /** Bytes of an answer not yet ended by "\n". */
  pending: Buffer[];
  pendingBytes: number;
}

/**
 * A client's connections to workers' answer streams (docs/protocol.md, "Answer streams"), one per
 * worker process (its name and its stream's address), opened on its first direct task and kept while
 * it lives. Each names a fresh key in its hello; the direct tasks sent to that worker carry the key,
 * and their answers come back here as soon as they end. Their nodes still carry the answers too, which
 * the caller follows as well. A stream that cannot be reached is left alone for `UNREACHABLE_PAUSE_MS`;
 * one that sends anything but answers is closed, and left alone as long.
 */
export class AnswerStreams {
  readonly #log: StreamLogger;
  readonly #deliver: StreamDelivery;
  /** Open or opening connections, by `worker@host:port`. */
  readonly #lines = new Map<string, Line>();
  /** Streams (`worker@host:port`) that could not be reached or broke the protocol: until when to leave them. */
  readonly #unreachable = new Map<string, number>();
  #closed = false;

  constructor(log: StreamLogger, deliver: StreamDelivery) {
    this.#log = log;
    this.#deliver = deliver;
  }

  /**
   * The key a direct task for `target` carries, its connection to that stream opened if needed (the
   * hello goes out once it is open); undefined while the stream is left alone: the task carries none.
   */
  keyFor(target: StreamTarget): string | undefined {
    if (this.#closed) return undefined;
    // By worker and address, not session: a worker process keeps its stream across its sessions.
    const name = `${target.worker}@${target.answers.host}:${target.answers.port}`;
    const line = this.#lines.get(name);
    if (line !== undefined) return line.key;
    const pause = this.#unreachable.get(name);
    if (pause !== undefined) {
      if (Date.now() < pause) return undefined;
      this.#unreachable.delete(name);
    }
    return this.#open(name, target).key;
  }

  /** Closes every connection. */
  close(): void {
    this.#closed = true;
    for (const line of this.#lines.values()) line.socket.destroy();
    this.#lines.clear();
  }

  #open(name: string, target: StreamTarget): Line {
    const socket = connect({ host: target.answers.host, port: target.answers.port, noDelay: true });
    socket.unref();
    const line: Line = { socket, key: newAnswerKey(), pending: [], pendingBytes: 0 };
    this.#lines.set(name, line);
    socket.write(encodeAnswerHello(line.key));
    let opened = false;
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => {
      if (!opened) socket.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`));
    });
    socket.once("connect", () => {
      opened = true;
      socket.setTimeout(0);
    });
    socket.on("data", (chunk: Buffer) => this.#read(name, target.worker, line, chunk));
    socket.on("error", (error) => {
      if (opened) return; // the close below ends it
      this.#pause(name);
      this.#log("info", "cannot reach a worker's answer stream; its answers are read from ZooKeeper", {
        worker: target.worker,
        address: `${target.answers.host}:${target.answers.port}`,
        error: error.message,
      });
    });
    socket.on("close", () => {
      if (this.#lines.get(name) === line) this.#lines.delete(name);
    });
    return line;
  }

  #read(name: string, worker: string, line: Line, chunk: Buffer): void {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end >= 0; end = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, end);
      start = end + 1;
      const whole = line.pending.length === 0 ? piece : Buffer.concat([...line.pending, piece]);
      line.pending = [];
      line.pendingBytes = 0;
      const answer = decodeDirectAnswer(whole);
      if (!answer.ok) {
        this.#refuse(name, worker, line, `sent what is not an answer: ${answer.error.message}`);
        return;
      }
      this.#deliver(worker, answer.value);
    }
    if (start < chunk.length) {
      line.pending.push(chunk.subarray(start));
      line.pendingBytes += chunk.length - start;
      if (line.pendingBytes > MAX_ANSWER_LINE_BYTES)
        this.#refuse(name, worker, line, `sent a line over ${MAX_ANSWER_LINE_BYTES} bytes`);
    }
  }

  /** Closes a stream that broke the protocol, and leaves it alone for a while. */
  #refuse(name: string, worker: string, line: Line, problem: string): void {
    this.#log("warn", `closed a worker's answer stream: it ${problem}`, { worker });
    this.#pause(name);
    line.socket.destroy();
  }

  /** Leaves stream `name` alone for a while (expired pauses are forgotten on the way). */
  #pause(name: string): void {
    const now = Date.now();
    if (this.#unreachable.size >= 1024)
      for (const [other, until] of this.#unreachable) if (until <= now) this.#unreachable.delete(other);
    this.#unreachable.set(name, now + UNREACHABLE_PAUSE_MS);
  }
}
