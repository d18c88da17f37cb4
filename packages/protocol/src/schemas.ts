import * as z from "zod";
import {
  MAX_CAPACITY,
  FINAL_STATES,
  MAX_ATTEMPTS,
  MAX_BATCH_TASKS,
  MAX_LABELS,
  MAX_MESSAGE_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_PRIORITY,
  MAX_TASK_BYTES,
  MAX_TIMEOUT_MS,
  MAX_VALUE_DEPTH,
  SCHEMA_VERSION,
  TAIL_BYTES,
  TASK_STATES,
  type TaskState,
  UPDATE_STATES,
  type UpdateState,
} from "./constants.js";
import { describeValue } from "./errors.js";
import { answerKeyProblem } from "./answer-stream.js";
import { replyAddressProblem } from "./reply.js";
import { encodedByteLength, jsonValueProblem, utf8ByteLength } from "./json.js";
import { type AttemptRecord, AttemptHistorySchema, type RetryPolicy, RetryPolicySchema } from "./retry.js";
import {
  ENV_NAME_PATTERN,
  labelProblem,
  sessionIdProblem,
  taskIdProblem,
  workerNameProblem,
} from "./names.js";

// ---------------------------------------------------------------------------------------------
// Types. Written out (rather than inferred) so that editors show them as the protocol page does.

export interface TaskSpec {
  id: string;
  cmd?: string;
  args?: string[];
  handler?: string;
  input?: unknown;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  maxAttempts?: number;
  labels?: string[];
  priority?: number;
  meta?: Record<string, unknown>;
  /** Not handed out before this time (ms since the epoch); see docs/protocol.md, "Delayed tasks". */
  runAt?: number;
  /** Whether, and after how long, a failed attempt is tried again; none: a failure is final. */
  retry?: RetryPolicy;
  /** The submitter's reply address: the final status goes to `R/replies/<replyTo>/`, not `R/results`. */
  replyTo?: string;
}

export interface SubmitBatch {
  v: 1;
  batchId: string;
  submittedAt: number;
  submitter?: string;
  /**
   * A direct task's batch only: the key its submitter gives, over the worker's answer stream, to have
   * the answer sent there too (see docs/protocol.md, "Answer streams").
   */
  answerKey?: string;
  tasks: TaskSpec[];
  /** Written by the leader when it puts tasks back in the queue; submitters leave it out. */
  requeued?: Record<string, RequeuedTask>;
}

/** What a task put back in the queue keeps from its earlier life. */
export interface RequeuedTask {
  /** Attempts already handed out (0..MAX_ATTEMPTS). */
  attemptsUsed: number;
  /** When the task was first submitted. */
  submittedAt: number;
  /** Not handed out before this time: a retry waiting for its backoff. */
  notBefore?: number;
  /** The attempts it used so far, oldest first. */
  history?: AttemptRecord[];
}

/** A `SubmitBatch` without its tasks, which `decodeSubmitBatch` returns one by one. */
export type SubmitBatchHeader = Omit<SubmitBatch, "tasks">;

export interface MasterInfo {
  v: 1;
  name: string;
  host: string;
  pid: number;
  startedAt: number;
  httpPort?: number;
  /** Task keys beyond the first protocol this master's leader takes, e.g. `["replyTo"]` (see Reply dirs). */
  accepts?: string[];
}

export interface WorkerRegistration {
  v: 1;
  name: string;
  host: string;
  pid: number;
  capacity: number;
  labels: string[];
  version: string;
  startedAt: number;
  session: string;
  /** Where the worker's answer stream listens, if it has one (see docs/protocol.md, "Answer streams"). */
  answers?: AnswerAddress;
}

/** A TCP address: an IP address or host name, and a port. */
export interface AnswerAddress {
  host: string;
  port: number;
}

export interface AssignedTask {
  id: string;
  attempt: number;
  assignedAt: number;
  submittedAt: number;
  spec: TaskSpec;
  /** The task's earlier attempts, oldest first, when it had any (a retry, or a lost worker's). */
  history?: AttemptRecord[];
}

export interface Assignment {
  v: 1;
  epoch: number;
  worker: string;
  session: string;
  tasks: AssignedTask[];
}

export interface StatusUpdate {
  id: string;
  attempt: number;
  state: UpdateState;
  at: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  signal?: string;
  error?: string;
  outputDir?: string;
  stdoutTail?: string;
  stderrTail?: string;
  output?: unknown;
  /** The attempt refused a retry (its handler threw an UnrecoverableError): its failure is final. */
  noRetry?: boolean;
}

