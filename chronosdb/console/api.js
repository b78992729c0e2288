// The console's only connection to the server.
//
// The API key lives in sessionStorage (this tab only, gone when it closes) and goes out as
// `Authorization: Token <key>` on every request. Errors come back as ApiError carrying the
// server's own message ({"error": "..."} bodies, or a statement's `error` in a /query answer).
// Streaming uses fetch() and a ReadableStream reader instead of EventSource, because
// EventSource cannot send an Authorization header; the SSE framing is parsed by SseParser.

const KEY_NAME = "chronosdb.key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function getKey() { return sessionStorage.getItem(KEY_NAME); }
export function setKey(key) { sessionStorage.setItem(KEY_NAME, key); }
export function clearKey() { sessionStorage.removeItem(KEY_NAME); }

// Called with the ApiError when the server refuses the key (401): the shell logs out.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Token ${key}` } : extra;
}

async function errorFrom(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) message = body.error;
  } catch (_) { /* not JSON: keep the status line */ }
  const err = new ApiError(resp.status, message);
  if (resp.status === 401) onUnauthorized(err);
  return err;
}

export async function apiFetch(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  if (!resp.ok) throw await errorFrom(resp);
  return resp;
}

// POST /query with form fields; answers the parsed JSON ({"results": [...]}).
export async function queryRaw(q, { db = "", rp = "", epoch = "ms" } = {}) {
  const form = new URLSearchParams({ q });
  if (db) form.set("db", db);
  if (rp) form.set("rp", rp);
  if (epoch) form.set("epoch", epoch);
  const resp = await apiFetch("/query", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
  });
  return resp.json();
}

// One statement: its series, or an ApiError with the statement's error.
export async function query(q, opts = {}) {
  const body = await queryRaw(q, opts);
  const result = (body.results || [])[0] || {};
  if (result.error) throw new ApiError(200, result.error);
  return result.series || [];
}

// The first column of every row of every series (SHOW MEASUREMENTS, SHOW DATABASES, ...).
export async function column(q, opts = {}, index = 0) {
  const out = [];
  for (const s of await query(q, opts)) for (const row of s.values || []) out.push(row[index]);
  return out;
}

export async function metricsText() {
  return (await apiFetch("/metrics")).text();
}

export async function listKeys() {
  return (await (await apiFetch("/api/keys")).json()).keys;
}

export async function createKey(doc) {
  const resp = await apiFetch("/api/keys", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(doc),
  });
  return resp.json();
}

export async function revokeKey(id) {
  await apiFetch(`/api/keys/${encodeURIComponent(id)}`, { method: "DELETE" });
}

// Server-Sent Events framing: feed text as it arrives, get whole events back.
// Pure (no I/O), so the browser test can check it directly.
export class SseParser {
  constructor() {
    this.buffer = "";
    this.reset();
  }
  reset() { this.event = ""; this.data = []; this.id = null; }
  // Returns [{event, data, id}] for every event completed by this chunk.
  feed(text) {
    this.buffer += text;
    const out = [];
    let nl;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const sep = this.buffer[nl] === "\r" && this.buffer[nl + 1] === "\n" ? 2 : 1;
      // A lone "\r" at the end may be the first half of "\r\n": wait for more.
      if (this.buffer[nl] === "\r" && nl + 1 === this.buffer.length) break;
      this.buffer = this.buffer.slice(nl + sep);
      if (line === "") {
        if (this.data.length || this.event) {
          out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        }
        this.reset();
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the server's heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

// Opens GET /stream and calls onEvent({event, data (parsed JSON), id}) for each event until
// `signal` aborts or the server closes. After a network drop it reconnects with Last-Event-ID
// (the server then replays exactly what was missed), up to `retries` times in a row.
export async function stream({ db, q, rp = "", epoch = "ms", history = true, partial = false,
                               signal, onEvent, onOpen = () => {}, retries = 5 }) {
  let lastId = null;
  let failures = 0;
  for (;;) {
    const params = new URLSearchParams({ db, q, epoch });
    if (rp) params.set("rp", rp);
    if (history && lastId === null) params.set("history", "true");
    if (partial) params.set("partial", "true");
    const headers = lastId !== null ? { "Last-Event-ID": lastId } : {};
    let resp;
    try {
      resp = await apiFetch(`/stream?${params}`, { headers, signal });
    } catch (err) {
      if (signal && signal.aborted) return;
      if (err instanceof ApiError || ++failures > retries) throw err;
      await new Promise((r) => setTimeout(r, 500 * failures));
      continue;
    }
    failures = 0;
    onOpen();
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.feed(value)) {
          if (ev.id !== null) lastId = ev.id;
          let data = null;
          try { data = ev.data ? JSON.parse(ev.data) : null; } catch (_) { data = { raw: ev.data }; }
          if (ev.event === "error") throw new ApiError(200, (data && data.error) || "stream error");
          onEvent({ event: ev.event, data, id: ev.id });
        }
      }
    } catch (err) {
      if (signal && signal.aborted) return;
      if (err instanceof ApiError) throw err;
      if (++failures > retries) throw err;
    }
    if (signal && signal.aborted) return;
    await new Promise((r) => setTimeout(r, 300));
  }
}
