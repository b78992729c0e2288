"""The direct path: dashboard-shaped window aggregates answered straight from the fused kernel.

The query Grafana panels and TSBS's single-groupby types send most often is

    SELECT max(f) [, mean(g), ...] FROM m WHERE host = 'a' [OR host = 'b' ...]
        AND time >= ... AND time < ... GROUP BY time(1m) [fill(null|none)]

It touches a few hundred points, so its cost is the executor's generality, not the scan: the
general path groups series, probes block spans, builds a partial per call and shapes the answer
through the math/fill/transform machinery, about a hundred Python steps for one small answer.
Here the compiled plan is checked once against a narrow shape, the series come from the index
as an array, and the cells come from one series' merged points folded by one
``aggregates.window_cells`` pass, or, for several series taken as one group, from the fused
kernel (``ShardView.window_aggregate``); they are finalized and shaped by the same code as the
executor's fused path (``query.windowcells``). ``PreparedWindowQuery`` runs a cached shape from
its literal values without building the statement.

Exactness is kept by refusing rather than approximating: ``answer`` returns None, and the caller
runs the general executor, whenever anything falls outside the shape — GROUP BY tags, tz(),
LIMIT/OFFSET/ORDER BY DESC, fill other than null/none, math or transforms, a call other than
count/sum/mean/min/max/first/last/spread on one numeric field, a field condition, a missing time
bound, an unknown database or rp, no matching series, a field without points in the range, a
limit that would be exceeded (the general path raises the error), a block lying inside a window
(the general path answers it from its stats), or, for several series, a shard view the fused
kernel cannot answer (cache points or tombstones in the range, overlapping segment files). The
differential tests (tests/test_query_direct.py) hold both paths to the same answer.
"""
from __future__ import annotations

import numpy as np

from chronosdb.model.errors import ChronosError
from chronosdb.model.fieldtype import FieldType
from chronosdb.query import condition as cond_mod
from chronosdb.query.compile import SelectPlan, call_key, compile_select, time_dimension
from chronosdb.query.influxql import ast
from chronosdb.query.influxql.cache import node_builder, node_ids
from chronosdb.query.meta import StatementError
from chronosdb.query.results import Series
from chronosdb.query.windowcells import merge_cells, plain_window_calls, point_columns, window_columns
from chronosdb.storage.api import median_block_span

_NUMERIC = (FieldType.FLOAT, FieldType.INTEGER)


def _plan_fits(plan: SelectPlan) -> bool:
    """The statement's own shape: one plain measurement, GROUP BY time only, each column one
    cell-answerable call of one field. (What depends on the data is checked in ``answer``.)"""
    stmt = plan.stmt
    if (plan.group_tags or plan.group_all or plan.group_regex is not None or stmt.slimit
            or stmt.soffset or stmt.into is not None or len(stmt.sources) != 1
            or not plain_window_calls(plan)):
        return False
    src = stmt.sources[0]
    return type(src) is ast.Measurement and src.regex is None


def answer(plan: SelectPlan, reader, db: str | None, rp: str | None, now: int, limits,
           check_cancel) -> list[Series] | None:
    """The statement's series, or None when the general executor must answer it."""
    if not _plan_fits(plan):
        return None
    return _answer(plan, _calls(plan), plan.every, plan.offset,
                   cond_mod.conjuncts(plan.stmt.condition), reader, db, rp, now, limits,
                   check_cancel)


def _calls(plan: SelectPlan) -> list:
    return [(c.name, call_key(c.expr)) for c in plan.columns]


