// Continuous queries: SHOW CONTINUOUS QUERIES, DROP CONTINUOUS QUERY, and a box for CREATE.
// A server without these statements answers with an error, which is shown as it is.

import { query } from "../api.js";
import { esc, say } from "../ui.js";
import { quoteIdent } from "../influxql.js";

export async function mount(root) {
  root.innerHTML = `<h2>Continuous queries</h2>
    <div id="c-msg" class="msg"></div>
    <section class="panel"><form id="c-create">
      <label class="muted">CREATE CONTINUOUS QUERY statement</label>
      <textarea id="c-text" rows="4" style="width:100%" spellcheck="false" placeholder="CREATE CONTINUOUS QUERY cq_1m ON mydb BEGIN SELECT mean(value) INTO cpu_1m FROM cpu GROUP BY time(1m), * END"></textarea>
      <p><button class="primary">Create</button></p></form></section>
    <div id="c-list"></div>`;
  const $ = (s) => root.querySelector(s);
  const msg = $("#c-msg");

  async function draw() {
    let series;
    try { series = await query("SHOW CONTINUOUS QUERIES"); }
    catch (err) { say(msg, `SHOW CONTINUOUS QUERIES failed: ${err.message}`); $("#c-list").innerHTML = ""; return; }
    const rows = series.flatMap((s) => (s.values || []).map((v) => ({ db: s.name, name: v[0], text: v[1] })));
    $("#c-list").innerHTML = rows.length ? `<table class="grid"><thead><tr><th>database</th><th>name</th><th>query</th><th></th></tr></thead>
      <tbody>${rows.map((r, i) => `<tr><td>${esc(r.db)}</td><td>${esc(r.name)}</td><td><code>${esc(r.text)}</code></td>
        <td><button class="danger link" data-drop="${i}">drop</button></td></tr>`).join("")}</tbody></table>`
      : '<p class="muted">No continuous queries.</p>';
    for (const b of root.querySelectorAll("[data-drop]")) {
      const r = rows[Number(b.dataset.drop)];
      b.addEventListener("click", async () => {
        if (!confirm(`Drop continuous query "${r.name}" on "${r.db}"?`)) return;
        try { await query(`DROP CONTINUOUS QUERY ${quoteIdent(r.name)} ON ${quoteIdent(r.db)}`); say(msg, `Dropped ${r.name}.`, "ok"); }
        catch (err) { say(msg, err.message); }
        await draw();
      });
    }
  }

  $("#c-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await query($("#c-text").value); say(msg, "Created.", "ok"); $("#c-text").value = ""; }
    catch (err) { say(msg, err.message); }
    await draw();
  });
  await draw();
}
