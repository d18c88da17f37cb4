import type { ConnectionEvent, ZkClient } from "@zkgrid/core";

export interface CutoffClockOptions {
  /** How long the connection may be lost before `onCutOff`; undefined: never. */
  boundMs: number | undefined;
  /** The connection has been lost for `forMs` (the bound): the worker stops its tasks. */
  onCutOff: (forMs: number) => void;
  /** The connection is back after `forMs`; `cutOff`: the bound had passed meanwhile. */
  onBack: (forMs: number, cutOff: boolean) => void;
}

/**
 * How long the worker has been cut off from every ensemble member: from the client's `suspended` (the
 * connection lost; the session may live on) until it is `connected` or `reconnected` again. In a silent
 * cut (a partition) the C client reports `suspended` 2/3 of the session timeout after its last reply,
 * and the ensemble can expire the session 1/3 later: the bound counts from `suspended`, the only
 * moment the worker can see.
 */
export class CutoffClock {
  private lostAt: number | undefined;
  private cutOff = false;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: CutoffClockOptions) {}

  /** True from the connection's loss until it is back: nothing new should start meanwhile. */
  get lost(): boolean {
    return this.lostAt !== undefined;
  }

  /** Follows `client`'s connection events until `stop()`; idempotent. */
  watch(client: ZkClient): void {
    if (this.unsubscribe !== undefined) return;
    this.unsubscribe = client.on("*", (event: ConnectionEvent) => this.onConnection(event));
    if (client.state === "suspended") this.onLost();
  }

  stop(): void {
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.lostAt = undefined;
  }

  private onConnection(event: ConnectionEvent): void {
    switch (event.type) {
      case "suspended":
        this.onLost();
        return;
      case "connected":
      case "reconnected":
      case "closed":
        this.onBack();
        return;
      case "expired":
        // Still cut off, or just back to hear of it: a new session is on its way.
        return;
    }
  }

  private onLost(): void {
    if (this.lostAt !== undefined) return;
    this.lostAt = Date.now();
    this.cutOff = false;
    const { boundMs } = this.options;
    if (boundMs === undefined) return;
    this.timer = setTimeout(() => {
      if (this.lostAt === undefined) return;
      this.cutOff = true;
      this.options.onCutOff(Date.now() - this.lostAt);
    }, boundMs);
    // A worker with nothing else to do must still exit when asked to.
    this.timer.unref();
  }

  private onBack(): void {
    if (this.lostAt === undefined) return;
    clearTimeout(this.timer);
    const forMs = Date.now() - this.lostAt;
    this.lostAt = undefined;
    this.options.onBack(forMs, this.cutOff);
  }
}
