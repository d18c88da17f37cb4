import type { SubmittersResult } from "./submitters.js";
import type { BenchResult, CeilingResult, LatencyResult, ScaleResult, ThroughputResult } from "./results.js";
import type { ScaleCurveResult } from "./scale-curve.js";
import { round } from "./stats.js";
import { DEFAULTS_TARGETS, type FigureSummary, type Target } from "./summary.js";

export interface Ratio {
  name: string;
  value: number;
  /** What the ratio is compared with, e.g. "≥ 2". */
  target?: string;
  met?: boolean;
  note?: string;
}

const throughputs = (results: BenchResult[]) =>
  results.filter((r): r is ThroughputResult => r.kind === "throughput");
const latencies = (results: BenchResult[]) => results.filter((r): r is LatencyResult => r.kind === "latency");
const ceilings = (results: BenchResult[]) => results.filter((r): r is CeilingResult => r.kind === "ceiling");

function best(list: ThroughputResult[]): ThroughputResult | undefined {
  return list
    .filter((r) => r.error === undefined && Number.isFinite(r.tasksPerSecond))
    .sort((a, b) => b.tasksPerSecond - a.tasksPerSecond)[0];
}

/** The ratios the issue asks for, with its targets. */
export function computeRatios(
  results: BenchResult[],
  masterRssLimitMiB: number,
  targets: { throughput: Target; p50: Target },
): Ratio[] {
  const ratios: Ratio[] = [];
  const tp = throughputs(results);
  const zkNoop = tp.find((r) => r.system === "zkgrid" && r.workload === "noop" && r.flags !== "defaults");
  const zkNoopDefaults = tp.find(
    (r) => r.system === "zkgrid" && r.workload === "noop" && r.flags === "defaults",
  );
  const zkShell = tp.find((r) => r.system === "zkgrid" && r.workload === "shell");
  const bullNoop = tp.filter((r) => r.system === "bullmq" && r.workload === "noop");
  const bullShell = best(tp.filter((r) => r.system === "bullmq" && r.workload === "shell"));
  const creates = ceilings(results).find((c) => c.name === "zk-creates");
  const spawns = ceilings(results).filter((c) => c.name === "spawn");
  // The ceiling measured between the shell rounds, when there is one: on a shared machine the load
  // drifts, and a ceiling measured a minute apart from zkgrid's rounds compares different machines.
  const spawnOne =
    spawns.find((c) => c.rounds !== undefined) ?? spawns.find((c) => c.detail.includes("from 1 process"));
  const spawnAll = spawns.filter((c) => c !== spawnOne).sort((a, b) => b.perSecond - a.perSecond)[0];

  if (zkNoop && !zkNoop.error) {
    for (const b of bullNoop) {
      if (b.error) continue;
      const value = round(zkNoop.tasksPerSecond / b.tasksPerSecond, 2);
      ratios.push({
        name: `(a) no-op throughput: zkgrid ÷ BullMQ (${b.shape})`,
        value,
        target: `≥ ${targets.throughput.bound}`,
        met: value >= targets.throughput.bound,
      });
    }
    if (zkNoopDefaults && !zkNoopDefaults.error) {
      const value = round(zkNoopDefaults.tasksPerSecond / zkNoop.tasksPerSecond, 2);
      ratios.push({
        name: "(a) no-op throughput: zkgrid with defaults ÷ tuned",
        value,
        target: `≥ ${DEFAULTS_TARGETS.throughput.bound}`,
        met: value >= DEFAULTS_TARGETS.throughput.bound,
      });
    }
    if (creates && zkNoop.zk) {
      ratios.push({
        name: "(a) no-op throughput: zkgrid ÷ ZooKeeper create ceiling",
        value: round(zkNoop.tasksPerSecond / creates.perSecond, 3),
        note: `zkgrid used ${round((zkNoop.tasksPerSecond * zkNoop.zk.writesPerTask) / creates.perSecond, 2)} of the server's write ceiling (${zkNoop.zk.writesPerTask} writes per task)`,
      });
    }
  }
  if (zkShell && !zkShell.error) {
    if (spawnOne) {
      const value = round(zkShell.tasksPerSecond / spawnOne.perSecond, 2);
      ratios.push({
        name: "(b) shell throughput: zkgrid ÷ direct spawn (1 process)",
        value,
        target: "≥ 0.8",
        met: value >= 0.8,
      });
    }
    if (spawnAll) {
      ratios.push({
        name: `(b) shell throughput: zkgrid ÷ direct spawn (${spawnAll.detail.replace(/^.* from /, "")})`,
        value: round(zkShell.tasksPerSecond / spawnAll.perSecond, 2),
      });
    }
    if (bullShell && !bullShell.error) {
      ratios.push({
        name: `(b) shell throughput: zkgrid ÷ BullMQ (${bullShell.shape})`,
        value: round(zkShell.tasksPerSecond / bullShell.tasksPerSecond, 2),
      });
    }
  }
  const zkLat = latencies(results).find(
    (r) => r.system === "zkgrid" && r.flags !== "defaults" && r.install === undefined,
  );
  const zkLatDefaults = latencies(results).find((r) => r.system === "zkgrid" && r.flags === "defaults");
  const zkLatInstall = latencies(results).find((r) => r.system === "zkgrid" && r.install !== undefined);
  if (zkLat && zkLatInstall && !zkLat.error && !zkLatInstall.error) {
    ratios.push({
      name: "(c) one-at-a-time latency p50: zkgrid installed by a consumer ÷ this repository's",
      value: round(zkLatInstall.latencyMs.p50 / zkLat.latencyMs.p50, 2),
    });
  }
  if (zkLat && zkLatDefaults && !zkLat.error && !zkLatDefaults.error) {
    const value = round(zkLatDefaults.latencyMs.p50 / zkLat.latencyMs.p50, 2);
    ratios.push({
      name: "(c) one-at-a-time latency p50: zkgrid with defaults ÷ tuned",
      value,
      target: `≤ ${DEFAULTS_TARGETS.p50.bound}`,
      met: value <= DEFAULTS_TARGETS.p50.bound,
    });
  }
  const bullLat = latencies(results).find((r) => r.system === "bullmq");
  if (zkLat && bullLat && !zkLat.error && !bullLat.error) {
    for (const p of ["p50", "p95", "p99"] as const) {
      const value = round(zkLat.latencyMs[p] / bullLat.latencyMs[p], 2);
      ratios.push({
        name: `(c) one-at-a-time latency ${p}: zkgrid ÷ BullMQ`,
        value,
        ...(p === "p50" ? { target: `≤ ${targets.p50.bound}`, met: value <= targets.p50.bound } : {}),
      });
    }
  }
  for (const [name, what, mine] of [
    ["zk-relay", "ZooKeeper floor p50 (3 writes in sequence)", "ZooKeeper floor p50 (3 writes in sequence)"],
    ["zk-direct", "direct-task floor p50 (2 writes in sequence)", "direct-task floor p50"],
    ["zk-create-lone", "lone ZooKeeper create p50 (1 write)", "lone ZooKeeper create p50"],
    ["fsync", "fsync floor p50 (1 write + fdatasync)", "fsync floor p50"],
  ] as const) {
    const floor = ceilings(results).find((c) => c.name === name)?.latencyMs;
    if (floor && bullLat && !bullLat.error)
      ratios.push({ name: `(c) ${what} ÷ BullMQ p50`, value: round(floor.p50 / bullLat.latencyMs.p50, 2) });
    if (floor && zkLat && !zkLat.error)
      ratios.push({ name: `(c) zkgrid p50 ÷ ${mine}`, value: round(zkLat.latencyMs.p50 / floor.p50, 2) });
  }
  const scale = results.find((r): r is ScaleResult => r.kind === "scale");
  if (scale) {
    const ok = !scale.error && scale.failed === 0;
    ratios.push({
      name: `scale: ${scale.count} tasks accepted, assigned and drained`,
      value: ok ? 1 : 0,
      target: "all",
      met: ok,
      note: ok ? `${scale.drainedSeconds} s` : (scale.error ?? `${scale.failed} failed`),
    });
    ratios.push({
      name: "scale: largest ZooKeeper request or reply ÷ 1 MiB",
      value: round(Math.max(scale.maxNodeBytesSeen, scale.maxResponseBytes) / 1048576, 3),
      target: "< 1, and no request refused",
      met:
        scale.oversizedRequests === 0 && Math.max(scale.maxNodeBytesSeen, scale.maxResponseBytes) < 1048576,
    });
    const rss = scale.peakRssMiB.master ?? Number.NaN;
    ratios.push({
      name: `scale: master peak RSS (MiB) ÷ ${masterRssLimitMiB} MiB`,
      value: round(rss / masterRssLimitMiB, 2),
      target: "< 1",
      met: rss < masterRssLimitMiB,
    });
  }
  const curve = results.find((r): r is ScaleCurveResult => r.kind === "scale-curve");
  if (curve) ratios.push(...curveRatios(curve));
  return ratios;
}

