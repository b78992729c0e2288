// The query editor: a plain <textarea> over a <pre> that shows the same text highlighted.
//
// The textarea keeps all editing behaviour (selection, undo, IME, accessibility); its text is
// transparent and the caret visible, and the <pre> behind it is re-rendered from the tokenizer
// on every input, with the same font, padding and scroll offset, so the two line up exactly.
// Completion is a popup list fed by a caller-supplied async source; history lives in
// localStorage (queries are not secrets the way keys are, and survive the tab for convenience).

import { tokenize, completionContext, errorOffset, KEYWORDS, FUNCTIONS } from "./influxql.js";

const HISTORY_KEY = "chronosdb.history";
const HISTORY_MAX = 100;

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// The highlighted HTML for `src`; the character at `errorAt` (if >= 0) is marked.
export function highlight(src, errorAt = -1) {
  let html = "";
  for (const t of tokenize(src)) {
    if (errorAt >= t.start && errorAt < t.end) {
      const a = errorAt - t.start;
      html += span(t.type, t.text.slice(0, a)) + `<mark class="err">${escapeHtml(t.text[a])}</mark>`
        + span(t.type, t.text.slice(a + 1));
    } else {
      html += span(t.type, t.text);
    }
  }
  if (errorAt >= src.length) html += '<mark class="err"> </mark>';
  return html + "\n"; // a trailing newline keeps the last (empty) line's height
}

function span(type, text) {
  if (!text) return "";
  return type === "ws" ? escapeHtml(text) : `<span class="tok-${type}">${escapeHtml(text)}</span>`;
}

export function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (_) { return []; }
}

export function pushHistory(q) {
  const h = loadHistory().filter((x) => x !== q);
  h.unshift(q);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(h.slice(0, HISTORY_MAX)));
}

export class QueryEditor {
  // completions: async ({kind, prefix, tag}) => [names]; onRun: () => void (Ctrl+Enter).
  constructor(root, { completions, onRun }) {
    this.completions = completions;
    this.onRun = onRun;
    this.errorAt = -1;
    root.classList.add("editor");
    root.innerHTML = '<pre class="editor-hl" aria-hidden="true"></pre>'
      + '<textarea class="editor-input" spellcheck="false" autocomplete="off" autocapitalize="off" '
      + 'aria-label="InfluxQL query"></textarea><ul class="completions" hidden role="listbox"></ul>';
    this.hl = root.querySelector(".editor-hl");
    this.input = root.querySelector(".editor-input");
    this.popup = root.querySelector(".completions");
    this.items = [];
    this.active = 0;
    this.historyPos = -1;
    this.input.addEventListener("input", () => { this.errorAt = -1; this.render(); this.suggest(false); });
    this.input.addEventListener("scroll", () => this.syncScroll());
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.input.addEventListener("blur", () => setTimeout(() => this.closePopup(), 150));
    this.render();
  }

  get value() { return this.input.value; }
  set value(v) { this.input.value = v; this.errorAt = -1; this.render(); }

  focus() { this.input.focus(); }

  render() {
    this.hl.innerHTML = highlight(this.input.value, this.errorAt);
    this.syncScroll();
  }

  syncScroll() {
    this.hl.scrollTop = this.input.scrollTop;
    this.hl.scrollLeft = this.input.scrollLeft;
  }

  // Marks the position named by a server error ("... at line L, char C"); true if it had one.
  markError(message, statementOffset = 0) {
    const local = errorOffset(message, this.input.value.slice(statementOffset));
    this.errorAt = local < 0 ? -1 : statementOffset + local;
    this.render();
    return this.errorAt >= 0;
  }

  onKey(e) {
    const open = !this.popup.hidden;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      this.closePopup();
      this.onRun();
    } else if (e.ctrlKey && e.key === " ") {
      e.preventDefault();
      this.suggest(true);
    } else if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : -1) + this.items.length) % this.items.length;
      this.drawPopup();
    } else if (open && (e.key === "Enter" || e.key === "Tab")) {
      e.preventDefault();
      this.accept(this.items[this.active]);
    } else if (open && e.key === "Escape") {
      this.closePopup();
    } else if (e.ctrlKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      const h = loadHistory();
      if (!h.length) return;
      this.historyPos = Math.max(-1, Math.min(h.length - 1, this.historyPos + (e.key === "ArrowUp" ? 1 : -1)));
      this.value = this.historyPos < 0 ? "" : h[this.historyPos];
    }
  }

  async suggest(explicit) {
    const offset = this.input.selectionStart;
    const ctx = completionContext(this.input.value, offset);
    if (!explicit && ctx.prefix.length < 1 && ctx.kind === "keyword") { this.closePopup(); return; }
    let names = [];
    try {
      if (ctx.kind === "keyword") {
        names = [...KEYWORDS, ...FUNCTIONS];
      } else {
        names = await this.completions(ctx);
        if (ctx.kind === "field") names = [...names, ...FUNCTIONS.map((f) => f + "(")];
      }
    } catch (_) { names = []; }
    if (this.input.selectionStart !== offset) return; // the user typed on meanwhile
    const p = ctx.prefix.toLowerCase();
    const matches = [...new Set(names)].filter((n) => n.toLowerCase().startsWith(p) && n !== ctx.prefix).slice(0, 50);
    if (!matches.length) { this.closePopup(); return; }
    this.ctx = ctx;
    this.items = matches;
    this.active = 0;
    this.drawPopup();
  }

  drawPopup() {
    this.popup.innerHTML = this.items.map((n, i) =>
      `<li role="option" data-i="${i}"${i === this.active ? ' class="active" aria-selected="true"' : ""}>${escapeHtml(n)}</li>`).join("");
    this.popup.hidden = false;
    for (const li of this.popup.querySelectorAll("li")) {
      li.addEventListener("mousedown", (e) => { e.preventDefault(); this.accept(this.items[Number(li.dataset.i)]); });
    }
    const active = this.popup.querySelector(".active");
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  accept(name) {
    const { start, quote, kind } = this.ctx;
    const end = this.input.selectionStart;
    let text = name;
    if (kind === "tagvalue") text = `'${name.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
    else if (quote === '"' || (!/^[A-Za-z_][A-Za-z0-9_]*\(?$/.test(name) && kind !== "keyword")) {
      text = `"${name.replace(/"/g, '\\"')}"`;
    }
    const v = this.input.value;
    this.input.value = v.slice(0, start) + text + v.slice(end);
    const caret = start + text.length;
    this.input.setSelectionRange(caret, caret);
    this.closePopup();
    this.render();
    this.input.focus();
  }

  closePopup() { this.popup.hidden = true; this.items = []; }
}
