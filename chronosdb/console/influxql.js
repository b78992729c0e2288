// A small InfluxQL tokenizer for the console: highlighting, completion context, error positions
// and the zoom rewrite. It never rejects input (the server's parser is the judge); anything it
// does not recognise becomes an "other" token, so the highlighted text always equals the input.

export const KEYWORDS = [
  "ALL", "ALTER", "AND", "ANY", "AS", "ASC", "BEGIN", "BY", "CARDINALITY", "CONTINUOUS", "CREATE",
  "DATABASE", "DATABASES", "DEFAULT", "DELETE", "DESC", "DIAGNOSTICS", "DROP", "DURATION", "END",
  "EVERY", "EXACT", "EXPLAIN", "FIELD", "FOR", "FROM", "GRANT", "GRANTS", "GROUP", "GROUPS", "IN",
  "INF", "INSERT", "INTO", "KEY", "KEYS", "KILL", "LIMIT", "MEASUREMENT", "MEASUREMENTS", "NAME",
  "OFFSET", "ON", "OR", "ORDER", "PASSWORD", "POLICIES", "POLICY", "PRIVILEGES", "QUERIES", "QUERY",
  "READ", "REPLICATION", "RESAMPLE", "RETENTION", "REVOKE", "SELECT", "SERIES", "SET", "SHARD",
  "SHARDS", "SLIMIT", "SOFFSET", "STATS", "SUBSCRIPTION", "SUBSCRIPTIONS", "TAG", "TO", "USER",
  "USERS", "VALUES", "WHERE", "WITH", "WRITE", "FILL", "TZ", "NOT", "NULL", "NONE", "PREVIOUS",
  "LINEAR", "TRUE", "FALSE",
];
export const FUNCTIONS = [
  "count", "distinct", "integral", "mean", "median", "mode", "spread", "stddev", "sum", "bottom",
  "first", "last", "max", "min", "percentile", "sample", "top", "abs", "acos", "asin", "atan",
  "atan2", "ceil", "cos", "cumulative_sum", "derivative", "difference", "elapsed", "exp", "floor",
  "histogram", "ln", "log", "log2", "log10", "moving_average", "non_negative_derivative",
  "non_negative_difference", "pow", "round", "sin", "sqrt", "tan", "holt_winters",
  "holt_winters_with_fit", "chande_momentum_oscillator", "exponential_moving_average",
  "double_exponential_moving_average", "kaufmans_efficiency_ratio", "kaufmans_adaptive_moving_average",
  "triple_exponential_moving_average", "triple_exponential_derivative", "relative_strength_index",
  "now", "time",
];
const KEYWORD_SET = new Set(KEYWORDS);
const FUNCTION_SET = new Set(FUNCTIONS);

// After these tokens a "/" starts a regex, elsewhere it divides.
const REGEX_BEFORE = new Set(["=~", "!~", "FROM", ",", "(", "BY", "MEASUREMENT", "KEY", "="]);

// Token types: keyword function ident quoted string number duration regex operator punct ws
// comment other. Each token is {type, text, start, end}.
export function tokenize(src) {
  const out = [];
  let i = 0;
  let prev = null; // the previous token that is not whitespace or a comment
  const push = (type, end) => {
    const tok = { type, text: src.slice(i, end), start: i, end };
    out.push(tok);
    if (type !== "ws" && type !== "comment") prev = tok;
    i = end;
  };
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i);
    let m;
    if ((m = /^\s+/.exec(rest))) push("ws", i + m[0].length);
    else if (rest.startsWith("--")) {
      const nl = src.indexOf("\n", i);
      push("comment", nl < 0 ? src.length : nl);
    } else if (c === "'" || c === '"') push(c === "'" ? "string" : "quoted", quotedEnd(src, i, c));
    else if (c === "/" && (prev === null || REGEX_BEFORE.has(prevWord(prev)))) push("regex", quotedEnd(src, i, "/"));
    else if ((m = /^\d+(?:ns|u|µ|ms|s|m|h|d|w)(?![\w])/.exec(rest))) push("duration", i + m[0].length);
    else if ((m = /^(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(rest))) push("number", i + m[0].length);
    else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      const word = m[0];
      const type = KEYWORD_SET.has(word.toUpperCase()) ? "keyword"
        : FUNCTION_SET.has(word.toLowerCase()) && /^\s*\(/.test(src.slice(i + word.length)) ? "function"
        : "ident";
      push(type, i + word.length);
    } else if ((m = /^(?:=~|!~|!=|<>|<=|>=|::|[=<>+\-*/%&|^])/.exec(rest))) push("operator", i + m[0].length);
    else if ((m = /^[(),;.]/.exec(rest))) push("punct", i + 1);
    else push("other", i + 1);
  }
  return out;
}

function prevWord(tok) {
  return tok.type === "keyword" ? tok.text.toUpperCase() : tok.text;
}

// The end (exclusive) of a quoted run starting at `start` with quote `q`; backslash escapes;
// an unterminated run ends at the end of the input.
function quotedEnd(src, start, q) {
  let j = start + 1;
  while (j < src.length) {
    if (src[j] === "\\") j += 2;
    else if (src[j] === q) return j + 1;
    else if (q === "/" && src[j] === "\n") return j;
    else j += 1;
  }
  return src.length;
}

