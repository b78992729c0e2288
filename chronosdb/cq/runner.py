"""Run one continuous query over one time range through the ordinary query path.

The CQ's stored SELECT ... INTO is bounded to ``[start, end)`` (any time condition the user
wrote is dropped, as InfluxDB does: the schedule decides the range) and executed by
``query.statements.execute`` as the CQ's own principal, so it is exactly the statement a user
could run by hand: same compiler, same executor, same SELECT INTO writer.

The principal may read the databases the CQ reads and write the database it writes, nothing
else: those were checked, and named by an admin, when the CQ was created.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

from chronosdb.auth.authorizer import Forbidden
from chronosdb.query import statements
from chronosdb.query.condition import references_time
from chronosdb.query.influxql import ast

from .definitions import databases_of


@dataclass
class RunOutcome:
    start: int
    end: int
    points_written: int = 0
    seconds: float = 0.0
    error: str | None = None


class ContinuousQueryPrincipal:
    """What a CQ's query may do (the ``auth`` of a QueryContext)."""

    def __init__(self, name: str, reads: set[str], writes: str):
        self.name, self.reads, self.writes = name, reads, writes

    def can_read(self, db: str) -> bool:
        return db in self.reads

    def require(self, action: str, db: str | None) -> None:
        if action == "read" and db in self.reads:
            return
        if action == "write" and db == self.writes:
            return
        raise Forbidden(f"continuous query {self.name} may not {action} database {db}",
                        key_id=f"cq:{self.name}", action=action, database=db)

    def on_drop_database(self, db: str) -> None:
        raise Forbidden("a continuous query may not drop databases")


def _without_time(cond):
    """The condition minus its time comparisons (top-level AND terms only)."""
    if cond is None:
        return None
    if isinstance(cond, ast.BinaryExpr) and cond.op == "AND":
        lhs, rhs = _without_time(cond.lhs), _without_time(cond.rhs)
        if lhs is None or rhs is None:
            return lhs if rhs is None else rhs
        return ast.BinaryExpr("AND", lhs, rhs)
    if isinstance(cond, ast.BinaryExpr) and cond.op in ast.COMPARISON_OPS and references_time(cond):
        return None
    return cond


def ranged_select(select: ast.SelectStatement, start: int, end: int) -> ast.SelectStatement:
    """``select`` restricted to ``start <= time < end`` (integer nanoseconds)."""
    t = ast.VarRef("time")
    bounds = ast.BinaryExpr("AND", ast.BinaryExpr(">=", t, ast.IntegerLiteral(start)),
                            ast.BinaryExpr("<", t, ast.IntegerLiteral(end)))
    rest = _without_time(select.condition)
    cond = bounds if rest is None else ast.BinaryExpr("AND", rest, bounds)
    return replace(select, condition=cond)


def run_range(engine, stmt: ast.CreateContinuousQuery, start: int, end: int, now: int,
              limits=None) -> RunOutcome:
    """Execute the CQ's SELECT INTO over ``[start, end)``; errors are returned, not raised."""
    reads, writes = databases_of(stmt)
    principal = ContinuousQueryPrincipal(stmt.name, reads, writes)
    ctx = statements.QueryContext(engine, stmt.database, None, principal, now=now, limits=limits)
    t0 = time.perf_counter()
    out = RunOutcome(start, end)
    try:
        results = statements.execute([ranged_select(stmt.select, start, end)], ctx)
    except Exception as e:  # a CQ must never take the scheduler down; the error is recorded
        out.error = f"{type(e).__name__}: {e}" if not getattr(e, "message", None) else e.message
    else:
        res = results[0]
        if res.error:
            out.error = res.error
        elif res.series and res.series[0].columns:
            out.points_written = int(res.series[0].columns[0].values[0])
    out.seconds = time.perf_counter() - t0
    return out