export interface WorkerReport {
  v: 1;
  worker: string;
  session: string;
  /**
   * The worker is stopping: its session takes no new work. Set on every report a stopping worker
   * writes, so the leader learns it before it requeues the tasks the report hands back.
   */
  draining?: boolean;
  updates: StatusUpdate[];
}

export interface TaskStatus {
  v: 1;
  id: string;
  state: TaskState;
  attempt: number;
  worker?: string;
  submittedAt?: number;
  assignedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  signal?: string;
  reason?: string;
  outputDir?: string;
  stdoutTail?: string;
  stderrTail?: string;
  output?: unknown;
  meta?: Record<string, unknown>;
  /** Every attempt, oldest first, when the task had more than one (the last is this status's). */
  history?: AttemptRecord[];
}

/** Asks the leader to cancel tasks: queued ones never run, running ones are stopped. */
export interface CancelRequest {
  v: 1;
  ids: string[];
  requestedAt: number;
  /** Who asked, free text for operators (at most 256 bytes). */
  by?: string;
  /**
   * Written by the leader only: the ids it took out of a worker's assignment to stop them. A new
   * leader ends such an id as `cancelled` if it finds the task nowhere else.
   */
  accepted?: string[];
}

export interface ResultBatch {
  v: 1;
  epoch: number;
  results: TaskStatus[];
}

// ---------------------------------------------------------------------------------------------
// Building blocks. Each carries its own "expected ..." wording so that messages name the rule.
// Their issues stop the parse of the enclosing object (continue: false), so that object-level
// checks (which encode the whole task) only ever see well-formed fields.

type IssueLike = { readonly input?: unknown };

function expected(what: string) {
  return (iss: IssueLike): string =>
    iss.input === undefined
      ? `required: expected ${what}`
      : `expected ${what}, got ${describeValue(iss.input)}`;
}

function int(min: number, max: number, what: string) {
  return z
    .number({ error: expected(what) })
    .int()
    .min(min)
    .max(max);
}

const timestamp = int(0, Number.MAX_SAFE_INTEGER, "a time in milliseconds since the epoch (an integer ≥ 0)");

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

interface TextRule {
  what: string;
  nonEmpty?: boolean;
  maxBytes?: number;
  /** Refuse NUL (the default), since it cannot pass through a command line or environment. */
  allowNul?: boolean;
}

function text(rule: TextRule) {
  const { nonEmpty = false, maxBytes, allowNul = false } = rule;
  const problemOf = (value: string): string | undefined => {
    if (nonEmpty && value.length === 0) return "must not be empty";
    if (!allowNul && value.includes("\0")) return "must not contain NUL (\\u0000)";
    if (maxBytes !== undefined) {
      const bytes = utf8ByteLength(value);
      if (bytes > maxBytes) return `is ${bytes} bytes of UTF-8; at most ${maxBytes} are allowed`;
    }
    return undefined;
  };
  return z.string({ error: expected(rule.what) }).superRefine((value, ctx) => {
    const problem = problemOf(value);
    if (problem !== undefined) ctx.addIssue({ code: "custom", continue: false, message: problem });
  });
}

function named(kind: string, problemOf: (value: unknown) => string | undefined) {
  return z.string({ error: expected(`a ${kind}`) }).superRefine((value, ctx) => {
    const problem = problemOf(value);
    if (problem !== undefined) {
      ctx.addIssue({
        code: "custom",
        continue: false,
        message: `invalid ${kind} ${describeValue(value)}: ${problem}`,
      });
    }
  });
}

/** An array; `max` items at most, with a message that says how many it had. */
function arrayOf<T extends z.ZodType>(item: T, what: string, max = Number.MAX_SAFE_INTEGER) {
  const limit = max === Number.MAX_SAFE_INTEGER ? " of" : ` of at most ${max}`;
  return z.array(item, { error: expected(`an array${limit} ${what}`) }).max(max, {
    error: (iss) =>
      `expected at most ${max} ${what}, got ${Array.isArray(iss.input) ? iss.input.length : "more"}`,
  });
}

const taskId = named("task id", taskIdProblem);
const workerName = named("worker name", workerNameProblem);
const sessionId = named("session id", sessionIdProblem);
const label = named("label", labelProblem);
const labels = arrayOf(label, "labels", MAX_LABELS);

