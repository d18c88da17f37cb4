import type { GridSnapshot, TaskView } from "@zkgrid/observer";
import { type AttemptRecord, formatStartLimit, type GridGate, isFinalState } from "@zkgrid/protocol";
import { formatDuration } from "./duration.js";

/** Columns padded to their widest cell; `right` lists the columns to align right (numbers). */
export function formatTable(
  headers: readonly string[],
  rows: readonly string[][],
  right: readonly number[] = [],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => {
        const last = i === cells.length - 1;
        if (right.includes(i)) return cell.padStart(widths[i]!);
        return last ? cell : cell.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].map((l) => `${l}\n`).join("");
}

const ago = (at: number | undefined, now: number) =>
  at === undefined ? "-" : `${formatDuration(now - at)} ago`;

/** The grid at a glance: leader, masters, workers and their load, the queue, task counts. */
export function formatGridStatus(s: GridSnapshot): string {
  const now = s.at;
  let out = `grid ${s.root}  ZooKeeper ${s.connection}  `;
  out += s.leader ? `leader ${s.leader.name ?? s.leader.node} (epoch ${s.leader.seq})\n` : "NO LEADER\n";

  out += `\nMASTERS  ${s.masters.length}\n`;
  if (s.masters.length === 0) out += "  no master is running: queued tasks wait until one starts\n";
  else
    out += formatTable(
      ["ROLE", "NAME", "HOST", "PID", "EPOCH", "UP"],
      s.masters.map((m) => [
        m.leader ? "leader" : "standby",
        m.name ?? m.node,
        m.host ?? "-",
        m.pid === undefined ? "-" : String(m.pid),
        String(m.seq),
        m.startedAt === undefined ? "-" : formatDuration(now - m.startedAt),
      ]),
      [3, 4],
    );

  const capacity = s.workers.reduce((n, w) => n + w.capacity, 0);
  const assigned = s.workers.reduce((n, w) => n + w.assigned, 0);
  out += `\nWORKERS  ${s.workers.length} live, ${assigned} of ${capacity} slots in use\n`;
  if (s.workers.length === 0) out += "  no worker is registered\n";
  else
    out += formatTable(
      ["NAME", "HOST", "LOAD", "ASSIGNED", "CAPACITY", "VERSION", "UP", "LABELS"],
      s.workers.map((w) => [
        w.name,
        w.host ?? "-",
        `${Math.round(w.load * 100)}%`,
        String(w.assigned),
        String(w.capacity),
        w.version ?? "-",
        w.startedAt === undefined ? "-" : formatDuration(now - w.startedAt),
        w.problem ? `(unreadable: ${w.problem})` : w.labels.join(","),
      ]),
      [2, 3, 4],
    );

  const q = s.queue;
  out += `\nQUEUE  ${q.depth} queued`;
  out += q.nodes > 0 ? ` in ${q.nodes} node${q.nodes === 1 ? "" : "s"}` : "";
  out +=
    q.oldestSubmittedAt === undefined
      ? "\n"
      : `, oldest waiting ${formatDuration(now - q.oldestSubmittedAt)}\n`;
  if (q.byPriority.length > 0)
    out += formatTable(
      ["PRIORITY", "TASKS"],
      q.byPriority.map((p) => [String(p.priority), String(p.count)]),
      [0, 1],
    );

  out += formatGate(s.gate, now);

  const recent = new Map<string, number>();
  for (const t of s.recent) recent.set(t.state, (recent.get(t.state) ?? 0) + 1);
  // "running" is known only from report nodes seen while they lived: a one-off look rarely sees one.
  const onWorkers = s.counts.assigned + s.counts.running;
  const seen = s.counts.running > 0 ? ` (${s.counts.running} seen running)` : "";
  const delayed = s.counts.delayed > 0 ? `  delayed ${s.counts.delayed}` : "";
  out += `\nTASKS  queued ${s.counts.queued}${delayed}  on workers ${onWorkers}${seen}\n`;
  if (s.recent.length > 0) {
    const parts = [...recent].map(([state, n]) => `${state} ${n}`).join("  ");
    out += `  latest ${s.recent.length} results: ${parts}; newest ${ago(s.recent[0]?.finishedAt, now)}\n`;
  }
  if (s.problems.length > 0) out += `\nPROBLEMS\n${s.problems.map((p) => `  ${p}\n`).join("")}`;
  return out;
}

/** The GATE section: the grid's pause, paused labels and start limits. */
export function formatGate(gate: GridGate, now: number): string {
  const paused = Object.entries(gate.pausedLabels ?? {});
  const limits = Object.entries(gate.limits ?? {});
  if (!gate.paused && paused.length === 0 && limits.length === 0)
    return "\nGATE  open: nothing paused, no start limit\n";
  const who = (p: { at: number; by?: string }) => `since ${ago(p.at, now)}${p.by ? ` by ${p.by}` : ""}`;
  let out = `\nGATE  ${gate.paused ? `GRID PAUSED ${who(gate.paused)}: no task starts` : "grid open"}\n`;
  for (const [label, p] of paused) out += `  label ${label} paused ${who(p)}\n`;
  for (const [label, l] of limits)
    out += `  label ${label} limited to ${formatStartLimit(l)} (starts per interval)\n`;
  return out;
}

