"""``/ping``, ``/health`` (no key needed) and ``/metrics``."""
from __future__ import annotations

import chronosdb
from chronosdb.server.http.messages import VERSION_HEADER, HttpError, Response


async def handle_ping(server, req) -> Response:
    if req.method not in ("GET", "HEAD"):
        raise HttpError(405, "ping requires GET or HEAD")
    if req.params.get("verbose", "").lower() in ("true", "1"):
        return Response.json({"version": VERSION_HEADER, "chronosdb": chronosdb.__version__})
    return Response.empty(204)


async def handle_health(server, req) -> Response:
    if req.method not in ("GET", "HEAD"):
        raise HttpError(405, "health requires GET or HEAD")
    if server.stopping:
        return Response.json({"name": "chronosdb", "status": "fail", "message": "shutting down",
                              "version": chronosdb.__version__}, status=503)
    return Response.json({"name": "chronosdb", "status": "pass",
                          "message": "ready for queries and writes",
                          "version": chronosdb.__version__})


async def handle_metrics(server, req) -> Response:
    if req.method != "GET":
        raise HttpError(405, "metrics requires GET")
    server.authenticate(req)  # any valid key may read the server's own metrics
    sync = getattr(server.stream_loop, "sync_metrics", None)
    if sync is not None:        # the stream process's counters since its last flush
        await sync()
    return Response(200, server.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
