"""Execute a compiled SELECT against storage through the narrow ``StorageReader`` interface.

Per measurement of the FROM clause:

1. the WHERE clause is analysed with the measurement's schema (tags vs fields): the tag part
   selects series through the index bitmaps, the time part bounds every read, the rest (field
   conditions) is evaluated per point;
2. series are grouped by the GROUP BY tags;
3. aggregate queries: one ``Partial`` per (group, call); for each shard view and series, whole
   blocks inside one window come from block stats (no decoding), the remaining points are
   decoded and aggregated by Cython kernels; partials merge across series and shards (the same
   partials a cluster node would ship); then finalize → math → transforms → fill;
   raw queries: the needed fields of each series are read, aligned on time, filtered, and the
   series of a group merged by time;
4. ORDER BY, LIMIT/OFFSET, SLIMIT/SOFFSET shape the answer.

Columns stay numpy arrays (or StringArray) with validity masks end to end; the encoders in
``chronosdb.ext.resultenc`` write them out without a Python object per value.
"""
from __future__ import annotations

import re
import time as _time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from chronosdb.ext.merge import window_bounds
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import parse_key
from chronosdb.model.strings import StringArray
from chronosdb.query import condition as cond_mod
from chronosdb.query.compile import MATH, TRANSFORMS, CallKey, SelectPlan, call_key, expand_wildcards
from chronosdb.query.functions import make_partial
from chronosdb.query.functions.partials import Finalized
from chronosdb.query.functions import math as fmath
from chronosdb.query.functions import transforms as tf
from chronosdb.query.functions.fill import apply_fill
from chronosdb.query.influxql import ast
from chronosdb.query.meta import StatementError
from chronosdb.query.results import Column, Series
from chronosdb.query.userregex import compile_user_regex
from chronosdb.query.windowcells import (CELL_FUNCS, call_cells, merge_cells, plain_window_calls,
                                         window_columns)
from chronosdb.storage.engine import MAX_TIME, MIN_TIME
from chronosdb.storage.api import median_block_span
from chronosdb.storage.shard_read import BlockStats

KIND = {FieldType.FLOAT: "float", FieldType.INTEGER: "integer", FieldType.BOOLEAN: "boolean",
        FieldType.STRING: "string"}


@dataclass
class Limits:
    max_series: int = 1_000_000
    max_points: int = 0            # 0 = unlimited
    max_buckets: int = 1_000_000
    timeout: float = 0.0           # seconds, 0 = none


@dataclass
class Values:
    """A computed column: values, validity, kind."""

    values: object          # ndarray | StringArray | None
    valid: np.ndarray
    kind: str
    null_value: object = None  # what fill(null) shows for an empty window (0 for count)


class QueryKilled(StatementError):
    pass


def _null(n: int) -> Values:
    return Values(np.zeros(n, dtype=np.float64), np.zeros(n, dtype=bool), "float")


def _take(v, idx):
    if v is None:
        return None
    return v.take(idx) if isinstance(v, StringArray) else v[idx]


def _concat_values(parts, kind):
    if kind == "string":
        return StringArray.concat(parts)
    return np.concatenate(parts)


_FALSE1 = np.zeros(1, dtype=bool)
_FALSE1.flags.writeable = False   # shared by every one-row null column: never written


@lru_cache(maxsize=65_536)
def _one_string(value: str) -> StringArray:
    """A one-row column holding ``value`` (tag values repeat across edge rows: built once;
    StringArray is never mutated)."""
    return _const_strings(value, 1)


def _const_strings(value: str, n: int) -> StringArray:
    b = value.encode()
    return StringArray(np.arange(n + 1, dtype=np.int64) * len(b), b * n)