// "... at line L, char C" (1-based) in a server error → a character offset in `src`, or -1.
export function errorOffset(message, src) {
  const m = /at line (\d+), char (\d+)/.exec(message || "");
  if (!m) return -1;
  const line = Number(m[1]);
  const col = Number(m[2]);
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = src.indexOf("\n", offset);
    if (nl < 0) return -1;
    offset = nl + 1;
  }
  return Math.min(offset + col - 1, src.length);
}

// Split on top-level ";" into statements with their start offsets (for multi-statement input).
export function splitStatements(src) {
  const parts = [];
  let start = 0;
  for (const t of tokenize(src)) {
    if (t.type === "punct" && t.text === ";") {
      parts.push({ text: src.slice(start, t.start), start });
      start = t.end;
    }
  }
  parts.push({ text: src.slice(start), start });
  return parts.filter((p) => p.text.trim() !== "");
}

export function isSelect(src) {
  const first = tokenize(src).find((t) => t.type !== "ws" && t.type !== "comment");
  return !!first && first.type === "keyword" && first.text.toUpperCase() === "SELECT";
}

// The SELECT with its time range narrowed to [fromMs, toMs]: the WHERE condition (if any) is
// wrapped in parentheses and ANDed with the range, inserted before GROUP BY / ORDER BY / LIMIT /
// OFFSET / SLIMIT / SOFFSET / FILL / TZ at the top level. AND-ing keeps the query's own time
// bounds too, which is right: the zoom range lies inside them.
export function withTimeRange(src, fromMs, toMs) {
  src = src.replace(/[\s;]+$/, "");
  const toks = tokenize(src);
  const range = `time >= '${new Date(fromMs).toISOString()}' AND time <= '${new Date(toMs).toISOString()}'`;
  let depth = 0;
  let whereTok = null;
  let endTok = null;
  let sawFrom = false;
  for (const t of toks) {
    if (t.type === "punct" && t.text === "(") depth++;
    else if (t.type === "punct" && t.text === ")") depth--;
    if (depth !== 0 || t.type !== "keyword") continue;
    const w = t.text.toUpperCase();
    if (w === "FROM") sawFrom = true;
    else if (w === "WHERE" && sawFrom && !whereTok) whereTok = t;
    else if (sawFrom && ["GROUP", "ORDER", "LIMIT", "OFFSET", "SLIMIT", "SOFFSET", "FILL", "TZ"].includes(w)) {
      endTok = t;
      break;
    }
  }
  let body = src;
  let tail = "";
  if (endTok) { body = src.slice(0, endTok.start); tail = " " + src.slice(endTok.start); }
  body = body.replace(/\s+$/, "");
  if (whereTok) {
    const cond = body.slice(whereTok.end).trim();
    return `${body.slice(0, whereTok.start)}WHERE (${cond}) AND ${range}${tail}`;
  }
  return `${body} WHERE ${range}${tail}`;
}

// What the word at `offset` could be completed with, from the tokens before it:
// {kind: "database"|"measurement"|"field"|"tag"|"tagvalue"|"keyword", prefix, start, tag?}.
export function completionContext(src, offset) {
  const before = src.slice(0, offset);
  const m = /(["']?)([A-Za-z0-9_.\-]*)$/.exec(before);
  const quote = m[1];
  const prefix = m[2];
  const start = offset - prefix.length - quote.length;
  const toks = tokenize(src.slice(0, start)).filter((t) => t.type !== "ws" && t.type !== "comment");
  const last = toks[toks.length - 1];
  const lastWord = last ? prevWord(last) : "";
  const upper = toks.filter((t) => t.type === "keyword").map((t) => t.text.toUpperCase());
  const lastKw = upper[upper.length - 1] || "";
  const ctx = { prefix, start, quote };
  if (quote === "'" && last && last.type === "operator" && ["=", "!=", "<>"].includes(last.text)) {
    const tagTok = toks[toks.length - 2];
    if (tagTok) return { ...ctx, kind: "tagvalue", tag: unquoteIdent(tagTok.text) };
  }
  if (lastWord === "ON" || lastWord === "DATABASE") return { ...ctx, kind: "database" };
  if (lastWord === "FROM" || lastWord === "MEASUREMENT" || (lastKw === "FROM" && lastWord === ",")) {
    return { ...ctx, kind: "measurement" };
  }
  if (lastKw === "SELECT" && (lastWord === "SELECT" || lastWord === "," || lastWord === "(")) {
    return { ...ctx, kind: "field" };
  }
  if (lastKw === "WHERE" || lastKw === "AND" || lastKw === "OR" || lastKw === "BY" || lastWord === "KEY") {
    if (last && last.type !== "operator") return { ...ctx, kind: "tag" };
  }
  return { ...ctx, kind: "keyword" };
}

function unquoteIdent(text) {
  return text.startsWith('"') ? text.slice(1, -1).replace(/\\"/g, '"') : text;
}

// An identifier as it must be written in a query (double-quoted unless plain).
export function quoteIdent(name) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !KEYWORD_SET.has(name.toUpperCase())
    ? name : `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function quoteString(value) {
  return `'${String(value).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
