import { errors, Follower, type ZkClient } from "@zkgrid/core";
import {
  decodeGridGate,
  encodeGridGate,
  type GatePause,
  type GridGate,
  type GridLayout,
  labelProblem,
  type StartLimit,
  startLimitProblem,
} from "@zkgrid/protocol";
import { InvalidGateError } from "./errors.js";

/** Who paused, or set a limit: free text recorded in the gate, for operators. */
export interface GateOptions {
  /** Default: the client's `submitter`. */
  by?: string;
}

export interface PauseOptions extends GateOptions {
  /** Pause only the tasks carrying this label (default: the whole grid). */
  label?: string;
}

/** How many times a change is tried again when another writer changed the gate first. */
const CHANGE_TRIES = 20;

/** The gate in `R/gate`: its valid parts (as the leader applies them), or an empty gate. */
export async function readGate(zk: ZkClient, layout: GridLayout): Promise<GridGate> {
  return (await readVersioned(zk, layout)).gate;
}

/**
 * Changes the gate: reads it, applies `change`, writes it under the version read, and starts over
 * when another writer came first. `change` returns undefined when there is nothing to write. A node
 * the leader cannot read is replaced by the change applied to its valid parts (or to an empty gate).
 */
export async function changeGate(
  zk: ZkClient,
  layout: GridLayout,
  change: (gate: GridGate) => GridGate | undefined,
): Promise<GridGate> {
  for (let tries = 1; ; tries++) {
    const { gate, version } = await readVersioned(zk, layout);
    const next = change(gate);
    if (next === undefined) return gate;
    const data = encodeGridGate(next);
    try {
      if (version < 0) {
        await zk.ensurePath(layout.root);
        await zk.create(layout.gate, data, "persistent");
      } else await zk.set(layout.gate, data, version);
      return next;
    } catch (err) {
      const raced = errors.isBadVersion(err) || errors.isNodeExists(err) || errors.isNoNode(err);
      if (!raced || tries >= CHANGE_TRIES) throw err;
    }
  }
}

async function readVersioned(zk: ZkClient, layout: GridLayout): Promise<{ gate: GridGate; version: number }> {
  try {
    const { data, stat } = await zk.get(layout.gate);
    const decoded = decodeGridGate(data);
    return { gate: decoded.ok ? decoded.value.gate : { v: 1 }, version: stat.version };
  } catch (err) {
    if (errors.isNoNode(err)) return { gate: { v: 1 }, version: -1 };
    throw err;
  }
}

/** Throws InvalidGateError unless `label` is a valid label. */
export function checkGateLabel(label: unknown): asserts label is string {
  const problem = labelProblem(label);
  if (problem !== undefined)
    throw new InvalidGateError("label", `invalid label ${JSON.stringify(label)}: ${problem}`);
}

/** Throws InvalidGateError unless `starts` per `perMs` is a usable limit. */
export function checkStartLimit(starts: unknown, perMs: unknown): void {
  const problem = startLimitProblem(starts, perMs);
  if (problem === undefined) return;
  const colon = problem.indexOf(": ");
  throw new InvalidGateError(problem.slice(0, colon), problem.slice(colon + 2));
}

/** The `by` to record: the caller's, checked, or the default. */
export function gateBy(by: unknown, fallback: string): string {
  if (by === undefined) return fallback.slice(0, 256);
  if (typeof by !== "string" || by.length === 0 || Buffer.byteLength(by) > 256)
    throw new InvalidGateError("by", "expected a non-empty string of at most 256 bytes");
  return by;
}

/** The gate with the grid (or `label`) paused; undefined when it already is. */
export function withPause(gate: GridGate, label: string | undefined, pause: GatePause): GridGate | undefined {
  if (label === undefined) return gate.paused ? undefined : { ...gate, paused: pause };
  if (gate.pausedLabels?.[label]) return undefined;
  return { ...gate, pausedLabels: { ...gate.pausedLabels, [label]: pause } };
}

/** The gate without the grid's (or `label`'s) pause; undefined when there is none. */
export function withoutPause(gate: GridGate, label: string | undefined): GridGate | undefined {
  if (label === undefined) {
    if (!gate.paused) return undefined;
    const { paused: _, ...rest } = gate;
    return rest;
  }
  if (!gate.pausedLabels?.[label]) return undefined;
  const { [label]: _, ...pausedLabels } = gate.pausedLabels;
  return dropEmpty({ ...gate, pausedLabels });
}

export function withLimit(gate: GridGate, label: string, limit: StartLimit): GridGate {
  return { ...gate, limits: { ...gate.limits, [label]: limit } };
}

/** The gate without `label`'s limit; undefined when it has none. */
export function withoutLimit(gate: GridGate, label: string): GridGate | undefined {
  if (!gate.limits?.[label]) return undefined;
  const { [label]: _, ...limits } = gate.limits;
  return dropEmpty({ ...gate, limits });
}

function dropEmpty(gate: GridGate): GridGate {
  const out = { ...gate };
  if (out.pausedLabels && Object.keys(out.pausedLabels).length === 0) delete out.pausedLabels;
  if (out.limits && Object.keys(out.limits).length === 0) delete out.limits;
  return out;
}

/**
 * The submitter's view of the gate, for the direct path: a lone task goes straight to a worker only
 * while nothing holds it (the grid, and each of its labels, neither paused nor limited), since a
 * direct task does not pass the leader. Anything held, or a gate not (yet) known, goes to the queue.
 */
export class GateWatch {
  readonly #layout: GridLayout;
  readonly #stop = new AbortController();
  readonly #follower: Follower;
  #gate: GridGate | undefined;
  /** Resolves once the gate has been read (or the follow has ended); undefined while not followed. */
  #read: Promise<void> | undefined;

  constructor(zk: ZkClient, layout: GridLayout) {
    this.#layout = layout;
    this.#follower = new Follower(zk, {
      signal: this.#stop.signal,
      onError: () => {
        // Not known any more: lone tasks go to the queue until the next one follows the gate again.
        this.#gate = undefined;
        this.#read = undefined;
        return "end";
      },
    });
  }

  /** Whether the gate may hold a task carrying `labels` (the leader decides then, from the queue). */
  async holds(labels: readonly string[] | undefined): Promise<boolean> {
    this.#read ??= this.#follower.data(this.#layout.gate, (change) => {
      const decoded = change === null ? undefined : decodeGridGate(change.data);
      this.#gate = decoded?.ok ? decoded.value.gate : { v: 1 };
    });
    await this.#read;
    const gate = this.#gate;
    if (gate === undefined) return true;
    if (gate.paused) return true;
    return (labels ?? []).some((l) => gate.pausedLabels?.[l] !== undefined || gate.limits?.[l] !== undefined);
  }

  close(): void {
    this.#stop.abort();
    this.#gate = undefined;
  }
}
