// Databases and their retention policies: list, create, drop (InfluxQL DDL through /query).

import { query, column } from "../api.js";
import { esc, say } from "../ui.js";
import { quoteIdent } from "../influxql.js";

export async function mount(root) {
  root.innerHTML = `<h2>Databases and retention policies</h2>
    <div id="d-msg" class="msg"></div>
    <section class="panel"><form id="d-create" class="inline">
      <label>New database <input id="d-name" required placeholder="name"></label>
      <button class="primary">Create database</button></form></section>
    <div id="d-list"></div>`;
  const $ = (s) => root.querySelector(s);
  const msg = $("#d-msg");

  async function run(q, done) {
    try { await query(q); say(msg, done, "ok"); } catch (err) { say(msg, err.message); }
    await draw();
  }

  async function draw() {
    let dbs;
    try { dbs = await column("SHOW DATABASES"); } catch (err) { say(msg, err.message); return; }
    const parts = await Promise.all(dbs.map(async (db) => {
      let rps = [];
      let error = "";
      try { rps = (await query(`SHOW RETENTION POLICIES ON ${quoteIdent(db)}`))[0] || { columns: [], values: [] }; }
      catch (err) { error = err.message; }
      return { db, rps, error };
    }));
    $("#d-list").innerHTML = parts.map(({ db, rps, error }, i) => `
      <section class="panel" data-db="${esc(db)}">
        <div class="toolbar"><h3>${esc(db)}</h3><span class="spacer"></span>
          <button class="danger" data-drop-db="${i}">Drop database</button></div>
        ${error ? `<p class="error">${esc(error)}</p>` : `<table class="grid"><thead><tr>${(rps.columns || []).map((c) => `<th>${esc(c)}</th>`).join("")}<th></th></tr></thead>
          <tbody>${(rps.values || []).map((r, j) => `<tr>${r.map((v) => `<td>${esc(v)}</td>`).join("")}
            <td><button class="danger link" data-drop-rp="${i}:${j}">drop</button></td></tr>`).join("")}</tbody></table>`}
        <form class="inline" data-create-rp="${i}">
          <label>Policy <input name="name" required placeholder="name"></label>
          <label>Duration <input name="duration" required placeholder="30d or INF"></label>
          <label>Shard duration <input name="shard" placeholder="(default)"></label>
          <label><span><input type="checkbox" name="default"> default</span></label>
          <button>Create policy</button></form>
      </section>`).join("") || '<p class="muted">No databases yet.</p>';
    for (const b of root.querySelectorAll("[data-drop-db]")) {
      const db = parts[Number(b.dataset.dropDb)].db;
      b.addEventListener("click", () => {
        if (confirm(`Drop database "${db}" and all of its data and keys?`)) run(`DROP DATABASE ${quoteIdent(db)}`, `Dropped database ${db}.`);
      });
    }
    for (const b of root.querySelectorAll("[data-drop-rp]")) {
      const [i, j] = b.dataset.dropRp.split(":").map(Number);
      const { db, rps } = parts[i];
      const rp = rps.values[j][0];
      b.addEventListener("click", () => {
        if (confirm(`Drop retention policy "${rp}" on "${db}" and its data?`)) run(`DROP RETENTION POLICY ${quoteIdent(rp)} ON ${quoteIdent(db)}`, `Dropped ${rp}.`);
      });
    }
    for (const f of root.querySelectorAll("[data-create-rp]")) {
      const { db } = parts[Number(f.dataset.createRp)];
      f.addEventListener("submit", (e) => {
        e.preventDefault();
        const v = (n) => f.elements[n].value.trim();
        const q = `CREATE RETENTION POLICY ${quoteIdent(v("name"))} ON ${quoteIdent(db)} DURATION ${v("duration")} REPLICATION 1`
          + (v("shard") ? ` SHARD DURATION ${v("shard")}` : "") + (f.elements.default.checked ? " DEFAULT" : "");
        run(q, `Created retention policy ${v("name")} on ${db}.`);
      });
    }
  }

  $("#d-create").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("#d-name").value.trim();
    run(`CREATE DATABASE ${quoteIdent(name)}`, `Created database ${name}.`);
  });
  await draw();
}
