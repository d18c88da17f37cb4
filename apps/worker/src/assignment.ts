import {
  type AssignedTask,
  type Assignment,
  checkAssignment,
  decodeAssignment,
  decodeJson,
  isValidTaskId,
  MAX_ATTEMPTS,
  type ProtocolError,
} from "@zkgrid/protocol";

/** An assigned task that fails the protocol's rules but whose id and attempt can still be reported. */
export interface RefusedTask {
  id: string;
  attempt: number;
  error: string;
}

/** An assignment as the worker reads it: one invalid task never sinks the others. */
export interface ReadAssignment {
  epoch: number;
  worker: string;
  session: string;
  tasks: AssignedTask[];
  /** Invalid tasks to report as `failed`. */
  refused: RefusedTask[];
  /** Invalid tasks that cannot even be named in a report (bad id or attempt): only logged. */
  unreportable: string[];
}

export type ReadAssignmentResult = { ok: true; value: ReadAssignment } | { ok: false; error: ProtocolError };

function describeIssues(error: ProtocolError): string {
  return error.issues
    .map(({ path, problem }) => {
      const inTask = path.replace(/^tasks\[0\]\.?/, "");
      return inTask === "" ? problem : `${inTask}: ${problem}`;
    })
    .join("; ");
}

function isAttempt(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_ATTEMPTS;
}

/**
 * Decodes `R/assign/<worker>`. A payload that is not a version-1 assignment fails as a whole;
 * otherwise each task is judged alone.
 */
export function readAssignment(
  data: Uint8Array,
  known?: ReadonlyMap<string, AssignedTask>,
): ReadAssignmentResult {
  const fast = known === undefined || known.size === 0 ? undefined : readWithKnown(data, known);
  if (fast !== undefined) return fast;
  const whole = decodeAssignment(data);
  if (whole.ok) return { ok: true, value: readOf(whole.value) };
  // The slow path, only for a payload with a problem: judge the envelope, then each task alone.
  const json = decodeJson(data);
  if (!json.ok) return json;
  const raw = json.value as Record<string, unknown>;
  const rawTasks = Array.isArray(raw?.tasks) ? (raw.tasks as unknown[]) : undefined;
  if (rawTasks === undefined) return whole;
  const shell = { ...raw, tasks: [] };
  const envelope = decodeAssignment(JSON.stringify(shell));
  if (!envelope.ok) return envelope;
  const value = readOf(envelope.value);
  const seen = new Set<string>();
  rawTasks.forEach((rawTask, index) => {
    const one = decodeAssignment(JSON.stringify({ ...shell, tasks: [rawTask] }));
    const { id, attempt } = (typeof rawTask === "object" && rawTask !== null ? rawTask : {}) as Record<
      string,
      unknown
    >;
    if (one.ok) {
      const task = one.value.tasks[0]!;
      if (!seen.has(task.id)) value.tasks.push(task);
      seen.add(task.id);
    } else if (isValidTaskId(id) && isAttempt(attempt)) {
      value.refused.push({ id, attempt, error: `invalid task: ${describeIssues(one.error)}` });
    } else {
      value.unreportable.push(`tasks[${index}]: ${describeIssues(one.error)}`);
    }
  });
  return { ok: true, value };
}

/**
 * An assignment as read, with nothing refused. Written out, not as `{ ...fields, refused }`: V8 gives
 * each object a spread followed by new keys makes a map of its own (bench/README.md, "A map per task").
 */
function readOf(a: Assignment, tasks: AssignedTask[] = a.tasks): ReadAssignment {
  return { epoch: a.epoch, worker: a.worker, session: a.session, tasks, refused: [], unreportable: [] };
}

/**
 * Validates only the tasks that are not in `known` (the previous version of this node, by id and
 * attempt: the leader never changes a task it has handed out). Undefined when the payload needs the
 * full, per-task judgement.
 */
function readWithKnown(
  data: Uint8Array,
  known: ReadonlyMap<string, AssignedTask>,
): ReadAssignmentResult | undefined {
  const json = decodeJson(data);
  if (!json.ok) return undefined;
  const raw = json.value as Record<string, unknown>;
  if (!Array.isArray(raw?.tasks)) return undefined;
  const slots: Array<AssignedTask | undefined> = [];
  const fresh: unknown[] = [];
  const ids = new Set<unknown>();
  for (const t of raw.tasks as unknown[]) {
    const { id, attempt } = (typeof t === "object" && t !== null ? t : {}) as Record<string, unknown>;
    if (ids.has(id)) return undefined;
    ids.add(id);
    const hit = known.get(`${String(id)}#${String(attempt)}`);
    slots.push(hit);
    if (hit === undefined) fresh.push(t);
  }
  const rest = checkAssignment({ ...raw, tasks: fresh });
  if (!rest.ok) return undefined;
  let next = 0;
  const tasks = slots.map((hit) => hit ?? (rest.value.tasks[next++] as AssignedTask));
  return { ok: true, value: readOf(rest.value, tasks) };
}
