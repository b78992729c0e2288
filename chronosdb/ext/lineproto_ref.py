"""Plain-Python reference twin of chronosdb.ext.lineproto (the InfluxDB 1.x line-protocol parser).

This module is the executable specification: it is written for clarity, one line and one byte at
a time, and the Cython parser must give exactly the same ParseResult (keys, columns, arrays and
errors) for every body. docs/format/line-protocol.md states the grammar in prose; the order of the
checks below is the order in which a bad line picks its error reason, so keep the two modules in
step when either changes.

A body is cut into lines first (``_line_end``), independently of whether the line parses: a
newline ends a line except inside a double-quoted string field value, so a bad line can never
swallow or shift its neighbours' boundaries in a way the two implementations could disagree on.
Then each trimmed line is parsed into (series key, fields, time) or rejected with a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray

# Precision name -> nanoseconds per unit. "" and "n" are InfluxDB's own spellings of ns.
PRECISIONS = {
    "ns": 1, "": 1, "n": 1,
    "u": 1_000, "us": 1_000, "µ": 1_000, "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
# InfluxDB 1.x keeps the two int64 extremes (and MIN+1) out of the valid time range: MIN is its
# "no time" sentinel. We accept exactly the times it accepts.
TIME_MIN = I64_MIN + 2
TIME_MAX = I64_MAX - 1
MAX_KEY_LENGTH = 65535          # InfluxDB's models.MaxKeyLength: series key + 4 + field key
ERROR_LINE_CAP = 1024           # bytes of a rejected line kept in its error tuple

R_TIME_RANGE = f"time outside range {TIME_MIN} - {TIME_MAX}"

_WS = b" \t"
_TRAIL_WS = b" \t\r"
_MEAS_ESC = b", "
_TAG_ESC = b",= "
_BOOLS = {b"t": 1, b"T": 1, b"true": 1, b"True": 1, b"TRUE": 1,
          b"f": 0, b"F": 0, b"false": 0, b"False": 0, b"FALSE": 0}


@dataclass
class ParseResult:
    batch: WriteBatch                 # the points of every line that parsed
    n_lines: int = 0                  # lines parsed into points
    errors: list = field(default_factory=list)  # (line number, raw line <= 1 KiB, reason)


class LineError(Exception):
    """A line is rejected; the message is the InfluxDB-style reason."""


def precision_multiplier(precision: str) -> int:
    try:
        return PRECISIONS[precision]
    except (KeyError, TypeError):
        raise ValueError(
            f"invalid precision {precision!r}: expected one of ns, n, u, us, µ, ms, s, m, h"
        ) from None


def check_default_time(default_time) -> int:
    t = int(default_time)
    if not I64_MIN <= t <= I64_MAX:
        raise ValueError(f"default_time {t} does not fit in int64 nanoseconds")
    return t


def as_bytes(body) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"line protocol body must be bytes, bytearray or memoryview, not {type(body).__name__}")


# ---------------------------------------------------------------------------------------------
# Line boundaries
# ---------------------------------------------------------------------------------------------

def _line_end(b: bytes, pos: int) -> int:
    """Index of the newline that ends the line starting at pos (len(b) when none).

    A newline inside a string field value (a '"' right after an unescaped '=' in the field
    section) belongs to the value. A string that never closes does not swallow the rest of the
    body: the line then ends at its first newline, and the parser reports "unbalanced quotes".
    A backslash skips the byte after it, except a newline, which always ends the line outside
    strings.
    """
    n = len(b)
    nl = b.find(b"\n", pos)
    if nl < 0:
        nl = n
    if b.find(b'"', pos, nl) < 0:
        return nl
    i = pos
    while i < n and b[i] in _WS:
        i += 1
    if i < n and b[i] == 0x23:  # '#': a comment
        return nl
    section = 0  # 0 key, 1 fields, 2 timestamp
    while i < n:
        c = b[i]
        if c == 0x0A:
            return i
        if c == 0x5C:  # backslash
            if i + 1 < n and b[i + 1] == 0x0A:
                return i + 1
            i += 2
            continue
        if c == 0x20 and section < 2:
            section += 1
            i += 1
            if section == 1:
                while i < n and b[i] in _WS:
                    i += 1
            continue
        if section == 1 and c == 0x3D and i + 1 < n and b[i + 1] == 0x22:  # '="'
            j = i + 2
            while j < n:
                cj = b[j]
                if cj == 0x5C:
                    j += 2
                elif cj == 0x22:
                    break
                else:
                    j += 1
            if j >= n:  # never closed: unbalanced, the line ends at its first newline
                k = b.find(b"\n", i)
                return n if k < 0 else k
            i = j + 1
            continue
        i += 1
    return n


# ---------------------------------------------------------------------------------------------
# Escapes
# ---------------------------------------------------------------------------------------------

def unescape(raw: bytes, escapable: bytes) -> bytes:
    """Backslash + a byte of ``escapable`` -> that byte; any other backslash pair stays as is."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 1 < n:
            nxt = raw[i + 1]
            if nxt in escapable:
                out.append(nxt)
            else:
                out += raw[i:i + 2]
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def unescape_string(raw: bytes) -> bytes:
    """String field value: \\" -> ", \\\\ -> \\; a backslash before anything else is literal."""
    return unescape(raw, b'"\\')


