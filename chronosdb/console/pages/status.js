// Server status from GET /metrics (Prometheus text), refreshed every REFRESH_MS.
//
// Counters become rates by differencing two scrapes (points/s, queries/s, writes/s); gauges are
// shown as they are. The two rates are also charted over the last few minutes.

import { metricsText } from "../api.js";
import { TimeChart } from "../chart.js";
import { esc, say, formatBytes } from "../ui.js";

const REFRESH_MS = 2000;
const CHART_SPAN_MS = 5 * 60e3;

// [{name, labels: {k: v}, value}] from the text exposition format; comments skipped.
export function parsePrometheus(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2].replace(/\\(.)/g, "$1");
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// Sum of every sample of `name` whose labels include `match`; NaN when there is none.
export function total(samples, name, match = {}) {
  let sum = NaN;
  for (const s of samples) {
    if (s.name !== name || !Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    sum = (isNaN(sum) ? 0 : sum) + s.value;
  }
  return sum;
}

const TILES = [
  ["points/s", "rate", "chronosdb_points_written_total", {}, (v) => v.toFixed(1)],
  ["queries/s", "rate", "chronosdb_http_requests_total", { route: "/query" }, (v) => v.toFixed(2)],
  ["write requests/s", "rate", "chronosdb_http_requests_total", { route: "/write" }, (v) => v.toFixed(2)],
  ["shards", "gauge", "chronosdb_shards", {}, String],
  ["segment files", "gauge", "chronosdb_segments", {}, String],
  ["segment bytes", "gauge", "chronosdb_segment_bytes", {}, formatBytes],
  ["compactions", "gauge", "chronosdb_compactions_total", {}, String],
  ["snapshots", "gauge", "chronosdb_snapshots_total", {}, String],
  ["WAL bytes", "gauge", "chronosdb_wal_bytes", {}, formatBytes],
  ["WAL fsyncs", "gauge", "chronosdb_wal_fsyncs", {}, String],
  ["cache (memory)", "gauge", "chronosdb_cache_bytes", {}, formatBytes],
  ["resident memory", "gauge", "process_resident_memory_bytes", {}, formatBytes],
  ["points written", "gauge", "chronosdb_points_written_total", {}, String],
];

export async function mount(root) {
  root.innerHTML = `<h2>Server status <span class="muted" id="s-when"></span></h2>
    <div id="s-msg" class="msg"></div><div class="tiles" id="s-tiles"></div>
    <div id="s-chart"></div>
    <details><summary>Raw metrics</summary><pre id="s-raw"></pre></details>`;
  const $ = (s) => root.querySelector(s);
  const chart = new TimeChart($("#s-chart"), { height: 220, timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  chart.follow(CHART_SPAN_MS);
  let prev = null;
  let stopped = false;
  let timer = null;

  async function refresh() {
    let text;
    try { text = await metricsText(); say($("#s-msg"), ""); }
    catch (err) { say($("#s-msg"), err.message); return; }
    const now = Date.now();
    const samples = parsePrometheus(text);
    const tiles = [];
    for (const [label, kind, name, match, fmt] of TILES) {
      const v = total(samples, name, match);
      if (kind === "gauge") { if (!isNaN(v)) tiles.push([label, fmt(v)]); continue; }
      if (prev === null) { tiles.push([label, "…"]); continue; }
      const before = total(prev.samples, name, match);
      const rate = (isNaN(v) ? 0 : v) - (isNaN(before) ? 0 : before);
      const perSec = Math.max(0, rate) / ((now - prev.at) / 1000);
      tiles.push([label, fmt(perSec)]);
      if (label === "points/s" || label === "queries/s") chart.append(label, [[now, perSec]]);
    }
    $("#s-tiles").innerHTML = tiles.map(([l, v]) => `<div class="tile" data-metric="${esc(l)}"><div class="label">${esc(l)}</div><div class="value">${esc(v)}</div></div>`).join("");
    $("#s-raw").textContent = text;
    $("#s-when").textContent = `· refreshed ${new Date(now).toLocaleTimeString()}`;
    prev = { at: now, samples };
  }

  const loop = async () => {
    await refresh();
    if (!stopped) timer = setTimeout(loop, REFRESH_MS);
  };
  await loop();
  return () => { stopped = true; clearTimeout(timer); };
}
