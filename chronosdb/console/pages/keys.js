// API keys (admin): list, create (the key is shown once, here, and never again), revoke.

import { listKeys, createKey, revokeKey, column } from "../api.js";
import { esc, say } from "../ui.js";

export async function mount(root) {
  root.innerHTML = `<h2>API keys</h2>
    <div id="k-msg" class="msg"></div>
    <section class="panel"><form id="k-create" class="inline">
      <label>Kind <select name="kind"><option value="db">database key</option><option value="admin">admin key</option></select></label>
      <label>Database <select name="database"></select></label>
      <label>Scope <select name="scope"><option>read</option><option>write</option><option selected>readwrite</option></select></label>
      <label>Description <input name="description" placeholder="what uses it"></label>
      <button class="primary">Create key</button></form>
      <div id="k-new" hidden><p><b>New key — copy it now, it will not be shown again:</b></p>
        <div class="key-once" id="k-new-key"></div>
        <p><button id="k-copy">Copy</button> <button id="k-done">Done</button></p></div>
    </section>
    <div id="k-list"></div>`;
  const $ = (s) => root.querySelector(s);
  const msg = $("#k-msg");
  const form = $("#k-create");
  const syncKind = () => {
    const admin = form.elements.kind.value === "admin";
    form.elements.database.disabled = admin;
    form.elements.scope.disabled = admin;
  };

  async function draw() {
    let keys;
    try { keys = await listKeys(); } catch (err) { say(msg, err.message); $("#k-list").innerHTML = ""; return; }
    $("#k-list").innerHTML = `<table class="grid" id="k-table"><thead><tr><th>id</th><th>database</th><th>scope</th><th>created</th><th>description</th><th></th></tr></thead>
      <tbody>${keys.map((k) => `<tr data-id="${esc(k.id)}"><td><code>${esc(k.id)}</code></td><td>${esc(k.database ?? "(all)")}</td>
        <td>${esc(k.scope)}</td><td>${esc(new Date(k.created / 1e6).toISOString().replace("T", " ").slice(0, 19))} UTC</td>
        <td>${esc(k.description)}</td><td><button class="danger link" data-revoke="${esc(k.id)}">revoke</button></td></tr>`).join("")}</tbody></table>`;
    for (const b of root.querySelectorAll("[data-revoke]")) {
      b.addEventListener("click", async () => {
        if (!confirm(`Revoke key ${b.dataset.revoke}? Clients using it stop working at once.`)) return;
        try { await revokeKey(b.dataset.revoke); say(msg, `Revoked key ${b.dataset.revoke}.`, "ok"); }
        catch (err) { say(msg, err.message); }
        await draw();
      });
    }
  }

  form.elements.kind.addEventListener("change", syncKind);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const el = form.elements;
    const doc = el.kind.value === "admin" ? { admin: true } : { database: el.database.value, scope: el.scope.value };
    doc.description = el.description.value;
    try {
      const made = await createKey(doc);
      $("#k-new-key").textContent = made.key;
      $("#k-new").hidden = false;
      say(msg, `Created key ${made.id}.`, "ok");
      el.description.value = "";
    } catch (err) { say(msg, err.message); }
    await draw();
  });
  $("#k-copy").addEventListener("click", () => navigator.clipboard.writeText($("#k-new-key").textContent).catch(() => {}));
  $("#k-done").addEventListener("click", () => { $("#k-new-key").textContent = ""; $("#k-new").hidden = true; });
  try {
    for (const d of await column("SHOW DATABASES")) form.elements.database.insertAdjacentHTML("beforeend", `<option>${esc(d)}</option>`);
  } catch (_) { /* the list below shows the error */ }
  syncKind();
  await draw();
  // The key shown once must not outlive the page.
  return () => { const k = root.querySelector("#k-new-key"); if (k) k.textContent = ""; };
}
