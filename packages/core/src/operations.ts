import type { ClientCore } from "./connection.js";
import { modeFlags } from "./modes.js";
import { createProtected, ensurePath, protect } from "./recipes.js";
import { isBadVersion, isNoNode, isNotEmpty } from "./errors.js";
import { type Chroot, joinPath, validatePath } from "./paths.js";
import { type Session, toBuffer, ZOO_SEQUENCE } from "./session.js";
import type {
  Acl,
  ChildrenChange,
  CreateMode,
  Data,
  DataChange,
  Stat,
  WatchOptions,
  WatchStream,
} from "./types.js";
import { ChildrenWatch, DataWatch } from "./watch.js";

/**
 * The node operations, run through the client's session machinery. Unbound (`bindTo` undefined) they
 * run on whatever session is current; bound, only on that one session.
 * @internal
 */
export class NodeOperations {
  readonly #core: ClientCore;
  readonly #chroot: Chroot;
  readonly #bindTo: Session | undefined;

  constructor(core: ClientCore, bindTo: Session | undefined) {
    this.#core = core;
    this.#chroot = core.chroot;
    this.#bindTo = bindTo;
  }

  #run<T>(path: string, retry: boolean, attempt: Parameters<ClientCore["run"]>[2]): Promise<T> {
    return this.#core.run(path, retry, attempt, { bindTo: this.#bindTo }) as Promise<T>;
  }

  async create(path: string, data?: Data, mode: CreateMode = "persistent"): Promise<string> {
    const flags = modeFlags(mode);
    validatePath(path, { allowTrailingSlash: (flags & ZOO_SEQUENCE) !== 0 });
    const abs = this.#chroot.toServer(path);
    // Not repeated after a connection loss: the first attempt may have succeeded.
    const created = this.#chroot.fromServer(
      await this.#run<string>(path, false, (s) => s.create(abs, path, data, flags)),
    );
    await protect(this.#core, created);
    return created;
  }

  createProtected(path: string, data?: Data, mode: CreateMode = "persistent"): Promise<string> {
    return createProtected(this.#core, path, data, mode, { bindTo: this.#bindTo });
  }

  ensurePath(path: string): Promise<void> {
    return ensurePath(this.#core, path, { bindTo: this.#bindTo });
  }

  async exists(path: string): Promise<Stat | null> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return this.#run(path, true, (s) => s.exists(abs, path, false));
  }

  async get(path: string): Promise<{ data: Buffer; stat: Stat }> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return this.#run(path, true, (s) => s.get(abs, path, false));
  }

  async getChildren(path: string): Promise<string[]> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return (await this.#run<{ children: string[] }>(path, true, (s) => s.getChildren(abs, path, false)))
      .children;
  }

  async set(path: string, data: Data, version = -1): Promise<Stat> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return this.#run(path, true, async (s, retried) => {
      try {
        return await s.set(abs, path, data, version);
      } catch (error) {
        if (retried && version >= 0 && isBadVersion(error)) {
          // The lost attempt may have landed: then the node holds exactly our data at version + 1.
          const current = await s.get(abs, path, false);
          if (current.stat.version === version + 1 && current.data.equals(toBuffer(data)))
            return current.stat;
        }
        throw error;
      }
    });
  }

  async setOnce(path: string, data: Data, version = -1): Promise<Stat> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return this.#run(path, false, (s) => s.set(abs, path, data, version));
  }

  async delete(path: string, version = -1): Promise<void> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    await this.#run(path, true, async (s, retried) => {
      try {
        await s.delete(abs, path, version);
      } catch (error) {
        // After a lost reply, NoNode means the first attempt did it.
        if (!(retried && isNoNode(error))) throw error;
      }
    });
  }

  async deleteRecursive(path: string): Promise<void> {
    validatePath(path);
    const remove = async (node: string): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        let children: string[];
        try {
          children = await this.getChildren(node);
        } catch (error) {
          if (isNoNode(error)) return;
          throw error;
        }
        const isServerRoot = this.#chroot.toServer(node) === "/";
        const targets = children
          .filter((child) => !(isServerRoot && child === "zookeeper"))
          .map((child) => joinPath(node, child));
        for (let i = 0; i < targets.length; i += 64) {
          await Promise.all(targets.slice(i, i + 64).map(remove));
        }
        if (isServerRoot) return;
        try {
          await this.delete(node);
          return;
        } catch (error) {
          if (isNoNode(error)) return;
          // A child appeared meanwhile: list again.
          if (!isNotEmpty(error) || attempt >= 20) throw error;
        }
      }
    };
    await remove(path);
  }

  async sync(path: string): Promise<void> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    await this.#run(path, true, (s) => s.sync(abs, path));
  }

  async setAcl(path: string, acl: Acl[], version = -1): Promise<void> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    await this.#run(path, true, (s) => s.setAcl(abs, path, acl, version));
  }

  async getAcl(path: string): Promise<{ acl: Acl[]; stat: Stat }> {
    validatePath(path);
    const abs = this.#chroot.toServer(path);
    return this.#run(path, true, (s) => s.getAcl(abs, path));
  }

  watchChildren(path: string, options: WatchOptions = {}): WatchStream<ChildrenChange> {
    validatePath(path);
    return new ChildrenWatch(this.#core, path, this.#watchSignal(options.signal), options);
  }

  watchData(path: string, options: WatchOptions = {}): WatchStream<DataChange | null> {
    validatePath(path);
    return new DataWatch(this.#core, path, this.#watchSignal(options.signal), options);
  }

  /** A bound view's watches end with its session. */
  #watchSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
    const ended = this.#bindTo?.controller.signal;
    if (!ended) return signal;
    return signal ? AbortSignal.any([signal, ended]) : ended;
  }
}
