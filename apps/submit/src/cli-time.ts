import { type Backoff, MAX_ATTEMPTS, parseDuration, type RetryPolicy } from "@zkgrid/protocol";
import { CliUsageError } from "./cli-common.js";
import type { TaskInput } from "./tasks.js";

/** The submit flags that say when a task may start and how a failed one is retried. */
export const TIME_OPTIONS = {
  delay: { type: "string" },
  at: { type: "string" },
  retries: { type: "string" },
  "retry-on": { type: "string" },
  backoff: { type: "string" },
  "max-backoff": { type: "string" },
  jitter: { type: "string" },
  "no-retry-exit-codes": { type: "string" },
} as const;

export const TIME_USAGE = `Delays and retries (a delayed task shows as "delayed" until its time):
  --delay <duration>      do not start the task before this long from now (30s, 2m)
  --at <ISO time>         do not start it before this time, e.g. 2026-12-05T03:00:00Z
  --retries <n>           retry a failed task up to n more times, with backoff (sets --max-attempts
                          to n+1; a lost worker's hand-out counts as an attempt too)
  --retry-on <outcomes>   what is retried: failed, timed-out, or failed,timed-out (default failed)
  --backoff <type:delay>  the wait before each retry: fixed:5s, or exponential:1s, doubling each
                          time (default exponential:1s)
  --max-backoff <duration>
                          no wait between attempts is longer (default 5m)
  --jitter <0..1>         shorten each backoff by a random part of up to this fraction
  --no-retry-exit-codes <codes>
                          exit codes that refuse a retry, e.g. 3,64: such a failure is final
A handler refuses a retry by throwing UnrecoverableError (from @zkgrid/worker).`;

type TimeFlags = { [K in keyof typeof TIME_OPTIONS]?: string | undefined } & { "max-attempts"?: string };

/** The task field each of these flags fills, for messages. */
export const TIME_FLAG_OF_FIELD: Record<string, string> = {
  runAt: "--delay or --at",
  retry: "--retries",
  "retry.on": "--retry-on",
  "retry.backoff": "--backoff",
  "retry.backoff.delayMs": "--backoff",
  "retry.backoff.maxDelayMs": "--max-backoff",
  "retry.backoff.jitter": "--jitter",
  "retry.noRetryExitCodes": "--no-retry-exit-codes",
};

/** The flags of this group that were given, as `--name`. */
export function timeFlagsGiven(flags: TimeFlags): string[] {
  return Object.keys(TIME_OPTIONS)
    .filter((name) => flags[name as keyof typeof TIME_OPTIONS] !== undefined)
    .map((name) => `--${name}`);
}

/** Sets `runAt`, `retry` and `maxAttempts` on `task` from the flags; throws CliUsageError for bad values. */
export function applyTimeFlags(task: TaskInput, flags: TimeFlags, now = Date.now()): void {
  if (flags.delay !== undefined && flags.at !== undefined)
    throw new CliUsageError("--delay and --at both say when the task may start: give one");
  if (flags.delay !== undefined) {
    const ms = parseDuration(flags.delay);
    if (ms === undefined)
      throw new CliUsageError(
        `--delay: expected a duration such as 30s, 2m or 500ms, got ${JSON.stringify(flags.delay)}`,
      );
    task.runAt = now + ms;
  }
  if (flags.at !== undefined) {
    const at = /^\d{4}-\d{2}-\d{2}/.test(flags.at) ? Date.parse(flags.at) : Number.NaN;
    if (Number.isNaN(at))
      throw new CliUsageError(
        `--at: expected an ISO time such as 2026-12-05T03:00:00Z, got ${JSON.stringify(flags.at)}`,
      );
    task.runAt = at;
  }
  const retry = retryFromFlags(flags);
  if (retry !== undefined) task.retry = retry;
  if (flags.retries !== undefined) {
    if (flags["max-attempts"] !== undefined)
      throw new CliUsageError("--retries and --max-attempts both set the attempts: give one");
    task.maxAttempts = retries(flags.retries) + 1;
  }
}

function retries(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > MAX_ATTEMPTS - 1)
    throw new CliUsageError(
      `--retries: expected an integer 0..${MAX_ATTEMPTS - 1}, got ${JSON.stringify(value)}`,
    );
  return Number(value);
}

/** The retry policy the flags describe; any retry flag makes one. */
function retryFromFlags(flags: TimeFlags): RetryPolicy | undefined {
  const given = ["retries", "retry-on", "backoff", "max-backoff", "jitter", "no-retry-exit-codes"] as const;
  if (given.every((name) => flags[name] === undefined)) return undefined;
  const policy: RetryPolicy = {};
  if (flags["retry-on"] !== undefined) {
    const on = flags["retry-on"].split(",").map((s) => s.trim());
    for (const state of on)
      if (state !== "failed" && state !== "timed-out")
        throw new CliUsageError(
          `--retry-on: expected failed, timed-out or failed,timed-out, got ${JSON.stringify(flags["retry-on"])}`,
        );
    policy.on = [...new Set(on)] as RetryPolicy["on"];
  }
  const backoff = backoffFromFlags(flags);
  if (backoff !== undefined) policy.backoff = backoff;
  if (flags["no-retry-exit-codes"] !== undefined) {
    const text = flags["no-retry-exit-codes"];
    const codes = text.split(",").map((s) => s.trim());
    if (!codes.every((c) => /^\d+$/.test(c) && Number(c) >= 1 && Number(c) <= 255))
      throw new CliUsageError(
        `--no-retry-exit-codes: expected exit codes 1..255 separated by commas, got ${JSON.stringify(text)}`,
      );
    policy.noRetryExitCodes = codes.map(Number);
  }
  return policy;
}

function backoffFromFlags(flags: TimeFlags): Backoff | undefined {
  if (flags.backoff === undefined && flags["max-backoff"] === undefined && flags.jitter === undefined)
    return undefined;
  const backoff: Backoff = { type: "exponential", delayMs: 1000 };
  if (flags.backoff !== undefined) {
    const match = /^(fixed|exponential):(.+)$/.exec(flags.backoff);
    const delayMs = match?.[2] === undefined ? undefined : parseDuration(match[2]);
    if (!match || delayMs === undefined)
      throw new CliUsageError(
        `--backoff: expected fixed:<duration> or exponential:<duration>, e.g. exponential:1s, got ${JSON.stringify(flags.backoff)}`,
      );
    backoff.type = match[1] as Backoff["type"];
    backoff.delayMs = delayMs;
  }
  if (flags["max-backoff"] !== undefined) {
    const ms = parseDuration(flags["max-backoff"]);
    if (ms === undefined)
      throw new CliUsageError(
        `--max-backoff: expected a duration such as 5m or 30s, got ${JSON.stringify(flags["max-backoff"])}`,
      );
    backoff.maxDelayMs = ms;
  }
  if (flags.jitter !== undefined) {
    const jitter = Number(flags.jitter);
    if (flags.jitter.trim() === "" || !(jitter >= 0 && jitter <= 1))
      throw new CliUsageError(`--jitter: expected a fraction 0..1, got ${JSON.stringify(flags.jitter)}`);
    backoff.jitter = jitter;
  }
  return backoff;
}
