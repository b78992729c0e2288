"""Continuous query definitions: validation, normalisation, and the durable store.

A definition is the CQ's name, its database and its CREATE statement as InfluxDB 1.x normalises
it for ``SHOW CONTINUOUS QUERIES``: every FROM measurement and the INTO target carry their
database and retention policy (``FROM db.autogen.cpu``, ``INTO db.autogen.cpu_5m``), filled in
from the CQ's database and that database's default retention policy *at creation*, so a later
change of the default policy does not move where an existing CQ reads or writes.

The store is behind the small ``ContinuousQueryStore`` interface (list, add, remove) so the
cluster's Raft meta state machine can hold the definitions later. ``FileContinuousQueryStore``
keeps them in one cbor2 file in the data directory, rewritten atomically on every change.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from typing import Protocol

import cbor2

from chronosdb.query.influxql import ast, parse_statement
from chronosdb.query.meta import StatementError
from chronosdb.storage import filenames

from .schedule import timing_of


@dataclass(frozen=True)
class ContinuousQueryDef:
    database: str
    name: str
    query: str        # the normalised CREATE CONTINUOUS QUERY statement (what SHOW answers)
    created: int      # ns, server clock; the schedule starts from here

    def statement(self) -> ast.CreateContinuousQuery:
        return parse_statement(self.query)


def _qualify_source(src, db: str, default_rp):
    if isinstance(src, ast.Measurement):
        d = src.database or db
        return replace(src, database=d, retention_policy=src.retention_policy or default_rp(d))
    if isinstance(src, ast.SubQuery):
        return ast.SubQuery(_qualify_select(src.statement, db, default_rp))
    if isinstance(src, ast.Join):
        return replace(src, left=_qualify_source(src.left, db, default_rp),
                       right=_qualify_source(src.right, db, default_rp))
    return src


def _qualify_select(select: ast.SelectStatement, db: str, default_rp) -> ast.SelectStatement:
    into = select.into
    if into is not None:
        d = into.database or db
        into = replace(into, database=d, retention_policy=into.retention_policy or default_rp(d))
    return replace(select, sources=tuple(_qualify_source(s, db, default_rp) for s in select.sources),
                   into=into)


def _source_databases(select: ast.SelectStatement) -> list[str]:
    out = []
    for src in select.sources:
        if isinstance(src, ast.Measurement):
            out.append(src.database)
        elif isinstance(src, ast.SubQuery):
            out += _source_databases(src.statement)
        elif isinstance(src, ast.Join):
            out += _source_databases(ast.SelectStatement(fields=(), sources=(src.left, src.right)))
    return out


def databases_of(stmt: ast.CreateContinuousQuery) -> tuple[set[str], str]:
    """(databases a normalised CQ reads, the database it writes): what its principal may touch."""
    return set(_source_databases(stmt.select)), stmt.select.into.database


def normalise(stmt: ast.CreateContinuousQuery, catalog) -> ast.CreateContinuousQuery:
    """Check a CREATE CONTINUOUS QUERY against the catalog and qualify its names.

    Raises ``StatementError`` with InfluxDB's messages: an unknown database (the CQ's own, a
    source's or the target's), an unknown target retention policy, a SELECT without INTO or
    GROUP BY time() (the parser catches those first), ``FOR`` shorter than the interval."""
    dbs = catalog.databases
    if stmt.database not in dbs:
        raise StatementError(f"database not found: {stmt.database}")
    if stmt.select.into is None:
        raise StatementError("continuous query requires an INTO clause")
    try:
        timing = timing_of(stmt)
    except ValueError as e:
        raise StatementError(str(e)) from None
    if stmt.resample_for is not None and stmt.resample_for < timing.interval:
        raise StatementError(
            "FOR duration must be >= GROUP BY time duration: must be a minimum of "
            f"{ast.format_duration(timing.interval)}, got {ast.format_duration(stmt.resample_for)}")

    def default_rp(db: str) -> str:
        if db not in dbs:
            raise StatementError(f"database not found: {db}")
        return dbs[db].default_rp

    select = _qualify_select(stmt.select, stmt.database, default_rp)
    for db in _source_databases(select):
        default_rp(db)  # raises for a database that does not exist
    into = select.into
    if not into.retention_policy or into.retention_policy not in dbs[into.database].policies:
        raise StatementError(f"retention policy not found: {into.database}.{into.retention_policy}")
    return replace(stmt, select=select)


class ContinuousQueryStore(Protocol):
    """Where definitions live: a file on one node, the Raft meta state machine in a cluster."""

    def list(self) -> list[ContinuousQueryDef]: ...

    def add(self, cq: ContinuousQueryDef) -> None: ...

    def remove(self, database: str, name: str) -> bool: ...


class FileContinuousQueryStore:
    """Definitions in ``<data-dir>/continuous_queries.cbor``: ``{"version": 1, "queries":
    [{"database", "name", "query", "created"}, ...]}`` in creation order (SHOW's order)."""

    VERSION = 1

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, filenames.CONTINUOUS_QUERIES)
        self._lock = threading.Lock()
        self._items: list[ContinuousQueryDef] = []
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                doc = cbor2.load(f)
            if doc.get("version") != self.VERSION:
                raise ValueError(f"{self.path}: unknown continuous query file version {doc.get('version')!r}")
            self._items = [ContinuousQueryDef(q["database"], q["name"], q["query"], q["created"])
                           for q in doc["queries"]]

    def _save(self) -> None:
        doc = {"version": self.VERSION, "queries": [
            {"database": q.database, "name": q.name, "query": q.query, "created": q.created}
            for q in self._items]}
        filenames.atomic_write(self.path, cbor2.dumps(doc))

    def list(self) -> list[ContinuousQueryDef]:
        with self._lock:
            return list(self._items)

    def add(self, cq: ContinuousQueryDef) -> None:
        with self._lock:
            self._items.append(cq)
            self._save()

    def remove(self, database: str, name: str) -> bool:
        with self._lock:
            kept = [q for q in self._items if (q.database, q.name) != (database, name)]
            if len(kept) == len(self._items):
                return False
            self._items = kept
            self._save()
            return True


class MemoryContinuousQueryStore:
    """The same interface in memory (tests, and nodes that get definitions from elsewhere)."""

    def __init__(self):
        self._items: list[ContinuousQueryDef] = []

    def list(self):
        return list(self._items)

    def add(self, cq):
        self._items.append(cq)

    def remove(self, database, name):
        n = len(self._items)
        self._items = [q for q in self._items if (q.database, q.name) != (database, name)]
        return len(self._items) != n
