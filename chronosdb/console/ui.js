// Small DOM helpers shared by the pages: escaping, tables of query results, messages, CSV.

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Shows `message` in `el` as an error (or a notice with kind="ok"); empty clears it.
export function say(el, message, kind = "error") {
  el.textContent = message || "";
  el.className = message ? `msg ${kind}` : "msg";
  el.setAttribute("role", kind === "error" ? "alert" : "status");
}

// "cpu host=a,region=us" for a series header.
export function seriesLabel(s) {
  const tags = Object.entries(s.tags || {}).map(([k, v]) => `${k}=${v}`).join(",");
  return tags ? `${s.name || ""} ${tags}`.trim() : (s.name || "");
}

// An HTML table for one result series; `maxRows` caps what is put into the page.
export function seriesTable(s, { maxRows = 1000, timeFormat = null } = {}) {
  const cols = s.columns || [];
  const rows = s.values || [];
  const timeIdx = cols.indexOf("time");
  let html = `<table class="grid"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>`;
  for (const row of rows.slice(0, maxRows)) {
    html += "<tr>" + row.map((v, i) => {
      const text = i === timeIdx && timeFormat && typeof v === "number" ? timeFormat(v) : v === null ? "" : v;
      return `<td${typeof v === "number" && i !== timeIdx ? ' class="num"' : ""}>${esc(text)}</td>`;
    }).join("") + "</tr>";
  }
  html += "</tbody></table>";
  if (rows.length > maxRows) html += `<p class="muted">${rows.length - maxRows} more rows not shown (export CSV for all).</p>`;
  return html;
}

// CSV of every series: name, tags (one column per tag key), then the series' columns.
// Fields are quoted when they hold a comma, quote or newline (RFC 4180). Numeric times
// (epoch ms) are written as RFC 3339 UTC, which spreadsheets and people read alike.
export function toCsv(seriesList) {
  const tagKeys = [...new Set(seriesList.flatMap((s) => Object.keys(s.tags || {})))].sort();
  const cols = [...new Set(seriesList.flatMap((s) => s.columns || []))];
  const q = (v) => {
    const t = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  const lines = [["name", ...tagKeys, ...cols].map(q).join(",")];
  for (const s of seriesList) {
    const idx = cols.map((c) => (s.columns || []).indexOf(c));
    for (const row of s.values || []) {
      const cells = idx.map((i, c) => (i < 0 ? "" : cols[c] === "time" && typeof row[i] === "number" ? new Date(row[i]).toISOString() : row[i]));
      lines.push([s.name || "", ...tagKeys.map((k) => (s.tags || {})[k] ?? ""), ...cells].map(q).join(","));
    }
  }
  return lines.join("\r\n") + "\r\n";
}

export function download(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function formatBytes(n) {
  if (!isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
