"""Execution of the schema statements: SHOW (measurements, series, tag keys and values, field
keys, cardinalities, shards, shard groups), DELETE and DROP (series, measurement, shard).

Everything here is answered from the series index and the catalog, never from point data, so
each statement costs per series or per measurement, not per point. ``run`` takes one parsed
statement and returns one result dict shaped exactly as InfluxDB 1.6.7 shapes it (without
``statement_id``; the dispatcher adds that), or None when the statement is not one of these.
Every shape and error wording below was observed on a real InfluxDB 1.6.7; docs/influxql-schema.md
lists them with the few places where we deliberately differ.

Two habits of InfluxDB worth knowing when reading the shapes: an empty answer has no "series"
key at all, and the per-measurement statements (TAG KEYS, TAG VALUES, FIELD KEYS) apply LIMIT
and OFFSET within each measurement, while MEASUREMENTS and SERIES apply them to the whole list.
"""
from __future__ import annotations

import re

from chronosdb.model import tagexpr as tx
from chronosdb.model.errors import ChronosError
from chronosdb.model.serieskey import parse_key
from chronosdb.query.userregex import compile_user_regex
from chronosdb.query import condition as cond
from chronosdb.query.influxql import ast
from chronosdb.query.influxql.durations import format_time
from chronosdb.query.meta import StatementError

__all__ = ["run"]

SHARD_COLUMNS = ["id", "database", "retention_policy", "shard_group", "start_time", "end_time",
                 "expiry_time", "owners"]
SHARD_GROUP_COLUMNS = ["id", "database", "retention_policy", "start_time", "end_time",
                       "expiry_time"]
FIELDS_IN_DELETE = "fields not supported in WHERE clause during deletion"


