"""``POST /api/compact`` (admin): snapshot every cache and fully compact every shard now.

For operators (before a backup, after a bulk load or a large DELETE) and for benchmarks that
settle every system the same way. Answers 204 once done, or 404 for an unknown ``db``.
"""
from __future__ import annotations

from chronosdb.server.http.messages import HttpError, Response


async def handle_compact(server, req) -> Response:
    if req.method != "POST":
        raise HttpError(405, "compact requires POST")
    principal = server.authenticate(req)
    server.authorizer.require(principal, "admin", None)
    db = req.params.get("db") or None
    if db is not None:
        server.engine.catalog.database(db)  # 404 for an unknown database
    await server.run_blocking(server.engine.compact_all, True)
    return Response.empty(204)
