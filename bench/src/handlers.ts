/**
 * The in-process handlers the bench's zkgrid workers load with `--handlers`: `noop` does nothing, so a
 * run of it measures the grid alone.
 */
import { defineHandlers } from "@zkgrid/worker";

export const handlers = defineHandlers({
  noop: (_input: unknown) => undefined,
});

export default handlers;
