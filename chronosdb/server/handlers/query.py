"""``/query``: InfluxQL over HTTP, answered in InfluxDB 1.x's shapes.

Parameters (query string or url-encoded POST form): ``q`` (required), ``db``, ``rp``, ``epoch``
(``ns,u,µ,ms,s,m,h``; RFC3339 times without it), ``pretty``, ``chunked`` + ``chunk_size``.
``Accept: application/csv`` (or ``text/csv``) answers CSV. A parse error is HTTP 400
``{"error": "error parsing query: ..."}``; an error in a statement is HTTP 200 with
``results[i].error``, and, as in InfluxDB, statements after a failed one are not run.

Statements run in a worker thread; the answer is encoded from columnar results by
``chronosdb.ext.resultenc`` (no Python object per value).

Small queries skip the thread hop. Handing a query to the pool and back costs two thread
wake-ups (50-100 us here), as much as answering a one-series query. So a read-only query (SELECT
without INTO, SHOW) whose *shape* (its text with the literals lifted out, see
``influxql.cache``) last ran within ``INLINE_BUDGET`` runs on the event loop. The budget is
enforced: the executor's cancellation checks raise ``_OverBudget`` once it is spent, and the
query starts over in the pool (nothing was written, so nothing is undone), and its shape loses
the privilege until it runs fast again. A shape earns it by running in under half the budget
(``INLINE_EARN``) and keeps it while under the whole budget: shapes that run close to the budget
stay in the pool, instead of overrunning it now and then and paying twice.
"""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict

from chronosdb.ext import resultenc
from chronosdb.model.errors import BadRequest
from chronosdb.query import statements
from chronosdb.query.direct import PreparedWindowQuery
from chronosdb.query.executor import Limits
from chronosdb.query.influxql import ParseError, ast, default_cache, parse, parse_keyed
from chronosdb.query.params import bind as bind_params
from chronosdb.query.params import parse_params
from chronosdb.query.results import EPOCHS, StatementResult
from chronosdb.server.http.messages import HttpError, Response

DEFAULT_CHUNK_SIZE = 10_000
INLINE_BUDGET = 0.001        # seconds a query may hold the event loop
# A shape earns the inline privilege by running in under this share of the budget: a shape that
# runs near the budget would overrun it now and then (a cold cache, another process busy) and
# then pay twice, the aborted inline run plus the run in the pool.
INLINE_EARN = 0.5
_FAST_SHAPES_MAX = 4096      # shapes remembered as fast (LRU)


class _OverBudget(Exception):
    """An inline query ran past INLINE_BUDGET: run it again in the worker pool."""


class _FastShapes:
    """Query shapes whose last run took under the inline budget (an LRU; event loop only)."""

    def __init__(self, maxsize: int = _FAST_SHAPES_MAX):
        self.maxsize = maxsize
        self._shapes: OrderedDict = OrderedDict()

    def __contains__(self, shape) -> bool:
        return shape is not None and shape in self._shapes

    def record(self, shape, seconds: float) -> None:
        if shape is None:
            return
        if seconds < INLINE_BUDGET * INLINE_EARN or (seconds < INLINE_BUDGET and shape in self._shapes):
            self._shapes[shape] = True
            self._shapes.move_to_end(shape)
            if len(self._shapes) > self.maxsize:
                self._shapes.popitem(last=False)
        else:
            self._shapes.pop(shape, None)


fast_shapes = _FastShapes()


def _read_only(stmts) -> bool:
    for s in stmts:
        if isinstance(s, ast.SelectStatement):
            if s.into is not None:
                return False
        elif not type(s).__name__.startswith("Show"):
            return False
    return True


class _Budget:
    """The check_cancel of a query: the manager's kill/timeout check, plus, while the query
    runs inline, the inline budget."""

    __slots__ = ("running", "deadline")

    def __init__(self, running):
        self.running, self.deadline = running, None

    def __call__(self) -> None:
        self.running.check()
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OverBudget


class StatementAuth:
    """What statement execution may ask of the caller's key."""

    def __init__(self, server, principal):
        self.server, self.principal = server, principal

    def can_read(self, db: str) -> bool:
        return self.principal.can("read", db)

    def require(self, action: str, db: str | None) -> None:
        self.server.authorizer.require(self.principal, action, db)

    def on_drop_database(self, db: str) -> None:
        self.server.keys.drop_database(db)


