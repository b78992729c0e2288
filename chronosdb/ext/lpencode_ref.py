"""Plain-Python reference twin of chronosdb.ext.lpencode (columns -> InfluxDB 1.x line protocol).

This module is the executable specification of the encoder: it writes one value at a time, for
clarity, and the Cython module must produce exactly the same bytes for every input
(tests/test_lpencode.py runs both on seeded random batches). It also holds the per-series and
per-batch preparation both implementations share: turning canonical series keys and field names
into their wire spelling (once per series, never per point) and the numpy passes that put a
batch's points into line order.

What a line looks like, and why each piece is spelt as it is (docs/format/line-protocol.md is the
parser's side of the same contract)::

    <measurement>[,<tag key>=<tag value>...] <field key>=<value>[,...] <time>\\n

- Names. The parser unescapes ``\\,``, ``\\ `` (and ``\\=`` in tags and field keys) and keeps every
  other backslash pair verbatim, so a name is written with a backslash before each comma and
  space (and ``=`` where that ends a name) and every other byte, backslashes included, as is.
  A name that cannot survive this is refused with ``ValueError``: one containing a newline, one
  where an odd run of backslashes ends the name or stands before a byte that needs escaping (the
  parser would read the pair the wrong way), a measurement starting with ``#`` (a comment line)
  or a tab (trimmed away), and a field key starting with a tab (read as part of the separator).
  No such name can come out of the parser, so every batch the server parsed encodes.
- Values. float64: the shortest decimal that reads back as the same double (Ryu in the Cython
  module, ``repr`` here), laid out as JavaScript prints numbers (plain digits for exponents
  -7 < e < 21, else ``d.ddde-N``), which the parser's float grammar accepts; ``-0`` keeps its
  sign. NaN and +-inf have no line-protocol spelling: they raise ``ValueError`` (or, with
  ``skip_nan``, a NaN means "no value" and is left off the line). int64: digits and ``i``.
  Booleans: ``true``/``false``. Strings: in double quotes, with ``"`` and ``\\`` escaped by a
  backslash (the parser's only string escapes).
- Time: an integer in the request's precision.

Line order for a WriteBatch (``batch_plan``): one line per (series, time) holding every field the
batch has for it, lines sorted by series index then time, fields in first-seen order of their
names. Where the batch holds one series+field+time more than once the entry the engine would keep
wins: the later one in the column, and across columns of the same name (a type change inside one
batch) the later column.
"""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from chronosdb.ext.lineproto_ref import precision_multiplier
from chronosdb.model.batch import WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import parse_key
from chronosdb.model.strings import StringArray

# Bytes that end a name unless escaped, per place on the line.
MEASUREMENT_SPECIALS = b", "
TAG_SPECIALS = b",= "        # tag keys, tag values and field keys


# ---------------------------------------------------------------------------------------------
# Names (per series / per column: plain Python in both implementations)
# ---------------------------------------------------------------------------------------------

def wire_name(name: bytes, specials: bytes, what: str = "name") -> bytes:
    """``name`` as the parser must see it to read ``name`` back; ValueError if it cannot."""
    if not name:
        raise ValueError(f"{what} must not be empty")
    if b"\n" in name:
        raise ValueError(f"{what} {name!r} contains a newline, which line protocol cannot carry")
    out = bytearray()
    run = 0  # length of the backslash run just written
    for c in name:
        if c == 0x5C:
            run += 1
            out.append(c)
            continue
        if c in specials:
            if run % 2:
                raise ValueError(
                    f"{what} {name!r} cannot be written in line protocol: a backslash stands "
                    f"before {chr(c)!r}, and the parser would read the pair as an escape"
                )
            out.append(0x5C)
        out.append(c)
        run = 0
    if run % 2:
        raise ValueError(
            f"{what} {name!r} cannot be written in line protocol: it ends in a backslash"
        )
    return bytes(out)


def wire_measurement(measurement: bytes) -> bytes:
    if measurement[:1] in (b"#", b"\t"):
        raise ValueError(
            f"measurement {measurement!r} cannot be written in line protocol: a line starting "
            f"with {measurement[:1].decode()!r} is " + ("a comment" if measurement[:1] == b"#"
                                                        else "trimmed")
        )
    return wire_name(measurement, MEASUREMENT_SPECIALS, "measurement")


def wire_field_key(name: bytes) -> bytes:
    if name[:1] == b"\t":
        raise ValueError(
            f"field key {name!r} cannot be written in line protocol: a tab after the key "
            f"section is read as part of the separator"
        )
    return wire_name(name, TAG_SPECIALS, "field key")


def wire_series(measurement: bytes, tags) -> bytes:
    """Key section of a line from unescaped names; tags sorted by key, empty values dropped."""
    parts = [wire_measurement(measurement)]
    prev = None
    for k, v in sorted(tags):
        if k == prev:
            raise ValueError(f"duplicate tag key {k!r}")
        prev = k
        if not v:
            continue
        parts.append(wire_name(k, TAG_SPECIALS, "tag key") + b"=" + wire_name(v, TAG_SPECIALS, "tag value"))
    return b",".join(parts)


