import { encodeGridGate, type GridGate, type TaskSpec, type TaskStatus } from "@zkgrid/protocol";
import type { Cluster } from "./cluster.js";

/**
 * The chaos suite's own record of the grid's gate, and its check: a label paused now and then while
 * the faults run, and a label under a start limit throughout. The suite writes the gate itself, so
 * the pause windows come from its own clock, not from the grid; the check then reads the hand-out
 * times (`assignedAt`) of the final statuses. See docs/guarantees.md, "Pause and start limits".
 */

/** The label the suite pauses now and then. */
export const PAUSED_LABEL = "held";
/** The label under a start limit for the whole run. */
export const LIMITED_LABEL = "rated";
/** The limit on LIMITED_LABEL. */
export const START_LIMIT = { starts: 3, perMs: 1000 };

/** From the pause's write being acknowledged until just before the resume was written. */
export interface PauseWindow {
  label: string;
  from: number;
  to: number;
}

/** The labels of the chaos task number `n`: a fixed share of each, so a seed keeps its task mix. */
export function chaosLabels(n: number): Pick<TaskSpec, "labels"> {
  const labels = [...(n % 7 === 3 ? [PAUSED_LABEL] : []), ...(n % 9 === 5 ? [LIMITED_LABEL] : [])];
  return labels.length > 0 ? { labels } : {};
}

/** Every worker needs both labels to run such tasks. */
export const WORKER_LABELS = [PAUSED_LABEL, LIMITED_LABEL];

/**
 * Writes the gate while the faults run: the limit from the start, and PAUSED_LABEL paused for
 * `pauseMs` every `pauseMs * 2`, until `done()`; the last pause is lifted before `drive` resolves.
 */
export class GateDriver {
  readonly pauses: PauseWindow[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly pauseMs: number,
  ) {}

  async setLimit(): Promise<void> {
    await this.write(false);
  }

  async drive(done: () => boolean): Promise<void> {
    // Sleeps that end early once the faults are done, so the run is not made longer by the gate.
    const wait = async (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end && !done(); )
        await new Promise((res) => setTimeout(res, Math.min(250, end - Date.now())));
    };
    while (!done()) {
      await wait(this.pauseMs);
      if (done()) break;
      await this.write(true);
      const from = Date.now();
      await wait(this.pauseMs);
      this.pauses.push({ label: PAUSED_LABEL, from, to: Date.now() });
      await this.write(false);
    }
  }

  private async write(paused: boolean): Promise<void> {
    const at = Date.now();
    const gate: GridGate = {
      v: 1,
      limits: { [LIMITED_LABEL]: { ...START_LIMIT, at, by: "chaos" } },
      ...(paused ? { pausedLabels: { [PAUSED_LABEL]: { at, by: "chaos" } } } : {}),
    };
    await this.cluster.writeNode(this.cluster.layout.gate, encodeGridGate(gate));
  }
}

export interface GateCheckInput {
  /** Every status in R/results (the first of each id counts). */
  results: TaskStatus[];
  /** The labels of every accepted task. */
  labels: ReadonlyMap<string, readonly string[]>;
  pauses: readonly PauseWindow[];
  limits: ReadonlyArray<{ label: string; starts: number; perMs: number }>;
  /**
   * How long a leader may take to learn a gate change: a hand-out decided before it did is allowed.
   * The leader re-reads the gate when its connection comes back, so a session timeout bounds it.
   */
  learnMs: number;
}

export interface GateVerdict {
  handOutsChecked: number;
  /** Hand-outs of a paused label's task within `learnMs` after the pause was written (allowed). */
  whileLearning: number;
  /** Tasks of the paused label submitted before a pause and handed out after its end. */
  heldThrough: number;
  violations: string[];
}

/**
 * - No task carrying a paused label was handed out from `learnMs` after the pause was written until
 *   the resume was written.
 * - For every limit of N per interval I: no window of I holds more than N hand-outs of tasks carrying
 *   the label (each final status's `assignedAt`: its last hand-out, a subset of all hand-outs).
 */
export function checkGate(input: GateCheckInput): GateVerdict {
  const verdict: GateVerdict = { handOutsChecked: 0, whileLearning: 0, heldThrough: 0, violations: [] };
  const first = new Map<string, TaskStatus>();
  for (const r of input.results) if (!first.has(r.id)) first.set(r.id, r);
  const handOuts = new Map<string, number[]>();
  const held = new Set<string>();
  for (const [id, status] of first) {
    const at = status.assignedAt;
    if (at === undefined) continue;
    verdict.handOutsChecked++;
    const labels = input.labels.get(id) ?? [];
    for (const label of labels) handOuts.set(label, [...(handOuts.get(label) ?? []), at]);
    for (const pause of input.pauses) {
      if (!labels.includes(pause.label)) continue;
      if (status.submittedAt !== undefined && status.submittedAt < pause.from && at >= pause.to) held.add(id);
      if (at >= pause.from + input.learnMs && at < pause.to)
        verdict.violations.push(
          `${id}: handed out at ${at}, ${at - pause.from} ms into a pause of ${pause.label} (${pause.from}..${pause.to})`,
        );
      else if (at >= pause.from && at < pause.to) verdict.whileLearning++;
    }
  }
  verdict.heldThrough = held.size;
  for (const { label, starts, perMs } of input.limits) {
    const times = (handOuts.get(label) ?? []).sort((a, b) => a - b);
    for (let i = 0; i + starts < times.length; i++) {
      const span = (times[i + starts] as number) - (times[i] as number);
      if (span < perMs)
        verdict.violations.push(
          `${label}: ${starts + 1} hand-outs within ${span} ms (limit ${starts} per ${perMs} ms), from ${times[i]}`,
        );
    }
  }
  return verdict;
}