async def _chunks(results, epoch, size):
    for chunk in resultenc.encode_chunks(results, epoch, size):
        yield chunk


async def handle_query(server, req) -> Response:
    if req.method not in ("GET", "POST"):
        raise HttpError(405, "query requires GET or POST")
    params = req.params
    principal = server.authenticate(req)
    q = params.get("q", "")
    if not q.strip():
        raise BadRequest('missing required parameter "q"')
    epoch = params.get("epoch") or None
    if epoch is not None and epoch not in EPOCHS:
        epoch = "ns"  # InfluxDB 1.x answers nanoseconds for an epoch it does not know
    chunked = params.get("chunked", "").lower() == "true"
    accept = req.headers.get("accept", "")
    prepared = None
    if not chunked and "$" not in q and "csv" not in accept:
        # a shape the direct path knows: no statement is built unless it declines
        prepared = default_cache.prepared(q, PreparedWindowQuery.prepare)
    if prepared is None:
        try:
            stmts, shape = parse_keyed(q)
        except ParseError as e:
            raise BadRequest(f"error parsing query: {e}") from None
        if "$" in q:  # bound parameters ($name) take their values from params={...}
            stmts = bind_params(stmts, parse_params(params.get("params")))
    else:
        stmts, shape = None, prepared[2]
    chunk_size = DEFAULT_CHUNK_SIZE
    if chunked and params.get("chunk_size"):
        try:
            chunk_size = int(params["chunk_size"])
        except ValueError:
            raise BadRequest(f'invalid chunk_size "{params["chunk_size"]}"') from None
        if chunk_size <= 0:
            chunk_size = DEFAULT_CHUNK_SIZE
    running = server.queries.start(q, params.get("db"))
    budget = _Budget(running)
    ctx = statements.QueryContext(server.engine, params.get("db") or None, params.get("rp") or None,
                                  StatementAuth(server, principal), limits=server.query_limits,
                                  check_cancel=budget, queries=server.queries)
    try:
        return await _answer(server, req, params, stmts, ctx, epoch, chunked, chunk_size, shape, budget,
                             prepared, q)
    finally:
        server.queries.finish(running)


def _run_prepared(prepared, ctx) -> list | None:
    """The results of a prepared direct-path query, or None when the direct path declines."""
    form, values, _shape = prepared
    db = form.database(ctx.db)
    if not db:
        return None
    ctx.auth.require("read", db)
    series = form.answer(values, ctx.reader, ctx.db, ctx.rp, ctx.now, ctx.limits or Limits(),
                         ctx.check_cancel)
    return None if series is None else [StatementResult(0, series)]


async def _answer(server, req, params, stmts, ctx, epoch, chunked, chunk_size, shape=None,
                  budget=None, prepared=None, q=None) -> Response:
    accept = req.headers.get("accept", "")
    if "application/csv" in accept or "text/csv" in accept:
        def work():
            return resultenc.encode_csv(statements.execute(stmts, ctx), epoch)
        return Response(200, await server.run_blocking(work), "application/csv")
    if chunked:
        results = await server.run_blocking(statements.execute, stmts, ctx)
        return Response(200, b"", "application/json", stream=_chunks(results, epoch, chunk_size))
    pretty = params.get("pretty", "").lower() == "true"

    def work(ctx):
        # one trip to the worker pool: execute and encode together; timed without the trip
        t0 = time.perf_counter()
        results = _run_prepared(prepared, ctx) if prepared is not None else None
        if results is not None:
            server.metrics.inc("queries_prepared_total")
        else:
            results = statements.execute(stmts if stmts is not None else parse(q), ctx)
        body = resultenc.encode_results(results, epoch, pretty)
        return body, time.perf_counter() - t0

    if budget is not None and shape in fast_shapes and (stmts is None or _read_only(stmts)):
        budget.deadline = time.perf_counter() + INLINE_BUDGET
        try:
            body, took = work(ctx)
            fast_shapes.record(shape, took)
            server.metrics.inc("queries_inline_total")
            return Response(200, body, "application/json")
        except _OverBudget:
            server.metrics.inc("queries_inline_over_budget_total")
            budget.deadline = None
            ctx = dataclasses.replace(ctx)  # a fresh storage reader; same now()
    body, took = await server.run_blocking(work, ctx)
    fast_shapes.record(shape, took)
    return Response(200, body, "application/json")