def _scan_escaped(L: bytes, i: int, stops: bytes) -> int:
    """First index >= i holding an unescaped byte of ``stops`` (len(L) when none)."""
    m = len(L)
    while i < m:
        c = L[i]
        if c == 0x5C:
            i += 2
            continue
        if c in stops:
            return i
        i += 1
    return m


# ---------------------------------------------------------------------------------------------
# Field values
# ---------------------------------------------------------------------------------------------

def _is_digits(s: bytes) -> bool:
    return len(s) > 0 and all(0x30 <= c <= 0x39 for c in s)


def _valid_float(tok: bytes) -> bool:
    """-?(digits[.digits?] | .digits)([eE][+-]?digits)?"""
    s = tok[1:] if tok[:1] == b"-" else tok
    e = max(s.find(b"e"), s.find(b"E"))
    if e >= 0:
        mant, exp = s[:e], s[e + 1:]
        if exp[:1] in (b"+", b"-"):
            exp = exp[1:]
        if not _is_digits(exp):
            return False
    else:
        mant = s
    if b"." in mant:
        a, _, b2 = mant.partition(b".")
        if a and not _is_digits(a):
            return False
        if b2 and not _is_digits(b2):
            return False
        return bool(a or b2)
    return _is_digits(mant)


def parse_number(tok: bytes):
    """(FieldType, value) of a numeric token, or LineError."""
    last = tok[-1:]
    if last == b"i":
        digits = tok[:-1]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not _is_digits(body):
            raise LineError("invalid number")
        v = int(digits)
        if not I64_MIN <= v <= I64_MAX:
            raise LineError(f"unable to parse integer {digits.decode()}: value out of range")
        return FieldType.INTEGER, v
    if not _valid_float(tok):
        raise LineError("invalid number")
    v = float(tok)
    if math.isinf(v):
        raise LineError("invalid float")
    return FieldType.FLOAT, v


def parse_timestamp(tok: bytes, mult: int) -> int:
    body = tok[1:] if tok[:1] == b"-" else tok
    if not _is_digits(body):
        raise LineError("bad timestamp")
    v = int(tok)
    if not I64_MIN <= v <= I64_MAX:
        raise LineError("bad timestamp")
    ns = v * mult
    if not TIME_MIN <= ns <= TIME_MAX:
        raise LineError(R_TIME_RANGE)
    return ns


# ---------------------------------------------------------------------------------------------
# One line
# ---------------------------------------------------------------------------------------------