/** The workers curve's targets: the leader's CPU per task, and the takeover at the largest count. */
function curveRatios(curve: ScaleCurveResult): Ratio[] {
  const ratios: Ratio[] = [];
  const steps = curve.steps.filter((s) => Number.isFinite(s.leaderCpuUsPerTask));
  const first = steps[0];
  const last = steps.at(-1);
  if (first !== undefined && last !== undefined && last !== first) {
    ratios.push({
      name: `scale curve: leader CPU per task at ${last.workers} workers ÷ at ${first.workers}`,
      value: curve.leaderCpuRatio,
      target: "≤ 1.5",
      met: curve.leaderCpuRatio <= 1.5,
      note: `${last.leaderCpuUsPerTask} µs against ${first.leaderCpuUsPerTask} µs`,
    });
  }
  const largest = curve.steps.at(-1);
  const takeover = largest?.takeover;
  if (largest !== undefined && takeover !== undefined) {
    const bound = curve.sessionTimeoutMs / 1000 + 2;
    ratios.push({
      name: `scale curve: takeover (s) at ${largest.workers} workers, ${takeover.queued} queued ÷ ${bound} s`,
      value: round(takeover.assigningSeconds / bound, 2),
      target: "≤ 1 (session timeout + 2 s)",
      met: takeover.assigningSeconds <= bound,
      note: `${takeover.assigningSeconds} s to assigning again (elected after ${takeover.electedSeconds} s)`,
    });
  }
  const failed = curve.steps.reduce((n, s) => n + s.failed, 0);
  const errors = curve.steps.filter((s) => s.error !== undefined);
  ratios.push({
    name: "scale curve: every step ran, every task succeeded",
    value: failed === 0 && errors.length === 0 ? 1 : 0,
    target: "all",
    met: failed === 0 && errors.length === 0,
    ...(errors.length > 0 || failed > 0
      ? { note: errors.map((s) => `${s.workers} workers: ${s.error}`).join("; ") || `${failed} failed` }
      : {}),
  });
  return ratios;
}

