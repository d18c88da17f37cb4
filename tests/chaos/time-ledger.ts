import type { TaskSpec, TaskStatus } from "@zkgrid/protocol";
import type { Execution } from "./ledger.js";

/**
 * Delayed tasks and retried failures in the chaos stream, and their own ledger check. Each such task's
 * command records its runs in the same execution files as every chaos task, so the check judges the
 * grid by what the commands saw: the start time each printed (`date +%s%3N`), not what the grid says.
 */

/** Attempts a retried chaos task fails before it succeeds. */
const FAILS = 2;
/** Beyond the planned attempts, room for workers lost while they hold the task. */
const SLACK = 3;
const BACKOFF_MS = 200;

interface TimedTask {
  kind: "delayed" | "retried";
  /** A delayed task's `runAt`. */
  runAt?: number;
}

export class TimeLedger {
  readonly tasks = new Map<string, TimedTask>();

  constructor(
    private readonly execDir: string,
    /** Share of the stream made of delayed tasks, and of retried ones. */
    private readonly share = 0.05,
  ) {}

  /** A delayed or retried task with this id, or undefined (`roll` 0..1 decides, so a seed keeps its mix). */
  maybe(id: string, roll: number, now = Date.now()): TaskSpec | undefined {
    const file = `${this.execDir}/"$ZKGRID_TASK_ID"`;
    const record = `echo "s $ZKGRID_TASK_ATTEMPT $ZKGRID_WORKER $(date +%s%3N)" >> ${file}`;
    if (roll < this.share) {
      const runAt = now + 500 + Math.floor((roll / this.share) * 4000);
      this.tasks.set(id, { kind: "delayed", runAt });
      return {
        id,
        cmd: `${record}; sleep 0.05; echo "e $ZKGRID_TASK_ATTEMPT $ZKGRID_WORKER" >> ${file}`,
        runAt,
      };
    }
    if (roll < 2 * this.share) {
      this.tasks.set(id, { kind: "retried" });
      // Fails its first FAILS attempts (as numbered by the grid), then succeeds.
      return {
        id,
        cmd: `${record}; echo "e $ZKGRID_TASK_ATTEMPT $ZKGRID_WORKER" >> ${file}; [ "$ZKGRID_TASK_ATTEMPT" -gt ${FAILS} ]`,
        maxAttempts: FAILS + 1 + SLACK,
        retry: { backoff: { type: "fixed", delayMs: BACKOFF_MS } },
      };
    }
    return undefined;
  }

  count(kind: TimedTask["kind"]): number {
    return [...this.tasks.values()].filter((t) => t.kind === kind).length;
  }

  /**
   * - one final outcome per task (identical repeats allowed, as for every chaos task);
   * - no run of a delayed task started before its `runAt`, and it succeeded;
   * - a retried task's result lists every attempt in its history, numbered 1..n once each, the last
   *   being the result's; every run its command recorded is there, on the same worker; it succeeded
   *   after FAILS failed attempts, or failed only because workers were lost and its attempts ran out;
   *   no attempt ran twice.
   */
  check(results: TaskStatus[], executions: Map<string, Execution[]>): string[] {
    const violations: string[] = [];
    const byId = new Map<string, TaskStatus[]>();
    for (const r of results) if (this.tasks.has(r.id)) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    for (const [id, task] of this.tasks) {
      const violate = (what: string) => violations.push(`${id} (${task.kind}): ${what}`);
      const statuses = byId.get(id) ?? [];
      const first = statuses[0];
      if (!first) {
        violate("no final status");
        continue;
      }
      if (statuses.some((s) => s.state !== first.state || s.attempt !== first.attempt))
        violate(`two different final statuses: ${statuses.map((s) => `${s.state}/${s.attempt}`).join(", ")}`);
      const runs = executions.get(id) ?? [];
      const seen = new Set<number>();
      for (const run of runs) {
        if (seen.has(run.attempt)) violate(`attempt ${run.attempt} ran twice`);
        seen.add(run.attempt);
      }
      if (task.kind === "delayed") {
        for (const run of runs)
          if (run.startedAt < (task.runAt ?? 0))
            violate(`started ${(task.runAt ?? 0) - run.startedAt} ms before its runAt`);
        if (first.state !== "succeeded")
          violate(`ended ${first.state}${first.reason ? ` (${first.reason})` : ""}`);
        continue;
      }
      const history = first.history ?? [];
      if (history.length !== first.attempt)
        violate(`result is attempt ${first.attempt} but its history holds ${history.length} attempts`);
      history.forEach((a, i) => {
        if (a.attempt !== i + 1) violate(`history[${i}] is attempt ${a.attempt}, expected ${i + 1}`);
      });
      for (const run of runs) {
        const record = history.find((a) => a.attempt === run.attempt);
        if (!record) violate(`attempt ${run.attempt} ran on ${run.worker} but is not in its history`);
        else if (record.worker !== run.worker)
          violate(`attempt ${run.attempt} ran on ${run.worker}, its history says ${record.worker}`);
      }
      const lost = history.filter((a) => a.outcome === "lost").length;
      const failed = history.filter((a) => a.outcome === "failed").length;
      if (first.state === "succeeded") {
        if (first.attempt <= FAILS) violate(`succeeded as attempt ${first.attempt}, which fails by design`);
        if (failed + lost !== first.attempt - 1)
          violate(`succeeded as attempt ${first.attempt} after ${failed} failed and ${lost} lost attempts`);
      } else if (!(first.state === "failed" && first.attempt === FAILS + 1 + SLACK && lost > 0)) {
        violate(`ended ${first.state} as attempt ${first.attempt} with ${lost} lost attempts`);
      }
    }
    return violations;
  }
}
