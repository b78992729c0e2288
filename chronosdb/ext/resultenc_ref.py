"""Plain-Python twin of chronosdb.ext.resultenc: slow, simple, obviously correct.

It builds the answer as Python objects first (``build_document``: dicts in InfluxDB's key
order, lists of rows, floats as floats, NaN and infinities as None) and then marshals them the
way Go 1.10's encoding/json does (``marshal``). Numbers take a different road from the Cython
module: float digits come from Python's repr (David Gay's shortest round-trip) through Decimal,
times from datetime, UTF-8 checking from Python's strict decoder. Tests run both on the same
inputs and demand identical bytes.
"""
from __future__ import annotations

import datetime
import math
from decimal import Decimal

import numpy as np

_EPOCH_DIVISORS = {"u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_UNIX = datetime.datetime(1970, 1, 1)


class RawJSON(str):
    """A value of a ``json`` column: JSON text the caller encoded, written as it is (a CSV cell
    holds the text)."""


class GoFloat(float):
    """A float that marshal() writes in Go's encoding/json form."""


# -- numbers and times ------------------------------------------------------------------------
def _plain(x: float) -> str:
    """Positional decimal of repr(x)'s digits: Go's strconv.FormatFloat(x, 'f', -1, 64)."""
    return format(Decimal(repr(x)).normalize(), "f")


def go_json_float(x: float) -> str:
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
        text = "".join(map(str, digits))
        e = exponent + len(text) - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return ("-" if sign else "") + mantissa + ("e-" if e < 0 else "e+") + str(abs(e))
    return _plain(x)


def go_csv_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    return _plain(x)


def rfc3339(ns: int) -> str:
    seconds, frac = divmod(int(ns), 1_000_000_000)
    stamp = (_UNIX + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def rfc3339_offset(ns: int, off_s: int) -> str:
    """RFC3339Nano in a time zone: local wall time and the offset (Z when it is 0)."""
    text = rfc3339(int(ns) + int(off_s) * 1_000_000_000)
    if off_s == 0:
        return text
    a = abs(int(off_s))
    return text[:-1] + ("-" if off_s < 0 else "+") + f"{a // 3600:02d}:{a // 60 % 60:02d}"


def epoch_time(ns: int, epoch) -> int:
    divisor = _EPOCH_DIVISORS.get(epoch, 1)
    q = abs(int(ns)) // divisor  # Go's integer division truncates toward zero
    return -q if ns < 0 else q


# -- strings ----------------------------------------------------------------------------------
_INVALID = object()  # a byte Go's UTF-8 decoder rejects


def go_runes(raw: bytes) -> list:
    """Decode as Go's utf8.DecodeRune does: each byte of an invalid sequence is one error."""
    out = []
    i = 0
    while i < len(raw):
        lead = raw[i]
        width = 1 if lead < 0x80 else 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else \
            4 if 0xF0 <= lead < 0xF8 else 0
        try:
            if width == 0:
                raise UnicodeDecodeError("utf-8", raw, i, i + 1, "bad lead byte")
            out.append(raw[i:i + width].decode("utf-8"))
            i += width
        except UnicodeDecodeError:
            out.append(_INVALID)
            i += 1
    return out


def go_json_string(s) -> str:
    raw = s if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass")
    parts = ['"']
    for ch in go_runes(raw):
        if ch is _INVALID:
            parts.append("\\ufffd")
        elif ch in '"\\':
            parts.append("\\" + ch)
        elif ch == "\n":
            parts.append("\\n")
        elif ch == "\r":
            parts.append("\\r")
        elif ch == "\t":
            parts.append("\\t")
        elif ord(ch) < 0x20 or ch in "<>&" or ch in "\u2028\u2029":
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _go_is_space(ch: str) -> bool:
    # unicode.IsSpace: Latin-1 space characters plus the White_Space property
    return ch in "\t\n\v\f\r \x85\xa0" or (ord(ch) > 0xFF and ch.isspace() and ch not in "\x1c\x1d\x1e\x1f")


def go_csv_field(raw: bytes) -> bytes:
    if not raw:
        return raw
    quote = raw == b"\\." or any(c in raw for c in b',"\r\n')
    if not quote:
        first = go_runes(raw)[0]
        quote = first is not _INVALID and _go_is_space(first)
    if not quote:
        return raw
    return b'"' + raw.replace(b'"', b'""') + b'"'


# -- documents as Python objects --------------------------------------------------------------
def _column_values(col, n: int) -> list:
    if col.values is None:
        return [None] * n
    if col.kind == "string":
        vals = col.values.to_list()
    elif col.kind == "json":
        vals = [RawJSON(v.decode("utf-8", "surrogatepass")) for v in col.values.to_list()]
    elif col.kind == "float":
        vals = [GoFloat(v) if math.isfinite(v) else None for v in np.asarray(col.values).tolist()]
    elif col.kind == "integer":
        vals = [int(v) for v in np.asarray(col.values).tolist()]
    else:
        vals = [bool(v) for v in np.asarray(col.values).tolist()]
    if col.valid is not None:
        vals = [v if ok else None for v, ok in zip(vals, np.asarray(col.valid).tolist())]
    return vals


def _row_count(series) -> int:
    return len(series)


def series_rows(series, epoch, csv: bool = False) -> tuple[list[str], list[list]]:
    """(column names, rows) of one series; times formatted for JSON or CSV."""
    n = _row_count(series)
    names, cols = [], []
    if series.times is not None:
        names.append("time")
        ts = [int(t) for t in np.asarray(series.times).tolist()]
        offsets = getattr(series, "utc_offsets", None)
        if epoch in (None, "") and not csv and offsets is not None:
            cols.append([rfc3339_offset(t, o) for t, o in zip(ts, np.asarray(offsets).tolist())])
        elif epoch in (None, "") and not csv:
            cols.append([rfc3339(t) for t in ts])
        else:
            cols.append([epoch_time(t, epoch if epoch else "ns") for t in ts])
    for col in series.columns:
        names.append(col.name)
        if csv and col.kind == "float" and col.values is not None:
            vals = [float(v) for v in np.asarray(col.values).tolist()]
            if col.valid is not None:
                vals = [v if ok else None for v, ok in zip(vals, np.asarray(col.valid).tolist())]
            cols.append(vals)
        else:
            cols.append(_column_values(col, n))
    rows = [[c[i] for c in cols] for i in range(n)]
    return names, rows


def _series_object(series, names, rows, partial) -> dict:
    obj = {}
    if series.name:
        obj["name"] = series.name
    if series.tags:
        obj["tags"] = {k: series.tags[k] for k in sorted(series.tags, key=lambda k: k.encode("utf-8", "surrogatepass"))}
    if names:
        obj["columns"] = names
    if rows:
        obj["values"] = rows
    if partial:
        obj["partial"] = True
    return obj


def _messages(result) -> list:
    out = []
    for m in result.messages or ():
        if isinstance(m, dict):
            out.append({"level": m.get("level", ""), "text": m.get("text", "")})
        elif isinstance(m, (tuple, list)):
            out.append({"level": m[0], "text": m[1]})
        else:
            out.append({"level": m.level, "text": m.text})
    return out


def _result_object(result, series_objects, messages, partial, error) -> dict:
    obj = {"statement_id": int(result.statement_id)}
    if series_objects:
        obj["series"] = series_objects
    if messages:
        obj["messages"] = messages
    if partial:
        obj["partial"] = True
    if error:
        obj["error"] = error
    return obj


def build_document(results, epoch=None) -> dict:
    """The {"results": [...]} answer as Python objects (what json.loads of the bytes gives)."""
    out = []
    for result in results:
        objs = []
        for s in result.series or ():
            names, rows = series_rows(s, epoch)
            objs.append(_series_object(s, names, rows, s.partial))
        out.append(_result_object(result, objs, _messages(result), result.partial, result.error))
    return {"results": out} if out else {}


# -- Go-style marshalling -----------------------------------------------------------------------
def marshal(value, pretty: bool = False, depth: int = 0) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, RawJSON):
        return str(value)
    if isinstance(value, GoFloat):
        return go_json_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value) if math.isfinite(value) else "null"
    if isinstance(value, (str, bytes)):
        return go_json_string(value)
    if isinstance(value, dict):
        items = [go_json_string(k) + (": " if pretty else ":") + marshal(v, pretty, depth + 1)
                 for k, v in value.items()]
        return _container("{", "}", items, pretty, depth)
    items = [marshal(v, pretty, depth + 1) for v in value]
    return _container("[", "]", items, pretty, depth)