/** One line per task: id, state, worker, attempt, when, and what it runs or how it ended. */
export function formatTaskTable(tasks: readonly TaskView[], now = Date.now()): string {
  return formatTable(
    ["ID", "STATE", "WORKER", "ATTEMPT", "WHEN", "DETAIL"],
    tasks.map((t) => [t.id, t.state, t.worker ?? "-", String(t.attempt), taskWhen(t, now), taskDetail(t)]),
    [3],
  );
}

function taskWhen(t: TaskView, now: number): string {
  if (t.finishedAt !== undefined) return ago(t.finishedAt, now);
  if (t.startedAt !== undefined) return `for ${formatDuration(now - t.startedAt)}`;
  if (t.assignedAt !== undefined) return `for ${formatDuration(now - t.assignedAt)}`;
  if (t.state === "delayed" && t.dueAt !== undefined) return `due in ${formatDuration(t.dueAt - now)}`;
  return t.submittedAt === undefined ? "-" : `waiting ${formatDuration(now - t.submittedAt)}`;
}

function taskDetail(t: TaskView): string {
  if (isFinalState(t.state)) {
    const how =
      t.signal !== undefined ? `signal ${t.signal}` : t.exitCode !== undefined ? `exit ${t.exitCode}` : "";
    const took =
      t.startedAt !== undefined && t.finishedAt !== undefined
        ? ` in ${formatDuration(t.finishedAt - t.startedAt)}`
        : "";
    const reason = t.reason ? `${how ? "; " : ""}${firstLine(t.reason)}` : "";
    return `${how}${took}${reason}` || "-";
  }
  const priority = t.priority ? ` [priority ${t.priority}]` : "";
  const labels = t.labels ? ` [needs ${t.labels.join(",")}]` : "";
  return `${t.command === undefined ? "-" : truncate(t.command, 60)}${priority}${labels}`;
}

/** Everything known of one task, then the tails of its output. */
export function formatTaskDetail(t: TaskView, now = Date.now()): string {
  const time = (at: number | undefined) =>
    at === undefined ? undefined : `${new Date(at).toISOString()} (${ago(at, now)})`;
  const fields: Array<[string, string | undefined]> = [
    ["id", t.id],
    ["state", t.state],
    ["attempt", String(t.attempt)],
    ["worker", t.worker],
    ["command", t.command],
    ["priority", t.priority === undefined ? undefined : String(t.priority)],
    ["labels", t.labels?.join(", ")],
    ["submitted", time(t.submittedAt)],
    ["due", t.state === "delayed" ? time(t.dueAt) : undefined],
    ["assigned", time(t.assignedAt)],
    ["started", time(t.startedAt)],
    ["finished", time(t.finishedAt)],
    [
      "took",
      t.startedAt !== undefined && t.finishedAt !== undefined
        ? formatDuration(t.finishedAt - t.startedAt)
        : undefined,
    ],
    ["exit code", t.exitCode === undefined ? undefined : String(t.exitCode)],
    ["signal", t.signal],
    ["reason", t.reason],
    ["output dir", t.outputDir],
    ["output", t.output === undefined ? undefined : truncate(JSON.stringify(t.output), 2000)],
    ["meta", t.meta === undefined ? undefined : JSON.stringify(t.meta)],
  ];
  let out = "";
  for (const [name, value] of fields) if (value !== undefined) out += `${`${name}:`.padEnd(12)}${value}\n`;
  if (t.history !== undefined) out += `attempts:\n${formatHistory(t.history, "  ")}`;
  if (t.stdoutTail) out += `stdout (last ${t.stdoutTail.length} chars):\n${indent(t.stdoutTail, "  | ")}`;
  if (t.stderrTail) out += `stderr (last ${t.stderrTail.length} chars):\n${indent(t.stderrTail, "  ! ")}`;
  return out;
}

/** One line per attempt: its number, how it ended, where, how long, and why it failed. */
export function formatHistory(history: readonly AttemptRecord[], prefix: string): string {
  return history
    .map((a) => {
      const how =
        a.signal !== undefined
          ? ` signal=${a.signal}`
          : a.exitCode !== undefined
            ? ` exit=${a.exitCode}`
            : "";
      const took =
        a.startedAt !== undefined && a.finishedAt !== undefined
          ? ` ${formatDuration(a.finishedAt - a.startedAt)}`
          : "";
      const why = a.error === undefined ? "" : `: ${firstLine(a.error)}`;
      return `${prefix}#${a.attempt} ${a.outcome}${how} ${a.worker ?? "-"}${took}${why}\n`;
    })
    .join("");
}

function indent(text: string, prefix: string): string {
  return text
    .replace(/\n$/, "")
    .split("\n")
    .map((line) => `${prefix}${line}\n`)
    .join("");
}

function firstLine(text: string): string {
  return truncate(text.split("\n")[0] ?? "", 80);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
