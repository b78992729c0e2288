"""The direct path: dashboard-shaped window aggregates answered straight from the fused kernel.

The query Grafana panels and TSBS's single-groupby types send most often is

    SELECT max(f) [, mean(g), ...] FROM m WHERE host = 'a' [OR host = 'b' ...]
        AND time >= ... AND time < ... GROUP BY time(1m) [fill(null|none)]

It touches a few hundred points, so its cost is the executor's generality, not the scan: the
general path groups series, probes block spans, builds a partial per call and shapes the answer
through the math/fill/transform machinery, about a hundred Python steps for one small answer.
Here the compiled plan is checked once against a narrow shape, the series come from the index,
each (shard, field) goes through ``ShardView.window_aggregate`` with every series in one group,
and the cells are finalized with the same code as the executor's fused path
(``query.windowcells``).

Exactness is kept by refusing rather than approximating: ``answer`` returns None, and the caller
runs the general executor, whenever anything falls outside the shape — GROUP BY tags, tz(),
LIMIT/OFFSET/ORDER BY DESC, fill other than null/none, math or transforms, a call other than
count/sum/mean/min/max/first/last/spread on one numeric field, a field condition, a missing time
bound, an unknown database or rp, no matching series, a limit that would be exceeded (the general
path raises the error), or a shard view the fused kernel cannot answer (cache points or
tombstones in the range, overlapping segment files). The differential tests
(tests/test_query_direct.py) hold both paths to the same answer.
"""
from __future__ import annotations

import numpy as np

from chronosdb.model.fieldtype import FieldType
from chronosdb.query import condition as cond_mod
from chronosdb.query.compile import SelectPlan, call_key
from chronosdb.query.influxql import ast
from chronosdb.query.results import Column, Series
from chronosdb.query.windowcells import CELL_FUNCS, call_cells, merge_cells, point_cells

_KIND = {FieldType.FLOAT: "float", FieldType.INTEGER: "integer"}
_NUMERIC = (FieldType.FLOAT, FieldType.INTEGER)


def _plan_fits(plan: SelectPlan) -> bool:
    """The statement's own shape: one plain measurement, GROUP BY time only, each column one
    cell-answerable call of one field. (What depends on the data is checked in ``answer``.)"""
    stmt = plan.stmt
    if (not plan.every or not plan.is_aggregate or plan.aux or plan.multi_row or plan.transforms
            or plan.wildcard or plan.group_tags or plan.group_all or plan.group_regex is not None
            or plan.fill not in ("null", "none") or stmt.tz is not None or stmt.order_desc
            or stmt.limit or stmt.offset or stmt.slimit or stmt.soffset or stmt.into is not None
            or len(stmt.sources) != 1):
        return False
    src = stmt.sources[0]
    if type(src) is not ast.Measurement or src.regex is not None:
        return False
    for c in plan.columns:
        e = c.expr
        if (type(e) is not ast.Call or e.name not in CELL_FUNCS or len(e.args) != 1
                or type(e.args[0]) is not ast.VarRef or e.args[0].type_hint not in (None, "field")
                or e.args[0].name == "time"):
            return False
    return True


