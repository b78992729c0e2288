"""Points in the shapes people have them -> line-protocol request bodies of at most N lines.

``encode_bodies(points, precision, batch_size, now_ns)`` accepts, and tells apart:

* a pandas ``DataFrame`` (with ``measurement=`` and ``tag_columns=``; see ``dataframe_bodies``),
* one columnar block ``(measurement, tags, times, {field: array})`` -- ``times`` an array of
  integers in ``precision`` units or of ``datetime64``; each tag one value or an array with a
  value per row (see chronosdb.ext.lpencode.encode_columns),
* an iterable of points, each a dict ``{"measurement", "tags", "fields", "time"}`` or a tuple
  ``(measurement, tags, fields, time)`` (a columnar block may appear among them too).

Columnar blocks and DataFrames go to ``lpencode.encode_columns`` in one piece per ``batch_size``
rows: no Python work per point. Single points are collected per (field name, type) into numpy
columns of a WriteBatch, which ``lpencode.encode_batch`` writes; only the collecting is Python.

Times: an int is taken to be in ``precision`` units already; a ``datetime`` (naive = UTC),
``numpy.datetime64``, pandas ``Timestamp`` or RFC3339 string is converted (truncated to the
precision). A point without a time gets ``now_ns`` -- one instant for the whole write() call,
as the server itself stamps every timeless line of one request with one time.
"""
from __future__ import annotations

import datetime as dt
import re
import time as time_module
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from chronosdb.ext import lpencode
from chronosdb.ext.lineproto_ref import precision_multiplier
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def time_to_ns(t) -> int:
    """A time as int nanoseconds since the epoch (ints are not accepted here: see to_units)."""
    if isinstance(t, np.datetime64):
        return int(t.astype("datetime64[ns]").astype(np.int64))
    value = getattr(t, "value", None)  # pandas Timestamp: ns since the epoch
    if isinstance(value, (int, np.integer)) and isinstance(t, dt.datetime):
        return int(value)
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        delta = t - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    if isinstance(t, dt.date):
        return time_to_ns(dt.datetime(t.year, t.month, t.day))
    if isinstance(t, str):
        m = _RFC3339.match(t.strip())
        if not m:
            raise ValueError(f"time {t!r} is not RFC3339 (like 2024-01-02T03:04:05.123456789Z)")
        day, clock, frac, zone = m.groups()
        zone = "+00:00" if zone in "Zz" else zone
        base = dt.datetime.fromisoformat(f"{day}T{clock}{zone}")
        return time_to_ns(base) + int((frac or "0").ljust(9, "0"))
    raise TypeError(f"time of type {type(t).__name__} is not supported: use an int in the "
                    f"write's precision, a datetime, numpy.datetime64 or an RFC3339 string")


def to_units(t, unit_ns: int, now_ns: int) -> int:
    """A point's time in precision units (ints pass through; None means now)."""
    if t is None:
        return now_ns // unit_ns
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        return int(t)
    return time_to_ns(t) // unit_ns


def times_to_units(times, unit_ns: int) -> np.ndarray:
    """An array of times in precision units: integers pass, datetime64 values are converted."""
    a = np.asarray(times)
    if a.dtype.kind == "M":
        return a.astype("datetime64[ns]").astype(np.int64) // unit_ns
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "O":
        return np.array([to_units(t, unit_ns, 0) for t in a.tolist()], dtype=np.int64)
    raise TypeError(f"times of dtype {a.dtype} are not supported: use integers in the write's "
                    f"precision or datetime64")


