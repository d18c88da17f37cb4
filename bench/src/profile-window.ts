/**
 * The leader's CPU profile over each curve step's CPU window (`--scale --profile`, see scale-curve.ts):
 * `node bench/dist/profile-window.js <profile dir> [top]` prints, for every `curve-<workers>-window.json`
 * there, the functions and the files that took the most of the leader's samples inside the window, in µs
 * per task. A profile covers the master's whole life (workers joining, warm-up, exit): only the window
 * measures what `leaderCpuUsPerTask` measures.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface CurveWindow {
  workers: number;
  leaderPid: number;
  fromUs: number;
  toUs: number;
  tasks: number;
}

const [dir, topText = "25"] = process.argv.slice(2);
const top = Number(topText);
if (dir === undefined || !Number.isInteger(top) || top < 1) {
  process.stderr.write("usage: profile-window <profile dir> [top, default 25]\n");
  process.exit(2);
}

const files = readdirSync(dir);
const windows = files
  .filter((f) => /^curve-\d+-window\.json$/.test(f))
  .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as CurveWindow)
  .sort((a, b) => a.workers - b.workers);
if (windows.length === 0) {
  process.stderr.write(`profile-window: no curve-<workers>-window.json in ${dir} (run with --profile)\n`);
  process.exit(2);
}

for (const w of windows) {
  const file = files.find((f) => f.endsWith(".cpuprofile") && f.includes(`.${w.leaderPid}.`));
  if (file === undefined) {
    process.stdout.write(`${w.workers} workers: no profile of the leader (pid ${w.leaderPid})\n\n`);
    continue;
  }
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  let at = profile.startTime;
  // A sample's time is the gap to the next one.
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < w.fromUs || at > w.toUs) continue;
    const node = byId.get(profile.samples[i] as number);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") continue;
    const us = profile.timeDeltas[i + 1] ?? 0;
    const where = url.replace(/^.*\/(node_modules|apps|packages)\//, "$1/");
    const fn = `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    const f = where || functionName;
    byFile.set(f, (byFile.get(f) ?? 0) + us);
    total += us;
  }
  const perTask = (us: number) => (us / w.tasks).toFixed(1).padStart(8);
  const list = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${perTask(us)} µs/task ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  process.stdout.write(
    `${w.workers} workers: ${perTask(total).trim()} µs/task sampled in the window (${w.tasks} tasks, ${((w.toUs - w.fromUs) / 1e6).toFixed(1)} s)\n` +
      `by function (self):\n${list(byFunction)}\nby file (self):\n${list(byFile)}\n\n`,
  );
}
