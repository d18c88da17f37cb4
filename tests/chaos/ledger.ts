import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TaskStatus } from "@zkgrid/protocol";

/**
 * What the chaos suite knows independently of the grid: every execution of every task (each task's
 * command appends a start line and an end line to a file of its own), when each worker was lost, and
 * the stretches of time in which a worker held only a dead session.
 */

/** One run of a task's command, as its own log file tells. */
export interface Execution {
  attempt: number;
  worker: string;
  /** ms since the epoch, as `date +%s%3N` printed it when the command started. */
  startedAt: number;
  /** The command reached its end line. */
  finished: boolean;
}

/** A worker session ended (or was about to): at `at` or earlier. */
export interface Loss {
  worker: string;
  at: number;
  cause: string;
}

/**
 * From SIGCONT of a worker whose session expired while it was stopped, until that worker registered a
 * new session: a command it started then was started for a dead session.
 */
export interface StaleWindow {
  worker: string;
  from: number;
  to: number;
}

/** The shell command of a chaos task: records its start and end in `<execDir>/<task id>`. */
export function recordingCommand(execDir: string, sleepSeconds: number): string {
  const file = `${execDir}/"$ZKGRID_TASK_ID"`;
  return (
    `echo "s $ZKGRID_TASK_ATTEMPT $ZKGRID_WORKER $(date +%s%3N)" >> ${file}; ` +
    `sleep ${sleepSeconds}; ` +
    `echo "e $ZKGRID_TASK_ATTEMPT $ZKGRID_WORKER" >> ${file}`
  );
}

/** Reads every task's execution file. */
export function readExecutions(execDir: string): Map<string, Execution[]> {
  const out = new Map<string, Execution[]>();
  for (const id of readdirSync(execDir)) {
    const runs: Execution[] = [];
    for (const line of readFileSync(join(execDir, id), "utf8").split("\n")) {
      const [kind, attempt, worker, at] = line.trim().split(" ");
      if (kind === "s" && attempt && worker) {
        runs.push({ attempt: Number(attempt), worker, startedAt: Number(at), finished: false });
      } else if (kind === "e") {
        const run = runs.find((r) => r.attempt === Number(attempt) && r.worker === worker && !r.finished);
        if (run) run.finished = true;
      }
    }
    out.set(id, runs);
  }
  return out;
}

export interface CheckInput {
  /** Every task the grid accepted (its queue or inbox node was created), with its maxAttempts. */
  accepted: Map<string, { maxAttempts: number }>;
  /**
   * The accepted tasks put straight into a worker session's inbox. They are held to every check below
   * unchanged: the worker runs one as attempt 1 (declining uses no attempt), its answer is the result
   * the leader records, and a lost worker's direct task is handed out again as attempt 2 like any other.
   */
  direct?: ReadonlySet<string>;
  /**
   * The first answer each direct task's worker sent on its answer stream, with that worker. Each must be
   * the outcome of a run that happened (that worker, attempt 1, finished if it says succeeded), and
   * the result the grid records must be the same, unless that worker was lost after the run started
   * (the answer then came before its node's write, which the lost session never made).
   */
  streamed?: ReadonlyMap<string, { worker: string; status: TaskStatus }>;
  /** Every status in R/results, in R/results order. */
  results: TaskStatus[];
  executions: Map<string, Execution[]>;
  losses: Loss[];
  staleWindows: StaleWindow[];
  workers: ReadonlySet<string>;
}

export interface Verdict {
  tasksChecked: number;
  /** Tasks whose command ran more than once. */
  reRun: number;
  /** Executions beyond the first, summed. */
  extraExecutions: number;
  /** Result records beyond the first for a task (identical ones; different ones are violations). */
  duplicateResults: number;
  /** Direct tasks among `reRun`. */
  directReRun: number;
  /** Direct tasks whose answer came on their worker's answer stream. */
  streamedAnswers: number;
  /** Of those, tasks whose recorded result is not the streamed one (their worker lost after the run). */
  streamedThenRerun: number;
  /** Tasks failed because their worker was lost maxAttempts times. */
  gaveUp: number;
  /** Extra executions by the loss that explains them (the first loss of that worker after the run started). */
  reRunCauses: Map<string, number>;
  violations: string[];
}

/**
 * Checks every accepted task against the guarantees in docs/guarantees.md:
 * - exactly one final outcome in R/results (identical repeats are counted, different ones are violations),
 *   none missing, none for a task nobody submitted;
 * - a success is backed by a finished execution of the same worker and attempt, and that attempt is
 *   the last one handed out (no result from a session the grid gave up);
 * - every (task, attempt) ran at most once;
 * - a task ran again only after the worker of its earlier run was lost while holding it;
 * - no command started in a worker's stale window (a session that had expired starts nothing).
 */
