"""Reads of one shard through a pinned, consistent view.

A ``ShardView`` pins the segment files that were live when it was taken (a compaction that
finishes meanwhile swaps in new files, but this view keeps reading the old mappings), the frozen
caches being snapshotted and the live cache object of that moment (a later snapshot gives the
shard a new live cache; the view keeps the one it saw), and the tombstones of that moment.

Sources are ordered oldest to newest: segment files by generation, then frozen caches, then the
live cache. ``scan`` merges them (newest wins on equal times) with tombstones applied.
``read_with_stats`` hands back, for blocks that nothing newer overlaps and no tombstone touches,
their stored aggregates instead of their points, so whole-block aggregates need no decoding.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from chronosdb.ext import scanagg
from chronosdb.ext.merge import tombstone_keep
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage.shard import merge_columns

_STAT_FIELDS = ("min_time", "max_time", "count", "sum", "min", "max", "first", "last")

# A fused scan over at least this many blocks is split in two by group and the halves run on
# two threads (the kernel releases the GIL): decoding ~5 us per block outweighs the hand-off.
PARALLEL_MIN_BLOCKS = 64
_scan_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor | None:
    global _scan_pool
    if _scan_pool is None and (os.cpu_count() or 1) > 1:
        _scan_pool = ThreadPoolExecutor(max(1, min(4, (os.cpu_count() or 2))),
                                        thread_name_prefix="chronosdb-scan")
    return _scan_pool


def _window_aggregate_split(scanagg, r, ftype, cols, starts, egroup, lo, hi, start, every, nwin,
                            ngroups):
    """``scanagg.window_aggregate`` over the entries, in two halves on two threads when the scan
    is big enough. Entries come grouped (group ids never decrease), so the halves cut between two
    groups and their (group, window) cells are disjoint: the answer is the halves stacked."""
    pool = _pool()
    n = len(egroup)
    mid = n // 2
    while 0 < mid < n and egroup[mid] == egroup[mid - 1]:
        mid += 1
    if (pool is None or starts[-1] < PARALLEL_MIN_BLOCKS or not 0 < mid < n
            or (np.diff(egroup) < 0).any()):
        return scanagg.window_aggregate(r.buffer, r.path, ftype, *cols, starts, egroup, lo, hi,
                                        start, every, nwin, ngroups)
    b, g0 = int(starts[mid]), int(egroup[mid])
    fut = pool.submit(scanagg.window_aggregate, r.buffer, r.path, ftype, *(c[b:] for c in cols),
                      starts[mid:] - b, egroup[mid:] - g0, lo, hi, start, every, nwin, ngroups - g0)
    head = scanagg.window_aggregate(r.buffer, r.path, ftype, *(c[:b] for c in cols),
                                    starts[:mid + 1], egroup[:mid], lo, hi, start, every, nwin, g0)
    tail = fut.result()
    return scanagg.WindowAggregates(*(np.concatenate([getattr(head, f), getattr(tail, f)])
                                      for f in scanagg.WindowAggregates.__slots__))


def median_block_span(views, sid: int, field: bytes) -> int | None:
    """The median time span of a series+field's stored blocks, from the first segment file
    (oldest shard first) that holds it; None when none does (its points are in caches only).
    What the query paths probe to tell windows shorter than a block from longer ones."""
    for v in views:
        for h in v.segments:
            span = h.reader.median_block_span(sid, field)
            if span is not None:
                return span
    return None


def _take(v, idx):
    return v.take(idx) if isinstance(v, StringArray) else v[idx]


def _trim(t: np.ndarray, v, lo: int, hi: int):
    a = int(np.searchsorted(t, lo, "left"))
    b = int(np.searchsorted(t, hi, "right"))
    if a == 0 and b == len(t):
        return t, v
    if isinstance(v, StringArray):
        return t[a:b], v.take(np.arange(a, b, dtype=np.int64))
    return t[a:b], v[a:b]


@dataclass
class BlockStats:
    """Aggregates of whole stored blocks, one entry per block, as parallel arrays."""

    min_time: np.ndarray
    max_time: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    @classmethod
    def concat(cls, parts: list["BlockStats"]) -> "BlockStats | None":
        parts = [p for p in parts if len(p)]
        if not parts:
            return None
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _STAT_FIELDS))


class ShardView:
    def __init__(self, shard, segments, caches, tombstones):
        self.shard = shard
        self.segments = segments      # pinned SegmentHandles, oldest generation first
        self.caches = caches          # frozen caches (oldest first) then the live cache
        self.tombstones = tombstones
        self.start, self.end = shard.start, shard.end

    def close(self) -> None:
        for h in self.segments:
            h.release()
        self.segments = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _tomb_ranges(self, sid: int, generation: int):
        rs = [(t.min_time, t.max_time) for t in self.tombstones
              if generation <= t.max_generation and sid in t.series]
        return np.array(rs, dtype=np.int64) if rs else None

    def series_ids(self) -> np.ndarray:
        """Every series id with data in this view (segments and caches), sorted, unique."""
        parts = [h.reader.series_ids() for h in self.segments]
        for c in self.caches:
            ks = c.keys()
            if ks:
                parts.append(np.array([k[0] for k in ks], dtype=np.uint64))
        if not parts:
            return np.zeros(0, dtype=np.uint64)
        return np.unique(np.concatenate(parts))

    def fields_of(self, sid: int) -> dict:
        out = {}
        for h in self.segments:
            for f, t in h.reader.fields_of(sid):
                out.setdefault(f, t)
        for c in self.caches:
            for (s, f), e in list(c.entries.items()):
                if s == sid:
                    out.setdefault(f, e.ftype)
        return out

    # -- raw points ------------------------------------------------------------------------
    def _read_except(self, r, sid: int, field: bytes, lo: int, hi: int, skip_blocks: np.ndarray):
        """Like reader.read, but without decoding the blocks flagged in ``skip_blocks``."""
        bt = r.blocks(sid, field)
        want = (bt["max_time"] >= lo) & (bt["min_time"] <= hi) & ~skip_blocks
        if not want.any():
            return None
        col = r.read_blocks(sid, field, want, lo, hi)  # one bulk decode of the chosen blocks
        return col if col is not None and len(col[0]) else None

    def _runs(self, sid: int, field: bytes, lo: int, hi: int, skip_blocks=None):
        """Sorted runs of (times, values) inside [lo, hi], oldest source first.

        ``skip_blocks`` maps a segment's position to a mask of blocks not to read (their
        aggregates were taken from block stats instead).
        """
        runs_t, runs_v, ftype = [], [], None
        for i, h in enumerate(self.segments):
            r = h.reader
            if r.max_time < lo or r.min_time > hi:
                continue
            if skip_blocks is not None and i in skip_blocks:
                col = self._read_except(r, sid, field, lo, hi, skip_blocks[i])
            else:
                col = r.read(sid, field, lo, hi)
            if col is None or not len(col[0]):
                continue
            ftype = ftype or r.field_type(sid, field)
            t, v = col
            ranges = self._tomb_ranges(sid, h.generation)
            if ranges is not None:
                keep = tombstone_keep(t, ranges)
                t, v = t[keep], _take(v, keep)
            if len(t):
                runs_t.append(t)
                runs_v.append(v)
        ftype = self._cache_runs(sid, field, lo, hi, ftype, runs_t, runs_v)
        return ftype, runs_t, runs_v

    def _cache_runs(self, sid, field, lo, hi, ftype, runs_t, runs_v):
        """Append the caches' points of a series+field in [lo, hi] (oldest cache first) to the
        runs; returns the field type, the caches' if none was known yet."""
        for c in self.caches:
            e = c.entries.get((sid, field))
            if e is None or e.min_time is None or e.max_time < lo or e.min_time > hi:
                continue
            col = c.get(sid, field)
            if col is None:
                continue
            t, v = _trim(col[0], col[1], lo, hi)
            if len(t):
                ftype = ftype or e.ftype
                runs_t.append(t)
                runs_v.append(v)
        return ftype

    def scan(self, sid: int, field: bytes, min_time: int | None = None, max_time: int | None = None):
        """(times, values) of one series+field in the inclusive range, merged; None if none."""
        lo = self.start if min_time is None else max(min_time, self.start)
        hi = self.end - 1 if max_time is None else min(max_time, self.end - 1)
        if lo > hi:
            return None
        ftype, runs_t, runs_v = self._runs(sid, field, lo, hi)
        if not runs_t:
            return None
        return merge_columns(ftype, runs_t, runs_v)

    # -- aggregates from block stats -------------------------------------------------------
    def _any_block_inside(self, sid: int, field: bytes, lo: int, hi: int) -> bool:
        """Whether some segment block of the series+field lies wholly inside [lo, hi]: from the
        block index, without building block tables."""
        for h in self.segments:
            if h.reader.any_block_inside(sid, field, lo, hi):
                return True
        return False

    def read_with_stats(self, sid: int, field: bytes, min_time: int, max_time: int,
                        every: int = 0, offset: int = 0):
        """Split the data of one series+field in [min_time, max_time] into stats and points.

        Returns ``(stats, rest)``: ``stats`` is a BlockStats of whole blocks whose aggregates
        may be used as they are (or None), ``rest`` the merged (times, values) of every other
        point in the range (or None). A block qualifies when it lies inside the range, inside
        one window of ``every`` ns (shifted by ``offset``) when ``every`` is set, no tombstone
        touches it and no other source holds points of this series+field in its time span.
        """
        lo, hi = max(min_time, self.start), min(max_time, self.end - 1)
        if lo > hi:
            return None, None
        if not self._any_block_inside(sid, field, lo, hi):
            # No stored block lies wholly inside the range (a range shorter than a block, the
            # common dashboard case): no stats can be used, read the points.
            return None, self.scan(sid, field, lo, hi)
        spans = []  # (source index, lo, hi) of every source holding this key
        tables = {}
        for i, h in enumerate(self.segments):
            bt = h.reader.blocks(sid, field)
            if bt is None or not len(bt):
                continue
            tables[i] = bt
            spans.append((i, int(bt["min_time"][0]), int(bt["max_time"][-1])))
        for j, c in enumerate(self.caches):
            r = c.time_range(sid, field)
            if r is not None:
                spans.append((len(self.segments) + j, r[0], r[1]))
        if len(tables) == 0:
            return None, self.scan(sid, field, lo, hi)
        stats_parts = []
        used_blocks: dict[int, np.ndarray] = {}
        for i, bt in tables.items():
            h = self.segments[i]
            bmin, bmax = bt["min_time"], bt["max_time"]
            ok = (bmin >= lo) & (bmax <= hi) & bt["has_stats"]
            if every:
                ok &= ((bmin - offset) // every) == ((bmax - offset) // every)
            for j, a, b in spans:
                if j != i:
                    ok &= (bmax < a) | (bmin > b)
            ranges = self._tomb_ranges(sid, h.generation)
            if ranges is not None:
                for a, b in ranges.tolist():
                    ok &= (bmax < a) | (bmin > b)
            if ok.any():
                used_blocks[i] = ok
                sel = np.flatnonzero(ok)
                stats_parts.append(BlockStats(*(np.asarray(bt[f][sel]) for f in _STAT_FIELDS)))
        stats = BlockStats.concat(stats_parts)
        if stats is None:
            return None, self.scan(sid, field, lo, hi)
        # The rest: every point in range outside the blocks answered by their stats. Those
        # blocks overlap no other source, so skipping them removes their points and only them.
        ftype, runs_t, runs_v = self._runs(sid, field, lo, hi, skip_blocks=used_blocks)
        rest = merge_columns(ftype, runs_t, runs_v) if runs_t else None
        return stats, rest

    def window_aggregate(self, sids, groups, field: bytes, lo: int, hi: int, start: int, every: int,
                             nwin: int, ngroups: int):
        """Fused scan + window aggregation of many series of one field, per segment file.

        Returns a list of ``WindowAggregates`` (one per segment file with data, oldest first) whose
        cells merge like partial aggregates, or None when this view cannot be answered this way:
        a tombstone touches the series, a cache holds points of them in the range, the segment files
        overlap in time (newest-wins would be needed), or the field is not numeric. The caller then
        takes the per-series path for this self.
        """
        sidset = set(sids)
        for t in self.tombstones:
            if any(s in t.series for s in sidset):
                return None
        for c in self.caches:
            for sid in sids:
                e = c.entries.get((sid, field))
                if e is not None and e.min_time is not None and not (e.max_time < lo or e.min_time > hi):
                    return None
        segs = [h for h in self.segments
                if h.reader.min_time is not None and not (h.reader.max_time < lo or h.reader.min_time > hi)]
        spans = sorted((h.reader.min_time, h.reader.max_time) for h in segs)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            if b0 <= a1:
                return None
        out = []
        for h in segs:
            r = h.reader
            rows, starts, egroup, ftype = [], [0], [], None
            for sid, g in zip(sids, groups):
                hit = r.entry_rows(sid, field)
                if hit is None:
                    continue
                ft, a, b = hit
                if ft not in (FieldType.FLOAT, FieldType.INTEGER) or (ftype is not None and ft != ftype):
                    return None
                ftype = ft
                rows.append(np.arange(a, b, dtype=np.int64))
                starts.append(starts[-1] + (b - a))
                egroup.append(g)
            if not rows:
                continue
            cols = r.block_columns(np.concatenate(rows))
            out.append(_window_aggregate_split(
                scanagg, r, int(ftype), cols, np.array(starts, dtype=np.int64),
                np.array(egroup, dtype=np.int32), lo, hi, start, every, nwin, ngroups))
        return out

    # -- edges: first/last points without reading everything -------------------------------------
    def time_range(self, sid: int, field: bytes):
        """(first, last) time of a series+field in this view from metadata alone (block index
        and cache bounds), or None. Tombstones are ignored: a bound, not an exact value."""
        lo = hi = None
        for h in self.segments:
            bt = h.reader.blocks(sid, field)
            if bt is not None and len(bt):
                a, b = int(bt["min_time"][0]), int(bt["max_time"][-1])
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
        for c in self.caches:
            r = c.time_range(sid, field)
            if r is not None:
                lo = r[0] if lo is None else min(lo, r[0])
                hi = r[1] if hi is None else max(hi, r[1])
        return None if lo is None else (lo, hi)

    def _edge_from_stats(self, sid, field, lo, hi, last):
        return _edge_from_stats_impl(self, sid, field, lo, hi, last)

    def scan_edges(self, sids, field: bytes, min_time: int, max_time: int, last: bool):
        """``scan_edge`` with k=1 for many series of one field, from block statistics alone:
        ``(state, times, values)``, one entry per series. state 1: the edge point is
        ``(times[i], values[i])``; 0: this view has no point of the series in the range; -1:
        call ``scan_edge`` for it (a tombstone touches the series, a cache holds points of it in
        the range, or some segment cannot say without decoding). Across segment files the
        latest (first: earliest) point wins, and on equal times the newer file, as in
        ``scan_edge``."""
        n = len(sids)
        lo, hi = max(min_time, self.start), min(max_time, self.end - 1)
        state = np.zeros(n, dtype=np.int8)
        times = np.zeros(n, dtype=np.int64)
        values = None
        if lo > hi:
            return state, times, np.zeros(n, dtype=np.float64)
        slow = np.zeros(n, dtype=bool)
        for h in self.segments:
            st, t, v = h.reader.edge_points(sids, field, lo, hi, last)
            slow |= st < 0
            found = st > 0
            if values is None:
                if not found.any():
                    continue
                values = v.copy()
            elif v.dtype != values.dtype:
                slow |= found
                continue
            better = found & ((state == 0) | (t == times) | ((t > times) if last else (t < times)))
            state[better] = 1
            times[better] = t[better]
            values[better] = v[better]
        for t in self.tombstones:
            for i, sid in enumerate(sids):
                if sid in t.series:
                    slow[i] = True
        for c in self.caches:
            for i, sid in enumerate(sids):
                e = c.entries.get((sid, field))
                if e is not None and e.min_time is not None and not (e.max_time < lo or e.min_time > hi):
                    slow[i] = True
        state[slow] = -1
        return state, times, values if values is not None else np.zeros(n, dtype=np.float64)

    def scan_edge(self, sid: int, field: bytes, min_time: int, max_time: int, k: int, last: bool):
        """The first (or last) ``k`` points of a series+field in the range, merged as ``scan``
        would, decoding only the blocks at that edge. Falls back to ``scan`` when tombstones
        touch the series (they could hide points the edge blocks were counted on)."""
        lo, hi = max(min_time, self.start), min(max_time, self.end - 1)
        if lo > hi:
            return None
        if any(sid in t.series for t in self.tombstones):
            col = self.scan(sid, field, lo, hi)
        elif k == 1 and (pt := self._edge_from_stats(sid, field, lo, hi, last)) is not None:
            return pt
        else:
            runs_t, runs_v, ftype = [], [], None
            for h in self.segments:
                r = h.reader
                bt = r.blocks(sid, field)
                if bt is None or not len(bt):
                    continue
                ftype = ftype or bt.ftype
                inside = np.flatnonzero((bt["max_time"] >= lo) & (bt["min_time"] <= hi))
                if last:
                    inside = inside[::-1]
                chosen, got = [], 0
                for bi in inside.tolist():
                    chosen.append(bi)
                    # only blocks wholly inside the range count: a lower bound of the points
                    if bt["min_time"][bi] >= lo and bt["max_time"][bi] <= hi:
                        got += int(bt["count"][bi])
                    if got >= k:
                        break
                if chosen:
                    col = r.read_blocks(sid, field, chosen, lo, hi)
                    if col is not None and len(col[0]):
                        runs_t.append(col[0])
                        runs_v.append(col[1])
            # segment blocks of one key never overlap each other within a file; files may
            # overlap: merge all runs with the newest winning, caches last
            ftype = self._cache_runs(sid, field, lo, hi, ftype, runs_t, runs_v)
            if not runs_t:
                return None
            if len(runs_t) == 1:
                col = (runs_t[0], runs_v[0])
            elif _disjoint_sorted(runs_t):
                col = _concat_runs(ftype, runs_t, runs_v)
            else:  # sources overlap in time: merge, oldest first, the newest value winning
                col = merge_columns(ftype, runs_t, runs_v)
        if col is None or not len(col[0]):
            return None
        t, v = col
        n = len(t)
        if n > k:
            sl = np.arange(n - k, n) if last else np.arange(k)
            return t[sl], _take(v, sl)
        return t, v


def _edge_from_stats_impl(view, sid, field, lo, hi, last):
    """The first/last point of a series+field from block stats alone, or None when some source
    cannot say without decoding (edge block straddles the range, no stats for its type)."""
    best = None  # (time, source order, value)
    for order, h in enumerate(view.segments):
        pt = h.reader.edge_point(sid, field, lo, hi, last)
        if pt is None:
            continue
        if pt is False:
            return None
        t = pt[0]
        if best is None or (t > best[0] if last else t < best[0]) or (t == best[0]):
            best = (t, order, pt[1])  # on equal times the newer source (higher order) wins
    n = len(view.segments)
    for j, c in enumerate(view.caches):
        e = c.entries.get((sid, field))
        if e is None or e.min_time is None or e.max_time < lo or e.min_time > hi:
            continue
        col = c.get(sid, field)
        if col is None:
            continue
        t_arr, v_arr = _trim(col[0], col[1], lo, hi)
        if not len(t_arr) or isinstance(v_arr, StringArray):
            if len(t_arr):
                return None
            continue
        i = len(t_arr) - 1 if last else 0
        t = int(t_arr[i])
        cand = (t, n + j, v_arr[i])
        if best is None or (t > best[0] if last else t < best[0]) or (t == best[0]):
            best = cand
    if best is None:
        return None
    return np.array([best[0]], dtype=np.int64), np.array([best[2]], dtype=best[2].dtype)


def _disjoint_sorted(runs_t) -> bool:
    """True when the runs follow each other in time (each starts after the previous ends)."""
    for a, b in zip(runs_t, runs_t[1:]):
        if len(a) and len(b) and b[0] <= a[-1]:
            return False
    return True


def _concat_runs(ftype, runs_t, runs_v):

    t = np.concatenate(runs_t)
    if ftype is FieldType.STRING:
        return t, StringArray.concat(runs_v)
    return t, np.concatenate(runs_v)

