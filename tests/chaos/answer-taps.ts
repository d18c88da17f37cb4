import { connect, type Socket } from "node:net";
import {
  type AnswerAddress,
  decodeDirectAnswer,
  encodeAnswerHello,
  newAnswerKey,
  type TaskStatus,
} from "@zkgrid/protocol";

/**
 * The chaos run's own client of workers' answer streams (docs/protocol.md, "Answer streams"), written
 * from the protocol page rather than taken from the client library: one connection per worker session,
 * whose hello names a key that the direct tasks sent there carry. Every answer a stream sends is kept
 * (the first per task) for the ledger to hold against the runs and the results the grid recorded.
 */
export class AnswerTaps {
  /** The first answer each stream sent per task id, with the worker whose stream sent it. */
  readonly streamed = new Map<string, { worker: string; status: TaskStatus }>();
  /** Lines a stream sent that were not answers: each is a violation. */
  readonly junk: string[] = [];
  readonly #taps = new Map<string, { socket: Socket; key: string }>();

  /** The key for a direct task sent to `worker@session`, whose stream listens at `address`. */
  keyFor(worker: string, session: string, address: AnswerAddress): string {
    const name = `${worker}@${session}`;
    let tap = this.#taps.get(name);
    if (tap === undefined || tap.socket.destroyed) {
      tap = { socket: this.#open(worker, address), key: newAnswerKey() };
      tap.socket.write(encodeAnswerHello(tap.key));
      this.#taps.set(name, tap);
    }
    return tap.key;
  }

  close(): void {
    for (const tap of this.#taps.values()) tap.socket.destroy();
  }

  #open(worker: string, address: AnswerAddress): Socket {
    const socket = connect({ host: address.host, port: address.port, noDelay: true });
    let pending = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf(0x0a); end >= 0; end = pending.indexOf(0x0a)) {
        const line = pending.subarray(0, end);
        pending = pending.subarray(end + 1);
        const answer = decodeDirectAnswer(line);
        if (!answer.ok) this.junk.push(`${worker}'s answer stream sent ${answer.error.message}`);
        else if (!this.streamed.has(answer.value.id))
          this.streamed.set(answer.value.id, { worker, status: answer.value });
      }
    });
    // A killed worker resets its connections: the tasks wanted there are answered by their nodes.
    socket.on("error", () => {});
    return socket;
  }
}