class PreparedWindowQuery:
    """A query shape the direct path answers, run from its literal values alone.

    Dashboards send one shape again and again with new time bounds and tag values. The parsed
    statement cache (``StatementCache.prepared``) hands ``prepare`` the shape's cold parse and
    the slot of each lifted literal once; what does not depend on the literals (the compiled
    columns and calls, the source, the fill) is kept, and per query only the WHERE conjuncts and
    the time() dimension are rebuilt from the slot values (by the cache's own node builders),
    then analysed by the same ``condition`` and ``compile`` code as every statement. Literal
    slots anywhere else (a function argument, say) make the shape unpreparable."""

    __slots__ = ("plan", "calls", "source", "dimension", "conjuncts")

    def __init__(self, plan, calls, source, dimension, conjuncts):
        self.plan, self.calls, self.source = plan, calls, source
        self.dimension, self.conjuncts = dimension, conjuncts

    @classmethod
    def prepare(cls, statements, slot_of) -> "PreparedWindowQuery | None":
        if len(statements) != 1 or type(statements[0]) is not ast.SelectStatement:
            return None
        stmt = statements[0]
        try:
            plan = compile_select(stmt)
        except (StatementError, ChronosError):
            return None
        if not _plan_fits(plan) or len(stmt.dimensions) != 1:
            return None
        in_slots = set()
        for part in (stmt.fields, stmt.sources, stmt.fill):
            node_ids(part, in_slots)
        if any(i in slot_of for i in in_slots):
            return None

        def builder(node):
            return node_builder(node, slot_of) or (lambda values, node=node: node)

        return cls(plan, _calls(plan), stmt.sources[0], builder(stmt.dimensions[0]),
                   [builder(c) for c in cond_mod.conjuncts(stmt.condition)])

    def database(self, default_db: str | None) -> str | None:
        """The database the query reads (its authorization is the caller's)."""
        return self.source.database or default_db

    def answer(self, values: list, reader, db: str | None, rp: str | None, now: int, limits,
               check_cancel) -> list[Series] | None:
        """What ``answer`` gives for the statement of this shape with these slot values."""
        try:
            every, offset = time_dimension(self.dimension(values))
        except StatementError:
            return None
        if not every:
            return None
        return _answer(self.plan, self.calls, every, offset, [b(values) for b in self.conjuncts],
                       reader, db, rp, now, limits, check_cancel)


def _answer(plan, calls, every, off, conjuncts, reader, db, rp, now, limits, check_cancel):
    src = plan.stmt.sources[0]
    db = src.database or db
    rp = src.retention_policy or rp
    if not db or db not in reader.databases():
        return None
    m = src.name.encode()
    tag_keys, ftypes = reader.schema(db, m)
    for _n, key in calls:
        if key.field in tag_keys or ftypes.get(key.field) not in _NUMERIC:
            return None
    try:
        cond = cond_mod.analyze_conjuncts(conjuncts, now=now, is_tag=tag_keys.__contains__)
    except ChronosError:
        return None   # the general path raises it
    if cond.residual is not None or not (cond.has_min and cond.has_max):
        return None
    lo, hi = cond.min_time, cond.max_time
    start = ((lo - off) // every) * every + off
    nwin = (hi - start) // every + 1
    if lo > hi or nwin <= 0 or nwin > limits.max_buckets:
        return None
    sids = reader.series_ids(db, m, cond.tags)
    if not len(sids) or len(sids) > limits.max_series:
        return None
    fields = sorted({key.field for _n, key in calls})
    check_cancel()
    one = None
    with reader.views(db, rp, lo, hi) as views:
        if len(sids) == 1:
            # (the points may be views of the pinned shards' caches: shaped while pinned)
            points_of = _one_series(views, int(sids[0]), fields, lo, hi, every, start % every)
            if points_of is None or None in points_of.values():
                return None     # declined, or a field without a point in the range (see below)
            one = point_columns(plan.fill == "none", calls, points_of, ftypes, start, every, nwin)
        else:
            merged = _many_series(views, sids.tolist(), fields, lo, hi, start, every, nwin)
    if one is not None:
        out, points = one
        if limits.max_points and points > limits.max_points:
            return None
        return [Series(src.name, None, times, cols) for _g, times, cols in out]
    if merged is None or None in merged.values():
        # A field without a point in the range: the general path's routes differ on what its
        # count shows (0 from a partial, null from the fused cells); let it decide.
        return None
    points = sum(int(mc.count.sum()) for mc in merged.values())
    if limits.max_points and points > limits.max_points:
        return None
    out = window_columns(plan, merged, ftypes, start, every, nwin, calls)
    return [Series(src.name, None, times, cols) for _g, times, cols in out]


def _one_series(views, sid, fields, lo, hi, every, phase):
    """{field: (times, values) | None} of one series' merged points in [lo, hi] (what the general
    path's per-series route feeds its partials), or None when the direct path declines.

    Windows shorter than the stored blocks (the dashboard case) hold no whole block, so the
    points are read straight away. Otherwise a block may lie inside a window, which the general
    path answers from its stats without decoding it: ``read_with_stats`` tells, and the direct
    path declines (None) where it does."""
    if not all(hasattr(v, "read_with_stats") for v in views):
        return None
    span = median_block_span(views, sid, fields[0].encode())
    points_only = span is None or every < span   # None: the points are in caches only
    out = {}
    for f in fields:
        fb = f.encode()
        parts_t, parts_v = [], []
        for v in views:
            if points_only:
                rest = v.scan(sid, fb, lo, hi)
            else:
                stats, rest = v.read_with_stats(sid, fb, lo, hi, every, phase)
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
        out[f] = (times, values)
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
