import { errors } from "@zkgrid/core";
import { decodeWorkerRegistration } from "@zkgrid/protocol";
import type { Term } from "./term.js";

/**
 * Each live worker's capacity as its registration says now: a worker rewrites `R/workers/<name>` as
 * its prefetch adapts, so the leader follows that node's data for as long as the session holds it.
 */
export class WorkerCapacities {
  /** By worker name: the session followed and the end of its watch. */
  private readonly follows = new Map<string, { session: string; stop: AbortController }>();

  constructor(
    private readonly term: Term,
    /** The registration followed is gone or another session's: its owner reads it again. */
    private readonly ended: (name: string) => void,
  ) {}

  /** Follows `name`'s registration while `session` owns it (a new session replaces the old watch). */
  follow(name: string, session: string): void {
    const known = this.follows.get(name);
    if (known?.session === session) return;
    known?.stop.abort();
    const stop = new AbortController();
    this.follows.set(name, { session, stop });
    void this.watch(name, session, stop.signal);
  }

  forget(name: string): void {
    this.follows.get(name)?.stop.abort();
    this.follows.delete(name);
  }

  stop(): void {
    for (const f of this.follows.values()) f.stop.abort();
    this.follows.clear();
  }

  private async watch(name: string, session: string, stop: AbortSignal): Promise<void> {
    const { term } = this;
    const signal = AbortSignal.any([term.signal, stop]);
    try {
      for await (const change of term.client.watchData(term.layout.worker(name), {
        signal,
        untilGone: true,
      })) {
        // Gone or another session's: R/workers' children watch may not show it (a name deleted and
        // created again between two of its reads), so the registration is read again.
        if (change === null || change.stat.ephemeralOwner !== session) {
          if (this.follows.get(name)?.session === session) this.ended(name);
          break;
        }
        const reg = decodeWorkerRegistration(change.data);
        if (!reg.ok) continue;
        const { capacity } = reg.value;
        term.apply(() => {
          const slot = term.book.workers.get(name);
          if (slot?.session === session) slot.capacity = capacity;
        });
        term.kick();
      }
    } catch (err) {
      if (signal.aborted || errors.isSessionExpired(err)) return;
      term.log("warn", "lost the watch on a worker's capacity; it keeps the last one read", {
        worker: name,
        error: String(err),
      });
    } finally {
      if (this.follows.get(name)?.session === session) this.follows.delete(name);
    }
  }
}