/** Any JSON data (see `jsonValueProblem`), at most `MAX_VALUE_DEPTH` deep and optionally `maxBytes` long. */
function jsonData<T = unknown>(what: string, options: { objectOnly?: boolean; maxBytes?: number } = {}) {
  return z.custom<T>().superRefine((value, ctx) => {
    if (options.objectOnly && !isPlainObject(value)) {
      ctx.addIssue({ code: "custom", continue: false, message: expected(what)({ input: value }) });
      return;
    }
    const problem = jsonValueProblem(value, MAX_VALUE_DEPTH);
    if (problem !== undefined) {
      ctx.addIssue({ code: "custom", continue: false, message: problem });
      return;
    }
    if (options.maxBytes !== undefined) {
      const bytes = encodedByteLength(value) ?? Number.POSITIVE_INFINITY;
      if (bytes > options.maxBytes) {
        ctx.addIssue({
          code: "custom",
          continue: false,
          message: `encodes to ${bytes} bytes of JSON; at most ${options.maxBytes} are allowed`,
        });
      }
    }
  });
}

const meta = jsonData<Record<string, unknown>>("an object", { objectOnly: true });

const env = z
  .custom<Record<string, string>>(isPlainObject, {
    error: expected("an object mapping environment variable names to strings"),
  })
  .superRefine((value, ctx) => {
    for (const [key, item] of Object.entries(value)) {
      if (!ENV_NAME_PATTERN.test(key)) {
        ctx.addIssue({
          code: "custom",
          continue: false,
          path: [key],
          message: `invalid environment variable name ${describeValue(key)}: must match ${ENV_NAME_PATTERN.source}`,
        });
      } else if (typeof item !== "string") {
        ctx.addIssue({
          code: "custom",
          continue: false,
          path: [key],
          message: expected("a string")({ input: item }),
        });
      } else if (item.includes("\0")) {
        ctx.addIssue({
          code: "custom",
          continue: false,
          path: [key],
          message: "must not contain NUL (\\u0000)",
        });
      }
    }
  });

/** A relative path that stays inside its base folder (no absolute path, no ".." segment). */
function relativePath(what: string) {
  return text({ what, nonEmpty: true, maxBytes: 4096 }).superRefine((value, ctx) => {
    const problem = value.startsWith("/")
      ? "must be a relative path"
      : value.split("/").includes("..")
        ? 'must not contain a ".." segment'
        : undefined;
    if (problem !== undefined) ctx.addIssue({ code: "custom", continue: false, message: problem });
  });
}

function strictObject<T extends z.core.$ZodLooseShape>(what: string, shape: T) {
  const allowed = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === "unrecognized_keys") return `unknown key (${what} may have: ${allowed})`;
      if (iss.code === "invalid_type") return expected(`${what} (a JSON object)`)(iss);
      return undefined;
    },
  });
}

const version = z.literal(SCHEMA_VERSION, {
  error: (iss) =>
    `unsupported schema version ${describeValue(iss.input)}; this reader knows ${SCHEMA_VERSION}`,
});

const signal = z.string({ error: expected("a signal name such as SIGTERM") }).regex(/^[A-Z][A-Z0-9+]{0,31}$/);

const exitCode = int(-2147483648, 2147483647, "an exit code (a 32-bit integer)");
const attempt = int(1, MAX_ATTEMPTS, `an attempt number (an integer 1..${MAX_ATTEMPTS})`);
const epoch = int(0, Number.MAX_SAFE_INTEGER, "an epoch (an integer ≥ 0)");
const host = text({ what: "a host name", nonEmpty: true, maxBytes: 255 });
const pid = int(1, Number.MAX_SAFE_INTEGER, "a process id (a positive integer)");
const tail = text({ what: "a string", maxBytes: TAIL_BYTES, allowNul: true });
const message = text({ what: "a string", maxBytes: MAX_MESSAGE_BYTES, allowNul: true });
const output = jsonData("output", { maxBytes: MAX_OUTPUT_BYTES });

// ---------------------------------------------------------------------------------------------
// Payloads.

