import { errors } from "@zkgrid/core";
import type { CancelRequest } from "@zkgrid/protocol";
import { decodeCancelRequest, encodeCancelRequest } from "@zkgrid/protocol";
import { finalStatus } from "../task-book.js";
import type { DirectInboxes } from "./direct-inboxes.js";
import { bySequence, type ChildrenChange, getOrNull, type Term } from "./term.js";
import type { GridWriter } from "./writer.js";

interface Accept {
  request: CancelRequest;
  version: number;
}

/**
 * R/cancel: applies each cancel request to the TaskBook, records which ids it accepted (rewriting the
 * request before the assignments that drop those tasks), and deletes a request once all its ids are final.
 */
export class Cancellations {
  /** Cancel request nodes → their ids not yet final; a node is deleted once all are. */
  private readonly waiting = new Map<string, Set<string>>();
  /** Cancel nodes to rewrite with `accepted` before the assignments that drop those tasks. */
  private accepts = new Map<string, Accept>();
  private readonly seen = new Set<string>();

  constructor(
    private readonly term: Term,
    private readonly writer: GridWriter,
    private readonly direct: DirectInboxes,
  ) {}

  /**
   * `takeover`: read before the term's first step. A cancelled id found nowhere else was then taken out
   * of its worker's assignment by the previous leader: it ends as cancelled now.
   */
  async onCancel({ added, removed }: ChildrenChange, takeover: boolean): Promise<void> {
    const { term, writer } = this;
    for (const name of removed) this.seen.delete(name);
    const fresh = added.filter((n) => !this.seen.has(n)).sort(bySequence);
    for (const n of fresh) this.seen.add(n);
    const requests = await Promise.all(
      fresh.map(async (name) => ({
        name,
        got: await getOrNull(term.client, `${term.layout.cancel}/${name}`),
      })),
    );
    await this.direct.findDirectTasks(requests);
    term.apply(() => {
      const { book } = term;
      for (const { name, got } of requests) {
        if (!got) continue;
        const decoded = decodeCancelRequest(got.data);
        if (!decoded.ok) {
          term.log("warn", "unreadable cancel request; dropped", {
            node: name,
            error: decoded.error.message,
          });
          this.waiting.set(name, new Set());
          continue;
        }
        const waiting = new Set<string>();
        const accepted = new Set(decoded.value.accepted ?? []);
        for (const id of decoded.value.ids) {
          if (takeover && accepted.has(id) && !book.isKnown(id)) {
            writer.publish(
              finalStatus({ id, spec: { id }, attemptsUsed: 0, submittedAt: 0 } as never, "cancelled", {
                reason: "cancelled",
                finishedAt: Date.now(),
              }),
            );
            book.markFinished(id);
            continue;
          }
          const { status, worker, direct } = book.cancel(id, Date.now());
          if (status) writer.publish(status);
          if (direct) {
            this.direct.cancel({ id, ...direct });
            waiting.add(id);
            term.log("info", "cancelling a direct task its worker holds", { task: id });
          }
          if (worker) {
            writer.assignmentChanged(worker);
            waiting.add(id);
            term.log("info", "cancelling a task its worker holds", { task: id, worker });
          }
        }
        this.waiting.set(name, waiting);
        const newlyAccepted = [...waiting].filter((id) => !accepted.has(id));
        if (newlyAccepted.length > 0) {
          this.accepts.set(name, {
            request: { ...decoded.value, accepted: [...accepted, ...newlyAccepted] },
            version: got.stat.version,
          });
        }
      }
    });
  }

  /** Writes `accepted` into the requests that have new ones; on failure they wait for the next step. */
  async writeAccepts(): Promise<void> {
    const accepts = this.accepts;
    if (accepts.size === 0) return;
    this.accepts = new Map();
    try {
      await Promise.all([...accepts].map(([name, a]) => this.writeAccept(name, a)));
    } catch (err) {
      for (const [name, a] of accepts) if (!this.accepts.has(name)) this.accepts.set(name, a);
      throw err;
    }
  }

  /** The request nodes whose every id is final now: they are deleted. */
  takeSettled(): string[] {
    const paths: string[] = [];
    for (const [name, waiting] of this.waiting) {
      for (const id of waiting) if (!this.term.book.tasks.has(id)) waiting.delete(id);
      if (waiting.size === 0) {
        paths.push(`${this.term.layout.cancel}/${name}`);
        this.waiting.delete(name);
      }
    }
    return paths;
  }

  private async writeAccept(name: string, { request, version }: Accept): Promise<void> {
    const { term } = this;
    term.guard();
    term.counters.writes += 1;
    try {
      await term.client.set(`${term.layout.cancel}/${name}`, encodeCancelRequest(request), version);
    } catch (err) {
      if (!errors.isNoNode(err)) throw err;
    }
  }
}