/** The workers curve as a table, one row a worker count. */
function formatCurve(curve: ScaleCurveResult): string[] {
  const out = [`Workers curve: ${curve.shape}; mntr's ${curve.largestReplyField} for the largest reply`];
  out.push(
    pad([
      [
        "workers",
        "takeover s",
        "elected s",
        "queued",
        "p50 ms",
        "p99 ms",
        "leader µs/task",
        "ZK µs/task",
        "znodes",
        "watches",
        "largest reply B",
        "with queue B",
        "up s",
        "MiB/process",
      ],
      ...curve.steps.map((s) => [
        String(s.workers),
        fmt(s.takeover?.assigningSeconds, 2),
        fmt(s.takeover?.electedSeconds, 2),
        s.takeover === undefined ? "–" : String(s.takeover.queued),
        fmt(s.assignMs.p50, 0),
        fmt(s.assignMs.p99, 0),
        fmt(s.leaderCpuUsPerTask, 0),
        fmt(s.zookeeperCpuUsPerTask, 0),
        fmt(s.znodes, 0),
        fmt(s.watches, 0),
        fmt(s.largestReplyBytes, 0),
        fmt(s.takeover?.largestReplyBytes, 0),
        fmt(s.workersUpSeconds, 1),
        fmt(s.processRssMiB, 0),
      ]),
    ]),
  );
  out.push(
    "  takeover: SIGKILL of the leader → earliest assignedAt after it; elected: → the successor's election node lowest.",
  );
  out.push(
    "  p50/p99: submit → assignedAt of the paced tasks; znodes: mntr less the server's count before the step.",
  );
  for (const s of curve.steps) if (s.error) out.push(`  ${s.workers} workers: ${s.error}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const fmt = (v: number | undefined, digits = 1): string =>
  v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);

function rssText(r: { peakRssMiB: { master?: number; workers: number[] } }): string {
  const parts: string[] = [];
  if (r.peakRssMiB.master !== undefined) parts.push(`m ${fmt(r.peakRssMiB.master, 0)}`);
  if (r.peakRssMiB.workers.length > 0)
    parts.push(`w ${r.peakRssMiB.workers.map((w) => fmt(w, 0)).join("/")}`);
  return parts.join(", ") || "–";
}

export function formatTables(results: BenchResult[], ratios: Ratio[]): string {
  const out: string[] = [];
  const tp = throughputs(results);
  if (tp.length > 0) {
    out.push("Throughput (tasks submitted at once; latency = submit → result seen by the submitter)");
    out.push(
      pad([
        [
          "system",
          "workload",
          "shape",
          "rounds × tasks",
          "s",
          "tasks/s (median)",
          "min–max",
          "p50 ms",
          "p95 ms",
          "p99 ms",
          "ZK writes/task",
          "ZK reqs/task",
          "ZK B in/task",
          "result nodes/task",
          "peak RSS MiB",
        ],
        ...tp.map((r) => [
          r.system,
          r.workload,
          r.shape,
          `${r.rounds.length} × ${r.count}`,
          fmt(r.seconds, 2),
          r.error ? "ERROR" : fmt(r.tasksPerSecond, 0),
          r.rounds.length > 0 ? `${fmt(Math.min(...r.rounds), 0)}–${fmt(Math.max(...r.rounds), 0)}` : "–",
          fmt(r.latencyMs.p50),
          fmt(r.latencyMs.p95),
          fmt(r.latencyMs.p99),
          fmt(r.zk?.writesPerTask, 3),
          fmt(r.zk?.requestsPerTask, 2),
          fmt(r.zk?.bytesInPerTask, 0),
          fmt(r.zk?.resultNodesPerTask, 3),
          rssText(r),
        ]),
      ]),
    );
    for (const r of tp) if (r.error) out.push(`  ${r.system} ${r.workload}: ${r.error}`);
    for (const r of tp)
      if (r.failed > 0) out.push(`  ${r.system} ${r.workload}: ${r.failed} tasks did not succeed`);
    out.push("");
  }
  const lat = latencies(results);
  if (lat.length > 0) {
    out.push("Latency, one no-op task at a time (submit → result seen by the submitter)");
    out.push(
      pad([
        [
          "system",
          "shape",
          "tasks",
          "p50 ms",
          "p95 ms",
          "p99 ms",
          "max ms",
          "ZK writes/task",
          "ZK reqs/task",
          "ZK B in/task",
          "Redis writes/job",
          "peak RSS MiB",
        ],
        ...lat.map((r) => [
          r.system,
          r.shape,
          String(r.count),
          r.error ? "ERROR" : fmt(r.latencyMs.p50, 2),
          fmt(r.latencyMs.p95, 2),
          fmt(r.latencyMs.p99, 2),
          fmt(r.latencyMs.max, 2),
          fmt(r.zk?.writesPerTask, 2),
          fmt(r.zk?.requestsPerTask, 2),
          fmt(r.zk?.bytesInPerTask, 0),
          fmt(r.redis?.writesPerJob, 2),
          rssText(r),
        ]),
      ]),
    );
    for (const r of lat) if (r.error) out.push(`  ${r.system}: ${r.error}`);
    out.push("");
  }
  const ceil = ceilings(results);
  if (ceil.length > 0) {
    out.push("Ceilings");
    out.push(
      pad([
        ["what", "ops", "s", "ops/s", "p50 ms", "ZK writes/op"],
        ...ceil.map((c) => [
          c.detail,
          String(c.count),
          fmt(c.seconds, 2),
          fmt(c.perSecond, 0),
          fmt(c.latencyMs?.p50, 3),
          fmt(c.writesPerOp, 2),
        ]),
      ]),
    );
    out.push("");
  }
  const metered = results.filter(
    (r): r is ThroughputResult | LatencyResult | ScaleResult =>
      "cpuMsPerTask" in r && r.cpuMsPerTask !== undefined,
  );
  if (metered.length > 0) {
    const us = (v: number | undefined) => (v === undefined ? "–" : String(Math.round(v * 1000)));
    out.push("CPU per timed task, µs (user + system, from /proc). Utilization: of all CPUs over the run.");
    out.push(
      "Other load: CPU busy outside these processes (other programs; kernel threads, e.g. file writeback).",
    );
    out.push(
      pad([
        ["run", "master", "workers", "ZooKeeper", "Redis", "submitter", "total", "utilization", "other load"],
        ...metered.map((r) => {
          const c = r.cpuMsPerTask ?? {};
          const name =
            r.kind === "scale"
              ? "zkgrid scale"
              : r.kind === "latency"
                ? `${r.system} latency`
                : `${r.system} ${r.workload} (${r.shape})`;
          return [
            name,
            us(c.master),
            us(c.workers),
            us(c.zookeeper),
            us(c.redis),
            us(c.submitter),
            us(c.total),
            c.utilization === undefined ? "–" : `${Math.round(c.utilization * 100)}%`,
            c.otherLoad === undefined ? "–" : `${Math.round(c.otherLoad * 100)}%`,
          ];
        }),
      ]),
    );
    out.push("");
  }
  const scale = results.find((r): r is ScaleResult => r.kind === "scale");
  if (scale) {
    out.push(`Scale: ${scale.count} no-op tasks queued at once (${scale.shape})`);
    out.push(
      pad([
        [
          "accepted s",
          "assigned s",
          "drained s",
          "tasks/s",
          "failed",
          "ZK writes/task",
          "max node B",
          "max reply B",
          "refused",
          "master peak MiB",
          "workers peak MiB",
        ],
        [
          fmt(scale.acceptedSeconds, 2),
          fmt(scale.assignedSeconds, 2),
          fmt(scale.drainedSeconds, 2),
          fmt(scale.tasksPerSecond, 0),
          String(scale.failed),
          fmt(scale.zk.writesPerTask, 3),
          String(scale.maxNodeBytesSeen),
          String(scale.maxResponseBytes),
          String(scale.oversizedRequests),
          fmt(scale.peakRssMiB.master, 0),
          scale.peakRssMiB.workers.map((w) => fmt(w, 0)).join("/"),
        ],
      ]),
    );
    if (scale.error) out.push(`  scale: ${scale.error}`);
    out.push("");
  }
  const curve = results.find((r): r is ScaleCurveResult => r.kind === "scale-curve");
  if (curve) out.push(...formatCurve(curve), "");
  const submitters = results.find((r): r is SubmittersResult => r.kind === "submitters");
  if (submitters) {
    out.push(
      `Submitters at once, each waiting for its own tasks (${submitters.shape}); per submitter, median / max (ZK writes: all the grid's writes over the run / submitters)`,
    );
    out.push(
      pad([
        [
          "results in",
          "submitters",
          "total s",
          "bytes read",
          "result nodes read",
          "listings",
          "CPU ms",
          "ZK writes",
          "failed",
        ],
        ...submitters.rows.map((r) => [
          r.place === "reply" ? "reply dir" : "R/results",
          String(r.submitters),
          r.error ?? String(r.totalSeconds),
          `${r.bytesRead.median} / ${r.bytesRead.max}`,
          `${r.resultNodesRead.median} / ${r.resultNodesRead.max}`,
          `${r.listings.median} / ${r.listings.max}`,
          `${r.cpuMs.median} / ${r.cpuMs.max}`,
          String(r.zkWritesPerSubmitter),
          String(r.failed),
        ]),
      ]),
      "",
    );
  }
  if (ratios.length > 0) {
    out.push("Ratios");
    out.push(
      pad([
        ["ratio", "value", "target", ""],
        ...ratios.map((r) => [
          r.name,
          fmt(r.value, r.value < 0.1 ? 3 : 2),
          r.target ?? "",
          r.met === undefined ? "" : r.met ? "met" : "MISSED",
        ]),
      ]),
    );
    for (const r of ratios) if (r.note) out.push(`  ${r.name}: ${r.note}`);
  }
  return out.join("\n");
}

