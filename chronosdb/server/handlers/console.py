"""The web console (``/``, ``/console/...``) and the rendered docs (``/docs``, ``/docs/...``).

Being built (issue 7); until then both answer 404.
"""
from __future__ import annotations

from chronosdb.server.http.messages import Response


async def handle_console(server, req) -> Response:
    return Response.error(404, f"not found: {req.path}")


async def handle_docs(server, req) -> Response:
    return Response.error(404, f"not found: {req.path}")
