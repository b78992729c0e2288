// The time-series chart: one line per series on a <canvas>, drawn by this module.
//
// Layout: the plot area sits inside fixed margins (y labels left, time labels below). Time ticks
// come from `timeTicks`, a pure function: it picks the smallest step from STEPS (1s, 5s, 15s,
// 1m, 5m, 15m, 1h, 6h, 1d, ...) that keeps the ticks at most `maxTicks` apart, and aligns them
// to whole steps in the chosen time zone (so hourly ticks fall on the zone's hours and daily
// ticks on its midnights). Values get 1/2/5 x 10^k ticks (`niceTicks`).
// Interaction: hovering shows a read-out of every series at the nearest time; dragging across
// the plot selects a time range and calls onZoom(from, to) so the caller can re-query it;
// clicking a legend entry hides or shows that series. Live data is appended with `append`; with
// `follow(spanMs)` the time axis scrolls to keep the newest point at the right edge.

const SECOND = 1000, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
export const STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500,
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY,
];
export const COLORS = ["#2a6fdb", "#e4572e", "#29a35a", "#a05195", "#f0a202", "#17becf",
  "#8c564b", "#d62780", "#7f7f7f", "#bcbd22"];
const MARGIN = { left: 64, right: 16, top: 12, bottom: 42 };

// The smallest step of STEPS that gives at most `maxTicks` ticks over `spanMs`.
export function chooseTimeStep(spanMs, maxTicks = 8) {
  for (const s of STEPS) if (spanMs / s <= maxTicks) return s;
  return STEPS[STEPS.length - 1];
}

// Milliseconds to add to UTC to get wall-clock time in `timeZone` at instant `t`.
export function zoneOffset(timeZone, t) {
  const parts = {};
  for (const p of zoneFormat(timeZone, "parts").formatToParts(new Date(t))) parts[p.type] = p.value;
  const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day),
    Number(parts.hour) % 24, Number(parts.minute), Number(parts.second));
  return wall - Math.floor(t / 1000) * 1000;
}

const formats = new Map();
function zoneFormat(timeZone, kind) {
  const key = `${timeZone}|${kind}`;
  if (!formats.has(key)) {
    const opts = {
      parts: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" },
      day: { month: "short", day: "numeric" },
      minute: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
      second: { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" },
      full: { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", fractionalSecondDigits: 3 },
    }[kind];
    formats.set(key, new Intl.DateTimeFormat("en-GB", { ...opts, timeZone }));
  }
  return formats.get(key);
}

export function formatTime(t, timeZone) {
  return zoneFormat(timeZone, "full").format(new Date(t));
}

// Ticks over [min, max]: [{t, label, sub}] where `sub` (the date) is set on the first tick and
// wherever the date changes, for steps below a day.
export function timeTicks(min, max, timeZone = "UTC", maxTicks = 8) {
  if (!(max > min)) return [];
  const step = chooseTimeStep(max - min, maxTicks);
  const ticks = [];
  let t = alignUp(min, step, timeZone);
  let lastDay = "";
  for (let guard = 0; t <= max && guard < 1000; guard++) {
    const day = zoneFormat(timeZone, "day").format(new Date(t));
    let label;
    if (step >= DAY) label = day;
    else if (step >= MINUTE) label = zoneFormat(timeZone, "minute").format(new Date(t));
    else if (step >= SECOND) label = zoneFormat(timeZone, "second").format(new Date(t));
    else label = `${zoneFormat(timeZone, "second").format(new Date(t))}.${String(((t % 1000) + 1000) % 1000).padStart(3, "0")}`;
    const sub = step < DAY && day !== lastDay ? day : "";
    lastDay = day;
    ticks.push({ t, label, sub });
    t = alignUp(t + step, step, timeZone);
  }
  return ticks;
}

// The first instant >= t that is a whole multiple of `step` in the zone's wall-clock time.
function alignUp(t, step, timeZone) {
  const off = step >= MINUTE ? zoneOffset(timeZone, t) : 0;
  return Math.ceil((t + off) / step) * step - off;
}

// "Nice" value ticks (1, 2, 5 x 10^k) over [min, max].
export function niceTicks(min, max, count = 5) {
  if (!isFinite(min) || !isFinite(max)) return [];
  if (min === max) { min -= 1; max += 1; }
  const raw = (max - min) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function formatValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return Number(v.toPrecision(6)).toString();
}

// Index of the point in sorted `points` ([[t, v], ...]) nearest to time t.
function nearest(points, t) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(points[lo - 1][0] - t) <= Math.abs(points[lo][0] - t)) return lo - 1;
  return lo;
}