const pct = (share: number): string => `${Math.round(share * 100)}%`;
const figureText = (v: number): string =>
  !Number.isFinite(v) ? "–" : v < 1 ? v.toFixed(3) : formatNumber(v);

/** The medians table of one setting, with the targets judged on the median and on every run. */
export function formatSummary(title: string, summaries: FigureSummary[]): string {
  const runCount = Math.max(0, ...summaries.map((s) => s.runs.length));
  const header = [
    "figure",
    ...Array.from({ length: runCount }, (_, i) => `run ${i + 1}`),
    "median",
    "target",
    "on the median",
    "every run",
  ];
  const rows = summaries.map((s) => {
    const t = s.target;
    return [
      s.name,
      ...s.runs.map(figureText),
      figureText(s.median),
      t ? `${t.op} ${t.bound}` : "",
      t === undefined ? "" : s.met ? "met" : `MISSED by ${pct(s.medianMiss ?? 0)}`,
      t === undefined
        ? ""
        : s.runsWithinTolerance
          ? t.runTolerance === 0
            ? "all met"
            : `none misses by > ${pct(t.runTolerance)}`
          : `MISSED: worst run by ${pct(s.worstRunMiss ?? 0)}`,
    ];
  });
  return `${title}\n${pad([header, ...rows])}`;
}

