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

# The calls a cell answers: everything else needs the points themselves.
CELL_FUNCS = frozenset({"count", "sum", "mean", "min", "max", "first", "last", "spread"})


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


def point_cells(times: np.ndarray, values: np.ndarray, start: int, every: int, nwin: int) -> MergedCells:
    """Cells (one group) of one series' merged points in time order: one pass of
    ``aggregates.window_cells``, whose values are those of the kernels the partials use on points
    (``window_sum``, ``window_select``: NaN loses, earliest on ties)."""
    cells = K.window_cells(values, window_bounds(times, start, every, nwin))
    return MergedCells(*(a.reshape(1, nwin) for a in cells))