def parse_line(L: bytes, mult: int, default_time: int):
    """Parse one trimmed line into (canonical key, [(field key, ftype, value)], time).

    Raises LineError with the reason when the line is rejected.
    """
    try:
        L.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("invalid UTF-8") from None
    m = len(L)
    # measurement
    if m == 0 or L[0] == 0x2C:
        raise LineError("missing measurement")
    i = _scan_escaped(L, 0, b", ")
    if i >= m:
        raise LineError("missing fields")
    meas = L[:i]
    tags = []
    if L[i] == 0x2C:
        while True:
            k0 = i + 1
            if k0 >= m or L[k0] in b" ,=":
                raise LineError("missing tag key")
            j = _scan_escaped(L, k0, b"=, ")
            if j >= m or L[j] != 0x3D:
                raise LineError("missing tag value")
            v0 = j + 1
            if v0 >= m or L[v0] in b", ":
                raise LineError("missing tag value")
            e = _scan_escaped(L, v0, b",= ")
            if e >= m:
                raise LineError("missing fields")
            if L[e] == 0x3D:
                raise LineError("invalid tag format")
            tags.append((unescape(L[k0:j], _TAG_ESC), unescape(L[v0:e], _TAG_ESC)))
            i = e
            if L[e] == 0x20:
                break
    # L[i] is the space after the key
    tkeys = sorted(k for k, _ in tags)
    if any(a == b for a, b in zip(tkeys, tkeys[1:])):
        raise LineError("duplicate tags")
    key = make_key(unescape(meas, _MEAS_ESC), tags)
    i += 1
    while i < m and L[i] in _WS:
        i += 1
    if i >= m:
        raise LineError("missing fields")
    fields = []
    while True:
        k0 = i
        j = _scan_escaped(L, k0, b"=, ")
        if j >= m or L[j] != 0x3D:
            raise LineError("invalid field format")
        if j == k0:
            raise LineError("missing field key")
        fkey = unescape(L[k0:j], _TAG_ESC)
        v = j + 1
        if v >= m or L[v] in b", ":
            raise LineError("missing field value")
        c = L[v]
        if c == 0x22:  # '"'
            q = _scan_escaped(L, v + 1, b'"')
            if q >= m:
                raise LineError("unbalanced quotes")
            fields.append((fkey, FieldType.STRING, unescape_string(L[v + 1:q])))
            i = q + 1
            if i < m and L[i] not in b", ":
                raise LineError("invalid field format")
        else:
            e = v
            while e < m and L[e] not in b", ":
                e += 1
            tok = L[v:e]
            if 0x30 <= c <= 0x39 or c in b".-":
                ftype, val = parse_number(tok)
            elif c in b"tTfF":
                if tok not in _BOOLS:
                    raise LineError("invalid boolean")
                ftype, val = FieldType.BOOLEAN, _BOOLS[tok]
            else:
                raise LineError("invalid boolean")
            fields.append((fkey, ftype, val))
            i = e
        if i >= m or L[i] == 0x20:
            break
        i += 1  # the comma
    for fkey, _, _ in fields:
        size = len(key) + 4 + len(fkey)
        if size > MAX_KEY_LENGTH:
            raise LineError(f"max key length exceeded: {size} > {MAX_KEY_LENGTH}")
    # the last value of a field key repeated within the line wins
    last = {fk: n for n, (fk, _, _) in enumerate(fields)}
    fields = [f for n, f in enumerate(fields) if last[f[0]] == n]
    while i < m and L[i] in _WS:
        i += 1
    if i >= m:
        return key, fields, default_time
    e = i
    while e < m and L[e] not in _WS:
        e += 1
    t = parse_timestamp(L[i:e], mult)
    while e < m and L[e] in _WS:
        e += 1
    if e < m:
        raise LineError("point is invalid")
    return key, fields, t


# ---------------------------------------------------------------------------------------------
# A whole body
# ---------------------------------------------------------------------------------------------

def parse(body, precision: str = "ns", default_time: int = 0) -> ParseResult:
    mult = precision_multiplier(precision)
    default_time = check_default_time(default_time)
    b = as_bytes(body)
    n = len(b)
    keys: dict[bytes, int] = {}
    cols: dict[tuple[bytes, FieldType], list] = {}
    errors = []
    n_lines = 0
    pos, lineno = 0, 1
    while pos < n:
        end = _line_end(b, pos)
        s, e = pos, end
        line_no = lineno
        lineno += 1 + b.count(b"\n", pos, end)
        pos = end + 1
        while s < e and b[s] in _WS:
            s += 1
        while e > s and b[e - 1] in _TRAIL_WS:
            e -= 1
        if s == e or b[s] == 0x23:
            continue
        L = b[s:e]
        try:
            key, fields, t = parse_line(L, mult, default_time)
        except LineError as err:
            errors.append((line_no, L[:ERROR_LINE_CAP], str(err)))
            continue
        si = keys.setdefault(key, len(keys))
        for fkey, ftype, val in fields:
            cols.setdefault((fkey, ftype), []).append((si, t, val))
        n_lines += 1
    columns = []
    for (fkey, ftype), rows in cols.items():
        series = np.array([r[0] for r in rows], dtype=np.int32)
        times = np.array([r[1] for r in rows], dtype=np.int64)
        if ftype is FieldType.STRING:
            values = StringArray.from_list([r[2] for r in rows])
        else:
            values = np.array([r[2] for r in rows], dtype=ftype.dtype)
        columns.append(FieldColumn(fkey, ftype, series, times, values))
    return ParseResult(WriteBatch(list(keys), columns), n_lines, errors)
