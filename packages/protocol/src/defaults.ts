import { DEFAULT_MAX_ATTEMPTS } from "./constants.js";
import type { TaskSpec } from "./schemas.js";

/** How many times `task` may be handed out: its `maxAttempts`, or `DEFAULT_MAX_ATTEMPTS` (3). */
export function taskMaxAttempts(task: Pick<TaskSpec, "maxAttempts">): number {
  return task.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
}

/** The task's priority: its `priority`, or 0. Higher runs first. */
export function taskPriority(task: Pick<TaskSpec, "priority">): number {
  return task.priority ?? 0;
}

/** The labels a worker must have to run `task` (none if it names none). */
export function taskLabels(task: Pick<TaskSpec, "labels">): readonly string[] {
  return task.labels ?? [];
}
