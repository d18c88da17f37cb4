import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { TestHost } from "@zkgrid/testing";
import { waitFor } from "@zkgrid/testing";

const CORE = fileURLToPath(new URL("../../packages/core/dist/index.js", import.meta.url));
const SCRIPT = fileURLToPath(new URL("./zk-client.mjs", import.meta.url));

export interface Reply {
  ok: boolean;
  ms: number;
  error?: string;
}

/** A ZooKeeper client (@zkgrid/core, built) in a process of its own on a test host. */
export class HostClient {
  /** Events in order: "ready" (first session), then the connection events: "connected", "suspended", "reconnected", "expired", "closed". */
  readonly events: string[] = [];
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: Reply) => void>();
  #nextId = 1;
  #stderr = "";

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stderr?.on("data", (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const message = JSON.parse(line) as { event?: string; id?: number } & Reply;
      if (message.event !== undefined) this.events.push(message.event);
      else if (message.id !== undefined) this.#waiting.get(message.id)?.(message);
    });
  }

  /** Starts the client on `host` and waits for its first session. */
  static async start(host: TestHost, connectString: string, sessionTimeoutMs: number): Promise<HostClient> {
    if (!existsSync(CORE)) throw new Error(`${CORE} is missing: run \`pnpm build\` first`);
    const child = host.spawn(process.execPath, [SCRIPT, CORE, connectString, String(sessionTimeoutMs)], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const client = new HostClient(child);
    // "ready" follows connect(), i.e. the first session.
    await client.waitForEvent("ready", 0, 90_000);
    return client;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** One request; resolves with its outcome (ok or the client's error) and its round trip. */
  request(op: "create" | "exists", path: string): Promise<Reply> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.#child.stdin?.write(`${JSON.stringify({ id, op, path })}\n`);
    });
  }

  /** Waits until one of `types` is among the events from index `from` on. */
  async waitForEvent(types: string | string[], from: number, timeoutMs = 60_000): Promise<string> {
    const wanted = Array.isArray(types) ? types : [types];
    let seen: string | undefined;
    await waitFor(
      () => {
        if (!this.running) throw new Error(`the client on its host exited: ${this.#stderr}`);
        seen = this.events.slice(from).find((event) => wanted.includes(event));
        return seen !== undefined;
      },
      {
        timeoutMs,
        intervalMs: 50,
        message: `client event ${wanted.join(" or ")} (saw ${this.events.join(", ")})`,
      },
    );
    return seen!;
  }

  close(): void {
    this.#child.stdin?.end();
  }
}
