// The console shell: login, navigation, and mounting one page at a time.
//
// Pages are modules under pages/ exporting `mount(root, ctx)` that may return a cleanup
// function (stop timers, abort streams) called when the user leaves the page. Navigation is by
// URL hash (#/query, #/keys, ...), so the back button and bookmarks work and the server only
// ever serves one HTML file.

import { getKey, setKey, clearKey, query, setUnauthorizedHandler, ApiError } from "./api.js";

const PAGES = {
  query: () => import("./pages/query.js"),
  browse: () => import("./pages/browse.js"),
  databases: () => import("./pages/databases.js"),
  keys: () => import("./pages/keys.js"),
  cqs: () => import("./pages/cqs.js"),
  status: () => import("./pages/status.js"),
};

const $ = (sel) => document.querySelector(sel);
let cleanup = null;
let mountSeq = 0;

function showLogin(message = "") {
  if (cleanup) { cleanup(); cleanup = null; }
  $("#shell").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#login-key").value = "";
  $("#login-key").focus();
}

async function showShell() {
  $("#login").hidden = true;
  $("#shell").hidden = false;
  const key = getKey() || "";
  $("#whoami").textContent = `key ${key.slice(0, 8)}…`;
  await route();
}

async function route() {
  if (!getKey()) return showLogin();
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "query";
  if (!PAGES[name]) { location.hash = "#/query"; return; }
  for (const a of document.querySelectorAll("#nav a[data-page]")) {
    a.classList.toggle("active", a.dataset.page === name);
  }
  if (cleanup) { cleanup(); cleanup = null; }
  const seq = ++mountSeq;
  // Each page gets a fresh element: a page still finishing an await after the user moved on
  // then works on a detached element instead of the next page's DOM.
  const root = document.createElement("div");
  root.dataset.page = name;
  $("#page").replaceChildren(root);
  const mod = await PAGES[name]();
  if (seq !== mountSeq) return; // the user navigated on meanwhile
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  cleanup = (await mod.mount(root, { params })) || null;
}

async function login(event) {
  event.preventDefault();
  const key = $("#login-key").value.trim();
  if (!key) return;
  setKey(key);
  try {
    // Any valid key may list the databases it can read, so this checks the key without
    // needing admin rights.
    await query("SHOW DATABASES");
  } catch (err) {
    clearKey();
    $("#login-error").textContent = err instanceof ApiError && err.status === 401
      ? "The server did not accept this key." : `Could not log in: ${err.message}`;
    return;
  }
  await showShell();
}

function init() {
  setUnauthorizedHandler(() => { clearKey(); showLogin("The key was refused (revoked?). Log in again."); });
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => { clearKey(); showLogin(); });
  window.addEventListener("hashchange", () => { if (getKey()) route(); });
  if (getKey()) showShell(); else showLogin();
}

init();