def _s(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def _page(items: list, limit: int, offset: int) -> list:
    if offset:
        items = items[offset:]
    if limit:
        items = items[:limit]
    return items


def _result(series: list) -> dict:
    return {"series": series} if series else {}


def _compile_regex(pattern: str):
    return compile_user_regex(pattern)


# --- scope: database, measurements, condition -------------------------------------------------

class _Scope:
    """What one statement reads: its database, the measurements its FROM names (all when no
    FROM) and the index handle."""

    def __init__(self, engine, db: str):
        self.engine, self.db = engine, db
        self.index = engine.index(db)

    def measurements(self, sources=()) -> list[bytes]:
        all_m = self.index.measurements()
        if not sources:
            return all_m
        have = set(all_m)
        out = set()
        for src in sources:
            if not isinstance(src, ast.Measurement):
                raise StatementError(f"unsupported source in FROM: {src}")
            if src.regex is not None:
                rx = _compile_regex(src.regex)
                out.update(m for m in all_m if rx.search(_s(m)))
            elif src.name.encode() in have:
                out.add(src.name.encode())
        return sorted(out)

    def matching(self, m: bytes, tags):
        """The ids (a bitmap) of the series of ``m`` that match the tag expression."""
        return self.index.match(m, tags)

    def field_names(self, measurements) -> set[str]:
        names = set()
        for m in measurements:
            names.update(_s(f) for f in self.index.field_types(m))
        return names


def _show_db(stmt_db, db) -> str:
    name = stmt_db or db
    if not name:
        raise StatementError("database name required")
    return name


def _exists(engine, name: str) -> bool:
    return name in engine.catalog.databases


def _missing(name: str) -> StatementError:
    # InfluxDB's wording, without quotes around the name (our DatabaseNotFound quotes it).
    return StatementError(f"database not found: {name}")


def _show_condition(stmt_condition, now: int, time_refused: str | None = None):
    """Analyse a SHOW statement's WHERE: every identifier but time is a tag, as in InfluxDB;
    anything the index cannot answer is refused with InfluxDB's wording."""
    c = cond.analyze(stmt_condition, now=now, is_tag=lambda name: True)
    if time_refused and (c.has_min or c.has_max):
        raise StatementError(f"{time_refused} doesn't support time in WHERE clause")
    if c.residual is not None:
        raise StatementError("invalid tag comparison operator")
    return c.tags


def _tags_of_series(scope: _Scope, m: bytes, tags) -> list[list[tuple[bytes, bytes]]]:
    """The tag pairs of each series of ``m`` that matches (one parse per series)."""
    ids = scope.matching(m, tags)
    return [parse_key(k)[1] for k in scope.index.keys_of(ids) if k is not None]


# --- SHOW MEASUREMENTS / SERIES / TAG KEYS / TAG VALUES / FIELD KEYS ---------------------------

def show_measurements(stmt: ast.ShowMeasurements, engine, db: str, now: int) -> dict:
    tags = _show_condition(stmt.condition, now, "SHOW MEASUREMENTS")
    if not _exists(engine, db):
        return {}  # InfluxDB 1.6.7 answers an unknown database here with nothing, not an error
    scope = _Scope(engine, db)
    names = scope.measurements()
    w = stmt.with_measurement
    if w is not None:
        if w.regex is not None:
            rx = _compile_regex(w.regex)
            names = [m for m in names if rx.search(_s(m))]
        else:
            names = [m for m in names if m == w.name.encode()]
    if tags is not None:
        names = [m for m in names if scope.matching(m, tags)]
    names = _page(names, stmt.limit, stmt.offset)
    if not names:
        return {}
    return _result([{"name": "measurements", "columns": ["name"], "values": [[_s(m)] for m in names]}])


def show_series(stmt: ast.ShowSeries, engine, db: str, now: int) -> dict:
    tags = _show_condition(stmt.condition, now)  # time is accepted and ignored, as 1.6.7 does
    if not _exists(engine, db):
        raise _missing(db)
    scope = _Scope(engine, db)
    keys = []
    for m in scope.measurements(stmt.sources):
        keys.extend(k for k in scope.index.keys_of(scope.matching(m, tags)) if k is not None)
    keys = _page(sorted(keys), stmt.limit, stmt.offset)
    return _result([{"columns": ["key"], "values": [[_s(k)] for k in keys]}] if keys else [])


def _tag_keys_by_measurement(scope: _Scope, sources, tags) -> list[tuple[bytes, list[bytes]]]:
    out = []
    for m in scope.measurements(sources):
        if tags is None:
            keys = scope.index.tag_keys(m)
        else:
            keys = sorted({k for pairs in _tags_of_series(scope, m, tags) for k, _ in pairs})
        if keys:
            out.append((m, keys))
    return out


def show_tag_keys(stmt: ast.ShowTagKeys, engine, db: str, now: int) -> dict:
    tags = _show_condition(stmt.condition, now)
    if not _exists(engine, db):
        raise _missing(db)
    series = []
    # SLIMIT/SOFFSET parse but do nothing here: InfluxDB 1.6.7 ignores them on SHOW TAG KEYS.
    for m, keys in _tag_keys_by_measurement(_Scope(engine, db), stmt.sources, tags):
        keys = _page(keys, stmt.limit, stmt.offset)
        if keys:
            series.append({"name": _s(m), "columns": ["tagKey"], "values": [[_s(k)] for k in keys]})
    return _result(series)


def _key_filter(op: str, keys: tuple, regex: str | None):
    if op == "=":
        want = keys[0].encode()
        return lambda k: k == want
    if op in ("!=", "<>"):
        want = keys[0].encode()
        return lambda k: k != want
    if op in ("=~", "!~"):
        rx = _compile_regex(regex)
        hit = op == "=~"
        return lambda k: (rx.search(_s(k)) is not None) == hit
    if op == "IN":
        wanted = {k.encode() for k in keys}
        return lambda k: k in wanted
    raise StatementError(f"unsupported WITH KEY operator: {op}")


def _tag_values_by_measurement(scope: _Scope, sources, key_op, keys, key_regex, tags):
    """[(measurement, sorted [(key, value)])] for the keys WITH KEY selects."""
    wanted = _key_filter(key_op, keys, key_regex)
    out = []
    for m in scope.measurements(sources):
        selected = [k for k in scope.index.tag_keys(m) if wanted(k)]
        if not selected:
            continue
        if tags is None:
            pairs = [(k, v) for k in selected for v in scope.index.tag_values(m, k) if v]
        else:
            sel = set(selected)
            pairs = sorted({(k, v) for ps in _tags_of_series(scope, m, tags)
                            for k, v in ps if k in sel and v})
        if pairs:
            out.append((m, sorted(pairs)))
    return out


def show_tag_values(stmt: ast.ShowTagValues, engine, db: str, now: int) -> dict:
    tags = _show_condition(stmt.condition, now)
    if not _exists(engine, db):
        raise _missing(db)
    series = []
    for m, pairs in _tag_values_by_measurement(_Scope(engine, db), stmt.sources, stmt.key_op,
                                               stmt.keys, stmt.key_regex, tags):
        pairs = _page(pairs, stmt.limit, stmt.offset)
        if pairs:
            series.append({"name": _s(m), "columns": ["key", "value"],
                           "values": [[_s(k), _s(v)] for k, v in pairs]})
    return _result(series)


def _field_rows(scope: _Scope, m: bytes) -> list[tuple[str, str]]:
    """(field, type) rows, one per type a field holds (several if shards disagree)."""
    rows = []
    for f, types in scope.index.field_types(m).items():
        rows.extend((_s(f), t.influx_name) for t in types)
    return sorted(rows)


def show_field_keys(stmt: ast.ShowFieldKeys, engine, db: str, now: int) -> dict:
    if not _exists(engine, db):
        raise _missing(db)
    scope = _Scope(engine, db)
    series = []
    for m in scope.measurements(stmt.sources):
        rows = _page(_field_rows(scope, m), stmt.limit, stmt.offset)
        if rows:
            series.append({"name": _s(m), "columns": ["fieldKey", "fieldType"],
                           "values": [list(r) for r in rows]})
    return _result(series)


# --- cardinalities ----------------------------------------------------------------------------

def _counts(per_measurement) -> dict:
    return _result([{"name": _s(m), "columns": ["count"], "values": [[n]]}
                    for m, n in per_measurement if n])


def show_cardinality(stmt: ast.ShowCardinality, engine, db: str, now: int) -> dict:
    if stmt.dimensions:
        raise StatementError("GROUP BY is not supported in SHOW ... CARDINALITY")
    kind = stmt.kind
    estimate_total = not stmt.exact and not stmt.sources and stmt.condition is None \
        and kind in ("series", "measurement")
    tags = _show_condition(stmt.condition, now,
                           "SHOW MEASUREMENT CARDINALITY" if kind == "measurement" else None)
    if not _exists(engine, db):
        if estimate_total:
            return {"series": [{"columns": ["cardinality estimation"], "values": [[0]]}]}
        raise _missing(db)
    scope = _Scope(engine, db)
    measurements = scope.measurements(stmt.sources)
    if kind == "series":
        counts = [(m, len(scope.matching(m, tags))) for m in measurements]
        if estimate_total:
            # Our count is exact; the column keeps the name InfluxDB's sketch answers under.
            return {"series": [{"columns": ["cardinality estimation"],
                                "values": [[sum(n for _, n in counts)]]}]}
        return _counts(counts)
    if kind == "measurement":
        if tags is not None:
            measurements = [m for m in measurements if scope.matching(m, tags)]
        if estimate_total:
            return {"series": [{"columns": ["cardinality estimation"], "values": [[len(measurements)]]}]}
        return _result([{"columns": ["count"], "values": [[len(measurements)]]}] if measurements else [])
    if kind == "tag key":
        return _counts((m, len(keys)) for m, keys in
                       _tag_keys_by_measurement(scope, stmt.sources, tags))
    if kind == "tag values":
        return _counts((m, len(pairs)) for m, pairs in _tag_values_by_measurement(
            scope, stmt.sources, stmt.key_op, stmt.keys, stmt.key_regex, tags))
    if kind == "field key":
        return _counts((m, len(scope.index.field_types(m))) for m in measurements)
    raise StatementError(f"unsupported cardinality: {kind}")


# --- shards -----------------------------------------------------------------------------------

def _groups(engine):
    """(db, policy, group) for every shard group, databases by name, groups by id."""
    for name in sorted(engine.catalog.databases):
        info = engine.catalog.databases[name]
        rows = [(p, g) for p in info.policies.values() for g in p.shard_groups]
        for p, g in sorted(rows, key=lambda r: r[1].shard_id):
            yield name, p, g


def _expiry(p, g) -> int:
    return g.end + p.duration if p.duration else g.end


def show_shards(engine) -> dict:
    by_db: dict[str, list] = {name: [] for name in sorted(engine.catalog.databases)}
    for name, p, g in _groups(engine):
        by_db[name].append([g.shard_id, name, p.name, g.shard_id, format_time(g.start),
                            format_time(g.end), format_time(_expiry(p, g)), ""])
    series = []
    for name, rows in by_db.items():
        s = {"name": name, "columns": list(SHARD_COLUMNS)}
        if rows:
            s["values"] = rows
        series.append(s)
    return _result(series)


def show_shard_groups(engine) -> dict:
    rows = [[g.shard_id, name, p.name, format_time(g.start), format_time(g.end),
             format_time(_expiry(p, g))] for name, p, g in _groups(engine)]
    rows.sort(key=lambda r: r[0])
    s = {"name": "shard groups", "columns": list(SHARD_GROUP_COLUMNS)}
    if rows:
        s["values"] = rows
    return {"series": [s]}


def drop_shard(stmt: ast.DropShard, engine) -> dict:
    for name, p, g in list(_groups(engine)):
        if g.shard_id == stmt.id:
            engine.drop_shard(name, p.name, g.shard_id)
            break
    return {}  # an unknown shard id is not an error in InfluxDB 1.6.7


# --- DELETE / DROP SERIES / DROP MEASUREMENT --------------------------------------------------

def _write_db(db: str | None, engine) -> str:
    # InfluxDB 1.6.7 words a missing db parameter on these statements as an unknown database.
    if not db:
        raise StatementError("database not found: ")
    if not _exists(engine, db):
        raise _missing(db)
    return db


def _balanced(items, make):
    """Combine many TagExprs into a balanced tree, so evaluation recursion stays shallow."""
    while len(items) > 1:
        items = [make(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _expand_residual(scope: _Scope, m: bytes, tags, residual):
    """A TagExpr for the series of ``m`` that also satisfy a tags-only residual (``host > 'a'``,
    which InfluxDB accepts in deletes): the residual is evaluated once per distinct combination
    of the tag values it reads, and the combinations that pass become an OR of equalities.
    Returns None when no series passes."""
    names = sorted({r.name for r in cond.var_refs(residual)})
    seen = {}
    for pairs in _tags_of_series(scope, m, tags):
        d = {_s(k): _s(v) for k, v in pairs}
        combo = tuple(d.get(n, "") for n in names)
        if combo not in seen:
            seen[combo] = cond.eval_point(residual, dict(zip(names, combo)), {}, order_strings=True)
    passing = [combo for combo, ok in seen.items() if ok]
    if not passing:
        return None
    alts = [_balanced([tx.TagEquals(n, v) for n, v in zip(names, combo)], tx.And)
            for combo in passing]
    out = _balanced(alts, tx.Or)
    return out if tags is None else tx.And(tags, out)


def _deletion_plan(scope: _Scope, sources, condition, now: int, statement: str):
    """[(measurements or None, tag expr)] and the Condition, for DELETE and DROP SERIES."""
    measurements = scope.measurements(sources) if sources else None
    in_scope = measurements if measurements is not None else scope.measurements()
    fields = scope.field_names(in_scope)
    c = cond.analyze(condition, now=now, is_tag=lambda name: name not in fields)
    if statement == "DROP SERIES" and (c.has_min or c.has_max):
        raise StatementError("DROP SERIES doesn't support time in WHERE clause")
    if c.residual is None:
        return [(measurements, c.tags)], c
    for ref in cond.var_refs(c.residual):
        if ref.type_hint not in (None, "tag") or (ref.type_hint is None and ref.name in fields):
            raise StatementError(FIELDS_IN_DELETE)
    plan = []
    for m in in_scope:
        expr = _expand_residual(scope, m, c.tags, c.residual)
        if expr is not None:
            plan.append(([m], expr))
    return plan, c


def delete(stmt: ast.DeleteStatement, engine, db: str, now: int) -> dict:
    scope = _Scope(engine, db)
    if stmt.sources and not scope.measurements(stmt.sources):
        return {}
    plan, c = _deletion_plan(scope, stmt.sources, stmt.condition, now, "DELETE")
    if c.empty_range:
        return {}
    for measurements, expr in plan:
        if not (c.has_min or c.has_max):
            # Every point of the series goes: drop them from the index too, as InfluxDB does
            # when a series has no data left.
            engine.drop_series(db, measurements, expr)
        else:
            engine.delete(db, measurements, expr, c.min_time, c.max_time)
    return {}


def drop_series(stmt: ast.DropSeries, engine, db: str, now: int) -> dict:
    scope = _Scope(engine, db)
    if stmt.sources and not scope.measurements(stmt.sources):
        return {}
    plan, _c = _deletion_plan(scope, stmt.sources, stmt.condition, now, "DROP SERIES")
    for measurements, expr in plan:
        engine.drop_series(db, measurements, expr)
    return {}


def drop_measurement(stmt: ast.DropMeasurement, engine, db: str) -> dict:
    engine.drop_measurement(db, stmt.name.encode())
    return {}  # dropping a measurement that does not exist is not an error (1.6.7)


# --- dispatch ---------------------------------------------------------------------------------

_SHOW = {
    ast.ShowMeasurements: show_measurements,
    ast.ShowSeries: show_series,
    ast.ShowTagKeys: show_tag_keys,
    ast.ShowTagValues: show_tag_values,
    ast.ShowFieldKeys: show_field_keys,
    ast.ShowCardinality: show_cardinality,
}
_WRITE = {
    ast.DeleteStatement: delete,
    ast.DropSeries: drop_series,
}


def run(stmt, engine, db: str | None, auth, now: int) -> dict | None:
    """Execute one schema statement; None when ``stmt`` is not a schema statement.

    ``auth.require(action, db)`` raises Forbidden/Unauthorized (passed through untouched);
    statement errors raise StatementError with InfluxDB 1.6.7's wording."""
    kind = type(stmt)
    if kind not in _SHOW and kind not in _WRITE and kind not in (
            ast.DropMeasurement, ast.DropShard, ast.ShowShards, ast.ShowShardGroups):
        return None
    try:
        if kind in _SHOW:
            name = _show_db(stmt.database, db)
            auth.require("read", name)
            return _SHOW[kind](stmt, engine, name, now)
        if kind in _WRITE:
            if db:
                auth.require("write", db)
            name = _write_db(db, engine)
            return _WRITE[kind](stmt, engine, name, now)
        if kind is ast.DropMeasurement:
            if db:
                auth.require("write", db)
            return drop_measurement(stmt, engine, _write_db(db, engine))
        auth.require("admin", None)
        if kind is ast.ShowShards:
            return show_shards(engine)
        if kind is ast.ShowShardGroups:
            return show_shard_groups(engine)
        return drop_shard(stmt, engine)
    except ChronosError as e:
        if e.status in (401, 403):
            raise
        raise StatementError(e.message) from None