class SelectExecutor:
    def __init__(self, reader, db: str, rp: str | None, now: int | None = None,
                 limits: Limits | None = None, check_cancel=None):
        self.reader = reader
        self.db = db
        self.rp = rp
        self.now = time_ns() if now is None else now
        self.limits = limits or Limits()
        self.check_cancel = check_cancel or (lambda: None)
        self.points_read = 0
        self._keys: dict[int, CallKey] = {}

    # -- sources -------------------------------------------------------------------------
    def measurements(self, stmt: ast.SelectStatement) -> list[tuple[str, str | None, bytes]]:
        """(database, retention policy, measurement) of every FROM source, in answer order."""
        out = []
        for src in stmt.sources:
            if isinstance(src, ast.Measurement):
                db = src.database or self.db
                if not db:
                    raise StatementError("database name required")
                rp = src.retention_policy or self.rp
                if src.regex is not None:
                    rx = compile_user_regex(src.regex)
                    for m in self.reader.measurements(db):
                        if rx.search(m.decode("utf-8", "replace")):
                            out.append((db, rp, m))
                else:
                    out.append((db, rp, src.name.encode()))
            elif isinstance(src, ast.SubQuery):
                out.append(("", None, src))
            else:
                raise StatementError(f"{type(src).__name__} sources are not supported yet")
        seen, uniq = set(), []
        for x in out:
            if x not in seen:
                seen.add(x)
                uniq.append(x)
        return uniq

    # -- entry point ---------------------------------------------------------------------
    def _sources(self, plan: SelectPlan):
        """(reader, db, rp, measurement) per source; a subquery runs first and becomes an
        in-memory source whose measurements are the series names it answered."""
        out = []
        for db, rp, m in self.measurements(plan.stmt):
            if isinstance(m, ast.SubQuery):
                from chronosdb.query.compile import compile_select
                from chronosdb.query.memsource import MemoryReader

                inner = SelectExecutor(self.reader, self.db, self.rp, self.now, self.limits,
                                       self.check_cancel)
                mem = MemoryReader("", inner.run(compile_select(m.statement, self.limits.max_buckets)))
                out.extend((mem, "", None, name) for name in mem.measurements(""))
            else:
                if db not in self.reader.databases():
                    raise StatementError(f"database not found: {db}")
                out.append((self.reader, db, rp, m))
        # InfluxDB answers measurements in name order.
        return sorted(out, key=lambda x: x[3])

    def run(self, plan: SelectPlan) -> list[Series]:
        srcs = plan.stmt.sources
        if len(srcs) == 1 and isinstance(srcs[0], ast.Join):
            from chronosdb.query.join import run_join

            return run_join(plan.stmt, self)
        series: list[Series] = []
        sources = self._sources(plan)
        union_fields: dict[str, FieldType] = {}
        union_tags: set[str] = set()
        schemas = {}
        for reader, db, rp, m in sources:
            tag_keys, ftypes = schemas[(id(reader), db, m)] = _schema(reader, db, m)
            for f, t in ftypes.items():
                union_fields.setdefault(f, t)
            union_tags |= tag_keys
        group_keys = set(plan.group_tags or [])
        if plan.group_all:
            group_keys = set(union_tags)
        plan = expand_wildcards(plan, union_fields, union_tags - group_keys)
        for reader, db, rp, m in sources:
            series.extend(self._run_measurement(plan, reader, db, rp, m, schemas[(id(reader), db, m)]))
        stmt = plan.stmt
        if stmt.order_desc:
            series.reverse()
        if stmt.soffset:
            series = series[stmt.soffset:]
        if stmt.slimit:
            series = series[:stmt.slimit]
        return series

    # -- per measurement ----------------------------------------------------------------------
    def _run_measurement(self, plan: SelectPlan, reader, db: str, rp, m: bytes, schema=None) -> list[Series]:
        tag_keys, ftypes = schema if schema is not None else _schema(reader, db, m)

        def is_tag(name: str) -> bool:
            return name in tag_keys

        cond = cond_mod.analyze(plan.stmt.condition, now=self.now, is_tag=is_tag)
        if hasattr(reader, "matching_series"):
            sids, keys = reader.matching_series(db, m, cond.tags)
        else:
            sids = reader.series_ids(db, m, cond.tags)
            keys = None
        if not len(sids):
            return []
        if len(sids) > self.limits.max_series:
            raise StatementError(f"max-select-series limit exceeded: ({len(sids)}/{self.limits.max_series})")
        if keys is None:
            keys = reader.series_keys(db, sids)
        series_tags = [None if k is None else _key_tags(k) for k in keys]
        if plan.group_all:
            gkeys = sorted(tag_keys)
        elif plan.group_regex is not None:
            rx = compile_user_regex(plan.group_regex)
            gkeys = sorted(t for t in tag_keys if rx.search(t))
        else:
            gkeys = list(plan.group_tags or [])
        groups: dict[tuple, list[int]] = {}
        for i, tags in enumerate(series_tags):
            if tags is None:
                continue
            g = tuple(tags.get(k, "") for k in gkeys)
            groups.setdefault(g, []).append(i)
        name = m.decode()
        out = []
        lo, hi = cond.min_time, cond.max_time
        with reader.views(db, rp, lo, hi) as views:
            if plan.is_aggregate:
                if plan.every and not cond.has_max:
                    hi = min(hi, self.now)
                if plan.every and not cond.has_min:
                    lo = self._earliest(views, sids, plan, lo, hi)
                    if lo is None:
                        return []
                lo, hi = self._limit_windows(plan, lo, hi)
                if self._fused_ok(plan, views, sids, ftypes, cond, lo, hi):
                    for g, s in self._fused_groups(plan, views, groups, sids, series_tags, ftypes,
                                                   cond, lo, hi, is_tag):
                        s.name, s.tags = name, (dict(zip(gkeys, g)) if gkeys else None)
                        out.append(s)
                    return out
                for g in sorted(groups):
                    self.check_cancel()
                    members = [int(sids[i]) for i in groups[g]]
                    s = self._aggregate_group(plan, views, members, [series_tags[i] for i in groups[g]],
                                              ftypes, cond, lo, hi, is_tag)
                    if s is not None:
                        s.name, s.tags = name, (dict(zip(gkeys, g)) if gkeys else None)
                        out.append(s)
            elif self._edge_row_ok(plan, views, groups, cond):
                for g, s in self._edge_rows(plan, views, groups, sids, series_tags, ftypes,
                                            tag_keys, cond, lo, hi):
                    s.name, s.tags = name, (dict(zip(gkeys, g)) if gkeys else None)
                    out.append(s)
            else:
                for g in sorted(groups):
                    self.check_cancel()
                    idx = groups[g]
                    s = self._raw_group(plan, views, [int(sids[i]) for i in idx],
                                        [series_tags[i] for i in idx], ftypes, tag_keys, set(gkeys),
                                        cond, lo, hi)
                    if s is not None:
                        s.name, s.tags = name, (dict(zip(gkeys, g)) if gkeys else None)
                        out.append(s)
        return out

    # -- one edge row per series ("the last point of every host") ------------------------------
    def _edge_row_ok(self, plan, views, groups, cond) -> bool:
        """A raw SELECT of plain field and tag columns with LIMIT 1 (OFFSET 0), no field
        condition, no transforms, one series per group: each group's answer is one row at the
        series' first (ORDER BY time DESC: last) time, read from the fields' edge points."""
        stmt = plan.stmt
        if (stmt.limit != 1 or stmt.offset or cond.residual is not None or plan.transforms
                or not plan.columns):
            return False
        if not all(isinstance(c.expr, ast.VarRef) for c in plan.columns):
            return False
        if not all(hasattr(v, "scan_edge") for v in views):
            return False
        return all(len(idx) == 1 for idx in groups.values())

    def _edge_rows(self, plan, views, groups, sids, series_tags, ftypes, tag_keys, cond, lo, hi):
        """What ``_raw_group`` answers under ``_edge_row_ok``, without its per-group machinery:
        per series, the edge point of each field (block stats in the usual case, no decoding);
        the row's time is the latest (earliest) of them, and a field has a value in the row only
        if its edge point is at that time.

        Float and integer fields take the edge points of every series per view in whole arrays
        (``ShardView.scan_edges``); a series it cannot answer from block statistics (cache or
        tombstone in the range, an edge block straddling it), and fields of other types, go
        through ``scan_edge`` one series at a time."""
        last = plan.stmt.order_desc
        exprs, _sel, read_fields = self._raw_fields(plan, ftypes, tag_keys, cond)
        ordered_views = views[::-1] if last else views
        order = sorted(groups)
        ser_sids = [int(sids[groups[g][0]]) for g in order]
        n = len(order)
        edges = {}   # field -> per series: None or (time, one-value array)
        for f in read_fields:
            fb = f.encode()
            pts = [None] * n
            todo = list(range(n))
            for v in ordered_views:   # the first view holding a point of a series has its edge
                if not todo:
                    break
                self.check_cancel()
                if ftypes.get(f) in (FieldType.FLOAT, FieldType.INTEGER):
                    st, t, vals = v.scan_edges([ser_sids[i] for i in todo], fb, lo, hi, last)
                else:
                    st = np.full(len(todo), -1, dtype=np.int8)
                    t = vals = None
                rest = []
                for j, i in enumerate(todo):
                    if st[j] > 0:
                        pts[i] = (int(t[j]), vals[j:j + 1])
                    elif st[j] < 0:
                        col = v.scan_edge(ser_sids[i], fb, lo, hi, 1, last)
                        if col is not None and len(col[0]):
                            k = len(col[0]) - 1 if last else 0
                            pts[i] = (int(col[0][k]),
                                      col[1] if len(col[0]) == 1 else _take(col[1], np.array([k])))
                        else:
                            rest.append(i)
                    else:
                        rest.append(i)
                todo = rest
            edges[f] = pts
        zone = self._zone(plan)
        # per output column: (name, field, kind if a field, tag-or-field rule)
        specs = []
        for name, e in exprs:
            fname = e.name
            as_tag = "tag" if e.type_hint == "tag" else (
                "if-no-point" if e.type_hint != "field" and fname in tag_keys else "never")
            specs.append((name, fname, KIND[ftypes[fname]] if fname in ftypes else "float", as_tag))
        out = []
        for gi in range(n):
            pts = {f: p[gi] for f, p in edges.items() if p[gi] is not None}
            if not pts:
                continue
            self.check_cancel()
            t_row = max(t for t, _v in pts.values()) if last else min(t for t, _v in pts.values())
            self._count_points(1)
            tags = series_tags[groups[order[gi]][0]]
            cols = []
            for name, fname, kind, as_tag in specs:
                pt = pts.get(fname)
                if as_tag == "tag" or (as_tag == "if-no-point" and pt is None):
                    val = tags.get(fname)
                    cols.append(Column(name, None, _FALSE1, "string") if val is None
                                else Column(name, _one_string(val), None, "string"))
                elif pt is not None:
                    cols.append(Column(name, pt[1], None, kind) if pt[0] == t_row
                                else Column(name, None, _FALSE1, kind))
                else:
                    cols.append(Column(name, None, _FALSE1, "float"))
            times = np.array([t_row], dtype=np.int64)
            offsets = _utc_offsets(zone, times) if zone is not None else None
            out.append((order[gi], Series(None, None, times, cols, utc_offsets=offsets)))
        return out

    # -- fused scan + aggregation (many series, windows shorter than a block) ---------------------
    FUSED_FUNCS = CELL_FUNCS

    def _fused_ok(self, plan, views, sids, ftypes, cond, lo=None, hi=None) -> bool:
        """Whether one Cython scan per (shard, field) may feed every group's partials: simple
        mergeable calls over numeric fields, no field conditions, and GROUP BY windows shorter
        than a stored block (so block stats could not answer them anyway). One series only when
        its range spans more than a block: within one block the per-series path costs less."""
        if (not plan.every or cond.residual is not None or plan.aux or plan.multi_row
                or not plan.calls or not len(sids)):
            return False
        for c in plan.calls:
            ft = ftypes.get(c.field)
            if c.func not in self.FUSED_FUNCS or ft not in (FieldType.FLOAT, FieldType.INTEGER):
                return False
        if not all(hasattr(v, "window_aggregate") for v in views):
            return False  # e.g. a subquery's in-memory source
        span = median_block_span(views, int(sids[0]), plan.calls[0].field.encode())
        if span is None:
            return False
        if len(sids) == 1 and (lo is None or hi is None or hi - lo <= span):
            return False
        return plan.every < span

    def _fused_groups(self, plan, views, groups, sids, series_tags, ftypes, cond, lo, hi, is_tag):
        start, every, nwin = self._grid(plan, lo, hi)
        if lo > hi or nwin <= 0:
            return []
        ordered = sorted(groups)
        all_sids, all_groups = [], []
        for gi, g in enumerate(ordered):
            for i in groups[g]:
                all_sids.append(int(sids[i]))
                all_groups.append(gi)
        fields = sorted({c.field for c in plan.calls})
        per_view = []
        for v in views:
            self.check_cancel()
            results = {}
            for f in fields:
                r = v.window_aggregate(all_sids, all_groups, f.encode(), lo, hi, start, every,
                                       nwin, len(ordered))
                if r is None:
                    results = None
                    break
                results[f] = r
            per_view.append(results)
        if all(r is not None for r in per_view):
            # Every view answered by the fused kernel: finalize all groups at once.
            by_field = {f: [a for r in per_view for a in r[f]] for f in fields}
            return self._fused_finalize(plan, ordered, groups, sids, series_tags, ftypes, by_field,
                                        start, every, nwin, lo, cond, views)
        parts = [self._new_partials(plan, ftypes, nwin) for _ in ordered]
        any_data = [False] * len(ordered)
        for v, results in zip(views, per_view):
            if results is None:  # this view needs the per-series path
                for gi, g in enumerate(ordered):
                    members = [int(sids[i]) for i in groups[g]]
                    any_data[gi] |= self._feed_view(plan, v, members, [series_tags[i] for i in groups[g]],
                                                    parts[gi], ftypes, cond, is_tag, lo, hi, start,
                                                    every, nwin)
                continue
            for f, aggs in results.items():
                for agg in aggs:
                    self._count_points(int(agg.count.sum()))
                    for gi in range(len(ordered)):
                        cnt = agg.count[gi]
                        win = np.flatnonzero(cnt)
                        if not len(win):
                            continue
                        any_data[gi] = True
                        stats = BlockStats(agg.first_time[gi][win], agg.last_time[gi][win], cnt[win],
                                           agg.sum[gi][win], agg.min[gi][win], agg.max[gi][win],
                                           agg.first[gi][win], agg.last[gi][win])
                        for c, p in parts[gi].items():
                            if c.field == f:
                                p.add_block_stats(win, stats)
        out = []
        for gi, g in enumerate(ordered):
            if not any_data[gi]:
                continue
            members = [int(sids[i]) for i in groups[g]]
            s = self._finalize_group(plan, parts[gi], start, every, nwin, lo, cond, views, members,
                                     [series_tags[i] for i in groups[g]], ftypes)
            if s is not None:
                out.append((g, s))
        return out

    def _fused_finalize(self, plan, ordered, groups, sids, series_tags, ftypes, by_field, start,
                        every, nwin, lo, cond, views):
        """Finalize every group's calls from the fused kernel's (group, window) cells in whole
        arrays — what the per-group partials would give, without building them (how cells
        merge: ``query.windowcells``)."""
        merged = {}
        for f, aggs in by_field.items():
            for a in aggs:
                self._count_points(int(a.count.sum()))
            m = merge_cells(aggs)
            if m is not None:  # None: no segment file holds this field in the range
                merged[f] = m
        if plain_window_calls(plan):
            return [(ordered[g], Series(None, None, times, cols))
                    for g, times, cols in window_columns(plan, merged, ftypes, start, every, nwin)]
        fin2d = {}
        for c in plan.calls:
            m = merged.get(c.field)
            if m is not None:
                fin2d[c] = call_cells(c.func, m, ftypes[c.field])
        if not fin2d:
            return []
        any_data = np.zeros(len(ordered), dtype=bool)
        for m in merged.values():
            any_data |= (m.count > 0).any(axis=1)
        out = []
        for gi in np.flatnonzero(any_data).tolist():
            fin = {c: Finalized(v[gi], ok[gi], None, ft, null_value=nv)
                   for c, (v, ok, ft, nv) in fin2d.items()}
            s = self._shape_aggregate(plan, fin, start, every, nwin, lo, cond)
            if s is not None:
                out.append((ordered[gi], s))
        return out

    def _earliest(self, views, sids, plan, lo, hi):
        """The first point time of the selected series (the lower bound when none was given),
        from block indexes and cache bounds: no decoding."""
        best = None
        fields = [c.field.encode() for c in plan.calls]
        for v in views:  # oldest shard first: the first one with data has the answer
            for sid in sids.tolist():
                for f in fields:
                    r = v.time_range(int(sid), f)
                    if r is not None and r[1] >= lo and r[0] <= hi:
                        t = max(r[0], lo)
                        best = t if best is None else min(best, t)
            if best is not None:
                return best
        return best

    def _limit_windows(self, plan, lo, hi):
        """LIMIT/OFFSET over GROUP BY time windows with fill(null) or fill(value): windows are
        contiguous, so only the first (or, ORDER BY DESC, last) offset+limit windows matter."""
        stmt = plan.stmt
        if not (plan.every and stmt.limit and plan.fill in ("null", "value")
                and not plan.transforms and not plan.multi_row):
            return lo, hi
        need = stmt.offset + stmt.limit
        e, off = plan.every, plan.offset
        if stmt.order_desc:
            last_start = ((hi - off) // e) * e + off
            return max(lo, last_start - (need - 1) * e), hi
        first_start = ((lo - off) // e) * e + off
        return lo, min(hi, first_start + need * e - 1)

    # -- aggregates ----------------------------------------------------------------------------
    def _zone(self, plan: SelectPlan):
        """The tz() zone of the statement, or None."""
        name = plan.stmt.tz
        if not name:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise StatementError(f"unable to find time zone {name}") from None

    def _grid(self, plan: SelectPlan, lo: int, hi: int) -> tuple[int, int, int]:
        if plan.every:
            e, off = plan.every, plan.offset
            zone = self._zone(plan)
            if zone is not None:
                # windows start at local boundaries: shift the grid by the zone's offset
                off -= int(_utc_offsets(zone, np.array([lo], dtype=np.int64))[0]) * 10**9
            start = ((lo - off) // e) * e + off
            nwin = (hi - start) // e + 1
            if nwin > self.limits.max_buckets:
                raise StatementError(f"max-select-buckets limit exceeded: ({nwin}/{self.limits.max_buckets})")
            return start, e, int(nwin)
        return lo, 0, 1

    def _bounds(self, times, start, every, nwin):
        if every:
            return window_bounds(times, start, every, nwin)
        return np.array([0, len(times)], dtype=np.int64)

    def _aggregate_group(self, plan, views, sids, tags_list, ftypes, cond, lo, hi, is_tag):
        start, every, nwin = self._grid(plan, lo, hi)
        if lo > hi or nwin <= 0:
            return None
        if plan.calls and plan.calls[0].func in ("top_by_tag", "bottom_by_tag"):
            return self._top_by_tag(plan, views, sids, tags_list, ftypes, cond, lo, hi, start, every, nwin)
        partials = self._new_partials(plan, ftypes, nwin)
        if not partials:
            return None
        any_data = False
        for v in views:
            any_data |= self._feed_view(plan, v, sids, tags_list, partials, ftypes, cond, is_tag,
                                        lo, hi, start, every, nwin)
        if not any_data:
            return None
        return self._finalize_group(plan, partials, start, every, nwin, lo, cond, views, sids,
                                    tags_list, ftypes)

    def _new_partials(self, plan, ftypes, nwin) -> dict:
        partials = {}
        for c in plan.calls:
            ft = ftypes.get(c.field)
            if ft is not None:
                partials[c] = make_partial(c.func, nwin, ft, c.args)
        return partials

    def _feed_view(self, plan, v, sids, tags_list, partials, ftypes, cond, is_tag, lo, hi,
                   start, every, nwin) -> bool:
        """Feed one shard view's points of a group's series into its partials (per series:
        whole blocks from stats, the rest decoded). True when any data was found."""
        residual = cond.residual
        by_field: dict[str, list[CallKey]] = {}
        for c in partials:
            by_field.setdefault(c.field, []).append(c)
        any_data = False
        for sid, tags in zip(sids, tags_list):
            self.check_cancel()
            if residual is not None:
                any_data |= self._feed_filtered(v, sid, tags, by_field, partials, residual,
                                                ftypes, is_tag, lo, hi, start, every, nwin)
                continue
            for f, calls in by_field.items():
                fb = f.encode()
                use_stats = all(partials[c].supports_block_stats for c in calls) and not (
                    plan.single_selector and not every and calls[0].func in ("min", "max"))
                if use_stats:
                    stats, rest = v.read_with_stats(sid, fb, lo, hi, every, start % every if every else 0)
                    if stats is not None:
                        any_data = True
                        win = ((stats.min_time - start) // every) if every else np.zeros(len(stats), np.int64)
                        win = np.ascontiguousarray(win, dtype=np.int64)
                        for c in calls:
                            partials[c].add_block_stats(win, stats)
                else:
                    rest = v.scan(sid, fb, lo, hi)
                if rest is not None and len(rest[0]):
                    any_data = True
                    self._count_points(len(rest[0]))
                    b = self._bounds(rest[0], start, every, nwin)
                    for c in calls:
                        partials[c].add_points(rest[0], rest[1], b)
        return any_data

    def _finalize_group(self, plan, partials, start, every, nwin, lo, cond, views, sids,
                        tags_list, ftypes):
        # integral interpolates across window edges, so it needs the window grid.
        fin = {c: (p.finalize(grid=(start, every)) if c.func == "integral" and every else p.finalize())
               for c, p in partials.items()}
        s = self._shape_aggregate(plan, fin, start, every, nwin, lo, cond)
        if s is not None and plan.aux:
            self._fill_aux(plan, s, fin, views, sids, tags_list, ftypes, start, every)
        return s

    def _feed_filtered(self, view, sid, tags, by_field, partials, residual, ftypes, is_tag,
                       lo, hi, start, every, nwin) -> bool:
        needed = set(by_field) | self._refs(residual, is_tag)
        times, cols = self._read_aligned(view, sid, [f for f in needed if f in ftypes], lo, hi)
        if times is None:
            return False
        mask = cond_mod.eval_residual(residual, tags, cols, len(times))
        fed = False
        for f, calls in by_field.items():
            if f not in cols:
                continue
            vals, valid = cols[f]
            keep = np.flatnonzero(mask & valid)
            if not len(keep):
                continue
            t = times[keep]
            vv = _take(vals, keep)
            self._count_points(len(t))
            b = self._bounds(t, start, every, nwin)
            for c in calls:
                partials[c].add_points(t, vv, b)
            fed = True
        return fed

    def _refs(self, e, is_tag) -> set[str]:
        out = set()

        def walk(x):
            if isinstance(x, ast.VarRef):
                if x.name != "time" and not (x.type_hint == "tag" or (x.type_hint != "field" and is_tag(x.name))):
                    out.add(x.name)
            elif isinstance(x, ast.BinaryExpr):
                walk(x.lhs)
                walk(x.rhs)
            elif isinstance(x, ast.UnaryExpr):
                walk(x.expr)
            elif isinstance(x, ast.Call):
                for a in x.args:
                    walk(a)
        walk(e)
        return out

    def _count_points(self, n: int) -> None:
        self.points_read += n
        if self.limits.max_points and self.points_read > self.limits.max_points:
            raise StatementError(f"max-select-point limit exceeeded: ({self.points_read}/{self.limits.max_points})")

    def _shape_aggregate(self, plan, fin, start, every, nwin, lo, cond) -> Series | None:
        if plan.multi_row:
            return self._shape_multi(plan, fin, start, every, cond)
        if every:
            times = start + np.arange(nwin, dtype=np.int64) * every
        else:
            times = np.array([lo if cond.has_min else 0], dtype=np.int64)
        if plan.single_selector and not every:
            (f,) = fin.values()
            if f.point_time is not None and f.valid.any():
                times = np.where(f.valid, f.point_time, times)
        env = {}
        for c, f in fin.items():
            env[c] = Values(f.values, np.asarray(f.valid, dtype=bool), KIND[f.ftype],
                            getattr(f, "null_value", None))
        cols = []
        for oc in plan.columns:
            v = self._eval_agg(oc.expr, env, times, nwin, plan)
            cols.append((oc.name, v))
        if not cols:
            return None
        # Rows where every column is null: InfluxDB shows them for fill(null) when the window
        # is inside the range, drops them for fill(none) and when nothing at all was found.
        any_valid = np.zeros(len(times), dtype=bool)
        for _n, v in cols:
            any_valid |= v.valid
        if not any_valid.any() and (every or not all(c.func == "stddev" for c in fin)):
            # nothing to show; but stddev of a single point is a row with null (InfluxDB 1.6.7)
            return None
        mode = plan.fill
        keep = None
        if plan.transforms or (mode == "null" and all(c.func == "integral" for c in fin)):
            # Transforms filled their input already; rows they leave empty are not shown.
            # integral emits nothing for an empty window (InfluxDB 1.6.7), even under fill(null).
            keep = np.flatnonzero(any_valid)
        elif mode == "none":
            keep = np.flatnonzero(any_valid)
        elif every:
            cols = [(n, self._fill(plan, v, times)) for n, v in cols]
        if keep is not None:
            times = times[keep]
            cols = [(n, Values(_take(v.values, keep), v.valid[keep], v.kind)) for n, v in cols]
        return self._finish(plan, times, cols)

    def _fill(self, plan, v: Values, times) -> Values:
        mode = "number" if plan.fill == "value" else plan.fill
        vals = v.values
        if vals is None:
            vals = np.zeros(len(times), dtype=np.float64)
        kind = v.kind
        if mode == "number" and kind == "integer" and isinstance(plan.fill_value, float):
            vals, kind = np.asarray(vals, dtype=np.float64), "float"
        null_value = v.null_value if mode == "null" else None
        vals, valid = apply_fill(mode, vals, v.valid, times, plan.fill_value, null_value=null_value)
        return Values(vals, np.asarray(valid, dtype=bool), kind)

    def _top_by_tag(self, plan, views, sids, tags_list, ftypes, cond, lo, hi, start, every, nwin):
        """top(x, tag, N) / bottom(x, tag, N): per window, the best point of each tag value,
        then the N best of those (ties: the earlier point), shown in time order."""
        (call,) = plan.calls
        if len(plan.calls) != 1 or cond.residual is not None:
            raise StatementError(f"{call.func[:-7]}() with a tag argument takes no other fields "
                                 "or field conditions")
        tag, n = call.args
        top = call.func == "top_by_tag"
        ft = ftypes.get(call.field)
        if ft is None:
            return None
        by_value: dict[str, list[int]] = {}
        for sid, tags in zip(sids, tags_list):
            by_value.setdefault(tags.get(tag, ""), []).append(sid)
        fb = call.field.encode()
        cands = []  # (window, value, time, tag value)
        for tv, members in sorted(by_value.items()):
            p = make_partial("max" if top else "min", nwin, ft, ())
            for v in views:
                for sid in members:
                    col = v.scan(sid, fb, lo, hi)
                    if col is not None and len(col[0]):
                        self._count_points(len(col[0]))
                        p.add_points(col[0], col[1], self._bounds(col[0], start, every, nwin))
            f = p.finalize()
            for w in np.flatnonzero(f.valid).tolist():
                cands.append((w, f.values[w], int(f.point_time[w]), tv))
        if not cands:
            return None
        rows = []
        for w in sorted({c[0] for c in cands}):
            here = [c for c in cands if c[0] == w]
            here.sort(key=lambda c: ((-c[1] if top else c[1]), c[2]))
            rows.extend(sorted(here[:n], key=lambda c: c[2]))
        times = np.array([r[2] for r in rows], dtype=np.int64)
        vals = np.array([r[1] for r in rows], dtype=ft.dtype)
        tagcol = StringArray.from_list([r[3] for r in rows])
        ones = np.ones(len(rows), dtype=bool)
        cols = []
        for c in plan.columns:
            if isinstance(c.expr, ast.VarRef) and c.expr.name == tag:
                cols.append((c.name, Values(tagcol, ones, "string")))
            elif isinstance(c.expr, ast.VarRef):
                cols.append((c.name, _null(len(rows))))
            else:
                cols.append((c.name, Values(vals, ones, KIND[ft])))
        return self._finish(plan, times, cols)

    def _fill_aux(self, plan, s: Series, fin, views, sids, tags_list, ftypes, start, every) -> None:
        """Fields/tags beside a selector: find, for every row, the series whose point was
        selected (same time and value), and read the other columns at that point. Python per
        answer row (not per point read); ties go to the first series in key order."""
        (call, f), = fin.items()
        sel_idx = next(i for i, c in enumerate(plan.columns) if not isinstance(c.expr, ast.VarRef))
        sel = s.columns[sel_idx]
        n = len(s.times)
        if hasattr(f, "point_time") and not hasattr(f, "win"):
            if every:
                w = ((s.times - start) // every).astype(np.int64)
                pts = np.asarray(f.point_time)[w]
            else:
                pts = s.times
        else:
            pts = s.times  # multi-row selectors (top/bottom/sample) already show point times
        fb = call.field.encode()
        owners = []
        for i in range(n):
            if sel.values is None or (sel.valid is not None and not sel.valid[i]):
                owners.append(None)
                continue
            t, val = int(pts[i]), sel.values[i]
            owner = None
            for v in views:
                if not (v.start <= t < v.end):
                    continue
                for sid, tags in zip(sids, tags_list):
                    col = v.scan(sid, fb, t, t)
                    if col is not None and len(col[0]) and col[1][0] == val:
                        owner = (v, sid, tags)
                        break
                if owner:
                    break
            owners.append((owner, t))
        for j, c in enumerate(plan.columns):
            if not isinstance(c.expr, ast.VarRef):
                continue
            name = c.expr.name
            is_field = name in ftypes and c.expr.type_hint != "tag"
            kind = KIND[ftypes[name]] if is_field else "string"
            raw, valid = [], np.zeros(n, dtype=bool)
            for i, o in enumerate(owners):
                val = None
                if o is not None and o[0] is not None:
                    (v, sid, tags), t = o
                    if is_field:
                        col = v.scan(sid, name.encode(), t, t)
                        if col is not None and len(col[0]):
                            val = col[1].to_list()[0].decode() if isinstance(col[1], StringArray) else col[1][0]
                    else:
                        val = tags.get(name)
                raw.append(val)
                valid[i] = val is not None
            if kind == "string":
                values = StringArray.from_list(["" if x is None else x for x in raw])
            else:
                values = np.array([0 if x is None else x for x in raw],
                                  dtype={"float": np.float64, "integer": np.int64, "boolean": np.uint8}[kind])
            s.columns[j] = Column(c.name, values if valid.any() else None, None if valid.all() else valid, kind)

    def _shape_multi(self, plan, fin, start, every, cond) -> Series | None:
        multi = [(c, f) for c, f in fin.items() if c.func in ("distinct", "top", "bottom", "sample")]
        if len(plan.columns) != 1 + len(plan.aux) or len(multi) != 1:
            raise StatementError("functions returning several points per window cannot be "
                                 "combined with other fields yet")
        c, f = multi[0]
        if not len(f.win):
            return None
        if f.times is not None:
            times = np.asarray(f.times, dtype=np.int64)
        else:
            base = start if every else (cond.min_time if cond.has_min else 0)
            times = base + np.asarray(f.win, dtype=np.int64) * (every or 0)
        n = len(times)
        col = Values(f.values, np.ones(n, dtype=bool), KIND[f.ftype])
        cols = [(c.name, col if not isinstance(c.expr, ast.VarRef) else _null(n)) for c in plan.columns]
        return self._finish(plan, times, cols)

    def _eval_agg(self, e, env, times, n, plan=None) -> Values:
        if isinstance(e, ast.Call):
            name = e.name
            if name in TRANSFORMS:
                inner = self._eval_agg(e.args[0], env, times, n, plan)
                if plan is not None and plan.every and plan.fill not in ("null", "none"):
                    inner = self._fill(plan, inner, times)
                elif inner.null_value is not None:
                    inner = self._fill(plan, inner, times)  # count: empty windows count 0
                # without a unit, derivative uses the GROUP BY interval on aggregates
                unit = plan.every if plan is not None and plan.every else 10**9
                return self._transform(name, e, times, inner, unit)
            if name in MATH:
                return _math(name, [self._eval_agg(a, env, times, n, plan) for a in e.args])
            key = self._keys.get(id(e))
            if key is None:  # by identity: the plan's nodes live as long as this executor
                key = self._keys[id(e)] = call_key(e)
            return env.get(key) or _null(n)
        if isinstance(e, ast.BinaryExpr):
            return _binary(e.op, self._eval_agg(e.lhs, env, times, n, plan),
                           self._eval_agg(e.rhs, env, times, n, plan))
        if isinstance(e, ast.UnaryExpr):
            v = self._eval_agg(e.expr, env, times, n, plan)
            vals, valid = fmath.negate(v.values, v.valid)
            return Values(vals, valid, v.kind)
        if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral)):
            kind = "integer" if isinstance(e, ast.IntegerLiteral) else "float"
            return Values(np.full(n, e.value, dtype=np.int64 if kind == "integer" else np.float64),
                          np.ones(n, dtype=bool), kind)
        if isinstance(e, ast.VarRef):
            # a tag beside an aggregate: InfluxDB fills it from the selected point; we leave null
            return _null(n)
        raise StatementError(f"unsupported expression: {e}")

    def _transform(self, name, call, times, v: Values, default_unit: int = 10**9) -> Values:
        """Apply a transform to the non-null rows of a column (InfluxDB skips null windows),
        then put the results back on the input rows; rows without a result are null."""
        if v.kind not in ("float", "integer"):
            raise StatementError(f"unsupported {name} argument type: {v.kind}")
        lit = [a.ns if isinstance(a, ast.DurationLiteral) else getattr(a, "value", None)
               for a in call.args[1:]]
        rows = np.flatnonzero(v.valid)
        t_in = times[rows]
        vals = np.asarray(v.values)[rows]
        ok = np.ones(len(rows), dtype=bool)
        if name in ("derivative", "non_negative_derivative"):
            t, out, valid = getattr(tf, name)(t_in, vals, ok, lit[0] if lit else default_unit)
        elif name == "elapsed":
            t, out, valid = tf.elapsed(t_in, vals, ok, lit[0] if lit else 1)
        elif name == "moving_average":
            t, out, valid = tf.moving_average(t_in, vals, ok, int(lit[0]))
        else:
            t, out, valid = getattr(tf, name)(t_in, vals, ok)
        out = np.asarray(out)
        pos = np.searchsorted(times, t)
        full = np.zeros(len(times), dtype=out.dtype)
        fv = np.zeros(len(times), dtype=bool)
        full[pos] = out
        fv[pos] = np.asarray(valid, dtype=bool)
        kind = "integer" if out.dtype == np.int64 else "float"
        return Values(full, fv, kind)

    # -- raw queries -------------------------------------------------------------------------
    def _read_aligned(self, view, sid, fields, lo, hi, edge: int = 0, last: bool = False):
        """Times (union over the fields) and, per field, values + validity aligned to them.
        With ``edge``, only the first/last ``edge`` points of each field are read (their union
        holds the first/last ``edge`` rows)."""
        cols = {}
        for f in fields:
            if edge:
                col = view.scan_edge(sid, f.encode(), lo, hi, edge, last)
            else:
                col = view.scan(sid, f.encode(), lo, hi)
            if col is not None and len(col[0]):
                cols[f] = col
        if not cols:
            return None, {}
        if len(cols) == 1:
            (f, (t, v)), = cols.items()
            return t, {f: (v, np.ones(len(t), dtype=bool))}
        first = next(iter(cols.values()))[0]
        if all(len(c[0]) == len(first) and np.array_equal(c[0], first) for c in cols.values()):
            # every field has the same timestamps (the common case): nothing to align
            ones = np.ones(len(first), dtype=bool)
            return first, {f: (v, ones) for f, (t, v) in cols.items()}
        times = np.unique(np.concatenate([c[0] for c in cols.values()]))
        out = {}
        for f, (t, v) in cols.items():
            pos = np.searchsorted(times, t)
            valid = np.zeros(len(times), dtype=bool)
            valid[pos] = True
            if isinstance(v, StringArray):
                idx = np.zeros(len(times), dtype=np.int64)
                idx[pos] = np.arange(len(t))
                full = v.take(idx) if len(t) else StringArray.from_list([""] * len(times))
            else:
                full = np.zeros(len(times), dtype=v.dtype)
                full[pos] = v
            out[f] = (full, valid)
        return times, out

    def _merge_group(self, plan, views, sids, ftypes, cond, lo, hi) -> Series | None:
        """``SELECT merge(a, b, ...)``: every point of the named fields, interleaved into one
        time-ordered column (the seed-era merge of several series into one stream)."""
        (col,) = plan.columns
        args = col.expr.args
        if not all(isinstance(a, ast.VarRef) for a in args):
            raise StatementError("merge() takes field names")
        kinds = {KIND[ftypes[a.name]] for a in args if a.name in ftypes}
        if len(kinds) > 1:
            if kinds <= {"float", "integer"}:
                kinds = {"float"}
            else:
                raise StatementError("merge() fields must have one type (or be numbers)")
        if not kinds or cond.residual is not None:
            if cond.residual is not None:
                raise StatementError("merge() with field conditions is not supported")
            return None
        (kind,) = kinds
        ts, vs = [], []
        for sid in sids:
            for v in views:
                for a in args:
                    if a.name not in ftypes:
                        continue
                    c = v.scan(sid, a.name.encode(), lo, hi)
                    if c is not None and len(c[0]):
                        ts.append(c[0])
                        vs.append(c[1] if kind != "float" else np.asarray(c[1], dtype=np.float64))
        if not ts:
            return None
        times = np.concatenate(ts)
        order = np.argsort(times, kind="stable")
        vals = _concat_values(vs, kind)
        self._count_points(len(times))
        return self._finish(plan, times[order], [(col.name, Values(_take(vals, order),
                                                                  np.ones(len(times), dtype=bool), kind))])

    def _raw_fields(self, plan, ftypes, tag_keys, cond):
        """(columns' expressions, selected fields, fields to read) of a raw SELECT: the same for
        every group of a measurement, so worked out once per (plan, measurement)."""
        key = (id(plan), id(ftypes), id(tag_keys), id(cond))
        memo = self.__dict__.setdefault("_raw_fields_memo", {})
        hit = memo.get(key)
        if hit is not None and hit[0] is plan and hit[1] is ftypes and hit[2] is tag_keys and hit[3] is cond:
            return hit[4]
        exprs = [(c.name, c.expr) for c in plan.columns]
        field_refs = set()
        for _n, e in exprs:
            field_refs |= self._refs(e, lambda x: x in tag_keys)
        sel_fields = [f for f in field_refs if f in ftypes]
        resid_fields = self._refs(cond.residual, lambda x: x in tag_keys) if cond.residual is not None else set()
        read_fields = sorted(set(sel_fields) | {f for f in resid_fields if f in ftypes})
        out = (exprs, sel_fields, read_fields)
        memo[key] = (plan, ftypes, tag_keys, cond, out)  # holding them keeps their ids unique
        return out

    def _raw_group(self, plan, views, sids, tags_list, ftypes, tag_keys, group_keys, cond, lo, hi):
        if len(plan.columns) == 1 and isinstance(plan.columns[0].expr, ast.Call) \
                and plan.columns[0].expr.name == "merge":
            return self._merge_group(plan, views, sids, ftypes, cond, lo, hi)
        exprs, sel_fields, read_fields = self._raw_fields(plan, ftypes, tag_keys, cond)
        stmt = plan.stmt
        # LIMIT without a field filter: only the first (ORDER BY DESC: last) offset+limit points
        # of each field can make the answer, so read just those edges.
        edge = (stmt.offset + stmt.limit) if stmt.limit and cond.residual is None else 0
        parts = []  # per series: (times, {field: (vals, valid)}, tags)
        for sid, tags in zip(sids, tags_list):
            self.check_cancel()
            tparts, cparts = [], []
            ordered = views[::-1] if (edge and stmt.order_desc) else views
            have = 0
            for v in ordered:
                t, cols = self._read_aligned(v, sid, read_fields, lo, hi,
                                             edge=edge, last=stmt.order_desc)
                if t is not None:
                    tparts.append(t)
                    cparts.append(cols)
                    have += len(t)
                    if edge and have >= edge:
                        break
            if edge and stmt.order_desc:
                tparts.reverse()
                cparts.reverse()
            if not tparts:
                continue
            times, cols = _concat_aligned(tparts, cparts, read_fields, ftypes)
            if cond.residual is not None:
                mask = cond_mod.eval_residual(cond.residual, tags, cols, len(times))
            else:
                mask = np.ones(len(times), dtype=bool)
            # a row exists where at least one selected field has a value
            has = np.zeros(len(times), dtype=bool)
            for f in sel_fields:
                if f in cols:
                    has |= cols[f][1]
            keep = np.flatnonzero(mask & has)
            if not len(keep):
                continue
            self._count_points(len(keep))
            times = times[keep]
            cols = {f: (_take(v, keep), ok[keep]) for f, (v, ok) in cols.items()}
            parts.append((times, cols, tags))
        if not parts:
            return None
        out_cols = []
        n_total = sum(len(p[0]) for p in parts)
        all_times = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        if len(parts) > 1:
            order = np.argsort(all_times, kind="stable")
        else:
            order = np.arange(n_total)
        shaped = not plan.transforms
        if shaped:
            # ORDER BY and LIMIT pick rows before any column is built or gathered
            if stmt.order_desc:
                order = order[::-1]
            if stmt.offset or stmt.limit:
                order = order[stmt.offset:(stmt.offset + stmt.limit) if stmt.limit else None]
        times = all_times[order]
        for name, e in exprs:
            vals = []
            for t, cols, tags in parts:
                vals.append(self._eval_raw(e, cols, tags, t, ftypes, tag_keys))
            kind = next((v.kind for v in vals if v.valid.any()), vals[0].kind)
            merged = vals[0] if len(vals) == 1 and vals[0].kind == kind else _concat_mixed(vals, kind)
            out_cols.append((name, Values(_take(merged.values, order), merged.valid[order], merged.kind)))
        if shaped:
            return self._finish(plan, times, out_cols, shaped=True)
        if plan.transforms:
            # A transform has no value for its first row(s): InfluxDB leaves those rows out.
            has = np.zeros(n_total, dtype=bool)
            for _n, v in out_cols:
                has |= v.valid
            keep = np.flatnonzero(has)
            times = times[keep]
            out_cols = [(n, Values(_take(v.values, keep), v.valid[keep], v.kind)) for n, v in out_cols]
        return self._finish(plan, times, out_cols)

    def _eval_raw(self, e, cols, tags, times, ftypes, tag_keys) -> Values:
        """Evaluate a field expression over the rows of one series (``times`` are its rows)."""
        n = len(times)
        if isinstance(e, ast.VarRef):
            name = e.name
            is_tag = e.type_hint == "tag" or (e.type_hint != "field" and name in tag_keys and name not in cols)
            if is_tag:
                val = tags.get(name)
                if val is None:
                    return Values(None, np.zeros(n, dtype=bool), "string")
                return Values(_const_strings(val, n), np.ones(n, dtype=bool), "string")
            if name in cols:
                v, ok = cols[name]
                return Values(v, ok, KIND[ftypes[name]])
            return _null(n)
        if isinstance(e, ast.Call):
            if e.name in MATH:
                return _math(e.name, [self._eval_raw(a, cols, tags, times, ftypes, tag_keys) for a in e.args])
            if e.name in TRANSFORMS:
                inner = self._eval_raw(e.args[0], cols, tags, times, ftypes, tag_keys)
                return self._transform(e.name, e, times, inner)
            raise StatementError(f"function {e.name}() over raw fields is not supported yet")
        if isinstance(e, ast.BinaryExpr):
            return _binary(e.op, self._eval_raw(e.lhs, cols, tags, times, ftypes, tag_keys),
                           self._eval_raw(e.rhs, cols, tags, times, ftypes, tag_keys))
        if isinstance(e, ast.UnaryExpr):
            v = self._eval_raw(e.expr, cols, tags, times, ftypes, tag_keys)
            vals, valid = fmath.negate(v.values, v.valid)
            return Values(vals, valid, v.kind)
        if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral)):
            kind = "integer" if isinstance(e, ast.IntegerLiteral) else "float"
            return Values(np.full(n, e.value), np.ones(n, dtype=bool), kind)
        if isinstance(e, ast.StringLiteral):
            return Values(_const_strings(e.value, n), np.ones(n, dtype=bool), "string")
        if isinstance(e, ast.Wildcard):
            raise StatementError("wildcards cannot be combined with other fields yet")
        raise StatementError(f"unsupported expression: {e}")

    # -- shaping -------------------------------------------------------------------------------
    def _finish(self, plan, times, cols, shaped: bool = False) -> Series | None:
        stmt = plan.stmt
        if shaped:
            pass  # the caller applied ORDER BY and LIMIT already
        elif stmt.order_desc:
            rev = np.arange(len(times) - 1, -1, -1)
            times = times[rev]
            cols = [(n, Values(_take(v.values, rev), v.valid[rev], v.kind)) for n, v in cols]
        if not shaped and (stmt.offset or stmt.limit):
            a = stmt.offset
            b = a + stmt.limit if stmt.limit else len(times)
            sl = np.arange(a, min(b, len(times)))
            times = times[sl]
            cols = [(n, Values(_take(v.values, sl), v.valid[sl], v.kind)) for n, v in cols]
        if not len(times):
            return None
        out = []
        for n, v in cols:
            vals = v.values
            valid = None if v.valid.all() else v.valid
            if vals is None or not v.valid.any():
                out.append(Column(n, None, v.valid, v.kind))
            else:
                out.append(Column(n, vals, valid, v.kind))
        times = np.ascontiguousarray(times, dtype=np.int64)
        zone = self._zone(plan)
        offsets = _utc_offsets(zone, times) if zone is not None else None
        return Series(None, None, times, out, utc_offsets=offsets)


# -- helpers ------------------------------------------------------------------------------------

def time_ns() -> int:
    return _time.time_ns()


def _schema(reader, db: str, m: bytes) -> tuple:
    """(tag keys, {field: type}) of a measurement as str; a field with several types (written
    differently in different shards) gets the lowest. Shared by the storage index between
    schema changes: never mutated here."""
    schema = getattr(reader, "schema", None)
    if schema is not None:
        return schema(db, m)
    return (frozenset(k.decode() for k in reader.tag_keys(db, m)),
            {f.decode(): min(ts) for f, ts in reader.field_types(db, m).items()})


@lru_cache(maxsize=262_144)
def _key_tags(key: bytes) -> dict:
    """The tags of a series key as str → str. A key's tags never change, so parsing is cached
    (every query touching a series would otherwise parse its key again). Callers must not
    mutate the returned dict."""
    _m, tags = parse_key(key)
    return {a.decode(): b.decode() for a, b in tags}


def _utc_offsets(zone, times: np.ndarray) -> np.ndarray:
    """UTC offset in seconds of each time in ``zone``, computed once per distinct hour (zone
    transitions fall on whole hours or half hours of UTC; an hour is fine enough here)."""
    hours = times // 3_600_000_000_000
    uniq, inverse = np.unique(hours, return_inverse=True)
    offs = np.array([int(datetime.fromtimestamp(int(h) * 3600, zone).utcoffset().total_seconds())
                     for h in uniq.tolist()], dtype=np.int32)
    return offs[inverse]


def _concat_aligned(tparts, cparts, fields, ftypes):
    times = np.concatenate(tparts) if len(tparts) > 1 else tparts[0]
    out = {}
    for f in fields:
        vals, valids = [], []
        kind = KIND[ftypes[f]]
        for t, c in zip(tparts, cparts):
            if f in c:
                vals.append(c[f][0])
                valids.append(c[f][1])
            else:
                vals.append(StringArray.from_list([""] * len(t)) if kind == "string"
                            else np.zeros(len(t), dtype=ftypes[f].dtype))
                valids.append(np.zeros(len(t), dtype=bool))
        if any(v.any() for v in valids):
            out[f] = (_concat_values(vals, kind) if len(vals) > 1 else vals[0],
                      np.concatenate(valids) if len(valids) > 1 else valids[0])
    return times, out


def _concat_mixed(vals: list[Values], kind: str) -> Values:
    valid = np.concatenate([v.valid for v in vals])
    parts = []
    for v in vals:
        n = len(v.valid)
        if v.values is None or v.kind != kind:
            parts.append(StringArray.from_list([""] * n) if kind == "string" else np.zeros(n, dtype=np.float64 if kind == "float" else np.int64))
        else:
            parts.append(v.values if kind == "string" else np.asarray(v.values))
    if kind == "string":
        values = StringArray.concat(parts)
    else:
        values = np.concatenate([np.asarray(p, dtype=np.float64 if kind == "float" else parts[0].dtype) for p in parts])
    return Values(values, valid, kind)


def _kind_of(values) -> str:
    return "integer" if np.asarray(values).dtype == np.int64 else "float"


def _numeric_or_none(v: Values):
    if v.kind not in ("float", "integer") or v.values is None:
        return None
    return np.asarray(v.values)


def _binary(op: str, a: Values, b: Values) -> Values:
    n = len(a.valid)
    x, y = _numeric_or_none(a), _numeric_or_none(b)
    if x is None or y is None:
        return _null(n)
    vals, valid = fmath.binary_op(op, x, a.valid, y, b.valid)
    return Values(vals, np.asarray(valid, dtype=bool), _kind_of(vals))


def _math(name: str, args: list[Values]) -> Values:
    n = len(args[0].valid)
    xs = [_numeric_or_none(a) for a in args]
    if any(x is None for x in xs):
        return _null(n)
    if len(args) == 1:
        vals, valid = fmath.unary(name, xs[0], args[0].valid)
    else:
        vals, valid = fmath.binary_fn(name, xs[0], args[0].valid, xs[1], args[1].valid)
    return Values(vals, np.asarray(valid, dtype=bool), _kind_of(vals))
