// The query page: editor, results as tables and a chart, CSV export, drag-to-zoom, live mode.
//
// A run sends the editor's whole text as one POST /query (epoch=ms, so times are numbers the
// chart can use). A parse error ("... at line L, char C") is shown and its position marked in
// the editor. Zooming re-runs the query that produced the chart with its time range narrowed
// (influxql.withTimeRange); "reset zoom" runs the original again. Live turns the query into a
// streaming query (GET /stream with history=true) and appends each event's rows to the table
// and chart, which then scrolls to keep the newest point in view.

import { queryRaw, column, stream } from "../api.js";
import { QueryEditor, pushHistory, loadHistory } from "../editor.js";
import { TimeChart, formatTime } from "../chart.js";
import { withTimeRange, isSelect, splitStatements, quoteIdent } from "../influxql.js";
import { esc, say, seriesLabel, seriesTable, toCsv, download } from "../ui.js";

const LIVE_ROWS_SHOWN = 200;
const ZONES = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"];

export async function mount(root, { params }) {
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const zones = [...new Set([browserZone, ...ZONES])];
  root.innerHTML = `
    <section class="query-page">
      <div class="toolbar">
        <label>Database <select id="q-db"><option value="">(none)</option></select></label>
        <label>Time zone <select id="q-tz">${zones.map((z) => `<option${z === browserZone ? " selected" : ""}>${esc(z)}</option>`).join("")}</select></label>
        <button id="q-run" class="primary" title="Ctrl+Enter">Run</button>
        <label class="switch" title="Stream new points as they are written"><input type="checkbox" id="q-live"> Live</label>
        <button id="q-reset" hidden>Reset zoom</button>
        <button id="q-csv" disabled>Export CSV</button>
        <span class="spacer"></span>
        <button id="q-history-toggle">History</button>
      </div>
      <div class="query-main">
        <div class="query-col">
          <div id="q-editor"></div>
          <p class="hint muted">Ctrl+Enter runs · Ctrl+Space completes · Ctrl+↑/↓ walks the history · drag across the chart to zoom</p>
          <div id="q-msg" class="msg"></div>
          <div id="q-live-status" class="muted"></div>
          <div id="q-chart" hidden></div>
          <div id="q-results"></div>
        </div>
        <aside id="q-history" class="history" hidden><h3>History</h3><ol></ol></aside>
      </div>
    </section>`;
  const $ = (s) => root.querySelector(s);
  const dbSel = $("#q-db"), tzSel = $("#q-tz"), msg = $("#q-msg"), results = $("#q-results");
  const chartBox = $("#q-chart"), liveBox = $("#q-live"), liveStatus = $("#q-live-status");
  let lastSeries = [];
  let baseQuery = null; // the query the current chart came from, before any zoom
  let liveAbort = null;
  const schema = new Map(); // "db|kind|tag" -> Promise<[names]>

  const cached = (key, fn) => {
    if (!schema.has(key)) schema.set(key, fn().catch((e) => { schema.delete(key); throw e; }));
    return schema.get(key);
  };
  const completions = async (ctx) => {
    const db = dbSel.value;
    if (ctx.kind === "database") return cached("|db", () => column("SHOW DATABASES"));
    if (!db) return [];
    if (ctx.kind === "measurement") return cached(`${db}|m`, () => column("SHOW MEASUREMENTS", { db }));
    if (ctx.kind === "field") return cached(`${db}|f`, () => column("SHOW FIELD KEYS", { db }));
    if (ctx.kind === "tag") return cached(`${db}|t`, () => column("SHOW TAG KEYS", { db }));
    if (ctx.kind === "tagvalue") {
      return cached(`${db}|v|${ctx.tag}`, () => column(`SHOW TAG VALUES WITH KEY = ${quoteIdent(ctx.tag)}`, { db }, 1));
    }
    return [];
  };

  const editor = new QueryEditor($("#q-editor"), { completions, onRun: () => run() });
  const chart = new TimeChart(chartBox, { timeZone: tzSel.value, onZoom: (t0, t1) => zoom(t0, t1) });
  const fmt = (t) => formatTime(t, tzSel.value);

  try {
    for (const name of await column("SHOW DATABASES")) {
      dbSel.insertAdjacentHTML("beforeend", `<option>${esc(name)}</option>`);
    }
  } catch (err) { say(msg, err.message); }
  const remembered = params.get("db") || sessionStorage.getItem("chronosdb.db") || "";
  if ([...dbSel.options].some((o) => o.value === remembered)) dbSel.value = remembered;
  else if (dbSel.options.length > 1) dbSel.selectedIndex = 1;
  editor.value = params.get("q") || loadHistory()[0] || "SHOW MEASUREMENTS";

  function renderResults(seriesList, statementErrors = []) {
    lastSeries = seriesList;
    $("#q-csv").disabled = !seriesList.length;
    let html = statementErrors.map((e) => `<p class="msg error">${esc(e)}</p>`).join("");
    for (const s of seriesList) {
      html += `<div class="series"><h4>${esc(seriesLabel(s) || "result")}</h4>${seriesTable(s, { timeFormat: fmt })}</div>`;
    }
    if (!seriesList.length && !statementErrors.length) html += '<p class="muted">No rows.</p>';
    results.innerHTML = html;
  }

  // Lines for every numeric column of every series that has a time column.
  function chartSeries(seriesList) {
    const out = [];
    for (const s of seriesList) {
      const cols = s.columns || [];
      const ti = cols.indexOf("time");
      if (ti < 0) continue;
      const rows = s.values || [];
      cols.forEach((c, ci) => {
        if (ci === ti || !rows.some((r) => typeof r[ci] === "number")) return;
        out.push({ label: `${seriesLabel(s)}.${c}`, points: rows.map((r) => [r[ti], typeof r[ci] === "number" ? r[ci] : null]) });
      });
    }
    return out;
  }

  async function execute(text, { keepBase = false } = {}) {
    say(msg, "");
    const db = dbSel.value;
    sessionStorage.setItem("chronosdb.db", db);
    $("#q-run").disabled = true;
    try {
      const body = await queryRaw(text, { db, epoch: "ms" });
      const seriesList = [], errors = [];
      (body.results || []).forEach((r, i) => {
        if (r.error) errors.push(`statement ${i + 1}: ${r.error}`);
        for (const s of r.series || []) seriesList.push(s);
      });
      if (errors.length) editor.markError(errors[0]);
      renderResults(seriesList, errors);
      const lines = chartSeries(seriesList);
      chartBox.hidden = !lines.length;
      if (lines.length) {
        chart.follow(0);
        chart.setData(lines);
        if (!keepBase) baseQuery = splitStatements(text).length === 1 && isSelect(text) ? text : null;
      }
      $("#q-reset").hidden = !keepBase;
      return true;
    } catch (err) {
      renderResults([]);
      chartBox.hidden = true;
      const marked = editor.markError(err.message);
      say(msg, err.message + (marked ? "  (marked in the editor)" : ""));
      return false;
    } finally {
      $("#q-run").disabled = false;
    }
  }

  async function run() {
    stopLive();
    liveBox.checked = false;
    const text = editor.value.trim();
    if (!text) return;
    pushHistory(text);
    drawHistory();
    await execute(text);
  }

  async function zoom(t0, t1) {
    if (!baseQuery || liveAbort) { say(msg, "Zoom re-runs a single SELECT; this result cannot be narrowed.", "info"); return; }
    const narrowed = withTimeRange(baseQuery, t0, t1);
    editor.value = narrowed;
    await execute(narrowed, { keepBase: true });
  }

  // -- live --------------------------------------------------------------------------------
  function stopLive() {
    if (liveAbort) { liveAbort.abort(); liveAbort = null; }
    liveStatus.textContent = "";
  }

  async function startLive() {
    const text = editor.value.trim();
    if (splitStatements(text).length !== 1 || !isSelect(text)) {
      liveBox.checked = false;
      say(msg, "Live needs exactly one SELECT statement.");
      return;
    }
    if (!dbSel.value) { liveBox.checked = false; say(msg, "Choose a database for a live query."); return; }
    say(msg, "");
    pushHistory(text);
    drawHistory();
    const span = spanOf(text);
    const bySeries = new Map(); // label -> series with rows (for the table)
    let received = 0, dropped = 0;
    chart.setData([]);
    chart.follow(span);
    chartBox.hidden = false;
    renderResults([]);
    const ctl = new AbortController();
    liveAbort = ctl;
    const status = (state) => { liveStatus.textContent = `live (${state}): ${received} points received${dropped ? `, ${dropped} dropped by the server` : ""}`; };
    status("connecting");
    let redraw = null;
    const onEvent = ({ event, data }) => {
      if (event === "dropped") { dropped += (data && data.missed) || 0; status("open"); return; }
      if (!data || !data.series) return;
      for (const s of data.series) {
        const key = seriesLabel(s);
        let acc = bySeries.get(key);
        if (!acc) { acc = { name: s.name, tags: s.tags, columns: s.columns, values: [] }; bySeries.set(key, acc); }
        if (event === "partial") continue; // running values are shown only once final
        acc.values.push(...(s.values || []));
        if (acc.values.length > 10 * LIVE_ROWS_SHOWN) acc.values.splice(0, acc.values.length - LIVE_ROWS_SHOWN);
        received += (s.values || []).length;
        for (const line of chartSeries([s])) chart.append(line.label, line.points);
      }
      status("open");
      if (!redraw) redraw = setTimeout(() => {
        redraw = null;
        renderResults([...bySeries.values()].map((s) => ({ ...s, values: s.values.slice(-LIVE_ROWS_SHOWN).reverse() })));
      }, 250);
    };
    try {
      await stream({ db: dbSel.value, q: text, epoch: "ms", history: true, signal: ctl.signal, onEvent, onOpen: () => status("open") });
      if (liveAbort === ctl) status("closed by the server");
    } catch (err) {
      if (liveAbort !== ctl) return;
      const marked = editor.markError(err.message);
      say(msg, `Live query stopped: ${err.message}${marked ? "  (marked in the editor)" : ""}`);
      liveStatus.textContent = "";
    }
    if (liveAbort === ctl) { liveAbort = null; liveBox.checked = false; }
  }

  // The span to keep in view while live: the query's "now() - X" if it has one, else 5 minutes.
  function spanOf(text) {
    const m = /now\(\)\s*-\s*(\d+)(ms|s|m|h|d|w)\b/i.exec(text);
    if (!m) return 5 * 60e3;
    const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[m[2].toLowerCase()];
    return Number(m[1]) * unit;
  }

  // -- history -----------------------------------------------------------------------------
  function drawHistory() {
    const ol = root.querySelector("#q-history ol");
    ol.innerHTML = loadHistory().slice(0, 50).map((q, i) => `<li><a href="#" data-i="${i}">${esc(q)}</a></li>`).join("");
    for (const a of ol.querySelectorAll("a")) {
      a.addEventListener("click", (e) => { e.preventDefault(); editor.value = loadHistory()[Number(a.dataset.i)]; editor.focus(); });
    }
  }

  $("#q-run").addEventListener("click", () => run());
  $("#q-reset").addEventListener("click", () => { if (baseQuery) { editor.value = baseQuery; execute(baseQuery); } });
  $("#q-csv").addEventListener("click", () => download(`chronosdb-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`, toCsv(lastSeries)));
  $("#q-history-toggle").addEventListener("click", () => { const h = $("#q-history"); h.hidden = !h.hidden; drawHistory(); });
  liveBox.addEventListener("change", () => { if (liveBox.checked) startLive(); else stopLive(); });
  tzSel.addEventListener("change", () => { chart.setTimeZone(tzSel.value); if (!liveAbort) renderResults(lastSeries); });
  dbSel.addEventListener("change", () => sessionStorage.setItem("chronosdb.db", dbSel.value));
  drawHistory();
  editor.focus();
  if (params.get("q") && params.get("run") === "1") run();

  return () => stopLive();
}