def wire_key(key: bytes) -> bytes:
    """A canonical series key (chronosdb.model.serieskey) as the key section of a line."""
    if b"\\" not in key and b"\n" not in key and key[:1] not in (b"#", b"\t"):
        # Canonical keys escape exactly what the wire escapes, except backslashes themselves.
        return key
    measurement, tags = parse_key(key)
    return wire_series(measurement, tags)


def as_name_bytes(v, what: str) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be str or bytes, not {type(v).__name__}")


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

def format_float(x: float) -> bytes:
    """Shortest round-trip decimal in the layout documented above; ValueError for NaN/inf."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} cannot be written in line protocol")
    if x == 0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    sign = "-" if x < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    d = "".join(map(str, digit_tuple))
    n = len(d)
    point = n + exp  # digits before the decimal point
    if exp >= 0 and point <= 21:
        s = d + "0" * exp
    elif 0 < point < n:
        s = d[:point] + "." + d[point:]
    elif -6 < point <= 0:
        s = "0." + "0" * (-point) + d
    else:
        s = d[0] + ("." + d[1:] if n > 1 else "") + "e" + str(point - 1)
    return (sign + s).encode()


def escape_string(raw: bytes) -> bytes:
    return raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')


def format_value(ftype: FieldType, v) -> bytes:
    if ftype is FieldType.FLOAT:
        return format_float(float(v))
    if ftype is FieldType.INTEGER:
        return b"%di" % int(v)
    if ftype is FieldType.BOOLEAN:
        return b"true" if v else b"false"
    return b'"' + escape_string(v) + b'"'


def _value_at(col_ftype, values, i):
    if col_ftype is FieldType.STRING:
        o = values.offsets
        return values.data[o[i]:o[i + 1]]
    return values[i]


# ---------------------------------------------------------------------------------------------
# WriteBatch -> line order (numpy passes, shared by both implementations)
# ---------------------------------------------------------------------------------------------

def batch_plan(batch: WriteBatch, precision: str = "ns"):
    """Points of ``batch`` in line order, duplicates resolved, times scaled to ``precision``.

    Returns (series, times, cols, rows, line_start): one entry per value written, ``cols`` and
    ``rows`` saying where its value is, ``line_start[i]`` true where entry i opens a new line.
    """
    mult = precision_multiplier(precision)
    present = [j for j, c in enumerate(batch.columns) if len(c)]
    cols_in = [batch.columns[j] for j in present]
    if not cols_in:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, e, np.zeros(0, dtype=bool)
    name_ids: dict[bytes, int] = {}
    for c in cols_in:
        name_ids.setdefault(c.name, len(name_ids))
    lengths = [len(c) for c in cols_in]
    series = np.concatenate([c.series for c in cols_in]).astype(np.int64)
    times = np.concatenate([c.times for c in cols_in])
    col_of = np.repeat(np.array(present, dtype=np.int64), lengths)
    nid = np.repeat(np.array([name_ids[c.name] for c in cols_in], dtype=np.int64), lengths)
    row_of = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    if len(batch.keys) and (series.min() < 0 or series.max() >= len(batch.keys)):
        raise ValueError("a column indexes a series key out of range")
    # Stable sort: entries equal in (series, time, name) keep batch order, so the last one of
    # each run is the one the engine would keep.
    order = np.lexsort((nid, times, series))
    series, times, col_of, nid, row_of = (a[order] for a in (series, times, col_of, nid, row_of))
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = (series[1:] != series[:-1]) | (times[1:] != times[:-1]) | (nid[1:] != nid[:-1])
    series, times, col_of, row_of = series[keep], times[keep], col_of[keep], row_of[keep]
    line_start = np.ones(len(series), dtype=bool)
    line_start[1:] = (series[1:] != series[:-1]) | (times[1:] != times[:-1])
    if mult != 1:
        bad = np.flatnonzero(times % mult)
        if len(bad):
            raise ValueError(
                f"time {int(times[bad[0]])} ns is not a whole number of {precision!r}: "
                f"encode with a finer precision"
            )
        times = times // mult
    return series, times, col_of, row_of, line_start


def batch_wire_parts(batch: WriteBatch):
    """(wire keys, wire field names) of a batch: per series and per column, not per point."""
    keys = [wire_key(k) for k in batch.keys]
    names = [wire_field_key(c.name) for c in batch.columns]
    return keys, names


def encode_batch(batch: WriteBatch, precision: str = "ns") -> bytes:
    """Reference of lpencode.encode_batch: the batch as line protocol, one line per (series, time)."""
    keys, names = batch_wire_parts(batch)
    series, times, cols, rows, line_start = batch_plan(batch, precision)
    out = bytearray()
    for i in range(len(series)):
        if line_start[i]:
            if i:
                out += b" %d\n" % int(times[i - 1])
            out += keys[series[i]] + b" "
        else:
            out += b","
        c = batch.columns[cols[i]]
        v = _value_at(c.ftype, c.values, rows[i])
        try:
            text = format_value(c.ftype, v)
        except ValueError:
            raise ValueError(
                f"field {c.name!r} of series {batch.keys[series[i]]!r} at time "
                f"{int(times[i])} is {float(v)!r}, which line protocol cannot carry"
            ) from None
        out += names[cols[i]] + b"=" + text
    if len(series):
        out += b" %d\n" % int(times[-1])
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Columns (numpy arrays, DataFrames) -> lines
# ---------------------------------------------------------------------------------------------

def field_kind(values) -> tuple[FieldType, object]:
    """A field's type and its values as the encoders read them (numpy array or StringArray)."""
    if isinstance(values, StringArray):
        return FieldType.STRING, values
    a = np.asarray(values)
    if a.dtype.kind == "f":
        return FieldType.FLOAT, np.ascontiguousarray(a, dtype=np.float64)
    if a.dtype.kind == "b":
        return FieldType.BOOLEAN, np.ascontiguousarray(a, dtype=np.uint8)
    if a.dtype.kind == "i":
        return FieldType.INTEGER, np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype.kind == "u":
        if len(a) and a.max() > np.iinfo(np.int64).max:
            raise ValueError("unsigned value above 2**63-1: line protocol 1.x integers are int64")
        return FieldType.INTEGER, np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype.kind in "USO":
        return FieldType.STRING, StringArray.from_list(
            [v if isinstance(v, (bytes, str)) else str(v) for v in a.tolist()]
        )
    raise TypeError(f"field values of dtype {a.dtype} have no line-protocol type")


