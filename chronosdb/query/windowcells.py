"""(group, window) cells of the fused scan kernel, merged and turned into call results.

``ShardView.window_aggregate`` answers one field of many series with ``WindowAggregates``: per
segment file, C-contiguous (ngroups, nwin) arrays of count, sum, min, max, first and last.
Segment files and shards are disjoint in time and come oldest first, so the cells of several
files merge like partial aggregates: counts and sums add, min/max fold (NaN loses, as in
``MinPartial``), first comes from the oldest cell holding data and last from the newest.

Both the executor's fused path and the direct path (``query.direct``) finalize through here, so
the two cannot drift apart.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from chronosdb.ext import aggregates as K
from chronosdb.ext.merge import window_bounds
from chronosdb.model.fieldtype import FieldType
from chronosdb.query.compile import call_key
from chronosdb.query.influxql import ast
from chronosdb.query.results import Column

# The calls a cell answers: everything else needs the points themselves. The codes are
# ``aggregates.window_calls``'s.
CALL_CODES = {"count": 0, "sum": 1, "mean": 2, "min": 3, "max": 4, "first": 5, "last": 6, "spread": 7}
CELL_FUNCS = frozenset(CALL_CODES)


class MergedCells(NamedTuple):
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray


def merge_cells(aggs) -> MergedCells | None:
    """The cells of several segment files' ``WindowAggregates`` (oldest first) as one; None when
    there are none (no segment file holds the field in the range)."""
    cnt = tot = mn = mx = first = last = seen = None
    for a in aggs:
        has = a.count > 0
        if cnt is None:
            cnt, tot = a.count.copy(), a.sum.copy()
            mn, mx, first, last = a.min.copy(), a.max.copy(), a.first.copy(), a.last.copy()
            seen = has
            continue
        both = seen & has
        only = has & ~seen
        cnt += a.count
        tot += a.sum
        if mn.dtype == np.float64:
            mn = np.where(both, np.fmin(mn, a.min), np.where(only, a.min, mn))
            mx = np.where(both, np.fmax(mx, a.max), np.where(only, a.max, mx))
        else:
            mn = np.where(both, np.minimum(mn, a.min), np.where(only, a.min, mn))
            mx = np.where(both, np.maximum(mx, a.max), np.where(only, a.max, mx))
        first = np.where(only, a.first, first)
        last = np.where(has, a.last, last)
        seen = seen | has
    if cnt is None:
        return None
    return MergedCells(cnt, tot, mn, mx, first, last)


def call_cells(func: str, m: MergedCells, ftype: FieldType):
    """``(values, valid, result type, null value)`` of one call over merged cells: what the
    call's partial would finalize to, cell by cell. ``null value`` is what an empty window
    shows under fill(null) (0 for count, else None: null)."""
    valid = m.count > 0
    if func == "count":
        return m.count, valid, FieldType.INTEGER, 0
    if func == "sum":
        return m.sum, valid, ftype, None
    if func == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = m.sum.astype(np.float64) / np.where(valid, m.count, 1)
        return vals, valid, FieldType.FLOAT, None
    if func == "spread":
        return m.max - m.min, valid, ftype, None
    if func in ("min", "max", "first", "last"):
        return getattr(m, func), valid, ftype, None
    raise ValueError(f"{func}() is not answered from window cells")


_KIND = {FieldType.FLOAT: "float", FieldType.INTEGER: "integer"}


def point_columns(fill_none: bool, calls, points_of: dict, ftypes: dict, start: int, every: int,
                  nwin: int):
    """``(window_columns(...), points in the windows)`` for one series, from each field's merged
    points in time order (``points_of``: {field: (times, values)}, every field of ``calls``): the
    windows' bounds, cells and each call's values come from one ``aggregates.window_calls`` call
    per field instead of cells, then one shaping step per column. Equal to ``window_columns``
    over each field's ``window_cells`` (tested)."""
    by_field: dict = {}
    for i, (_n, key) in enumerate(calls):
        by_field.setdefault(key.field, []).append(i)
    outs: list = [None] * len(calls)
    state = {}                      # field -> (count, windows with a point)
    starts = None
    points = 0
    any_point, all_full = False, True
    for f, idxs in by_field.items():
        times, values = points_of[f]
        starts, count, n_valid, vals = K.window_calls(times, values, start, every, nwin,
                                                      [CALL_CODES[calls[i][1].func] for i in idxs])
        for i, v in zip(idxs, vals):
            outs[i] = v
        state[f] = (count, n_valid)
        if n_valid:
            points += int(count.sum())
            any_point = True
        all_full = all_full and n_valid == nwin
    if not any_point:
        return [], points
    keep = None
    if fill_none and not all_full:     # keep the windows where some field has a point
        any_valid = np.zeros(nwin, dtype=bool)
        for count, _n in state.values():
            any_valid |= count > 0
        if not any_valid.all():
            keep = np.flatnonzero(any_valid)
            starts = starts[keep]
    row = []
    for (name, key), vals in zip(calls, outs):
        func, (count, n_valid) = key.func, state[key.field]
        kind = "integer" if func == "count" else "float" if func == "mean" else _KIND[ftypes[key.field]]
        if keep is not None:
            vals, valid = vals[keep], count[keep] > 0
            n_valid = int(np.count_nonzero(valid))
            if n_valid == len(valid):
                row.append(Column(name, vals, None, kind))
            elif n_valid == 0:
                row.append(Column(name, None, valid, kind))
            else:            # no count 0 here: a kept window without this field's points is null
                row.append(Column(name, vals, valid, kind))
        elif n_valid == nwin or func == "count":   # count() of an empty window is 0, never null
            row.append(Column(name, vals, None, kind))
        elif n_valid == 0:
            row.append(Column(name, None, count > 0, kind))
        else:
            row.append(Column(name, vals, count > 0, kind))
    return [(0, starts, row)], points


