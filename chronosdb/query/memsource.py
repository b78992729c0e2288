"""Query results as a data source: what a subquery's outer SELECT reads.

``MemoryReader`` offers the part of ``StorageReader`` the executor uses (index lookups, shard
views) over the series a subquery answered, so the outer SELECT runs through exactly the same
executor code as a query over storage. Each answered series becomes one series of a measurement
named after it, with its GROUP BY tags as tags and its columns as fields.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from pyroaring import BitMap64

from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray

_TYPES = {"float": FieldType.FLOAT, "integer": FieldType.INTEGER, "boolean": FieldType.BOOLEAN,
          "string": FieldType.STRING}


class MemoryReader:
    def __init__(self, db: str, series):
        self.db = db
        self.series = [s for s in series if s.times is not None]
        self._keys = [make_key(s.name, s.tags or {}) for s in self.series]

    def databases(self):
        return [self.db]

    def measurements(self, db):
        return sorted({s.name.encode() for s in self.series})

    def _of(self, m: bytes):
        return [i for i, s in enumerate(self.series) if s.name.encode() == m]

    def tag_keys(self, db, m):
        keys = set()
        for i in self._of(m):
            keys |= set((self.series[i].tags or {}).keys())
        return sorted(k.encode() for k in keys)

    def field_types(self, db, m):
        out: dict[bytes, set] = {}
        for i in self._of(m):
            for c in self.series[i].columns:
                if c.values is not None:
                    out.setdefault(c.name.encode(), set()).add(_TYPES[c.kind])
        return out

    def series_ids(self, db, m, expr=None):
        ids = []
        for i in self._of(m):
            tags = {k.encode(): v.encode() for k, v in (self.series[i].tags or {}).items()}
            if expr is None or expr.matches(tags):
                ids.append(i + 1)
        return np.array(ids, dtype=np.uint64)

    def series_keys(self, db, ids):
        return [self._keys[int(i) - 1] for i in ids]

    @contextmanager
    def views(self, db, rp=None, min_time=None, max_time=None):
        yield [MemoryView(self.series)]


class MemoryView:
    def __init__(self, series):
        self.series = series

    def scan(self, sid: int, field: bytes, lo: int, hi: int):
        s = self.series[int(sid) - 1]
        name = field.decode()
        col = next((c for c in s.columns if c.name == name), None)
        if col is None or col.values is None:
            return None
        t = s.times
        keep = (t >= lo) & (t <= hi)
        if col.valid is not None:
            keep &= col.valid
        idx = np.flatnonzero(keep)
        if not len(idx):
            return None
        v = col.values.take(idx) if isinstance(col.values, StringArray) else np.asarray(col.values)[idx]
        tt = t[idx]
        if len(tt) > 1 and not (tt[1:] > tt[:-1]).all():
            # several rows at one time (a merged group): keep time order, stable
            order = np.argsort(tt, kind="stable")
            tt = tt[order]
            v = v.take(order) if isinstance(v, StringArray) else v[order]
        return tt, v

    def read_with_stats(self, sid, field, lo, hi, every=0, offset=0):
        return None, self.scan(sid, field, lo, hi)
