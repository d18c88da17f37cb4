import { decodeTask, newTaskId, type TaskSpec } from "@zkgrid/protocol";
import { InvalidTaskError } from "./errors.js";

/**
 * A task as a caller writes it: a `TaskSpec` whose `id` may be left out (one is made), and whose
 * start may be put off by `delayMs` from the submit (the written task carries it as `runAt`).
 */
export type TaskInput = Omit<TaskSpec, "id"> & { id?: string; delayMs?: number };

/**
 * The handlers a worker runs, by name, as `typeof handlers` of the worker's `defineHandlers(...)`:
 * each takes an input (and a context the submitter never sees) and returns an output.
 */
export type HandlerSignatures = Record<string, (input: never, context: never) => unknown>;

/** What a grid whose handlers are not described accepts: any handler name, any input. */
export type AnyHandlers = Record<string, (input: unknown) => unknown>;

/** The input a handler takes. */
export type HandlerInputOf<F> = F extends (input: infer I, ...rest: never[]) => unknown ? I : unknown;

/** The output a handler returns (awaited), as it comes back in `TaskStatus.output`. */
export type HandlerOutputOf<F> = F extends (...args: never[]) => infer O ? Awaited<O> : unknown;

type CommonFields = Omit<TaskInput, "cmd" | "args" | "handler" | "input">;

/** A shell or program task: `cmd`, optionally with `args` (then no shell). */
export type CommandTaskInput = CommonFields & { cmd: string; args?: string[]; handler?: undefined };

/** A task for one of the handlers in `H`, with that handler's input type. */
export type HandlerTaskInput<H extends HandlerSignatures = AnyHandlers> = {
  [N in keyof H & string]: CommonFields & {
    handler: N;
    cmd?: undefined;
    args?: undefined;
  } & (undefined extends HandlerInputOf<H[N]>
      ? { input?: HandlerInputOf<H[N]> }
      : { input: HandlerInputOf<H[N]> });
}[keyof H & string];

/**
 * Any task a grid with handlers `H` accepts: with named handlers, a command task or a handler task
 * with that handler's input; without (`AnyHandlers`), any {@link TaskInput}.
 */
export type GridTaskInput<H extends HandlerSignatures = AnyHandlers> = string extends keyof H
  ? TaskInput
  : CommandTaskInput | HandlerTaskInput<H>;

/**
 * Gives every task an id (a new one where `id` is absent) and checks it against the protocol.
 * Returns the tasks as they will be written. Throws {@link InvalidTaskError} for the first task the
 * protocol refuses, naming its index and field, or for a task whose id an earlier one in the list
 * has (the queue would run only the first); nothing is changed then.
 */
export function prepareTasks(tasks: readonly TaskInput[]): TaskSpec[] {
  const indexOfId = new Map<string, number>();
  return tasks.map((task, index) => {
    // A copy either way: the caller may change its object while the write is pending.
    const withId = task !== null && typeof task === "object" ? withRunAt(index, copyWithId(task)) : task;
    const decoded = decodeTask(withId);
    if (!decoded.ok) {
      throw new InvalidTaskError(index, decoded.error.path, decoded.error.problem, { cause: decoded.error });
    }
    const { id } = decoded.value;
    const first = indexOfId.get(id);
    if (first !== undefined) {
      throw new InvalidTaskError(index, "id", `${JSON.stringify(id)} is also the id of task ${first}`);
    }
    indexOfId.set(id, index);
    return decoded.value;
  });
}

/**
 * A copy of `task` with its id (a new one where absent), the id first. Not written `{ ...task, id }`:
 * in optimized code, Node 20's V8 gives every object made by a spread followed by a key the spread did
 * not bring a map of its own, and every later check, encode and read of those tasks misses its inline
 * caches (`prepareTasks` cost ~10 µs a task that way, ~2 µs this way). A key before the spread keeps one
 * map; the spread defines each key as its own (a `__proto__` key stays data, as `Object.assign` would not).
 */
function copyWithId(task: TaskInput): TaskInput & { id: string } {
  const copy = { id: "", ...task };
  copy.id = task.id === undefined ? newTaskId() : task.id;
  return copy;
}

/** `delayMs` turned into `runAt` (from now); both at once, or a bad delay, is refused. */
function withRunAt(index: number, task: TaskInput & { id: string }): TaskInput & { id: string } {
  if (!("delayMs" in task)) return task;
  const { delayMs, ...rest } = task;
  if (delayMs === undefined) return rest;
  if (rest.runAt !== undefined)
    throw new InvalidTaskError(
      index,
      "delayMs",
      "give runAt or delayMs, not both: each says when the task may start",
    );
  if (typeof delayMs !== "number" || !Number.isSafeInteger(delayMs) || delayMs < 0)
    throw new InvalidTaskError(
      index,
      "delayMs",
      `expected an integer of milliseconds ≥ 0, got ${typeof delayMs === "number" ? delayMs : JSON.stringify(delayMs)}`,
    );
  const delayed = { runAt: 0, ...rest }; // not `{ ...rest, runAt }`: see copyWithId
  delayed.runAt = Date.now() + delayMs;
  return delayed;
}