// ---------------------------------------------------------------------------------------------
// Chart

interface Bar {
  label: string;
  value: number;
  color: string;
  /** Drawn as an outline: a target, not a measurement. */
  outline?: boolean;
}

const COLORS = { zkgrid: "#2f6fb0", bullmq: "#c0504d", ceiling: "#8a8a8a" };

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** One panel of horizontal bars, each labelled with its value; returns the SVG and its height. */
function panel(
  title: string,
  unit: string,
  bars: Bar[],
  y0: number,
  width: number,
): { svg: string; height: number } {
  const labelWidth = 330;
  const barArea = width - labelWidth - 110;
  const rowHeight = 24;
  const max = Math.max(...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
  const parts = [`<text x="10" y="${y0 + 18}" font-size="15" font-weight="bold">${escapeXml(title)}</text>`];
  bars.forEach((bar, i) => {
    const y = y0 + 30 + i * rowHeight;
    const w = Number.isFinite(bar.value) ? Math.max(1, (bar.value / max) * barArea) : 0;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 15}" font-size="12" text-anchor="end">${escapeXml(bar.label)}</text>`,
      bar.outline
        ? `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 7}" fill="none" stroke="${bar.color}" stroke-width="1.5" stroke-dasharray="5 3"/>`
        : `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 7}" fill="${bar.color}"/>`,
      `<text x="${labelWidth + w + 6}" y="${y + 15}" font-size="12">${Number.isFinite(bar.value) ? escapeXml(`${formatNumber(bar.value)} ${unit}`) : "n/a"}</text>`,
    );
  });
  return { svg: parts.join("\n"), height: 40 + bars.length * rowHeight };
}

