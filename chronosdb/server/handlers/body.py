"""Request body decoding shared by the handlers: Content-Encoding, size caps."""
from __future__ import annotations

import zlib

from chronosdb.server.http.messages import HttpError


def decoded_body(req, limit: int) -> bytes:
    """The request body with any gzip/deflate Content-Encoding removed, at most ``limit`` bytes.

    Inflation is capped as it runs, so a small "gzip bomb" cannot allocate more than the limit.
    """
    enc = req.headers.get("content-encoding", "").strip().lower()
    if enc in ("", "identity"):
        return req.body
    if enc not in ("gzip", "deflate", "x-gzip"):
        raise HttpError(415, f"unsupported Content-Encoding: {enc}")
    d = zlib.decompressobj(31 if enc in ("gzip", "x-gzip") else 15)
    try:
        out = d.decompress(req.body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise HttpError(413, f"request body too large once inflated: over {limit} bytes")
        out += d.flush()
    except zlib.error as e:
        raise HttpError(400, f"invalid {enc} body: {e}") from None
    if not d.eof:
        raise HttpError(400, f"truncated {enc} body")
    if len(out) > limit:
        raise HttpError(413, f"request body too large once inflated: over {limit} bytes")
    return out
