import ZooKeeper from "zookeeper";
import { withTimeout } from "../src/index.js";

export const ZOO_EPHEMERAL = 1;
export const ZOO_PERSISTENT = 0;
export const ZOO_EXPIRED_SESSION_STATE = -112;

/** The `zookeeper` addon's promise API, as far as these tests use it. */
interface PromiseHandle {
  init(config: object): unknown;
  close(): unknown;
  on(event: "close", listener: (handle: unknown, code: number) => void): unknown;
  once(event: "connect", listener: () => void): unknown;
  create(path: string, data: string, flags: number): Promise<string>;
  pathExists(path: string, watch: boolean): Promise<boolean>;
  get(path: string, watch: boolean): Promise<[unknown, Buffer | string]>;
  readonly client_id: string;
  readonly client_password: string;
}

/**
 * A bare addon handle for these tests (the harness must not depend on @zkgrid/core). It closes at most
 * once, since a second close can crash the process.
 */
export class RawClient {
  /** Set once the handle closed, by us (0) or by the library (-112 for an expired session). */
  closeCode: number | undefined;
  private readonly handle: PromiseHandle;

  private constructor(handle: PromiseHandle) {
    this.handle = handle;
    handle.on("close", (_handle, code) => {
      this.closeCode = code;
    });
  }

  static async connect(connectString: string, sessionTimeoutMs = 4000): Promise<RawClient> {
    const handle = new ZooKeeper({
      connect: connectString,
      timeout: sessionTimeoutMs,
    }) as unknown as PromiseHandle;
    const client = new RawClient(handle);
    const connected = new Promise<void>((resolve) => handle.once("connect", resolve));
    handle.init({});
    await withTimeout(connected, 20_000, `connect to ${connectString}`);
    return client;
  }

  /** Connects, hands the client to `use`, and closes it however `use` ends. */
  static async with<T>(connectString: string, use: (client: RawClient) => Promise<T>): Promise<T> {
    const client = await RawClient.connect(connectString);
    try {
      return await use(client);
    } finally {
      client.close();
    }
  }

  get session(): { id: string; password: string } {
    return { id: this.handle.client_id, password: this.handle.client_password };
  }

  create(path: string, data: string, flags = ZOO_PERSISTENT): Promise<string> {
    return this.handle.create(path, data, flags);
  }

  exists(path: string): Promise<boolean> {
    return this.handle.pathExists(path, false);
  }

  async getString(path: string): Promise<string> {
    const [, data] = await this.handle.get(path, false);
    return data.toString();
  }

  close(): void {
    if (this.closeCode !== undefined) return;
    this.handle.close();
  }
}
