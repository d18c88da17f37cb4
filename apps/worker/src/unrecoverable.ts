import { markErrorClass, ZkgridError, type ZkgridErrorOptions } from "@zkgrid/core";

/**
 * Thrown by a handler to say its failure is final: the task ends `failed` and is not retried, whatever
 * its retry policy says (BullMQ's `UnrecoverableError`, Temporal's non-retryable failure). `instanceof`
 * checks a `Symbol.for` marker, so one thrown by another copy or build of @zkgrid/worker counts too.
 *
 * @example
 * ```ts
 * import { defineHandlers, UnrecoverableError } from "@zkgrid/worker";
 *
 * export const handlers = defineHandlers({
 *   charge: async (input: { card: string }) => {
 *     if (!input.card.startsWith("4")) throw new UnrecoverableError("card refused: retrying will not help");
 *     return "charged";
 *   },
 * });
 * ```
 */
export class UnrecoverableError extends ZkgridError {
  static {
    markErrorClass(UnrecoverableError, "@zkgrid/worker/UnrecoverableError");
  }
  declare readonly code: "UNRECOVERABLE";
  constructor(message: string, options?: ZkgridErrorOptions) {
    super(message, "UNRECOVERABLE", options);
    this.name = "UnrecoverableError";
  }
}