function formatNumber(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString("en-US");
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A self-contained SVG: throughput against BullMQ and the ceilings, and latency percentiles. */
export function renderChart(results: BenchResult[], subtitle: string, throughputTarget: number): string {
  const width = 900;
  const panels: Array<{ title: string; unit: string; bars: Bar[] }> = [];
  const tp = throughputs(results);
  const ceil = ceilings(results);
  for (const workload of ["noop", "shell"] as const) {
    const bars: Bar[] = tp
      .filter((r) => r.workload === workload)
      .map((r) => ({ label: `${r.system} (${r.shape})`, value: r.tasksPerSecond, color: COLORS[r.system] }));
    if (workload === "noop") {
      const bull = best(tp.filter((r) => r.system === "bullmq" && r.workload === "noop"));
      if (bull)
        bars.push({
          label: `target: ${throughputTarget} × BullMQ`,
          value: throughputTarget * bull.tasksPerSecond,
          color: COLORS.zkgrid,
          outline: true,
        });
      const c = ceil.find((x) => x.name === "zk-creates");
      if (c) bars.push({ label: "ceiling: ZooKeeper creates", value: c.perSecond, color: COLORS.ceiling });
    } else {
      const spawns = ceil.filter((x) => x.name === "spawn");
      const one =
        spawns.find((x) => x.rounds !== undefined) ?? spawns.find((x) => x.detail.includes("from 1 process"));
      if (one)
        bars.push({
          label: "target: 80% of spawn (1 process)",
          value: 0.8 * one.perSecond,
          color: COLORS.zkgrid,
          outline: true,
        });
      for (const c of spawns) {
        bars.push({
          // The one measured beside the rounds says so briefly: its whole detail outgrows the label column.
          label:
            c.rounds === undefined
              ? `ceiling: sh -c true ${c.detail.replace(/^.* from /, "from ")}`
              : "ceiling: sh -c true, beside the rounds",
          value: c.perSecond,
          color: COLORS.ceiling,
        });
      }
    }
    if (bars.length > 0) {
      panels.push({
        title: `${workload === "noop" ? "(a) no-op handler" : "(b) shell `true`"} tasks: throughput`,
        unit: "/s",
        bars,
      });
    }
  }
  const lat = latencies(results);
  if (lat.length > 0) {
    const bars: Bar[] = [];
    for (const p of ["p50", "p95", "p99"] as const) {
      for (const r of lat)
        bars.push({ label: `${r.system} ${p}`, value: r.latencyMs[p], color: COLORS[r.system] });
      const floor = ceilings(results).find((c) => c.name === "zk-relay")?.latencyMs;
      if (floor)
        bars.push({ label: `floor: 3 ZooKeeper writes ${p}`, value: floor[p], color: COLORS.ceiling });
      const direct = ceilings(results).find((c) => c.name === "zk-direct")?.latencyMs;
      if (direct)
        bars.push({ label: `floor: direct task, 2 writes ${p}`, value: direct[p], color: COLORS.ceiling });
      const bull = lat.find((r) => r.system === "bullmq");
      if (p === "p50" && bull) {
        bars.push({
          label: "target p50: 2 × BullMQ",
          value: 2 * bull.latencyMs.p50,
          color: COLORS.zkgrid,
          outline: true,
        });
      }
    }
    panels.push({ title: "(c) latency, one task at a time (submit → result)", unit: "ms", bars });
  }
  const scale = results.find((r): r is ScaleResult => r.kind === "scale");
  if (scale && !scale.error) {
    panels.push({
      title: `scale: ${scale.count.toLocaleString("en-US")} tasks queued at once`,
      unit: "s",
      bars: [
        { label: "accepted (all in the queue)", value: scale.acceptedSeconds, color: COLORS.zkgrid },
        { label: "assigned (queue empty)", value: scale.assignedSeconds, color: COLORS.zkgrid },
        { label: "drained (all results seen)", value: scale.drainedSeconds, color: COLORS.zkgrid },
      ],
    });
  }
  let y = 50;
  const bodies: string[] = [];
  for (const p of panels) {
    const { svg, height } = panel(p.title, p.unit, p.bars, y, width);
    bodies.push(svg);
    y += height + 14;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="18" font-weight="bold">zkgrid benchmark</text>`,
    `<text x="10" y="40" font-size="12" fill="#555">${escapeXml(subtitle)}</text>`,
    ...bodies,
    "</svg>",
    "",
  ].join("\n");
}
