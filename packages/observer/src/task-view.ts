import type { AssignedTask, AttemptRecord, TaskSpec, TaskStatus } from "@zkgrid/protocol";
import { taskPriority } from "@zkgrid/protocol";
import type { TaskView } from "./types.js";

/** `cmd` with its args (quoted where needed), or `handler:<name>`. */
export function describeCommand(spec: TaskSpec): string | undefined {
  if (spec.handler !== undefined) return `handler:${spec.handler}`;
  if (spec.cmd === undefined) return undefined;
  if (!spec.args || spec.args.length === 0) return spec.cmd;
  return [spec.cmd, ...spec.args.map((a) => (/^[\w./=:,@+-]+$/.test(a) ? a : JSON.stringify(a)))].join(" ");
}

export function viewOfStatus(status: TaskStatus): TaskView {
  const { v: _v, ...rest } = status;
  return rest;
}

export function viewOfAssigned(
  task: AssignedTask,
  worker: string,
  running: { startedAt: number } | undefined,
): TaskView {
  const view: TaskView = {
    id: task.id,
    state: running ? "running" : "assigned",
    attempt: task.attempt,
    worker,
    submittedAt: task.submittedAt,
    assignedAt: task.assignedAt,
    priority: taskPriority(task.spec),
  };
  if (running) view.startedAt = running.startedAt;
  const command = describeCommand(task.spec);
  if (command !== undefined) view.command = command;
  if (task.spec.meta !== undefined) view.meta = task.spec.meta;
  if (task.spec.labels?.length) view.labels = task.spec.labels;
  return view;
}

/** A task in a queue node: `delayed` while its due time (`runAt`, or a retry's backoff) is ahead of `now`. */
export function viewOfQueued(
  spec: TaskSpec,
  submittedAt: number,
  attemptsUsed: number,
  wait: { dueAt?: number; history?: AttemptRecord[] } = {},
  now = Date.now(),
): TaskView {
  const delayed = wait.dueAt !== undefined && wait.dueAt > now;
  const view: TaskView = {
    id: spec.id,
    state: delayed ? "delayed" : "queued",
    attempt: attemptsUsed,
    submittedAt,
    priority: taskPriority(spec),
  };
  if (delayed) view.dueAt = wait.dueAt;
  if (wait.history !== undefined) view.history = wait.history;
  const command = describeCommand(spec);
  if (command !== undefined) view.command = command;
  if (spec.meta !== undefined) view.meta = spec.meta;
  if (spec.labels?.length) view.labels = spec.labels;
  return view;
}