def _name(v) -> str:
    """A measurement, tag key or tag value as str (bytes are UTF-8, anything else str())."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode()
        except UnicodeDecodeError:
            raise ValueError(f"name {bytes(v)!r} is not valid UTF-8, which line protocol "
                             f"requires") from None
    return str(v)


def _field_type(name, v) -> FieldType | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return FieldType.BOOLEAN
    if isinstance(v, (int, np.integer)):
        return FieldType.INTEGER
    if isinstance(v, (float, np.floating)):
        return FieldType.FLOAT
    if isinstance(v, (str, bytes)):
        return FieldType.STRING
    raise TypeError(f"field {name!r}: value {v!r} of type {type(v).__name__} has no "
                    f"line-protocol type (use float, int, bool or str)")


def _is_columnar(p) -> bool:
    return (isinstance(p, tuple) and len(p) == 4 and isinstance(p[3], Mapping)
            and not isinstance(p[2], Mapping))


def _is_dataframe(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "iloc")


class _RowCollector:
    """Single points -> one WriteBatch (per (field, type) numpy columns) -> line protocol."""

    def __init__(self, unit_ns: int, now_ns: int):
        self.unit_ns, self.now_ns = unit_ns, now_ns
        self.keys: dict[tuple, int] = {}
        self.key_bytes: list[bytes] = []
        self.cols: dict[tuple[bytes, FieldType], tuple[list, list, list]] = {}
        self.n = 0

    def add(self, measurement, tags, fields, t) -> None:
        if not measurement:
            raise ValueError("a point needs a measurement")
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError(f"point of measurement {measurement!r} has no fields")
        tag_items = tuple(sorted((_name(k), _name(v)) for k, v in (tags or {}).items()
                                 if v is not None and v != ""))
        measurement = _name(measurement)
        kid = self.keys.get((measurement, tag_items))
        if kid is None:
            kid = self.keys[(measurement, tag_items)] = len(self.key_bytes)
            self.key_bytes.append(make_key(_name(measurement), tag_items))
        tu = to_units(t, self.unit_ns, self.now_ns)
        added = False
        for name, v in fields.items():
            ft = _field_type(name, v)
            if ft is None:
                continue
            name_b = name.encode() if isinstance(name, str) else bytes(name)
            s, ts, vs = self.cols.setdefault((name_b, ft), ([], [], []))
            s.append(kid)
            ts.append(tu)
            vs.append(v)
            added = True
        if not added:
            raise ValueError(f"point of measurement {measurement!r} has no field with a value")
        self.n += 1

    def body(self) -> bytes:
        columns = []
        for (name, ft), (s, ts, vs) in self.cols.items():
            if ft is FieldType.STRING:
                values = StringArray.from_list(vs)
            else:
                try:
                    values = np.array(vs, dtype=ft.dtype)
                except OverflowError:
                    raise ValueError(f"field {name!r}: an integer outside int64, which line "
                                     f"protocol 1.x cannot carry") from None
            columns.append(FieldColumn(name, ft, s, ts, values))
        # Times are already in precision units: written verbatim.
        return lpencode.encode_batch(WriteBatch(self.key_bytes, columns), "ns")


def columnar_bodies(block, unit_ns: int, precision: str, batch_size: int) -> Iterator[bytes]:
    measurement, tags, times, fields = block
    t = times_to_units(times, unit_ns)
    n = len(t)
    fields = {k: (v if isinstance(v, StringArray) else np.asarray(v)) for k, v in fields.items()}
    tags = {k: (v if isinstance(v, (str, bytes)) else np.asarray(v)) for k, v in (tags or {}).items()}
    for lo in range(0, max(n, 1), batch_size):
        hi = min(n, lo + batch_size)
        if hi <= lo:
            break
        part_fields = {k: (v.take(np.arange(lo, hi)) if isinstance(v, StringArray) else v[lo:hi])
                       for k, v in fields.items()}
        part_tags = {k: (v if isinstance(v, (str, bytes)) else v[lo:hi]) for k, v in tags.items()}
        yield lpencode.encode_columns(measurement, part_tags, t[lo:hi], part_fields, precision,
                                      skip_nan=True)


def dataframe_bodies(df, measurement: str | None, tag_columns, time_column: str | None,
                     unit_ns: int, precision: str, batch_size: int) -> Iterator[bytes]:
    """A DataFrame: one line per row; the time is ``time_column`` or else the index (a
    DatetimeIndex, or integers in precision units); ``tag_columns`` are tags (missing values
    leave the tag off the row), every other column is a field (NaN = no value in that row)."""
    if not measurement:
        raise ValueError("writing a DataFrame needs measurement=")
    tag_columns = list(tag_columns or [])
    missing = [c for c in tag_columns + ([time_column] if time_column else []) if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame has no column(s) {missing}")
    src = df[time_column] if time_column else df.index
    if getattr(src.dtype, "tz", None) is not None:  # tz-aware: to naive UTC for numpy
        src = (src.dt if time_column else src).tz_convert("UTC").tz_localize(None)
    times = np.asarray(src)
    tags = {}
    for c in tag_columns:
        col = df[c]
        tags[str(c)] = col.where(col.notna(), "").astype(str).to_numpy()
    fields = {}
    for c in df.columns:
        if c in tag_columns or c == time_column:
            continue
        col = df[c]
        if col.dtype == object and col.isna().any():
            raise ValueError(f"DataFrame column {c!r} (strings) has missing values: line "
                             f"protocol has no null string; fill or drop them")
        fields[str(c)] = col.to_numpy()
    if not fields:
        raise ValueError("the DataFrame has no field columns (every column is a tag or the time)")
    yield from columnar_bodies((measurement, tags, times, fields), unit_ns, precision, batch_size)


def encode_bodies(points, precision: str = "ns", batch_size: int = 5000,
                  now_ns: int | None = None, measurement: str | None = None,
                  tag_columns=None, time_column: str | None = None) -> Iterator[bytes]:
    """Line-protocol bodies of at most ``batch_size`` lines each (see the module docstring)."""
    unit_ns = precision_multiplier(precision)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = time_module.time_ns() if now_ns is None else now_ns
    if _is_dataframe(points):
        yield from dataframe_bodies(points, measurement, tag_columns, time_column, unit_ns,
                                    precision, batch_size)
        return
    if _is_columnar(points):
        yield from columnar_bodies(points, unit_ns, precision, batch_size)
        return
    if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Iterable):
        raise TypeError("points must be an iterable of dicts or tuples, a columnar "
                        "(measurement, tags, times, {field: array}) tuple or a pandas DataFrame"
                        + (" (use write_lines() for line protocol)" if isinstance(points, (str, bytes)) else ""))
    rows = _RowCollector(unit_ns, now)
    for p in points:
        if isinstance(p, Mapping):
            extra = set(p) - {"measurement", "tags", "fields", "time"}
            if extra:
                raise ValueError(f"unknown point key(s) {sorted(extra)}: a point is "
                                 f'{{"measurement", "tags", "fields", "time"}}')
            rows.add(p.get("measurement"), p.get("tags"), p.get("fields"), p.get("time"))
        elif _is_columnar(p):
            if rows.n:
                yield rows.body()
                rows = _RowCollector(unit_ns, now)
            yield from columnar_bodies(p, unit_ns, precision, batch_size)
            continue
        elif isinstance(p, (tuple, list)) and len(p) in (3, 4):
            rows.add(p[0], p[1], p[2], p[3] if len(p) == 4 else None)
        else:
            raise TypeError(f"a point must be a dict or a (measurement, tags, fields, time) "
                            f"tuple, not {type(p).__name__}")
        if rows.n >= batch_size:
            yield rows.body()
            rows = _RowCollector(unit_ns, now)
    if rows.n:
        yield rows.body()
