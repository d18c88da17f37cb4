import { createHash } from "node:crypto";

// The page is self-contained: no external assets, and the script renders every value with
// textContent (never innerHTML), so nothing a task prints can become markup.

const STYLE = `
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --ok: #14804a; --bad: #c4320a;
  --warn: #b54708; --run: #1d5fd1; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; padding: 12px 20px; background: #101828; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .muted { color: #98a2b3; }
main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; max-height: 4.5em; overflow: hidden; color: #344054; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #eaecf0; color: var(--fg); }
.badge.live { background: #d1fadf; color: var(--ok); }
.badge.down { background: #fee4e2; color: var(--bad); }
.state { font-weight: 600; }
.state-succeeded { color: var(--ok); }
.state-failed, .state-timed-out, .state-rejected { color: var(--bad); }
.state-cancelled { color: var(--warn); }
.state-running, .state-assigned { color: var(--run); }
.state-queued { color: var(--muted); }
.state-delayed { color: var(--muted); font-style: italic; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; }
.tile { flex: 1 0 90px; border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.tile .n { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .k { font-size: 12px; color: var(--muted); }
.bar { width: 90px; height: 8px; background: #eaecf0; border-radius: 4px; overflow: hidden; display: inline-block; vertical-align: middle; }
.bar > span { display: block; height: 100%; background: var(--run); }
svg { width: 100%; height: 180px; display: block; }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
.sw-ok { background: #32d583; } .sw-bad { background: #f97066; } .sw-depth { background: #2e90fa; }
.empty { color: var(--muted); font-style: italic; }
ul.problems { margin: 0; padding-left: 18px; color: var(--bad); }
button { font: inherit; font-size: 12px; padding: 2px 10px; border: 1px solid #d0d5dd; border-radius: 6px; background: #fff; cursor: pointer; }
button:hover { background: #f2f4f7; }
button.danger { color: var(--bad); border-color: #fda29b; }
input { font: inherit; font-size: 12px; padding: 2px 6px; border: 1px solid #d0d5dd; border-radius: 6px; width: 9em; }
.controls { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-top: 8px; }
.message { font-size: 12px; margin-top: 6px; min-height: 1.4em; }
.message.bad { color: var(--bad); }
.message.ok { color: var(--ok); }
.firing { display: inline-block; margin: 0 4px 2px 0; padding: 0 6px; border: 1px solid var(--line); border-radius: 8px; font-size: 12px; white-space: nowrap; }
.firing.skipped { color: var(--muted); font-style: italic; }
`;