export function checkRun(input: CheckInput): Verdict {
  const verdict: Verdict = {
    tasksChecked: 0,
    reRun: 0,
    extraExecutions: 0,
    directReRun: 0,
    streamedAnswers: 0,
    streamedThenRerun: 0,
    duplicateResults: 0,
    gaveUp: 0,
    reRunCauses: new Map(),
    violations: [],
  };
  const violate = (id: string, what: string) => verdict.violations.push(`${id}: ${what}`);
  const byId = new Map<string, TaskStatus[]>();
  for (const r of input.results) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);

  for (const id of byId.keys())
    if (!input.accepted.has(id)) violate(id, "a result for a task nobody submitted");

  for (const [id, { maxAttempts }] of input.accepted) {
    verdict.tasksChecked++;
    const statuses = byId.get(id) ?? [];
    const runs = input.executions.get(id) ?? [];
    const first = statuses[0];
    if (!first) {
      violate(id, `no final status (${runs.length} executions)`);
      continue;
    }
    const outcome = (s: TaskStatus) => `${s.state}/${s.attempt}/${s.worker ?? "-"}`;
    for (const s of statuses.slice(1)) {
      if (outcome(s) === outcome(first)) verdict.duplicateResults++;
      else violate(id, `two different final statuses: ${outcome(first)} then ${outcome(s)}`);
    }

    for (const run of runs) {
      if (!input.workers.has(run.worker)) violate(id, `ran on unknown worker ${run.worker}`);
      const stale = input.staleWindows.find(
        (w) => w.worker === run.worker && run.startedAt > w.from && run.startedAt < w.to,
      );
      if (stale) violate(id, `attempt ${run.attempt} started on ${run.worker} after its session had expired`);
    }
    const attempts = new Map<number, Execution[]>();
    for (const run of runs) attempts.set(run.attempt, [...(attempts.get(run.attempt) ?? []), run]);
    for (const [attempt, same] of attempts) {
      if (same.length > 1)
        violate(id, `attempt ${attempt} ran ${same.length} times (${same.map((r) => r.worker).join(", ")})`);
    }
    const highest = Math.max(0, ...attempts.keys());
    if (highest > first.attempt) {
      violate(
        id,
        `the result is attempt ${first.attempt} but attempt ${highest} was handed out: a result from a session the grid gave up`,
      );
    }
    if (first.attempt > maxAttempts)
      violate(id, `attempt ${first.attempt} exceeds maxAttempts ${maxAttempts}`);

    if (first.state === "succeeded") {
      const run = runs.find((r) => r.attempt === first.attempt && r.worker === first.worker);
      if (!run) violate(id, `succeeded as attempt ${first.attempt} on ${first.worker}, which never ran it`);
      else if (!run.finished)
        violate(id, `succeeded as attempt ${first.attempt} on ${first.worker}, whose run never finished`);
    } else if (
      first.state === "failed" &&
      // Lost, or cut off from the ensemble past the cutoff stop and so returned after it started: both
      // use an attempt (docs/guarantees.md), and either can end the last one.
      /^worker (lost|returned it) after /.test(first.reason ?? "") &&
      first.attempt === maxAttempts
    ) {
      verdict.gaveUp++;
    } else {
      violate(id, `unexpected final state ${first.state}${first.reason ? ` (${first.reason})` : ""}`);
    }

    // Every run but the one that counts was given up: its worker must have been lost while holding it.
    const counted = runs.find((r) => r.attempt === first.attempt && r.worker === first.worker);
    const others = runs.filter((r) => r !== counted);
    if (runs.length > 1) {
      verdict.reRun++;
      if (input.direct?.has(id)) verdict.directReRun++;
      verdict.extraExecutions += runs.length - 1;
    }
    for (const run of others) {
      const lost = input.losses
        .filter((l) => l.worker === run.worker && l.at >= run.startedAt)
        .sort((a, b) => a.at - b.at)[0];
      if (!lost)
        violate(
          id,
          `attempt ${run.attempt} on ${run.worker} was run again, but ${run.worker} was not lost after it started`,
        );
      else verdict.reRunCauses.set(lost.cause, (verdict.reRunCauses.get(lost.cause) ?? 0) + 1);
    }
  }

  // An answer on a worker's stream is the outcome of that worker's run, and what the grid records unless
  // that worker was lost after the run started.
  for (const [id, { worker, status }] of input.streamed ?? []) {
    verdict.streamedAnswers++;
    const said = `answered ${status.state}/${status.attempt}/${status.worker ?? "-"} on ${worker}'s answer stream`;
    if (!input.direct?.has(id)) violate(id, `${said}, but it was not sent direct`);
    if (status.worker !== worker) violate(id, `${said}: another worker's answer`);
    const run = (input.executions.get(id) ?? []).find((r) => r.attempt === 1 && r.worker === worker);
    if (!run) violate(id, `${said}, but ${worker} never ran attempt 1`);
    else if (status.state === "succeeded" && !run.finished)
      violate(id, `${said}, but that run never finished`);
    const recorded = byId.get(id)?.[0];
    if (recorded === undefined) continue; // no final status: a violation above
    const same =
      recorded.state === status.state &&
      recorded.attempt === status.attempt &&
      recorded.worker === status.worker;
    if (same) continue;
    const lost = run && input.losses.some((l) => l.worker === worker && l.at >= run.startedAt);
    if (lost) verdict.streamedThenRerun++;
    else
      violate(
        id,
        `${said}, but the grid recorded ${recorded.state}/${recorded.attempt}/${recorded.worker ?? "-"} and ${worker} was not lost`,
      );
  }
  return verdict;
}
