import type { ScheduleSpec, ScheduleState } from "@zkgrid/protocol";
import { decodeScheduleSpec, decodeScheduleState, nextSlot, scheduleNameProblem } from "@zkgrid/protocol";

/** A schedule as stored under `R/schedules`, with the leader's record of its firings. */
export interface ScheduleView {
  name: string;
  /** The spec; undefined when its node does not decode (then `problem` says why: the leader ignores it). */
  spec: ScheduleSpec | undefined;
  problem?: string;
  /** The leader's record (`R/firings/<name>`): the last decided slot and recent firings. */
  state: ScheduleState | undefined;
  /** The next slot the leader will look at; undefined while paused or unreadable. */
  next: number | undefined;
}

/** Builds the view of one schedule from its two nodes' data (either may be missing). */
export function scheduleView(
  name: string,
  specData: Uint8Array | undefined,
  stateData: Uint8Array | undefined,
  now: number,
): ScheduleView {
  const badName = scheduleNameProblem(name);
  if (badName !== undefined) {
    return {
      name,
      spec: undefined,
      problem: `invalid schedule name: ${badName}`,
      state: undefined,
      next: undefined,
    };
  }
  const decoded = specData ? decodeScheduleSpec(specData) : undefined;
  if (!decoded?.ok) {
    return {
      name,
      spec: undefined,
      problem: decoded?.error.message ?? "gone",
      state: undefined,
      next: undefined,
    };
  }
  const spec = decoded.value;
  const firings = stateData ? decodeScheduleState(stateData) : undefined;
  const state = firings?.ok && firings.value.createdAt === spec.createdAt ? firings.value : undefined;
  const from = Math.max(state?.lastSlot ?? 0, spec.createdAt, spec.resumedAt ?? 0, now);
  return { name, spec, state, next: spec.paused ? undefined : nextSlot(spec, from) };
}
