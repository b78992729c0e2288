"""``GET /api/openapi.json``: the OpenAPI 3.1 document describing the HTTP API.

The document is a static file beside the server code (``chronosdb/server/openapi.json``),
written by hand from the handlers and checked against a running server by
``tests/test_openapi.py`` (schemathesis). It is read once, on the first request, and served
from memory with an ``ETag`` (a hash of its bytes) and ``Cache-Control``; a client that sends
the ETag back in ``If-None-Match`` gets ``304 Not Modified`` and no body. The document only
changes with the installed version, so a few minutes of client-side caching cannot go stale for
long, and revalidation is nearly free.

No key is needed: the document describes the API, it holds no data.
"""
from __future__ import annotations

import hashlib
import os

from chronosdb.server.http.messages import HttpError, Response

OPENAPI_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.json")
# Five minutes: long enough to spare re-downloads while a console or tool is open, short enough
# that an upgraded server's document reaches clients soon without any invalidation.
CACHE_CONTROL = "public, max-age=300"


class OpenApiDocument:
    """The document's bytes and their ETag, loaded once."""

    def __init__(self, path: str = OPENAPI_PATH):
        self.path = path
        self._body: bytes | None = None
        self._etag = ""

    def load(self) -> tuple[bytes, str]:
        if self._body is None:
            try:
                with open(self.path, "rb") as f:
                    body = f.read()
            except OSError as e:
                # A broken install (the file left out of the package) is the server's fault.
                raise HttpError(500, f"OpenAPI document missing from the installation: {e}") from None
            self._etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._body = body
        return self._body, self._etag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Does an ``If-None-Match`` header value name ``etag``? (RFC 9110: weak comparison, ``*``.)"""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


DOCUMENT = OpenApiDocument()


async def handle_openapi(server, req) -> Response:
    if req.method != "GET":
        raise HttpError(405, "openapi.json requires GET")
    body, etag = DOCUMENT.load()
    headers = [("ETag", etag), ("Cache-Control", CACHE_CONTROL)]
    if etag_matches(req.headers.get("if-none-match", ""), etag):
        return Response(304, b"", None, headers)
    return Response(200, body, "application/json", headers)
