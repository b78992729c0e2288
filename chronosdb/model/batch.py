"""The columnar write batch: what the line-protocol parser produces and the engine consumes.

A batch holds the distinct series keys it touches and, per (field name, field type), one column
of points: for point i, ``series[i]`` indexes ``keys``, ``times[i]`` is its time in ns and
``values[i]`` its value. Nothing here is a Python object per point; every operation on points is
a numpy pass.

Within a column, order is write order: when a batch writes the same series+field+time twice the
later entry wins (the engine keeps the last one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray


@dataclass
class FieldColumn:
    name: bytes                      # field key, unescaped
    ftype: FieldType
    series: np.ndarray               # int32 index into WriteBatch.keys, one per point
    times: np.ndarray                # int64 ns, one per point
    values: "np.ndarray | StringArray"  # float64 / int64 / uint8 (bool) / StringArray

    def __post_init__(self):
        self.ftype = FieldType(self.ftype)
        self.series = np.ascontiguousarray(self.series, dtype=np.int32)
        self.times = np.ascontiguousarray(self.times, dtype=np.int64)
        if self.ftype is FieldType.STRING:
            if not isinstance(self.values, StringArray):
                raise TypeError("string column values must be a StringArray")
        else:
            self.values = np.ascontiguousarray(self.values, dtype=self.ftype.dtype)
        n = len(self.times)
        if len(self.series) != n or len(self.values) != n:
            raise ValueError(f"column {self.name!r}: series, times and values differ in length")

    def __len__(self) -> int:
        return len(self.times)

    def take(self, idx: np.ndarray) -> "FieldColumn":
        v = self.values.take(idx) if isinstance(self.values, StringArray) else self.values[idx]
        return FieldColumn(self.name, self.ftype, self.series[idx], self.times[idx], v)


@dataclass
class WriteBatch:
    keys: list[bytes]                                  # canonical series keys
    columns: list[FieldColumn] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return sum(len(c) for c in self.columns)

    def validate(self) -> None:
        n = len(self.keys)
        for c in self.columns:
            if len(c) and (int(c.series.min()) < 0 or int(c.series.max()) >= n):
                raise ValueError(f"column {c.name!r} indexes a series key out of range")

    def time_bounds(self) -> tuple[int, int] | None:
        lo = hi = None
        for c in self.columns:
            if len(c):
                a, b = int(c.times.min()), int(c.times.max())
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
        return None if lo is None else (lo, hi)

    def select_time(self, start: int, end: int) -> "WriteBatch":
        """The points with start <= time < end (same keys list)."""
        cols = []
        for c in self.columns:
            m = (c.times >= start) & (c.times < end)
            if m.all():
                cols.append(c)
            elif m.any():
                cols.append(c.take(np.flatnonzero(m)))
        return WriteBatch(self.keys, cols)

    @classmethod
    def from_points(cls, points) -> "WriteBatch":
        """Build from (key, field, ftype, time, value) tuples. For tests and tools, not hot paths."""
        keys: dict[bytes, int] = {}
        cols: dict[tuple[bytes, FieldType], list] = {}
        for key, fname, ftype, t, v in points:
            key = key.encode() if isinstance(key, str) else key
            fname = fname.encode() if isinstance(fname, str) else fname
            si = keys.setdefault(key, len(keys))
            cols.setdefault((fname, FieldType(ftype)), []).append((si, t, v))
        columns = []
        for (fname, ftype), rows in cols.items():
            s = np.array([r[0] for r in rows], dtype=np.int32)
            t = np.array([r[1] for r in rows], dtype=np.int64)
            if ftype is FieldType.STRING:
                v = StringArray.from_list([r[2] for r in rows])
            else:
                v = np.array([r[2] for r in rows], dtype=ftype.dtype)
            columns.append(FieldColumn(fname, ftype, s, t, v))
        return cls(list(keys), columns)
