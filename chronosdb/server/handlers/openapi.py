"""``GET /api/openapi.json``: the OpenAPI document describing the HTTP API.

Being written (issue 7); until then 404.
"""
from __future__ import annotations

from chronosdb.server.http.messages import Response


async def handle_openapi(server, req) -> Response:
    return Response.error(404, f"not found: {req.path}")
