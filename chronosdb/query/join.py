"""JOIN (our extension to InfluxQL): combine series of several measurements into new series.

    SELECT mean(cpu.usage_user) + mean(mem.used_percent) AS load
    FROM cpu INNER JOIN mem ON host
    WHERE time > now() - 1h GROUP BY time(1m), host

How it runs, reusing the ordinary executor for each side:

1. every field reference names its side (``cpu.usage_user``); the WHERE clause is split into
   conjuncts for one side (those naming only that side's fields) and conjuncts for all sides
   (time and unqualified tags);
2. each side runs as a plain SELECT of its own calls (or fields, for a raw join), grouped by
   ``time()`` (if any), the ON tags and the GROUP BY tags, with fill(none);
3. rows are matched per ON + GROUP BY tag values on their time (window start for aggregates,
   the exact timestamp for raw joins): INNER keeps times present on every side, LEFT the times of
   the first side, FULL every time; a side without a row there contributes nulls;
4. the SELECT expressions are evaluated over the matched columns; rows are grouped into output
   series by the GROUP BY tags, named after the joined measurements (``cpu_mem``); fill applies
   to the nulls of windowed joins.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from chronosdb.model.strings import StringArray
from chronosdb.query.compile import AGGREGATES, SELECTORS, compile_select
from chronosdb.query.influxql import ast
from chronosdb.query.meta import StatementError
from chronosdb.query.results import Column, Series


def _sides(src) -> tuple[list[ast.Measurement], list[str], tuple]:
    """Flatten a (left-nested) join chain: measurements, join kinds, ON tags."""
    if isinstance(src, ast.Join):
        ms, kinds, on = _sides(src.left)
        right = src.right
        if not isinstance(right, ast.Measurement) or right.regex is not None:
            raise StatementError("JOIN sides must be measurements")
        on_tags = tuple(dict.fromkeys(on + tuple(src.on_tags)))
        return ms + [right], kinds + [src.kind], on_tags
    if not isinstance(src, ast.Measurement) or src.regex is not None:
        raise StatementError("JOIN sides must be measurements")
    return [src], [], ()


def _qualifiers(e, out: set) -> set:
    if isinstance(e, ast.VarRef) and e.qualifier:
        out.add(e.qualifier)
    elif isinstance(e, ast.BinaryExpr):
        _qualifiers(e.lhs, out)
        _qualifiers(e.rhs, out)
    elif isinstance(e, ast.UnaryExpr):
        _qualifiers(e.expr, out)
    elif isinstance(e, ast.Call):
        for a in e.args:
            _qualifiers(a, out)
    return out


def _strip(e):
    """The expression with qualifiers removed (to run on one side)."""
    if isinstance(e, ast.VarRef):
        return replace(e, qualifier=None)
    if isinstance(e, ast.BinaryExpr):
        return replace(e, lhs=_strip(e.lhs), rhs=_strip(e.rhs))
    if isinstance(e, ast.UnaryExpr):
        return replace(e, expr=_strip(e.expr))
    if isinstance(e, ast.Call):
        return replace(e, args=tuple(_strip(a) for a in e.args))
    return e


def _field_refs(e) -> set:
    out = set()
    if isinstance(e, ast.VarRef) and e.name != "time":
        out.add(e.name)
    elif isinstance(e, ast.BinaryExpr):
        out |= _field_refs(e.lhs) | _field_refs(e.rhs)
    elif isinstance(e, ast.UnaryExpr):
        out |= _field_refs(e.expr)
    elif isinstance(e, ast.Call):
        for a in e.args:
            out |= _field_refs(a)
    return out


def _conjuncts(e) -> list:
    if isinstance(e, ast.BinaryExpr) and e.op == "AND":
        return _conjuncts(e.lhs) + _conjuncts(e.rhs)
    return [] if e is None else [e]


def _and(items):
    out = None
    for x in items:
        out = x if out is None else ast.BinaryExpr("AND", out, x)
    return out


class _Leaves:
    """The side-local pieces of the SELECT: aggregate calls (aggregate join) or field refs."""

    def __init__(self, names: list[str], aggregate: bool):
        self.names = set(names)
        self.aggregate = aggregate
        self.items: dict[str, tuple[str, ast.Expr]] = {}  # key -> (side, expr to run there)

    def key(self, e) -> str:
        k = str(e)
        if k not in self.items:
            quals = _qualifiers(e, set())
            if len(quals) != 1:
                raise StatementError(
                    f"in a JOIN, {e} must name exactly one side (e.g. {sorted(self.names)[0]}.field)")
            (q,) = quals
            if q not in self.names:
                raise StatementError(f"{q} is not a side of this JOIN")
            self.items[k] = (q, _strip(e))
        return k

    def walk(self, e):
        """Register every leaf and return the expression with leaves as VarRefs to their keys."""
        if isinstance(e, ast.Call) and (e.name in AGGREGATES or e.name in SELECTORS):
            return ast.VarRef(self.key(e))
        if isinstance(e, ast.VarRef):
            if self.aggregate:
                raise StatementError("mixing aggregate and non-aggregate queries is not supported")
            return ast.VarRef(self.key(e))
        if isinstance(e, ast.BinaryExpr):
            return replace(e, lhs=self.walk(e.lhs), rhs=self.walk(e.rhs))
        if isinstance(e, ast.UnaryExpr):
            return replace(e, expr=self.walk(e.expr))
        if isinstance(e, ast.Call):
            return replace(e, args=tuple(self.walk(a) for a in e.args))
        return e


def run_join(stmt: ast.SelectStatement, executor) -> list[Series]:
    """Execute a SELECT whose FROM is a join chain; ``executor`` is the calling SelectExecutor."""
    from chronosdb.query.executor import Values, _binary, _math, _null  # shared evaluation

    (src,) = stmt.sources
    ms, kinds, on_tags = _sides(src)
    names = [m.name for m in ms]
    if len(set(names)) != len(names):
        raise StatementError("a measurement may appear only once in a JOIN")
    plan = compile_select(replace(stmt, sources=(ms[0],)))
    leaves = _Leaves(names, plan.is_aggregate)
    outputs = [(c.name, leaves.walk(c.expr)) for c in plan.columns]
    group_tags = list(plan.group_tags or [])
    key_tags = list(dict.fromkeys(list(on_tags) + group_tags))
    dims = tuple(d for d in stmt.dimensions if isinstance(d, ast.Call) and d.name == "time")
    dims += tuple(ast.VarRef(t) for t in key_tags)
    # WHERE: side-specific conjuncts go to their side; the rest to every side.
    common, per_side = [], {n: [] for n in names}
    for c in _conjuncts(stmt.condition):
        q = _qualifiers(c, set())
        if not q:
            common.append(c)
        elif len(q) == 1 and next(iter(q)) in per_side:
            per_side[next(iter(q))].append(_strip(c))
        else:
            raise StatementError(f"a JOIN condition may name only one side: {c}")
    # Run each side.
    side_rows: list[dict] = []  # per side: {tag key tuple: (times, {leaf key: Values})}
    for m in ms:
        fields = [ast.Field(expr, alias=k) for k, (q, expr) in leaves.items.items() if q == m.name]
        if not fields and not plan.is_aggregate:
            # A side that only filters (WHERE mem.used > 80) still decides which times exist:
            # read the fields its conditions name, as hidden columns.
            refs = {r for c in per_side[m.name] for r in _field_refs(c)}
            fields = [ast.Field(ast.VarRef(r), alias=f"\0{m.name}.{r}") for r in sorted(refs)]
        rows: dict[tuple, tuple] = {}
        if fields:
            sub = ast.SelectStatement(fields=tuple(fields), sources=(m,),
                                      condition=_and(common + per_side[m.name]),
                                      dimensions=dims, fill=ast.Fill("none") if plan.every else None)
            sub_plan = compile_select(sub, executor.limits.max_buckets)
            for s in executor.run(sub_plan):
                tags = s.tags or {}
                key = tuple(tags.get(t, "") for t in key_tags)
                cols = {}
                for c in s.columns:
                    valid = np.ones(len(s.times), dtype=bool) if c.valid is None else c.valid
                    cols[c.name] = Values(c.values, valid, c.kind)
                if key in rows:  # several series per key (ungrouped raw rows): merge by time
                    t0, c0 = rows[key]
                    rows[key] = _concat_rows(t0, c0, s.times, cols)
                else:
                    rows[key] = (s.times, cols)
        side_rows.append(rows)
    # Match rows per tag key.
    all_keys = set()
    for r in side_rows:
        all_keys |= set(r)
    out_groups: dict[tuple, list] = {}
    for key in sorted(all_keys):
        present = [r.get(key) for r in side_rows]
        times = _joined_times([p[0] if p else None for p in present], kinds)
        if times is None or not len(times):
            continue
        n = len(times)
        env = {}
        for p in present:
            if p is None:
                continue
            t, cols = p
            pos = np.searchsorted(t, times)
            pos_c = np.minimum(pos, max(len(t) - 1, 0))
            hit = (pos < len(t)) & (t[pos_c] == times) if len(t) else np.zeros(n, dtype=bool)
            for k, v in cols.items():
                vals = v.values
                if vals is None:
                    env[k] = _null(n)
                    continue
                taken = vals.take(pos_c) if isinstance(vals, StringArray) else np.asarray(vals)[pos_c]
                env[k] = Values(taken, hit & v.valid[pos_c], v.kind)
        cols = []
        for name, e in outputs:
            cols.append((name, _eval(e, env, n, _binary, _math, _null)))
        gkey = tuple(key[key_tags.index(t)] for t in group_tags)
        out_groups.setdefault(gkey, []).append((times, cols))
    series = []
    name = "_".join(names)
    for gkey in sorted(out_groups):
        parts = out_groups[gkey]
        times = np.concatenate([p[0] for p in parts])
        order = np.argsort(times, kind="stable")
        columns = []
        for j, (cname, _e) in enumerate(outputs):
            vs = [p[1][j][1] for p in parts]
            kind = next((v.kind for v in vs if v.valid.any()), vs[0].kind)
            vals = [v.values if v.values is not None and v.kind == kind else
                    np.zeros(len(v.valid), dtype=np.int64 if kind == "integer" else np.float64)
                    for v in vs]
            if kind == "string":
                allv = StringArray.concat([x if isinstance(x, StringArray) else
                                           StringArray.from_list([""] * len(x)) for x in vals])
                allv = allv.take(order)
            else:
                allv = np.concatenate([np.asarray(x) for x in vals])[order]
            valid = np.concatenate([v.valid for v in vs])[order]
            columns.append(Values(allv, valid, kind))
        times = times[order]
        cols = list(zip([c for c, _e in outputs], columns))
        if plan.every and plan.fill not in ("null", "none"):
            cols = [(c, executor._fill(plan, v, times)) for c, v in cols]
        if plan.fill == "none" or not plan.every:
            any_valid = np.zeros(len(times), dtype=bool)
            for _c, v in cols:
                any_valid |= v.valid
            keep = np.flatnonzero(any_valid)
            times = times[keep]
            cols = [(c, Values(v.values.take(keep) if isinstance(v.values, StringArray)
                               else np.asarray(v.values)[keep], v.valid[keep], v.kind)) for c, v in cols]
        s = executor._finish(plan, times, cols)
        if s is not None:
            s.name = name
            s.tags = dict(zip(group_tags, gkey)) if group_tags else None
            series.append(s)
    return series


def _concat_rows(t0, c0, t1, c1):
    times = np.concatenate([t0, t1])
    order = np.argsort(times, kind="stable")
    from chronosdb.query.executor import Values

    cols = {}
    for k in set(c0) | set(c1):
        a, b = c0.get(k), c1.get(k)
        parts, valids, kind = [], [], (a or b).kind
        for v, n in ((a, len(t0)), (b, len(t1))):
            if v is None or v.values is None:
                parts.append(np.zeros(n) if kind != "string" else StringArray.from_list([""] * n))
                valids.append(np.zeros(n, dtype=bool))
            else:
                parts.append(v.values)
                valids.append(v.valid)
        vals = StringArray.concat(parts).take(order) if kind == "string" else np.concatenate(parts)[order]
        cols[k] = Values(vals, np.concatenate(valids)[order], kind)
    return times[order], cols


def _joined_times(side_times: list, kinds: list[str]):
    """Times kept by the join chain: INNER intersects, LEFT keeps the left, FULL unites."""
    acc = side_times[0]
    for t, kind in zip(side_times[1:], kinds):
        if kind == "inner":
            acc = None if acc is None or t is None else np.intersect1d(acc, t)
        elif kind == "left":
            pass  # the left side's times, whatever the right has
        else:  # full
            if acc is None:
                acc = t
            elif t is not None:
                acc = np.union1d(acc, t)
    return acc


def _eval(e, env, n, _binary, _math, _null):
    from chronosdb.query.executor import Values

    if isinstance(e, ast.VarRef):
        return env.get(e.name) or _null(n)
    if isinstance(e, ast.BinaryExpr):
        return _binary(e.op, _eval(e.lhs, env, n, _binary, _math, _null),
                       _eval(e.rhs, env, n, _binary, _math, _null))
    if isinstance(e, ast.UnaryExpr):
        v = _eval(e.expr, env, n, _binary, _math, _null)
        return Values(-np.asarray(v.values), v.valid, v.kind)
    if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral)):
        kind = "integer" if isinstance(e, ast.IntegerLiteral) else "float"
        return Values(np.full(n, e.value), np.ones(n, dtype=bool), kind)
    if isinstance(e, ast.Call):
        return _math(e.name, [_eval(a, env, n, _binary, _math, _null) for a in e.args])
    raise StatementError(f"unsupported expression in a JOIN: {e}")