export class TimeChart {
  constructor(root, { onZoom = null, timeZone = "UTC", height = 320 } = {}) {
    this.root = root;
    this.onZoom = onZoom;
    this.timeZone = timeZone;
    this.height = height;
    this.series = []; // [{label, points: [[t, v]], color, hidden}]
    this.followSpan = 0;
    this.xRange = null;
    root.classList.add("chart");
    root.innerHTML = '<div class="chart-area"><canvas></canvas><div class="chart-select" hidden></div>'
      + '<div class="chart-readout" hidden></div></div><ul class="chart-legend"></ul>';
    this.canvas = root.querySelector("canvas");
    this.selectBox = root.querySelector(".chart-select");
    this.readout = root.querySelector(".chart-readout");
    this.legend = root.querySelector(".chart-legend");
    this.bindMouse();
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(root);
  }

  setTimeZone(tz) { this.timeZone = tz; this.draw(); }

  // series: [{label, points: [[t, v], ...]}] with numeric v (null = gap), sorted by t.
  setData(series) {
    this.series = series.map((s, i) => ({ ...s, color: COLORS[i % COLORS.length], hidden: false }));
    this.xRange = null;
    this.drawLegend();
    this.draw();
  }

  // Live points for the series named `label` (created if new); kept in time order.
  append(label, points) {
    let s = this.series.find((x) => x.label === label);
    if (!s) {
      s = { label, points: [], color: COLORS[this.series.length % COLORS.length], hidden: false };
      this.series.push(s);
      this.drawLegend();
    }
    for (const p of points) {
      if (s.points.length && p[0] < s.points[s.points.length - 1][0]) {
        s.points.splice(nearest(s.points, p[0]) + 1, 0, p);
        s.points.sort((a, b) => a[0] - b[0]);
      } else s.points.push(p);
    }
    if (this.followSpan) { // keep twice the visible span, so memory stays bounded
      const cut = s.points[s.points.length - 1][0] - 2 * this.followSpan;
      const i = s.points.findIndex((p) => p[0] >= cut);
      if (i > 0) s.points.splice(0, i);
    }
    this.scheduleDraw();
  }

  // Scroll with the data: the time axis shows the last `spanMs` up to the newest point (0 = off).
  follow(spanMs) { this.followSpan = spanMs; this.draw(); }

  scheduleDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  visible() { return this.series.filter((s) => !s.hidden); }

  bounds() {
    let tmin = Infinity, tmax = -Infinity, vmin = Infinity, vmax = -Infinity;
    for (const s of this.visible()) {
      for (const [t, v] of s.points) {
        if (t < tmin) tmin = t;
        if (t > tmax) tmax = t;
      }
    }
    if (this.followSpan && isFinite(tmax)) tmin = tmax - this.followSpan;
    if (this.xRange) [tmin, tmax] = this.xRange;
    for (const s of this.visible()) {
      for (const [t, v] of s.points) {
        if (t < tmin || t > tmax || v === null || typeof v !== "number") continue;
        if (v < vmin) vmin = v;
        if (v > vmax) vmax = v;
      }
    }
    if (tmin === tmax) { tmin -= SECOND; tmax += SECOND; }
    if (vmin === vmax) { vmin -= 1; vmax += 1; }
    const pad = (vmax - vmin) * 0.05;
    return { tmin, tmax, vmin: vmin - pad, vmax: vmax + pad };
  }

