"""``/query``: InfluxQL over HTTP, answered in InfluxDB 1.x's shapes.

Parameters (query string or url-encoded POST form): ``q`` (required), ``db``, ``rp``, ``epoch``
(``ns,u,µ,ms,s,m,h``; RFC3339 times without it), ``pretty``, ``chunked`` + ``chunk_size``.
``Accept: application/csv`` (or ``text/csv``) answers CSV. A parse error is HTTP 400
``{"error": "error parsing query: ..."}``; an error in a statement is HTTP 200 with
``results[i].error``, and, as in InfluxDB, statements after a failed one are not run.

Statements run in a worker thread; the answer is encoded from columnar results by
``chronosdb.ext.resultenc`` (no Python object per value).
"""
from __future__ import annotations

from chronosdb.ext import resultenc
from chronosdb.model.errors import BadRequest
from chronosdb.query import statements
from chronosdb.query.influxql import ParseError, parse
from chronosdb.query.results import EPOCHS
from chronosdb.server.http.messages import HttpError, Response

DEFAULT_CHUNK_SIZE = 10_000


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
    try:
        stmts = parse(q)
    except ParseError as e:
        raise BadRequest(f"error parsing query: {e}") from None
    chunked = params.get("chunked", "").lower() == "true"
    chunk_size = DEFAULT_CHUNK_SIZE
    if chunked and params.get("chunk_size"):
        try:
            chunk_size = int(params["chunk_size"])
        except ValueError:
            raise BadRequest(f'invalid chunk_size "{params["chunk_size"]}"') from None
        if chunk_size <= 0:
            chunk_size = DEFAULT_CHUNK_SIZE
    running = server.queries.start(q, params.get("db"))
    ctx = statements.QueryContext(server.engine, params.get("db") or None, params.get("rp") or None,
                                  StatementAuth(server, principal), limits=server.query_limits,
                                  check_cancel=running.check, queries=server.queries)
    try:
        return await _answer(server, req, params, stmts, ctx, epoch, chunked, chunk_size)
    finally:
        server.queries.finish(running)


async def _answer(server, req, params, stmts, ctx, epoch, chunked, chunk_size) -> Response:
    accept = req.headers.get("accept", "")
    if "application/csv" in accept or "text/csv" in accept:
        def work():
            return resultenc.encode_csv(statements.execute(stmts, ctx), epoch)
        return Response(200, await server.run_blocking(work), "application/csv")
    if chunked:
        results = await server.run_blocking(statements.execute, stmts, ctx)
        return Response(200, b"", "application/json", stream=_chunks(results, epoch, chunk_size))
    pretty = params.get("pretty", "").lower() == "true"

    def work():
        # one trip to the worker pool: execute and encode together
        return resultenc.encode_results(statements.execute(stmts, ctx), epoch, pretty)

    return Response(200, await server.run_blocking(work), "application/json")
