// The schema browser: databases → measurements → series (tag sets) → fields and tags.
//
// Everything comes from SHOW statements, one column at a time as the user drills down:
// SHOW MEASUREMENTS and SHOW SERIES EXACT CARDINALITY (series per measurement), then for one
// measurement SHOW SERIES, SHOW FIELD KEYS (types) and SHOW TAG VALUES (distinct values per tag
// key). Clicking a series or a field opens a ready-made query on the query page.

import { query, column } from "../api.js";
import { esc, say } from "../ui.js";
import { quoteIdent, quoteString } from "../influxql.js";

const SERIES_LIMIT = 500;

export async function mount(root) {
  root.innerHTML = `<h2>Browse</h2><div id="b-msg" class="msg"></div>
    <div class="browse">
      <div class="col"><h3>Databases</h3><ul id="b-dbs"></ul></div>
      <div class="col"><h3>Measurements <span class="muted">(series)</span></h3><ul id="b-ms"></ul></div>
      <div class="col"><h3>Series</h3><ul id="b-series"></ul></div>
      <div class="col"><h3>Fields <span class="muted">(type)</span></h3><ul id="b-fields"></ul>
        <h3>Tags <span class="muted">(distinct values)</span></h3><ul id="b-tags"></ul></div>
    </div>`;
  const $ = (s) => root.querySelector(s);
  const msg = $("#b-msg");
  let db = null;

  const list = (ul, items, onClick) => {
    ul.innerHTML = items.map(([name, badge], i) =>
      `<li data-i="${i}"><span>${esc(name)}</span>${badge !== undefined ? `<span class="badge">${esc(badge)}</span>` : ""}</li>`).join("")
      || '<li class="muted">none</li>';
    if (!onClick) return;
    for (const li of ul.querySelectorAll("li[data-i]")) {
      li.addEventListener("click", () => {
        for (const o of ul.querySelectorAll("li")) o.classList.remove("sel");
        li.classList.add("sel");
        onClick(items[Number(li.dataset.i)]);
      });
    }
  };
  const openQuery = (q) => { location.hash = `#/query?${new URLSearchParams({ db, q, run: "1" })}`; };

  async function showMeasurement(m) {
    say(msg, "");
    try {
      const from = `FROM ${quoteIdent(m)}`;
      const [series, fields, tagRows] = await Promise.all([
        column(`SHOW SERIES ${from} LIMIT ${SERIES_LIMIT}`, { db }),
        query(`SHOW FIELD KEYS ${from}`, { db }),
        query(`SHOW TAG VALUES ${from} WITH KEY =~ /.*/`, { db }),
      ]);
      list($("#b-series"), series.map((k) => [k]), ([key]) => {
        const tags = key.split(/(?<!\\),/).slice(1).map((kv) => {
          const [k, ...v] = kv.split("=");
          return `${quoteIdent(k.replace(/\\(.)/g, "$1"))} = ${quoteString(v.join("=").replace(/\\(.)/g, "$1"))}`;
        });
        openQuery(`SELECT * ${from}${tags.length ? " WHERE " + tags.join(" AND ") : ""} LIMIT 1000`);
      });
      const fieldItems = fields.flatMap((s) => s.values || []).map(([name, type]) => [name, type]);
      list($("#b-fields"), fieldItems, ([name]) => openQuery(`SELECT ${quoteIdent(name)} ${from} LIMIT 1000`));
      const counts = new Map();
      for (const s of tagRows) for (const [k] of s.values || []) counts.set(k, (counts.get(k) || 0) + 1);
      list($("#b-tags"), [...counts.entries()]);
    } catch (err) { say(msg, err.message); }
  }

  async function showDatabase(name) {
    db = name;
    say(msg, "");
    for (const id of ["#b-series", "#b-fields", "#b-tags"]) $(id).innerHTML = "";
    try {
      const [ms, card] = await Promise.all([
        column("SHOW MEASUREMENTS", { db }),
        query("SHOW SERIES EXACT CARDINALITY", { db }).catch(() => []),
      ]);
      const perM = new Map(card.map((s) => [s.name, (s.values || [[0]])[0][0]]));
      list($("#b-ms"), ms.map((m) => [m, perM.get(m) ?? ""]), ([m]) => showMeasurement(m));
    } catch (err) { say(msg, err.message); }
  }

  try {
    const dbs = await column("SHOW DATABASES");
    list($("#b-dbs"), dbs.map((d) => [d]), ([d]) => showDatabase(d));
    const first = $("#b-dbs li[data-i]");
    if (first) first.click(); // open the first database at once
  } catch (err) { say(msg, err.message); }
}
