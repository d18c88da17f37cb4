import { connect } from "node:net";

/**
 * Sends a ZooKeeper four-letter word (`srvr`, `ruok`, `mntr`, `cons`, `dump`, …) and returns the reply.
 * The server must allow it (`4lw.commands.whitelist`); servers started here allow all.
 */
export function fourLetterWord(host: string, port: number, word: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => {
      socket.destroy(new Error(`no reply to '${word}' from ${host}:${port} within ${timeoutMs} ms`));
    });
    socket.on("connect", () => socket.write(word));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

/** A server's role as `srvr` reports it. */
export type ServerMode = "standalone" | "leader" | "follower" | "observer";

/** The `Mode:` line of `srvr`, or undefined when the server is not serving (no quorum, paused, down). */
export async function serverMode(
  host: string,
  port: number,
  timeoutMs = 2000,
): Promise<ServerMode | undefined> {
  try {
    const reply = await fourLetterWord(host, port, "srvr", timeoutMs);
    const mode = /^Mode: (\w+)/m.exec(reply)?.[1];
    return mode === "standalone" || mode === "leader" || mode === "follower" || mode === "observer"
      ? mode
      : undefined;
  } catch {
    return undefined;
  }
}
