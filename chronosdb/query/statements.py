"""Run a list of parsed statements and collect one ``StatementResult`` each.

Dispatch: database/retention-policy DDL → ``query.meta``; SHOW / DELETE / DROP SERIES /
DROP MEASUREMENT → ``query.schema``; SELECT (and SELECT ... INTO) → ``compile`` + ``executor``;
continuous query and subscription statements (and ``SHOW STATS FOR 'cq'|'subscriber'``) → the
services the server attached to its engine with ``attach_services`` (``chronosdb.cq``,
``chronosdb.subscriptions``), which also hear of DROP DATABASE.
As in InfluxDB 1.x, a statement error becomes that statement's ``error`` and the statements after
it are not run. Authorization is checked per statement, before it touches anything.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import numpy as np
import orjson

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.errors import ChronosError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray
from chronosdb.query import direct, meta, schema
from chronosdb.query.compile import compile_select
from chronosdb.query.executor import Limits, SelectExecutor
from chronosdb.query.influxql import ast
from chronosdb.query.meta import StatementError
from chronosdb.query.results import Column, Series, StatementResult
from chronosdb.storage.api import StorageReader

_KIND_TYPE = {"float": FieldType.FLOAT, "integer": FieldType.INTEGER, "boolean": FieldType.BOOLEAN,
              "string": FieldType.STRING}


@dataclass
class QueryContext:
    engine: object
    db: str | None
    rp: str | None
    auth: object                  # can_read(db), require(action, db), on_drop_database(db)
    now: int = 0
    limits: Limits | None = None
    check_cancel: object = None
    queries: object = None        # the server's QueryManager (SHOW QUERIES, KILL QUERY)
    continuous_queries: object = None  # chronosdb.cq.ContinuousQueryService (default: attached)
    subscriptions: object = None       # chronosdb.subscriptions.SubscriptionService (default: attached)

    def __post_init__(self):
        if not self.now:
            self.now = time.time_ns()
        self.reader = StorageReader(self.engine)
        attached = _ATTACHED.get(self.engine) if self.engine is not None else None
        if attached is not None:
            if self.continuous_queries is None:
                self.continuous_queries = attached[0]
            if self.subscriptions is None:
                self.subscriptions = attached[1]


# engine -> (continuous query service, subscription service): lets every QueryContext built on
# an engine find the services without each caller passing them along.
_ATTACHED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def attach_services(engine, continuous_queries=None, subscriptions=None) -> None:
    """Make the CQ and subscription services answer the statements run on ``engine``."""
    _ATTACHED[engine] = (continuous_queries, subscriptions)


def series_from_rows(doc: dict) -> list[Series]:
    """Convert an InfluxDB-shaped ``{"series": [{"name", "tags", "columns", "values"}]}`` (the
    small answers of DDL and SHOW statements) into columnar Series."""
    out = []
    for s in doc.get("series", []):
        cols = s["columns"]
        rows = s.get("values", [])
        has_time = bool(cols) and cols[0] == "time"
        columns = []
        for j, name in enumerate(cols):
            if has_time and j == 0:
                continue
            vals = [r[j] for r in rows]
            valid = np.array([v is not None for v in vals], dtype=bool)
            sample = next((v for v in vals if v is not None), None)
            if isinstance(sample, bool):
                arr, kind = np.array([bool(v) for v in vals], dtype=np.uint8), "boolean"
            elif isinstance(sample, int):
                arr, kind = np.array([v or 0 for v in vals], dtype=np.int64), "integer"
            elif isinstance(sample, float):
                arr, kind = np.array([v if v is not None else 0.0 for v in vals], dtype=np.float64), "float"
            elif isinstance(sample, (list, dict)):  # e.g. SHOW SUBSCRIPTIONS' destinations
                arr, kind = StringArray.from_list([b"null" if v is None else orjson.dumps(v) for v in vals]), "json"
            else:
                arr, kind = StringArray.from_list(["" if v is None else str(v) for v in vals]), "string"
            columns.append(Column(name, arr if len(vals) else None,
                                  None if valid.all() else valid, kind))
        times = np.array([r[0] for r in rows], dtype=np.int64) if has_time else None
        out.append(Series(s.get("name"), s.get("tags"), times, columns))
    return out


def _select_databases(stmt: ast.SelectStatement, default_db):
    dbs = set()
    for src in stmt.sources:
        if isinstance(src, ast.Measurement):
            dbs.add(src.database or default_db)
        elif isinstance(src, ast.SubQuery):
            dbs |= _select_databases(src.statement, default_db)
        elif isinstance(src, ast.Join):
            dbs |= _select_databases(ast.SelectStatement(fields=(), sources=(src.left, src.right)), default_db)
    return dbs


def run_select(stmt: ast.SelectStatement, ctx: QueryContext) -> list[Series]:
    for db in _select_databases(stmt, ctx.db):
        if not db:
            raise StatementError("database name required")
        ctx.auth.require("read", db)
    limits = ctx.limits or Limits()
    plan = compile_select(stmt, limits.max_buckets)
    series = direct.answer(plan, ctx.reader, ctx.db, ctx.rp, ctx.now, limits,
                           ctx.check_cancel or _no_check)
    if series is not None:
        return series
    ex = SelectExecutor(ctx.reader, ctx.db, ctx.rp, ctx.now, ctx.limits, ctx.check_cancel)
    return ex.run(plan)


def _no_check() -> None:
    pass


def write_into(stmt: ast.SelectStatement, series: list[Series], ctx: QueryContext) -> int:
    """SELECT ... INTO: write the answer back as points; GROUP BY tags stay tags."""
    into = stmt.into
    db = into.database or ctx.db
    if not db:
        raise StatementError("database name required")
    ctx.auth.require("write", db)
    written = 0
    for s in series:
        name = s.name if into.name in (None, ":MEASUREMENT") else into.name
        key = make_key(name, s.tags or {})
        cols = []
        for c in s.columns:
            if c.values is None:
                continue
            keep = np.flatnonzero(c.valid) if c.valid is not None else np.arange(len(s.times))
            if not len(keep):
                continue
            vals = c.values.take(keep) if isinstance(c.values, StringArray) else np.asarray(c.values)[keep]
            cols.append(FieldColumn(c.name.encode(), _KIND_TYPE[c.kind], np.zeros(len(keep), np.int32),
                                    s.times[keep], vals))
        if cols:
            out = ctx.engine.write(db, WriteBatch([key], cols), into.retention_policy)
            if out.errors:
                raise StatementError(out.errors[0].message)
            written += out.written
    return written


def _queries_statement(stmt, ctx: QueryContext) -> dict:
    from chronosdb.query.manager import duration_text

    if ctx.queries is None:
        raise StatementError("no query manager on this node")
    if isinstance(stmt, ast.KillQuery):
        ctx.auth.require("admin", None)
        if not ctx.queries.kill(stmt.id):
            raise StatementError(f"no such query id: {stmt.id}")
        return {}
    rows = [[q.qid, q.text, q.database, duration_text(time.monotonic() - q.started), "running"]
            for q in ctx.queries.list() if not q.database or ctx.auth.can_read(q.database)]
    return {"series": [{"columns": ["qid", "query", "database", "duration", "status"], "values": rows}]}


_NO_CQ = "continuous queries are not enabled on this server"
_NO_SUBS = "subscriptions are not enabled on this server"


def _subscription_rows(subs, can_read) -> dict:
    if subs is None:
        return {"series": []}
    return subs.show(can_read)


def _stats(stmt: ast.ShowStats, ctx: QueryContext) -> dict:
    # The modules this server reports; any other module answers no series, as in InfluxDB 1.x.
    module = (stmt.module or "").lower()
    series = []
    if module in ("", "cq") and ctx.continuous_queries is not None:
        series += ctx.continuous_queries.stats_rows(ctx.auth.can_read)
    if module in ("", "subscriber") and ctx.subscriptions is not None:
        series += ctx.subscriptions.stats_rows(ctx.auth.can_read)
    return {"series": series}


def _service_statement(stmt, ctx: QueryContext) -> dict | None:
    """Continuous query and subscription statements; None for any other statement."""
    cqs, subs = ctx.continuous_queries, ctx.subscriptions
    if isinstance(stmt, ast.CreateContinuousQuery):
        ctx.auth.require("admin", None)
        if cqs is None:
            raise StatementError(_NO_CQ)
        cqs.create(stmt)
        return {}
    if isinstance(stmt, ast.DropContinuousQuery):
        ctx.auth.require("admin", None)
        if cqs is None:
            raise StatementError(_NO_CQ)
        cqs.drop(stmt.database, stmt.name)
        return {}
    if isinstance(stmt, ast.ShowContinuousQueries):
        return cqs.show(ctx.auth.can_read) if cqs is not None else {"series": []}
    if isinstance(stmt, ast.CreateSubscription):
        ctx.auth.require("admin", None)
        if subs is None:
            raise StatementError(_NO_SUBS)
        subs.create(stmt)
        return {}
    if isinstance(stmt, ast.DropSubscription):
        ctx.auth.require("admin", None)
        if subs is None:
            raise StatementError(_NO_SUBS)
        subs.drop(stmt.database, stmt.retention_policy, stmt.name)
        return {}
    if isinstance(stmt, ast.ShowSubscriptions):
        ctx.auth.require("admin", None)  # destinations may carry credentials (InfluxDB: admin only)
        return _subscription_rows(subs, ctx.auth.can_read)
    if isinstance(stmt, ast.ShowStats):
        return _stats(stmt, ctx)
    if isinstance(stmt, ast.DropDatabase):
        doc = meta.run(stmt, ctx.engine, ctx.db, ctx.auth)
        for service in (cqs, subs):
            if service is not None:
                service.drop_database(stmt.name)
        return doc
    return None


def execute(statements, ctx: QueryContext) -> list[StatementResult]:
    results: list[StatementResult] = []
    for i, stmt in enumerate(statements):
        try:
            if isinstance(stmt, ast.SelectStatement):
                series = run_select(stmt, ctx)
                if stmt.into is not None:
                    n = write_into(stmt, series, ctx)
                    series = [Series("result", None, np.zeros(1, dtype=np.int64),
                                     [Column("written", np.array([n], dtype=np.int64), None, "integer")])]
                results.append(StatementResult(i, series))
                continue
            if isinstance(stmt, (ast.ShowQueries, ast.KillQuery)):
                results.append(StatementResult(i, series_from_rows(_queries_statement(stmt, ctx))))
                continue
            doc = _service_statement(stmt, ctx)
            if doc is None:
                doc = schema.run(stmt, ctx.engine, ctx.db, ctx.auth, ctx.now)
            if doc is None:
                doc = meta.run(stmt, ctx.engine, ctx.db, ctx.auth)
            results.append(StatementResult(i, series_from_rows(doc)))
        except StatementError as e:
            results.append(StatementResult(i, error=str(e)))
            break
        except ChronosError as e:
            if e.status in (401, 403):
                raise
            results.append(StatementResult(i, error=e.message))
            break
    return results
