"""Execution of the metadata statements: databases and retention policies.

Each function takes the parsed statement, the engine (its catalog for reads) or the metadata
writer, and an authorization callback, and returns one InfluxDB-shaped result dict (without
statement_id). Writes go through the ``MetaWriter`` the server attached as ``engine.meta_writer``
(``chronosdb.cluster.service``): the direct catalog calls on a single node, Raft proposals in a
cluster. An engine without one (tests, embedded use) gets the direct path.
Errors raise ``StatementError``; the caller turns them into ``{"error": ...}`` results, as
InfluxDB 1.x does (HTTP 200 with the error inside the result).
"""
from __future__ import annotations

from chronosdb.model.errors import ChronosError
from chronosdb.query.durations import go_duration
from chronosdb.query.influxql import ast


class StatementError(Exception):
    pass


def show_databases(stmt, engine, can_read) -> dict:
    names = [n for n in sorted(engine.catalog.databases) if can_read(n)]
    return {"series": [{"name": "databases", "columns": ["name"], "values": [[n] for n in names]}]}


def create_database(stmt: ast.CreateDatabase, writer, require_admin) -> dict:
    require_admin()
    writer.create_database(stmt.name)
    if stmt.rp_name or stmt.rp_duration is not None or stmt.rp_shard_duration is not None \
            or stmt.rp_replication is not None:
        name = stmt.rp_name or "autogen"
        writer.create_retention_policy(stmt.name, name, stmt.rp_duration or 0,
                                       stmt.rp_shard_duration or 0, stmt.rp_replication or 1, True)
    return {}


def drop_database(stmt: ast.DropDatabase, engine, writer, require_admin, on_drop=None) -> dict:
    require_admin()
    if stmt.name in engine.catalog.databases:  # dropping a missing database is not an error
        writer.drop_database(stmt.name)
        if on_drop is not None:
            on_drop(stmt.name)
    return {}


def create_retention_policy(stmt: ast.CreateRetentionPolicy, writer, require_admin) -> dict:
    require_admin()
    if stmt.replication < 1:
        raise StatementError("replication factor must be at least 1")
    writer.create_retention_policy(stmt.database, stmt.name, stmt.duration,
                                   stmt.shard_duration or 0, stmt.replication, stmt.default)
    return {}


def alter_retention_policy(stmt: ast.AlterRetentionPolicy, writer, require_admin) -> dict:
    require_admin()
    if stmt.replication is not None and stmt.replication < 1:
        raise StatementError("replication factor must be at least 1")
    writer.alter_retention_policy(stmt.database, stmt.name, stmt.duration,
                                  stmt.shard_duration, stmt.replication, stmt.default)
    return {}


def drop_retention_policy(stmt: ast.DropRetentionPolicy, writer, require_admin) -> dict:
    require_admin()
    writer.drop_retention_policy(stmt.database, stmt.name)
    return {}


def meta_writer(engine):
    """The writer the server attached, or the direct path for a bare engine."""
    writer = getattr(engine, "meta_writer", None)
    if writer is None:
        from chronosdb.cluster.service import LocalMetaWriter
        writer = LocalMetaWriter(engine, None)
    return writer


def show_retention_policies(stmt: ast.ShowRetentionPolicies, engine, db: str | None, require_read) -> dict:
    name = stmt.database or db
    if not name:
        raise StatementError("database name required")
    require_read(name)
    info = engine.catalog.database(name)
    values = [[p.name, go_duration(p.duration), go_duration(p.shard_duration), p.replication,
               p.name == info.default_rp] for p in info.policies.values()]
    return {"series": [{"columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"],
                        "values": values}]}


def run(stmt, engine, db, auth) -> dict:
    """Dispatch one metadata statement. ``auth`` has can_read(db), require(action, db)."""
    def require_admin():
        auth.require("admin", None)

    writer = meta_writer(engine)
    try:
        if isinstance(stmt, ast.ShowDatabases):
            return show_databases(stmt, engine, auth.can_read)
        if isinstance(stmt, ast.CreateDatabase):
            return create_database(stmt, writer, require_admin)
        if isinstance(stmt, ast.DropDatabase):
            return drop_database(stmt, engine, writer, require_admin, auth.on_drop_database)
        if isinstance(stmt, ast.CreateRetentionPolicy):
            return create_retention_policy(stmt, writer, require_admin)
        if isinstance(stmt, ast.AlterRetentionPolicy):
            return alter_retention_policy(stmt, writer, require_admin)
        if isinstance(stmt, ast.DropRetentionPolicy):
            return drop_retention_policy(stmt, writer, require_admin)
        if isinstance(stmt, ast.ShowRetentionPolicies):
            return show_retention_policies(stmt, engine, db, lambda d: auth.require("read", d))
    except ChronosError as e:
        if e.status in (401, 403):
            raise
        raise StatementError(e.message) from None
    name = type(stmt).__name__
    if "User" in name or "Grant" in name or "Privilege" in name or "Password" in name:
        raise StatementError(f"statement not supported: {name} (this server has API keys, not "
                             f"users: see /api/keys)")
    raise StatementError(f"statement not supported: {name}")