  draw() {
    const width = Math.max(200, this.root.clientWidth);
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    c.width = width * dpr;
    c.height = this.height * dpr;
    c.style.width = `${width}px`;
    c.style.height = `${this.height}px`;
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, this.height);
    const b = this.bounds();
    this.b = b;
    this.plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: this.height - MARGIN.top - MARGIN.bottom };
    const p = this.plot;
    const style = getComputedStyle(this.root);
    const fg = style.getPropertyValue("--chart-fg").trim() || "#555";
    const grid = style.getPropertyValue("--chart-grid").trim() || "#e5e5e5";
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = fg;
    let drawn = 0;
    if (!isFinite(b.tmin)) {
      g.fillText("no numeric data to chart", p.x + 8, p.y + 20);
      c.dataset.points = "0";
      return;
    }
    const x = (t) => p.x + ((t - b.tmin) / (b.tmax - b.tmin)) * p.w;
    const y = (v) => p.y + p.h - ((v - b.vmin) / (b.vmax - b.vmin)) * p.h;
    this.x = x;
    g.strokeStyle = grid;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of niceTicks(b.vmin, b.vmax, 5)) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(p.x, yy); g.lineTo(p.x + p.w, yy); g.stroke();
      g.fillText(formatValue(v), p.x - 6, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const maxTicks = Math.max(2, Math.floor(p.w / 90));
    for (const tk of timeTicks(b.tmin, b.tmax, this.timeZone, maxTicks)) {
      const xx = Math.round(x(tk.t)) + 0.5;
      g.beginPath(); g.moveTo(xx, p.y); g.lineTo(xx, p.y + p.h); g.stroke();
      if (xx + g.measureText(tk.label).width / 2 > width) continue; // would be cut off
      g.fillText(tk.label, xx, p.y + p.h + 5);
      if (tk.sub) g.fillText(tk.sub, xx, p.y + p.h + 19);
    }
    g.save();
    g.beginPath(); g.rect(p.x, p.y, p.w, p.h); g.clip();
    g.lineWidth = 1.5;
    for (const s of this.visible()) {
      g.strokeStyle = s.color;
      g.beginPath();
      let pen = false;
      for (const [t, v] of s.points) {
        if (v === null || typeof v !== "number") { pen = false; continue; }
        const xx = x(t), yy = y(v);
        if (pen) g.lineTo(xx, yy); else g.moveTo(xx, yy);
        pen = true;
        drawn++;
      }
      g.stroke();
      if (s.points.length < 60) { // few points: show them
        g.fillStyle = s.color;
        for (const [t, v] of s.points) if (typeof v === "number") g.fillRect(x(t) - 2, y(v) - 2, 4, 4);
      }
    }
    g.restore();
    g.strokeStyle = fg;
    g.strokeRect(p.x + 0.5, p.y + 0.5, p.w, p.h);
    c.dataset.points = String(drawn);
    c.dataset.tmin = String(b.tmin);
    c.dataset.tmax = String(b.tmax);
  }

  drawLegend() {
    this.legend.innerHTML = "";
    for (const s of this.series) {
      const li = document.createElement("li");
      li.innerHTML = '<span class="swatch"></span><span class="name"></span>';
      li.querySelector(".swatch").style.background = s.color;
      li.querySelector(".name").textContent = s.label;
      li.classList.toggle("off", s.hidden);
      li.title = "click to hide or show";
      li.addEventListener("click", () => { s.hidden = !s.hidden; li.classList.toggle("off", s.hidden); this.draw(); });
      this.legend.appendChild(li);
    }
  }

  timeAt(px) {
    const { tmin, tmax } = this.b;
    return tmin + ((px - this.plot.x) / this.plot.w) * (tmax - tmin);
  }

  bindMouse() {
    const c = this.canvas;
    let dragFrom = null;
    const localX = (e) => e.clientX - c.getBoundingClientRect().left;
    const clampX = (px) => Math.max(this.plot.x, Math.min(this.plot.x + this.plot.w, px));
    c.addEventListener("mousedown", (e) => {
      if (!this.plot || !isFinite(this.b.tmin)) return;
      dragFrom = clampX(localX(e));
      e.preventDefault();
    });
    window.addEventListener("mouseup", (e) => {
      if (dragFrom === null) return;
      const to = clampX(localX(e));
      const from = dragFrom;
      dragFrom = null;
      this.selectBox.hidden = true;
      if (Math.abs(to - from) < 5) return; // a click, not a drag
      const t0 = this.timeAt(Math.min(from, to)), t1 = this.timeAt(Math.max(from, to));
      if (this.onZoom) this.onZoom(Math.floor(t0), Math.ceil(t1));
      else { this.xRange = [t0, t1]; this.draw(); }
    });
    c.addEventListener("mousemove", (e) => {
      if (!this.plot || !isFinite(this.b.tmin)) return;
      const px = localX(e);
      if (dragFrom !== null) {
        const to = clampX(px);
        Object.assign(this.selectBox.style, { left: `${Math.min(dragFrom, to)}px`, width: `${Math.abs(to - dragFrom)}px`, top: `${this.plot.y}px`, height: `${this.plot.h}px` });
        this.selectBox.hidden = false;
      }
      this.showReadout(px);
    });
    c.addEventListener("mouseleave", () => { this.readout.hidden = true; });
  }

  showReadout(px) {
    if (px < this.plot.x || px > this.plot.x + this.plot.w) { this.readout.hidden = true; return; }
    const t = this.timeAt(px);
    const rows = [];
    let at = null;
    for (const s of this.visible()) {
      const i = nearest(s.points, t);
      if (i < 0) continue;
      const [pt, v] = s.points[i];
      if (at === null || Math.abs(pt - t) < Math.abs(at - t)) at = pt;
      rows.push(`<div><span class="swatch" style="background:${s.color}"></span>${escapeText(s.label)}: <b>${escapeText(formatValue(v))}</b></div>`);
    }
    if (!rows.length) { this.readout.hidden = true; return; }
    this.readout.innerHTML = `<div class="when">${escapeText(formatTime(at, this.timeZone))}</div>${rows.join("")}`;
    this.readout.hidden = false;
    const left = px + 14 + this.readout.offsetWidth > this.plot.x + this.plot.w ? px - 14 - this.readout.offsetWidth : px + 14;
    this.readout.style.left = `${left}px`;
    this.readout.style.top = `${this.plot.y + 4}px`;
  }
}

function escapeText(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}