def columns_series(measurement, tags, n: int) -> tuple[list[bytes], np.ndarray]:
    """Wire keys and per-row series index for ``encode_columns``.

    ``tags`` maps a tag key to either one value (every row) or a sequence of ``n`` values (a
    tag column, one value per row; an empty value means the row has no such tag). Per-row tag
    columns are factorized with numpy, so the keys are built once per distinct series.
    """
    m = as_name_bytes(measurement, "measurement")
    fixed: list[tuple[bytes, bytes]] = []
    per_row: list[tuple[bytes, np.ndarray]] = []
    for k, v in (tags or {}).items():
        kb = as_name_bytes(k, "tag key")
        if isinstance(v, (str, bytes)):
            fixed.append((kb, as_name_bytes(v, "tag value")))
        else:
            a = np.asarray(v)
            if a.ndim != 1 or len(a) != n:
                raise ValueError(f"tag column {k!r} has {len(a)} values for {n} rows")
            per_row.append((kb, a))
    if not per_row:
        return [wire_series(m, fixed)], np.zeros(n, dtype=np.int64)
    uniques, codes = [], []
    for _, a in per_row:
        u, inv = np.unique(a.astype(str) if a.dtype.kind == "O" else a, return_inverse=True)
        uniques.append(u)
        codes.append(inv.reshape(-1))
    combos, series = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    keys = []
    for combo in combos:
        tag_list = list(fixed)
        for (kb, _), u, code in zip(per_row, uniques, combo):
            tag_list.append((kb, as_name_bytes(u[code].item(), "tag value")))
        keys.append(wire_series(m, tag_list))
    return keys, np.ascontiguousarray(series.reshape(-1), dtype=np.int64)


def columns_prepare(measurement, tags, times, fields, precision):
    precision_multiplier(precision)  # validates
    t = np.ascontiguousarray(times, dtype=np.int64)
    if t.ndim != 1:
        raise ValueError("times must be one-dimensional")
    n = len(t)
    if not fields:
        raise ValueError("at least one field is needed")
    names, kinds, values = [], [], []
    for name, v in fields.items():
        ft, vals = field_kind(v)
        if len(vals) != n:
            raise ValueError(f"field {name!r} has {len(vals)} values for {n} times")
        names.append(wire_field_key(as_name_bytes(name, "field key")))
        kinds.append(ft)
        values.append(vals)
    keys, series = columns_series(measurement, tags, n)
    return keys, series, t, names, kinds, values


def encode_columns(measurement, tags, times, fields, precision: str = "ns",
                   skip_nan: bool = False) -> bytes:
    """Reference of lpencode.encode_columns: row i -> one line (see the Cython module's stub)."""
    keys, series, t, names, kinds, values = columns_prepare(measurement, tags, times, fields, precision)
    out = bytearray()
    for i in range(len(t)):
        parts = []
        for name, ft, vals in zip(names, kinds, values):
            v = _value_at(ft, vals, i)
            if ft is FieldType.FLOAT and not math.isfinite(v):
                if skip_nan and math.isnan(v):
                    continue
                raise ValueError(
                    f"field {name!r} at row {i} (time {int(t[i])}) is {float(v)!r}, which line "
                    f"protocol cannot carry"
                )
            parts.append(name + b"=" + format_value(ft, v))
        if parts:
            out += keys[series[i]] + b" " + b",".join(parts) + b" %d\n" % int(t[i])
    return bytes(out)