def plain_window_calls(plan) -> bool:
    """Whether every output column of the plan is one cell-answerable call of one field, GROUP
    BY time windows, fill(null) or fill(none), no tz(), ORDER BY DESC, LIMIT or OFFSET: then
    ``window_columns`` shapes the answer straight from the cells (the executor's general
    shaping — math, transforms, fill modes, ordering — has nothing to do)."""
    stmt = plan.stmt
    if (not plan.every or not plan.is_aggregate or plan.aux or plan.multi_row or plan.transforms
            or plan.wildcard or plan.fill not in ("null", "none") or stmt.tz is not None
            or stmt.order_desc or stmt.limit or stmt.offset):
        return False
    for c in plan.columns:
        e = c.expr
        if (type(e) is not ast.Call or e.name not in CELL_FUNCS or len(e.args) != 1
                or type(e.args[0]) is not ast.VarRef or e.args[0].type_hint not in (None, "field")
                or e.args[0].name == "time"):
            return False
    return True


def window_columns(plan, merged: dict, ftypes: dict, start: int, every: int, nwin: int,
                   calls=None):
    """``[(group, times, columns)]`` for every group with a point, from merged (ngroups, nwin)
    cells per field (a field absent from ``merged`` has no point in the range: its calls are
    null columns), for a plan ``plain_window_calls`` accepts. What ``_shape_aggregate`` gives
    for such plans: fill(null) keeps every window (an empty one counts 0 for count()),
    fill(none) keeps the windows where some column has a value. ``calls``: the columns'
    ``(name, CallKey)`` if the caller has them."""
    valid_of, n_valid_of = {}, {}
    any_valid = None
    for f, mc in merged.items():
        valid = mc.count > 0
        valid_of[f] = valid
        n_valid_of[f] = _row_counts(valid)
        any_valid = valid if any_valid is None else any_valid | valid
    if any_valid is None:
        return []
    n_any = _row_counts(any_valid)
    all_times = start + np.arange(nwin, dtype=np.int64) * every
    cols = []   # per output column: (name, kind, values 2D, field or None, null value)
    for name, key in (calls if calls is not None else [(c.name, call_key(c.expr)) for c in plan.columns]):
        mc = merged.get(key.field)
        if mc is None:
            cols.append((name, "float", None, None, None))
            continue
        vals, _valid, ft, null_value = call_cells(key.func, mc, ftypes[key.field])
        cols.append((name, _KIND[ft], vals, key.field, null_value))
    none = plan.fill == "none"
    out = []
    for g in [g for g, n in enumerate(n_any) if n]:
        keep = None
        times = all_times
        if none and n_any[g] < nwin:
            keep = np.flatnonzero(any_valid[g])
            times = all_times[keep]
        row = []
        for name, kind, vals, f, null_value in cols:
            if f is None:
                row.append(Column(name, None, np.zeros(len(times), dtype=bool), kind))
                continue
            v, valid, n_valid = vals[g], valid_of[f][g], int(n_valid_of[f][g])
            if keep is not None:
                v, valid = v[keep], valid[keep]
                n_valid, null_value = int(np.count_nonzero(valid)), None   # no count 0 here
            if n_valid == len(valid):
                row.append(Column(name, v, None, kind))
            elif null_value is not None:   # fill(null) count(): an empty window counts 0
                v = v.copy()
                v[~valid] = null_value
                row.append(Column(name, v, None, kind))
            elif n_valid == 0:
                row.append(Column(name, None, valid, kind))
            else:
                row.append(Column(name, v, valid, kind))
        out.append((g, times, row))
    return out


def _row_counts(mask: np.ndarray) -> list:
    """True cells per row of a 2-D bool array (one row, the direct path's case, without numpy's
    slow axis reduction)."""
    if mask.shape[0] == 1:
        return [int(np.count_nonzero(mask[0]))]
    return mask.sum(axis=1).tolist()
