import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { WorkerOptionError } from "./errors.js";

/** What an in-process handler gets besides its input. */
export interface HandlerContext {
  taskId: string;
  attempt: number;
  /** Aborts when the task times out, is cancelled, or the worker gives it up (stop, lost session). */
  signal: AbortSignal;
  /** The task's output folder (absolute), created when first read. */
  outputDir: string;
}

/**
 * An in-process task handler. Its return value becomes the task's `output` (JSON, at most
 * MAX_OUTPUT_BYTES); a throw makes the task `failed` with the error's message (retried if its policy
 * says so, unless the error is an `UnrecoverableError`).
 */
export type TaskHandler<I = never, O = unknown> = (input: I, ctx: HandlerContext) => O | Promise<O>;

/** Handlers by name, as a task's `handler` field names them. */
export type HandlerMap = Record<string, TaskHandler>;

/** The input type of handler `K` in `H`. */
export type HandlerInput<H extends HandlerMap, K extends keyof H> = Parameters<H[K]>[0];

/** The output type (awaited) of handler `K` in `H`. */
export type HandlerOutput<H extends HandlerMap, K extends keyof H> = Awaited<ReturnType<H[K]>>;

/**
 * Returns `handlers` unchanged, keeping each handler's input and output types, so a submitter can
 * import the type (`typeof handlers`) and infer what each handler takes and returns.
 */
export function defineHandlers<H extends HandlerMap>(handlers: H): H {
  return handlers;
}

function isHandlerMap(value: unknown): value is HandlerMap {
  return (
    typeof value === "object" &&
    value !== null &&
    Object.values(value).every((handler) => typeof handler === "function")
  );
}

/**
 * Imports the module at `modulePath` (resolved against the current directory) and returns its
 * default export, or its `handlers` export: a record of handler functions.
 */
export async function loadHandlers(modulePath: string): Promise<HandlerMap> {
  const mod = (await import(pathToFileURL(resolve(modulePath)).href)) as Record<string, unknown>;
  // A CommonJS module's `module.exports` arrives as `default`, so look inside it too.
  const nested = typeof mod.default === "object" && mod.default !== null ? mod.default : {};
  const candidates = [mod.default, mod.handlers, (nested as Record<string, unknown>).handlers];
  const handlers = candidates.find(isHandlerMap);
  if (handlers === undefined) {
    throw new WorkerOptionError(
      "handlers",
      `${modulePath} must export a record of functions as its default export or as "handlers"`,
    );
  }
  return handlers;
}
