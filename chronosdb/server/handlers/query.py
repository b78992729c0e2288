"""``/query``: InfluxQL over HTTP, answered in InfluxDB 1.x's shapes.

``q`` (required), ``db``, ``rp``, ``epoch``, ``pretty``, ``chunked`` are read from the query
string or a url-encoded POST form. A parse error is HTTP 400 ``{"error": "error parsing query:
..."}``; an error in a statement is HTTP 200 with ``results[i].error``, and, as in InfluxDB,
statements after a failed one are not run.
"""
from __future__ import annotations

from chronosdb.model.errors import BadRequest
from chronosdb.query import meta
from chronosdb.query.influxql import ParseError, parse
from chronosdb.server.http.messages import HttpError, Response


class _StatementAuth:
    """What statement execution may ask of the caller's key."""

    def __init__(self, server, principal):
        self.server, self.principal = server, principal

    def can_read(self, db: str) -> bool:
        return self.principal.can("read", db)

    def require(self, action: str, db: str | None) -> None:
        self.server.authorizer.require(self.principal, action, db)

    def on_drop_database(self, db: str) -> None:
        self.server.keys.drop_database(db)


async def handle_query(server, req) -> Response:
    if req.method not in ("GET", "POST"):
        raise HttpError(405, "query requires GET or POST")
    params = req.params
    principal = server.authenticate(req)
    q = params.get("q", "")
    if not q.strip():
        raise BadRequest('missing required parameter "q"')
    try:
        statements = parse(q)
    except ParseError as e:
        raise BadRequest(f"error parsing query: {e}") from None
    db = params.get("db") or None
    auth = _StatementAuth(server, principal)
    pretty = params.get("pretty", "").lower() == "true"

    def work():
        results = []
        for i, stmt in enumerate(statements):
            try:
                r = meta.run(stmt, server.engine, db, auth)
            except meta.StatementError as e:
                results.append({"statement_id": i, "error": str(e)})
                break
            results.append({"statement_id": i, **r})
        return results

    results = await server.run_blocking(work)
    return Response.json({"results": results}, pretty=pretty)