const taskShape = {
  id: taskId,
  cmd: text({ what: "a non-empty command string", nonEmpty: true }).optional(),
  args: arrayOf(text({ what: "a string" }), "strings").optional(),
  handler: text({ what: "a non-empty handler name", nonEmpty: true, maxBytes: 256 }).optional(),
  input: jsonData("input").optional(),
  env: env.optional(),
  cwd: text({ what: "a non-empty path", nonEmpty: true, maxBytes: 4096 }).optional(),
  timeoutMs: int(
    1,
    MAX_TIMEOUT_MS,
    `a positive integer of milliseconds ≤ ${MAX_TIMEOUT_MS} (7 days)`,
  ).optional(),
  maxAttempts: int(1, MAX_ATTEMPTS, `an integer 1..${MAX_ATTEMPTS}`).optional(),
  labels: labels.optional(),
  priority: int(-1000, MAX_PRIORITY, `an integer -${MAX_PRIORITY}..${MAX_PRIORITY}`).optional(),
  meta: meta.optional(),
  runAt: timestamp.optional(),
  retry: RetryPolicySchema.optional(),
  replyTo: named("reply address", replyAddressProblem).optional(),
};

export const TaskSpecSchema: z.ZodType<TaskSpec> = strictObject("a task", taskShape).superRefine(
  (task, ctx) => {
    const hasCmd = task.cmd !== undefined;
    const hasHandler = task.handler !== undefined;
    if (hasCmd === hasHandler) {
      ctx.addIssue({
        code: "custom",
        message: `expected exactly one of "cmd" or "handler", got ${hasCmd ? "both" : "neither"}`,
      });
    }
    if (task.args !== undefined && !hasCmd) {
      ctx.addIssue({ code: "custom", path: ["args"], message: 'allowed only with "cmd"' });
    }
    if (task.input !== undefined && !hasHandler) {
      ctx.addIssue({ code: "custom", path: ["input"], message: 'allowed only with "handler"' });
    }
    if (task.cwd !== undefined && !task.cwd.startsWith("/") && task.cwd.split("/").includes("..")) {
      ctx.addIssue({
        code: "custom",
        path: ["cwd"],
        message: 'a relative cwd must stay inside the task\'s output folder (no ".." segment)',
      });
    }
    const bytes = encodedByteLength(task) ?? Number.POSITIVE_INFINITY;
    if (bytes > MAX_TASK_BYTES) {
      ctx.addIssue({
        code: "custom",
        message: `encodes to ${bytes} bytes of JSON; at most ${MAX_TASK_BYTES} are allowed`,
      });
    }
  },
);

const batchHeaderShape = {
  v: version,
  batchId: named("batch id", taskIdProblem),
  submittedAt: timestamp,
  submitter: text({ what: "a non-empty string", nonEmpty: true, maxBytes: 256 }).optional(),
  answerKey: named("answer key", answerKeyProblem).optional(),
  requeued: z
    .record(
      taskId,
      strictObject("a requeued task", {
        attemptsUsed: int(0, MAX_ATTEMPTS, `an integer 0..${MAX_ATTEMPTS}`),
        submittedAt: timestamp,
        notBefore: timestamp.optional(),
        history: AttemptHistorySchema.optional(),
      }),
      {
        error: (iss) =>
          iss.code === "invalid_key"
            ? `invalid task id: ${taskIdProblem(iss.input)}`
            : expected("an object mapping task ids to requeued tasks")(iss),
      },
    )
    .optional(),
};

const tasksArray = <T extends z.ZodType>(item: T) => arrayOf(item, "tasks", MAX_BATCH_TASKS);

export const SubmitBatchSchema: z.ZodType<SubmitBatch> = strictObject("a submit batch", {
  ...batchHeaderShape,
  tasks: tasksArray(TaskSpecSchema),
});

/** The batch with its tasks left undecoded, so that each can be judged on its own. */
export const SubmitBatchEnvelopeSchema = strictObject("a submit batch", {
  ...batchHeaderShape,
  tasks: tasksArray(z.unknown()),
});

export const MasterInfoSchema: z.ZodType<MasterInfo> = strictObject("a master info", {
  v: version,
  name: named("master name", workerNameProblem),
  host,
  pid,
  startedAt: timestamp,
  httpPort: int(1, 65535, "a TCP port (an integer 1..65535)").optional(),
  accepts: arrayOf(text({ what: "a feature name", nonEmpty: true, maxBytes: 64 }), "features", 32).optional(),
});