def answer(plan: SelectPlan, reader, db: str | None, rp: str | None, now: int, limits,
           check_cancel) -> list[Series] | None:
    """The statement's series, or None when the general executor must answer it."""
    if not _plan_fits(plan):
        return None
    stmt = plan.stmt
    src = stmt.sources[0]
    db = src.database or db
    rp = src.retention_policy or rp
    if not db or db not in reader.databases():
        return None
    m = src.name.encode()
    tag_keys, ftypes = reader.schema(db, m)
    calls = []
    for c in plan.columns:
        key = call_key(c.expr)
        if key.field in tag_keys or ftypes.get(key.field) not in _NUMERIC:
            return None
        calls.append((c.name, key))
    cond = cond_mod.analyze(stmt.condition, now=now, is_tag=tag_keys.__contains__)
    if cond.residual is not None or not (cond.has_min and cond.has_max):
        return None
    lo, hi = cond.min_time, cond.max_time
    every, off = plan.every, plan.offset
    start = ((lo - off) // every) * every + off
    nwin = (hi - start) // every + 1
    if lo > hi or nwin <= 0 or nwin > limits.max_buckets:
        return None
    sids = reader.series_ids(db, m, cond.tags)
    if not len(sids) or len(sids) > limits.max_series:
        return None
    fields = sorted({key.field for _n, key in calls})
    check_cancel()
    with reader.views(db, rp, lo, hi) as views:
        if len(sids) == 1:
            merged = _one_series(views, int(sids[0]), fields, lo, hi, start, every, nwin)
        else:
            merged = _many_series(views, sids.tolist(), fields, lo, hi, start, every, nwin)
    if merged is None or None in merged.values():
        # A field without a point in the range: the general path's routes differ on what its
        # count shows (0 from a partial, null from the fused cells); let it decide.
        return None
    points = 0
    valid_of = {}   # field -> (windows with a point, how many)
    for f, mc in merged.items():
        cnt = mc.count[0]
        points += int(cnt.sum())
        valid = cnt > 0
        valid_of[f] = (valid, int(np.count_nonzero(valid)))
    if limits.max_points and points > limits.max_points:
        return None
    if not any(n for _v, n in valid_of.values()):
        return []
    if len(valid_of) == 1:
        ((any_valid, n_any),) = valid_of.values()
    else:
        any_valid = np.logical_or.reduce([v for v, _n in valid_of.values()])
        n_any = int(np.count_nonzero(any_valid))
    times = start + np.arange(nwin, dtype=np.int64) * every
    keep = None
    if plan.fill == "none" and n_any < nwin:
        keep = np.flatnonzero(any_valid)
        times = times[keep]
    out = []
    for name, key in calls:
        vals, _valid, ft, null_value = call_cells(key.func, merged[key.field], ftypes[key.field])
        vals = vals[0]
        valid, n_valid = valid_of[key.field]
        if keep is not None:
            vals, valid = vals[keep], valid[keep]
            n_valid, null_value = int(np.count_nonzero(valid)), None   # fill(none): no count 0
        if n_valid == len(valid):
            out.append(Column(name, vals, None, _KIND[ft]))
        elif null_value is not None:   # fill(null) count: an empty window counts 0
            vals = vals.copy()
            vals[~valid] = null_value
            out.append(Column(name, vals, None, _KIND[ft]))
        elif n_valid == 0:
            out.append(Column(name, None, valid, _KIND[ft]))
        else:
            out.append(Column(name, vals, valid, _KIND[ft]))
    return [Series(src.name, None, times, out)]


def _one_series(views, sid, fields, lo, hi, start, every, nwin):
    """{field: cells} of one series from its merged points (what the general path's per-series
    route feeds its partials), or None where a whole block lies inside a window: the general
    path answers that block from its stats without decoding it."""
    out = {}
    for f in fields:
        fb = f.encode()
        parts_t, parts_v = [], []
        for v in views:
            if not hasattr(v, "read_with_stats"):
                return None
            stats, rest = v.read_with_stats(sid, fb, lo, hi, every, start % every)
            if stats is not None:
                return None
            if rest is not None and len(rest[0]):
                parts_t.append(rest[0])
                parts_v.append(rest[1])
        if not parts_t:
            out[f] = None
            continue
        times = parts_t[0] if len(parts_t) == 1 else np.concatenate(parts_t)
        values = parts_v[0] if len(parts_v) == 1 else np.concatenate(parts_v)
        out[f] = point_cells(times, values, start, every, nwin)
    return out


def _many_series(views, sid_list, fields, lo, hi, start, every, nwin):
    """{field: cells} of several series taken as one group from the fused kernel, or None when a
    view cannot be answered that way (cache points or tombstones in the range, overlapping
    segment files)."""
    groups = [0] * len(sid_list)
    by_field: dict[str, list] = {f: [] for f in fields}
    for v in views:
        if not hasattr(v, "window_aggregate"):
            return None
        for f in fields:
            r = v.window_aggregate(sid_list, groups, f.encode(), lo, hi, start, every, nwin, 1)
            if r is None:
                return None
            by_field[f].extend(r)
    return {f: merge_cells(aggs) for f, aggs in by_field.items()}
