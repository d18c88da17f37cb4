import { errors, type ZkClient } from "@zkgrid/core";
import { type GridLayout, masterAcceptsReplyTo } from "@zkgrid/protocol";

/**
 * Whether this client's tasks may carry `replyTo`: a leader older than reply dirs rejects the key, so
 * the client sets it only if, when it first asks, at least one master candidate stands and every one
 * lists `replyTo` in its `accepts`. It then follows `R/masters`, and from the first candidate that does
 * not say so (an older master joining) it answers no for good: new tasks go to `R/results`. It never
 * turns from no to yes, so a `since` taken in `R/results` is never applied to a reply dir.
 */
export class ReplyRoute {
  readonly #zk: ZkClient;
  readonly #masters: string;
  /** Each candidate node's answer, by name (a read that found it gone leaves it out). */
  readonly #candidates = new Map<string, boolean>();
  #first: Promise<boolean> | undefined;
  #answer: boolean | undefined;
  #refused = false;
  readonly #follow = new AbortController();

  constructor(zk: ZkClient, layout: Pick<GridLayout, "masters">) {
    this.#zk = zk;
    this.#masters = layout.masters;
  }

  /** Whether the next tasks may carry `replyTo` (the first call waits for the masters' listing). */
  async accepted(): Promise<boolean> {
    this.#first ??= this.#start().then((yes) => {
      this.#answer = yes;
      return yes;
    });
    return (await this.#first) && !this.#refused;
  }

  /** {@link accepted} without waiting: undefined until the first answer is in. */
  acceptedNow(): boolean | undefined {
    return this.#answer === undefined ? undefined : this.#answer && !this.#refused;
  }

  /** Stops following `R/masters`. */
  close(): void {
    this.#follow.abort();
  }

  #start(): Promise<boolean> {
    const signal = this.#follow.signal;
    return new Promise<boolean>((resolve) => {
      let listed = false;
      void (async () => {
        try {
          for await (const { children, removed } of this.#zk.watchChildren(this.#masters, { signal })) {
            for (const name of removed) this.#candidates.delete(name);
            const fresh = children.filter((name) => !this.#candidates.has(name));
            await Promise.all(fresh.map((name) => this.#read(name)));
            if (!listed) {
              listed = true;
              const answers = [...this.#candidates.values()];
              if (answers.length === 0) this.#refused = true;
              resolve(answers.length > 0 && answers.every(Boolean));
            }
            // A no is for good: nothing left to follow.
            if (this.#refused) break;
          }
          // Closed before the first listing.
          if (!listed) resolve(false);
        } catch {
          // Not knowing is not a yes: R/results from here on (a closed client submits nothing).
          this.#refused = true;
          if (!listed) resolve(false);
        }
      })();
    });
  }

  async #read(name: string): Promise<void> {
    try {
      const { data } = await this.#zk.get(`${this.#masters}/${name}`);
      const accepts = masterAcceptsReplyTo(data);
      this.#candidates.set(name, accepts);
      if (!accepts) this.#refused = true;
    } catch (err) {
      if (!errors.isNoNode(err)) throw err;
    }
  }
}