export const WorkerRegistrationSchema: z.ZodType<WorkerRegistration> = strictObject("a worker registration", {
  v: version,
  name: workerName,
  host,
  pid,
  capacity: int(1, MAX_CAPACITY, `a capacity (an integer 1..${MAX_CAPACITY})`),
  labels,
  version: text({ what: "a non-empty version string", nonEmpty: true, maxBytes: 64 }),
  startedAt: timestamp,
  session: sessionId,
  answers: strictObject("an answer stream address", {
    host,
    port: int(1, 65535, "a TCP port (an integer 1..65535)"),
  }).optional(),
});

export const AssignedTaskSchema: z.ZodType<AssignedTask> = strictObject("an assigned task", {
  id: taskId,
  attempt,
  assignedAt: timestamp,
  submittedAt: timestamp,
  spec: TaskSpecSchema,
  history: AttemptHistorySchema.optional(),
}).superRefine((task, ctx) => {
  if (task.spec.id !== task.id) {
    ctx.addIssue({
      code: "custom",
      path: ["spec", "id"],
      message: `must equal the assigned task's id ${describeValue(task.id)}, got ${describeValue(task.spec.id)}`,
    });
  }
});

export const AssignmentSchema: z.ZodType<Assignment> = strictObject("an assignment", {
  v: version,
  epoch,
  worker: workerName,
  session: sessionId,
  tasks: arrayOf(AssignedTaskSchema, "assigned tasks"),
}).superRefine((assignment, ctx) => {
  const seen = new Set<string>();
  assignment.tasks.forEach((task, index) => {
    if (seen.has(task.id)) {
      ctx.addIssue({
        code: "custom",
        path: ["tasks", index, "id"],
        message: "appears twice in one assignment",
      });
    }
    seen.add(task.id);
  });
});

const statusFields = {
  startedAt: timestamp.optional(),
  finishedAt: timestamp.optional(),
  exitCode: exitCode.optional(),
  signal: signal.optional(),
};

const outputFields = {
  outputDir: relativePath("a relative path").optional(),
  stdoutTail: tail.optional(),
  stderrTail: tail.optional(),
  output: output.optional(),
};

export const StatusUpdateSchema: z.ZodType<StatusUpdate> = strictObject("a status update", {
  id: taskId,
  attempt,
  state: z.enum(UPDATE_STATES, { error: expected(`one of ${UPDATE_STATES.join(", ")}`) }),
  at: timestamp,
  ...statusFields,
  error: message.optional(),
  ...outputFields,
  noRetry: z.boolean({ error: expected("true or false") }).optional(),
});

export const WorkerReportSchema: z.ZodType<WorkerReport> = strictObject("a worker report", {
  v: version,
  worker: workerName,
  session: sessionId,
  draining: z.boolean({ error: expected("true or false") }).optional(),
  updates: arrayOf(StatusUpdateSchema, "status updates"),
});

export const TaskStatusSchema: z.ZodType<TaskStatus> = strictObject("a task status", {
  v: version,
  id: taskId,
  state: z.enum(TASK_STATES, { error: expected(`one of ${TASK_STATES.join(", ")}`) }),
  attempt: int(0, MAX_ATTEMPTS, `an attempt number (an integer 0..${MAX_ATTEMPTS}; 0 if never handed out)`),
  worker: workerName.optional(),
  submittedAt: timestamp.optional(),
  assignedAt: timestamp.optional(),
  ...statusFields,
  reason: message.optional(),
  ...outputFields,
  meta: meta.optional(),
  history: AttemptHistorySchema.optional(),
});

export const ResultBatchSchema: z.ZodType<ResultBatch> = strictObject("a result batch", {
  v: version,
  epoch,
  results: arrayOf(TaskStatusSchema, "task statuses"),
}).superRefine((batch, ctx) => {
  batch.results.forEach((status, index) => {
    if (!(FINAL_STATES as ReadonlySet<string>).has(status.state)) {
      ctx.addIssue({
        code: "custom",
        path: ["results", index, "state"],
        message: `expected a final state (${[...FINAL_STATES].join(", ")}), got ${describeValue(status.state)}`,
      });
    }
  });
});

/** At most this many ids in one cancel request. */
export const MAX_CANCEL_IDS = 10_000;

export const CancelRequestSchema: z.ZodType<CancelRequest> = strictObject("a cancel request", {
  v: version,
  ids: arrayOf(taskId, "ids", MAX_CANCEL_IDS),
  requestedAt: timestamp,
  by: text({ what: "a non-empty string", nonEmpty: true, maxBytes: 256 }).optional(),
  accepted: arrayOf(taskId, "accepted", MAX_CANCEL_IDS).optional(),
});