def _container(open_, close, items, pretty, depth) -> str:
    if not items:
        return open_ + close
    if not pretty:
        return open_ + ",".join(items) + close
    inner = "\n" + "    " * (depth + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + "    " * depth + close


# -- the encoders -----------------------------------------------------------------------------
def encode_results(results, epoch=None, pretty=False) -> bytes:
    return (marshal(build_document(results, epoch), pretty) + "\n").encode("utf-8", "surrogatepass")


def encode_error(message, pretty=False) -> bytes:
    return (marshal({"error": message}, pretty) + "\n").encode("utf-8", "surrogatepass")


def encode_csv_error(message) -> bytes:
    return b"error\n" + go_csv_field(_utf8(message)) + b"\n"


def encode_chunks(results, epoch=None, chunk_size=10000, pretty=False):
    size = chunk_size if chunk_size > 0 else 10000
    for result in results:
        pieces = []
        for s in result.series or ():
            names, rows = series_rows(s, epoch)
            if not rows:
                pieces.append(_series_object(s, names, rows, s.partial))
            for lo in range(0, len(rows), size):
                last = lo + size >= len(rows)
                pieces.append(_series_object(s, names, rows[lo:lo + size], s.partial if last else True))
        if not pieces:
            pieces = [None]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            obj = _result_object(result, [piece] if piece else [],
                                 _messages(result) if i == 0 else [],
                                 result.partial if last else True,
                                 result.error if last else None)
            yield (marshal({"results": [obj]}, pretty) + "\n").encode("utf-8", "surrogatepass")


def _utf8(s) -> bytes:
    return s if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass")


def _tags_cell(tags) -> bytes:
    if not tags:
        return b""

    def esc(s):
        return _utf8(s).replace(b",", b"\\,").replace(b" ", b"\\ ").replace(b"=", b"\\=")

    return b",".join(esc(k) + b"=" + esc(tags[k]) for k in sorted(tags, key=_utf8) if tags[k])


def _csv_cell(v) -> bytes:
    if v is None:
        return b""
    if v is True:
        return b"true"
    if v is False:
        return b"false"
    if isinstance(v, float):
        return go_csv_float(v).encode()
    if isinstance(v, int):
        return str(v).encode()
    return go_csv_field(_utf8(v))


def encode_csv(results, epoch=None) -> bytes:
    lines = []
    current, previous = None, None
    for result in results:
        if not result.series:
            continue
        if result.statement_id != current:
            if current is not None:
                lines.append(b"")
            current, previous = result.statement_id, None
        for s in result.series:
            names, rows = series_rows(s, epoch, csv=True)
            if names != previous:
                if previous is not None:
                    lines.append(b"")
                lines.append(b",".join([b"name", b"tags"] + [go_csv_field(_utf8(n)) for n in names]))
                previous = names
            prefix = [go_csv_field(_utf8(s.name or "")), go_csv_field(_tags_cell(s.tags))]
            for row in rows:
                lines.append(b",".join(prefix + [_csv_cell(v) for v in row]))
    return b"".join(line + b"\n" for line in lines)