const SCRIPT = `
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var last = null;
  // Present only when the dashboard was started with control: sent back on every control request.
  var tokenMeta = document.querySelector('meta[name="zkgrid-control-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : "";

  function byId(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c) {
      if (c instanceof Node) { var td = el("td"); td.appendChild(c); tr.appendChild(td); }
      else if (c && typeof c === "object") { tr.appendChild(el("td", c.cls, c.text)); }
      else tr.appendChild(el("td", null, c === undefined ? "" : c));
    });
    return tr;
  }
  function emptyRow(tbody, columns, text) {
    var td = el("td", "empty", text);
    td.setAttribute("colspan", String(columns));
    var tr = el("tr"); tr.appendChild(td); tbody.appendChild(tr);
  }
  function span(ms) {
    if (ms === undefined || ms === null || isNaN(ms)) return "";
    if (ms < 0) ms = 0;
    if (ms < 1000) return ms + "ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m" + Math.floor(s % 60) + "s";
    return Math.floor(m / 60) + "h" + (m % 60) + "m";
  }
  function ago(t) { return t === undefined ? "" : span(Date.now() - t) + " ago"; }
  function lastLines(text, n) {
    if (!text) return "";
    var lines = text.replace(/\\n$/, "").split("\\n");
    return lines.slice(-n).join("\\n");
  }

  function renderHeader(s) {
    byId("root").textContent = s.root;
    var leader = s.leader;
    byId("leader").textContent = leader ? (leader.name || leader.node) + " (epoch " + leader.seq + ")" : "no leader";
    byId("leader").setAttribute("data-leader", leader && leader.name ? leader.name : "");
    var conn = byId("conn");
    conn.textContent = "ZooKeeper " + s.connection;
    conn.className = "badge " + (s.connection === "connected" ? "live" : "down");
  }

  function renderTiles(s) {
    var tiles = byId("tiles");
    clear(tiles);
    var keys = ["queued", "delayed", "assigned", "running", "succeeded", "failed", "timed-out", "cancelled", "rejected"];
    keys.forEach(function (k) {
      var t = el("div", "tile");
      t.setAttribute("data-count", k);
      t.appendChild(el("div", "n state-" + k, s.counts[k]));
      t.appendChild(el("div", "k", k));
      tiles.appendChild(t);
    });
    var rate = el("div", "tile");
    rate.appendChild(el("div", "n", s.throughput.perSecond));
    rate.appendChild(el("div", "k", "finished/s (1 min)"));
    tiles.appendChild(rate);
  }

  function renderMasters(s) {
    var tbody = byId("masters");
    clear(tbody);
    if (s.masters.length === 0) return emptyRow(tbody, 6, "no master is running");
    s.masters.forEach(function (m) {
      var tr = row([
        { cls: "state " + (m.leader ? "state-succeeded" : "state-queued"), text: m.leader ? "leader" : "standby" },
        m.name || m.node, m.host || "", m.pid || "", { cls: "num", text: m.seq }, ago(m.startedAt)
      ]);
      tr.setAttribute("data-master", m.name || m.node);
      if (m.problem) tr.title = m.problem;
      tbody.appendChild(tr);
    });
  }

  function renderWorkers(s) {
    var tbody = byId("workers");
    clear(tbody);
    if (s.workers.length === 0) return emptyRow(tbody, 7, "no worker is registered");
    s.workers.forEach(function (w) {
      var bar = el("span", "bar");
      var fill = el("span");
      fill.style.width = Math.min(100, Math.round(w.load * 100)) + "%";
      bar.appendChild(fill);
      var load = el("span");
      load.appendChild(bar);
      load.appendChild(document.createTextNode(" " + w.assigned + "/" + w.capacity));
      var tr = row([w.name, w.host || "", load, { cls: "num", text: w.running }, (w.labels || []).join(", "),
        w.version || "", ago(w.startedAt)]);
      tr.setAttribute("data-worker", w.name);
      if (w.problem) tr.title = w.problem;
      tbody.appendChild(tr);
    });
  }

  function renderQueue(s) {
    byId("depth").textContent = String(s.queue.depth);
    byId("oldest").textContent = s.queue.oldestSubmittedAt ? "oldest waiting " + ago(s.queue.oldestSubmittedAt) : "";
    var tbody = byId("priorities");
    clear(tbody);
    if (s.queue.byPriority.length === 0) return emptyRow(tbody, 2, "nothing waits");
    s.queue.byPriority.forEach(function (p) {
      tbody.appendChild(row([{ cls: "num", text: p.priority }, { cls: "num", text: p.count }]));
    });
  }

  function button(text, action, body, cls) {
    var b = el("button", cls, text);
    b.type = "button";
    b.setAttribute("data-action", action);
    b.addEventListener("click", function () { send(action, body); });
    return b;
  }

  function say(text, ok) {
    var m = byId("control-message");
    if (!m) return;
    m.textContent = text;
    m.className = "message " + (ok ? "ok" : "bad");
  }

  // Control requests: POST with the page's token; the server checks it and the Origin.
  function send(action, body) {
    say("…", true);
    fetch("api/control/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Zkgrid-Token": token },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (j) {
        if (r.ok) say(j.done, true); else say(j.error || ("HTTP " + r.status), false);
        if (action.indexOf("schedule") >= 0) loadSchedules();
      });
    }, function (err) { say("request failed: " + err, false); });
  }

  function labelInput() {
    return byId("control-label").value.trim();
  }

  // A button rebuilt between press and release gets no click: hold the panels still while a pointer is down.
  var pressing = false;
  document.addEventListener("pointerdown", function () { pressing = true; }, true);
  document.addEventListener("pointerup", function () {
    setTimeout(function () { pressing = false; if (last) renderGate(last); loadSchedules(); }, 0);
  }, true);

  // Rebuilt only when the gate changes (and every 10 s for the ages).
  var gateKey = "";
  function renderGate(s) {
    var gate = s.gate || { v: 1 };
    var key = JSON.stringify(gate) + Math.floor(Date.now() / 10000);
    if (key === gateKey || pressing) return;
    gateKey = key;
    var badge = byId("gate-state");
    badge.textContent = gate.paused ? "grid paused" : "grid open";
    badge.className = "badge " + (gate.paused ? "down" : "live");
    var tbody = byId("gate");
    clear(tbody);
    function since(p) { return ago(p.at) + (p.by ? " by " + p.by : ""); }
    var rows = [];
    if (gate.paused) rows.push({ cells: ["grid", "paused: no task starts", since(gate.paused)], act: ["Resume", "resume", {}] });
    Object.keys(gate.pausedLabels || {}).sort().forEach(function (l) {
      rows.push({ cells: ["label " + l, "paused", since(gate.pausedLabels[l])], act: ["Resume", "resume", { label: l }], label: l });
    });
    Object.keys(gate.limits || {}).sort().forEach(function (l) {
      var lim = gate.limits[l];
      rows.push({ cells: ["label " + l, "at most " + lim.starts + " starts per " + span(lim.perMs), since(lim)],
        act: ["Remove limit", "remove-limit", { label: l }], label: l });
    });
    var toggle = byId("control-grid");
    if (toggle) {
      clear(toggle);
      toggle.appendChild(gate.paused ? button("Resume grid", "resume", {}) : button("Pause grid", "pause", {}, "danger"));
    }
    if (rows.length === 0) return emptyRow(tbody, token ? 4 : 3, "nothing paused, no start limit");
    rows.forEach(function (r) {
      var cells = r.cells.slice();
      if (token) cells.push(button(r.act[0], r.act[1], r.act[2]));
      var tr = row(cells);
      if (r.label) tr.setAttribute("data-label", r.label);
      tbody.appendChild(tr);
    });
  }

  function when(t, ahead) {
    if (!t) return "";
    var d = t - Date.now();
    // A next slot read up to 2 s ago may have passed since: it is being fired, not late.
    var rel = d >= 0 ? "in " + span(d) : ahead ? "due now" : span(-d) + " ago";
    return new Date(t).toLocaleTimeString() + " (" + rel + ")";
  }

  var schedulesKey = "";
  function renderSchedules(list) {
    var key = JSON.stringify(list);
    if (key === schedulesKey || pressing) return;
    schedulesKey = key;
    byId("schedule-count").textContent = String(list.length);
    var tbody = byId("schedules");
    clear(tbody);
    if (list.length === 0) return emptyRow(tbody, token ? 8 : 7, "no schedule (zkgrid schedule add)");
    list.forEach(function (sc) {
      var timing = sc.cron ? sc.cron + " (" + sc.tz + ")" : sc.everyMs ? "every " + span(sc.everyMs) : "";
      var policy = sc.catchUp ? "catch-up " + sc.catchUp + (sc.catchUpMax ? " (max " + sc.catchUpMax + ")" : "") +
        ", overlap " + sc.overlap : "";
      var firings = el("div");
      sc.firings.slice(0, 10).forEach(function (f) {
        var what = f.skipped ? "skipped (" + f.skipped + ")" : f.state || "fired";
        var chip = el("span", "firing " + (f.skipped ? "skipped" : "state-" + (f.state || "")),
          new Date(f.slot).toLocaleTimeString() + " " + what);
        chip.setAttribute("data-slot", String(f.slot));
        chip.setAttribute("data-state", f.skipped ? "skipped" : f.state || "");
        if (f.task) chip.title = f.task;
        firings.appendChild(chip);
      });
      if (sc.firings.length === 0) firings.appendChild(el("span", "empty", "none yet"));
      var state = sc.problem ? { cls: "state state-failed", text: "unreadable" }
        : { cls: "state " + (sc.paused ? "state-cancelled" : "state-succeeded"), text: sc.paused ? "paused" : "active" };
      var cells = [{ cls: "mono", text: sc.name }, { cls: "mono", text: timing }, state, when(sc.next, true),
        sc.lastFired ? when(sc.lastFired) : "", policy, firings];
      if (token) {
        cells.push(sc.problem ? "" : sc.paused ? button("Resume", "resume-schedule", { name: sc.name })
          : button("Pause", "pause-schedule", { name: sc.name }, "danger"));
      }
      var tr = row(cells);
      tr.setAttribute("data-schedule", sc.name);
      tr.setAttribute("data-paused", sc.paused ? "true" : "false");
      if (sc.problem) tr.title = sc.problem;
      tbody.appendChild(tr);
    });
  }

  // Schedules are read on request, not streamed: asked for every 2 s (the server shares one read).
  function loadSchedules() {
    fetch("api/schedules").then(function (r) { return r.ok ? r.json() : null; })
      .then(function (list) { if (list) renderSchedules(list); }, function () {});
  }

  function renderChart(s) {
    var chart = byId("chart");
    clear(chart);
    var W = 600, H = 180, L = 36, R = 36, T = 10, B = 22;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    chart.setAttribute("preserveAspectRatio", "none");
    var buckets = s.throughput.buckets;
    var n = buckets.length || 1;
    var maxDone = 1;
    buckets.forEach(function (b) { if (b.finished > maxDone) maxDone = b.finished; });
    var history = s.queue.history || [];
    var maxDepth = 1;
    history.forEach(function (h) { if (h.depth > maxDepth) maxDepth = h.depth; });
    var first = buckets.length ? buckets[0].start : s.at;
    var bucketMs = s.throughput.bucketMs;
    var bw = (W - L - R) / n;
    function x(t) { return L + ((t - first) / bucketMs) * bw; }
    chart.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#d0d5dd" }));
    buckets.forEach(function (b, i) {
      if (!b.finished) return;
      var h = ((H - T - B) * b.finished) / maxDone;
      var hs = ((H - T - B) * b.succeeded) / maxDone;
      var bx = L + i * bw + 0.5;
      var w = Math.max(1, bw - 1);
      chart.appendChild(svg("rect", { x: bx, y: H - B - h, width: w, height: h - hs, fill: "#f97066" }));
      var ok = svg("rect", { x: bx, y: H - B - hs, width: w, height: hs, fill: "#32d583" });
      var tip = svg("title", {});
      tip.textContent = b.finished + " finished (" + b.succeeded + " succeeded) at " + new Date(b.start).toLocaleTimeString();
      ok.appendChild(tip);
      chart.appendChild(ok);
    });
    if (history.length > 0) {
      var points = history.map(function (h) {
        return (x(h.start) + bw / 2).toFixed(1) + "," + (H - B - ((H - T - B) * h.depth) / maxDepth).toFixed(1);
      });
      chart.appendChild(svg("polyline", { points: points.join(" "), fill: "none", stroke: "#2e90fa", "stroke-width": 2 }));
      var end = points[points.length - 1].split(",");
      chart.appendChild(svg("circle", { cx: end[0], cy: end[1], r: 3, fill: "#2e90fa" }));
    }
    function label(tx, ty, text, anchor) {
      var t = svg("text", { x: tx, y: ty, "font-size": 11, fill: "#667085", "text-anchor": anchor });
      t.textContent = text;
      chart.appendChild(t);
    }
    label(L - 4, T + 10, String(maxDone), "end");
    label(L - 4, H - B, "0", "end");
    label(W - R + 4, T + 10, String(maxDepth), "start");
    label(L, H - 6, span(s.throughput.windowMs) + " ago", "start");
    label(W - R, H - 6, "now", "end");
  }

  function taskTime(t) {
    if (t.state === "delayed" && t.dueAt) return "due in " + span(t.dueAt - Date.now());
    if (t.finishedAt) return ago(t.finishedAt);
    if (t.startedAt) return "for " + span(Date.now() - t.startedAt);
    if (t.assignedAt) return "for " + span(Date.now() - t.assignedAt);
    return ago(t.submittedAt);
  }

  function renderTasks(s) {
    var tbody = byId("tasks");
    clear(tbody);
    var delayed = (s.delayed || []).slice().sort(function (a, b) { return a.dueAt - b.dueAt; });
    var list = s.active.concat(delayed, s.recent);
    if (list.length === 0) return emptyRow(tbody, 7, "no task yet");
    list.forEach(function (t) {
      var exit = t.signal ? "signal " + t.signal : t.exitCode !== undefined ? "exit " + t.exitCode : "";
      var duration = t.startedAt && t.finishedAt ? span(t.finishedAt - t.startedAt) : "";
      var tail = lastLines(t.stderrTail && t.state !== "succeeded" ? t.stderrTail : t.stdoutTail || t.stderrTail, 3);
      if (!tail && t.reason) tail = t.reason;
      var tr = row([
        { cls: "mono", text: t.id },
        { cls: "state state-" + t.state, text: t.state },
        t.worker || "",
        { cls: "num", text: t.attempt },
        t.command || exit,
        taskTime(t) + (duration ? " (" + duration + ")" : ""),
        el("pre", "tail", tail)
      ]);
      tr.setAttribute("data-task-id", t.id);
      tr.setAttribute("data-state", t.state);
      tbody.appendChild(tr);
    });
  }

  function renderProblems(s) {
    var list = byId("problems");
    clear(list);
    byId("problems-section").hidden = s.problems.length === 0;
    s.problems.forEach(function (p) { list.appendChild(el("li", null, p)); });
  }

  function render(s) {
    renderHeader(s); renderTiles(s); renderMasters(s); renderWorkers(s); renderQueue(s); renderGate(s); renderChart(s);
    renderTasks(s); renderProblems(s);
    byId("updated").textContent = "updated " + new Date(s.at).toLocaleTimeString();
  }

  function setLive(live) {
    var b = byId("stream");
    b.textContent = live ? "live" : "reconnecting";
    b.className = "badge " + (live ? "live" : "down");
  }

  var source = new EventSource("events");
  source.addEventListener("snapshot", function (ev) {
    last = JSON.parse(ev.data);
    setLive(true);
    render(last);
  });
  source.onerror = function () { setLive(false); };
  loadSchedules();
  setInterval(loadSchedules, 2000);
  if (token) {
    byId("pause-label").addEventListener("click", function () { send("pause", { label: labelInput() }); });
    byId("resume-label").addEventListener("click", function () { send("resume", { label: labelInput() }); });
    byId("set-limit").addEventListener("click", function () {
      send("limit", { label: labelInput(), limit: byId("control-limit").value.trim() });
    });
    byId("remove-limit").addEventListener("click", function () { send("remove-limit", { label: labelInput() }); });
  }
  // Ages and running times move with the clock, not only with the grid.
  setInterval(function () { if (last) { renderTasks(last); renderMasters(last); renderWorkers(last); } }, 1000);
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/** Only the page's own inline script and style may run; it may fetch only from this server. */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const GATE_READ_ONLY = `<p class="empty">Read-only here: change it with <code>zkgrid pause</code>, <code>resume</code> and <code>limit</code> (or start the dashboard with <code>--control</code>).</p>`;

const GATE_CONTROLS = `<div class="controls"><span id="control-grid"></span></div>
    <div class="controls">
      <input id="control-label" placeholder="label" aria-label="label" autocomplete="off">
      <button type="button" id="pause-label" class="danger">Pause label</button>
      <button type="button" id="resume-label">Resume label</button>
      <input id="control-limit" placeholder="10/1s" aria-label="start limit" autocomplete="off">
      <button type="button" id="set-limit">Set limit</button>
      <button type="button" id="remove-limit">Remove limit</button>
    </div>
    <div id="control-message" class="message" role="status"></div>`;

/**
 * The dashboard page: static markup; every value is filled in by the script from `events`. With a
 * control `token` the page carries it (for the server to check) and shows the control buttons.
 */
export function dashboardPage(title: string, token?: string): string {
  const safeTitle = title.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const safeToken = (token ?? "").replace(/[^A-Za-z0-9_-]/g, "");
  const action = safeToken ? "<th></th>" : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${safeTitle}</title>${safeToken ? `\n<meta name="zkgrid-control-token" content="${safeToken}">` : ""}
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>${safeTitle}</h1>
  <span class="muted">root <span id="root" class="mono"></span></span>
  <span class="muted">leader <strong id="leader">…</strong></span>
  <span id="conn" class="badge">ZooKeeper …</span>
  <span id="stream" class="badge">connecting</span>
  <span id="updated" class="muted"></span>
</header>
<main>
  <section class="wide"><h2>Tasks by state</h2><div id="tiles" class="tiles"></div></section>
  <section>
    <h2>Masters</h2>
    <table><thead><tr><th>role</th><th>name</th><th>host</th><th>pid</th><th class="num">epoch</th><th>up</th></tr></thead>
    <tbody id="masters"></tbody></table>
  </section>
  <section>
    <h2>Workers</h2>
    <table><thead><tr><th>name</th><th>host</th><th>load</th><th class="num">running</th><th>labels</th><th>version</th><th>up</th></tr></thead>
    <tbody id="workers"></tbody></table>
  </section>
  <section>
    <h2>Queue</h2>
    <div class="tiles"><div class="tile"><div class="n" id="depth">0</div><div class="k">queued <span id="oldest"></span></div></div></div>
    <table><thead><tr><th class="num">priority</th><th class="num">tasks</th></tr></thead><tbody id="priorities"></tbody></table>
  </section>
  <section>
    <h2>Gate <span id="gate-state" class="badge">grid open</span></h2>
    <table><thead><tr><th>what</th><th>held</th><th>since</th>${action}</tr></thead><tbody id="gate"></tbody></table>
    ${safeToken ? GATE_CONTROLS : GATE_READ_ONLY}
  </section>
  <section>
    <h2>Throughput and queue depth</h2>
    <svg id="chart" role="img" aria-label="tasks finished per 5 seconds and queue depth over the last 10 minutes"></svg>
    <div class="legend"><span><i class="sw-ok"></i>succeeded</span><span><i class="sw-bad"></i>other final states</span><span><i class="sw-depth"></i>queue depth (right scale)</span></div>
  </section>
  <section class="wide">
    <h2>Schedules <span id="schedule-count" class="badge">0</span></h2>
    <table><thead><tr><th>name</th><th>cron / every</th><th>state</th><th>next slot</th><th>last fired</th><th>policy</th><th>recent firings (newest first)</th>${action}</tr></thead>
    <tbody id="schedules"></tbody></table>
  </section>
  <section class="wide">
    <h2>Running, delayed and recent tasks</h2>
    <table><thead><tr><th>id</th><th>state</th><th>worker</th><th class="num">attempt</th><th>command / exit</th><th>when</th><th>output (tail)</th></tr></thead>
    <tbody id="tasks"></tbody></table>
  </section>
  <section class="wide" id="problems-section" hidden><h2>Problems</h2><ul id="problems" class="problems"></ul></section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
