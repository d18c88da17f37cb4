/**
 * The in-process handlers the bench's zkgrid workers load with `--handlers`: `noop` does nothing, so a
 * run of it measures the grid alone.
 */
import { defineHandlers } from "@zkgrid/worker";

export const handlers = defineHandlers({
  noop: (_input: unknown) => undefined,
  /** Fails its first attempt, succeeds on the next: a retried task's cost. */
  failOnce: (_input: unknown, ctx: { attempt: number }) => {
    if (ctx.attempt === 1) throw new Error("the first attempt fails");
  },
});

export default handlers;
