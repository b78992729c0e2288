"""The write cache: recent points of one shard, per (series id, field), as column chunks.

Writes append numpy slices (one chunk per series+field per batch), never per-point objects. A
key's chunks are merged lazily, on first read or at snapshot time, into one sorted column with
duplicates resolved last-write-wins (``ext.merge.sort_dedup_last``); because the shard applies
writes to the cache in WAL order, chunk order is write order.

A snapshot *freezes* the cache: the frozen map stops taking writes and is written to a segment
file while a new, empty cache takes them. Until the segment file is installed, readers see
segments, then frozen caches, then the live cache, newest last.
"""
from __future__ import annotations

import threading

import numpy as np

from chronosdb.ext.merge import sort_dedup_last, tombstone_keep
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray

# Accounting per value: 8 bytes of time + 8 of value (strings: their bytes + an 8-byte offset),
# plus a fixed overhead per chunk for the numpy headers and list slots it costs.
_CHUNK_OVERHEAD = 200


def _values_nbytes(values) -> int:
    if isinstance(values, StringArray):
        return len(values.data) + 8 * len(values)
    return values.nbytes


def _concat(ftype: FieldType, parts):
    if ftype is FieldType.STRING:
        return StringArray.concat(parts)
    return np.concatenate(parts)


def _take(values, idx):
    return values.take(idx) if isinstance(values, StringArray) else values[idx]


class CacheEntry:
    """The points of one series+field held in memory."""

    __slots__ = ("ftype", "times", "values", "merged", "min_time", "max_time", "n")

    def __init__(self, ftype: FieldType):
        self.ftype = ftype
        self.times: list[np.ndarray] = []   # chunks in write order
        self.values: list = []
        self.merged = True                   # True when there is at most one sorted, unique chunk
        self.min_time = None
        self.max_time = None
        self.n = 0

    def _append_raw(self, times, values, lo, hi):
        self.times.append(times)
        self.values.append(values)
        self.min_time = lo if self.min_time is None else min(self.min_time, lo)
        self.max_time = hi if self.max_time is None else max(self.max_time, hi)
        self.n += len(times)

    def column(self):
        """(times, values): sorted, unique, last write wins. Merges the chunks once."""
        if not self.times:
            return None
        if not self.merged:
            t = np.concatenate(self.times)
            v = _concat(self.ftype, self.values)
            keep = sort_dedup_last(t)
            if len(keep) != len(t) or not (keep[1:] > keep[:-1]).all():
                t, v = t[keep], _take(v, keep)
            self.times, self.values, self.merged = [t], [v], True
            self.n = len(t)
        return self.times[0], self.values[0]

    def delete(self, ranges: np.ndarray) -> None:
        col = self.column()
        if col is None:
            return
        t, v = col
        keep = tombstone_keep(t, ranges)
        if len(keep) != len(t):
            t, v = t[keep], _take(v, keep)
            self.times, self.values = ([t], [v]) if len(t) else ([], [])
            self.n = len(t)
            if len(t):
                self.min_time, self.max_time = int(t[0]), int(t[-1])
            else:
                self.min_time = self.max_time = None


class Cache:
    """A map (series id, field) → CacheEntry with byte accounting. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.entries: dict[tuple[int, bytes], CacheEntry] = {}
        self.nbytes = 0
        self.n_values = 0

    def __len__(self) -> int:
        return len(self.entries)

    def append_column(self, sids: np.ndarray, name: bytes, ftype: FieldType, series: np.ndarray,
                      times: np.ndarray, values) -> None:
        """Append one batch column: ``series`` indexes ``sids``; points grouped per series here.

        One numpy sort per column, then one slice per distinct series: the Python work is per
        series, never per point.
        """
        n = len(times)
        if n == 0:
            return
        if n > 1 and (series[1:] != series[:-1]).any():
            order = np.argsort(series, kind="stable")
            s_sorted = series[order]
            cuts = np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1
            starts = np.concatenate(([0], cuts))
            t_sorted = times[order]
            v_sorted = _take(values, order)
        else:
            s_sorted, t_sorted, v_sorted = series, times, values
            starts = np.zeros(1, dtype=np.int64)
        ends = np.append(starts[1:], n)
        # Per series slice, in one pass each: time bounds, and whether the slice is in order.
        mins = np.minimum.reduceat(t_sorted, starts).tolist()
        maxs = np.maximum.reduceat(t_sorted, starts).tolist()
        if n > 1:
            backwards = np.zeros(n, dtype=bool)
            backwards[1:] = t_sorted[1:] <= t_sorted[:-1]
            backwards[starts] = False  # a slice's first point has nothing before it in the slice
            unsorted = np.logical_or.reduceat(backwards, starts).tolist()
        else:
            unsorted = [False]
        owners = s_sorted[starts].tolist()
        added = 0
        with self._lock:
            entries = self.entries
            for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
                key = (int(sids[owners[k]]), name)
                e = entries.get(key)
                if e is None:
                    e = entries[key] = CacheEntry(ftype)
                tv = t_sorted[a:b]
                vv = v_sorted[a:b] if not isinstance(v_sorted, StringArray) else _take(
                    v_sorted, np.arange(a, b, dtype=np.int64))
                e._append_raw(tv, vv, mins[k], maxs[k])
                if len(e.times) > 1 or unsorted[k]:
                    e.merged = False
                added += 16 * (b - a) + _CHUNK_OVERHEAD
                if ftype is FieldType.STRING:
                    added += _values_nbytes(vv) - 8 * (b - a)
            self.nbytes += added
            self.n_values += n

    def get(self, sid: int, field: bytes):
        """(times, values) of a key, merged, or None."""
        with self._lock:
            e = self.entries.get((sid, field))
            if e is None:
                return None
            return e.column()

    def time_range(self, sid: int, field: bytes):
        e = self.entries.get((sid, field))
        return None if e is None or e.min_time is None else (e.min_time, e.max_time)

    def delete(self, sids, min_time: int, max_time: int) -> None:
        """Remove points of these series (all fields) inside the inclusive range."""
        sidset = set(int(s) for s in sids)
        ranges = np.array([[min_time, max_time]], dtype=np.int64)
        with self._lock:
            for key in list(self.entries):
                if key[0] in sidset:
                    e = self.entries[key]
                    e.delete(ranges)
                    if e.n == 0:
                        del self.entries[key]
            self._recount()

    def drop_series(self, sids) -> None:
        sidset = set(int(s) for s in sids)
        with self._lock:
            for key in [k for k in self.entries if k[0] in sidset]:
                del self.entries[key]
            self._recount()

    def _recount(self) -> None:
        nb = nv = 0
        for e in self.entries.values():
            for v in e.values:
                nb += 16 * len(v) + _CHUNK_OVERHEAD
            nv += e.n
        self.nbytes, self.n_values = nb, nv

    def keys(self) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(self.entries)

    def sorted_items(self):
        """(sid, field, ftype, times, values) in (sid, field) order, merged. For snapshots."""
        with self._lock:
            items = sorted(self.entries.items())
        for (sid, field), e in items:
            with self._lock:
                col = e.column()
            if col is not None and len(col[0]):
                yield sid, field, e.ftype, col[0], col[1]
