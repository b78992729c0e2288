"""The ChronosDB Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Layout, from the edge inwards:

- ``sync.py`` / ``aio.py``: the two drivers -- connections, retries with backoff, streams. They
  do the I/O and nothing else.
- ``protocol.py``: each API call as a request (``Call``), answers to errors, the backoff rule and
  the Server-Sent Events parser; ``api.py``: argument checks and decoding shared by both drivers.
- ``points.py``: dicts, tuples, numpy columns and DataFrames -> line-protocol bodies, encoded by
  the Cython encoder chronosdb.ext.lpencode.
- ``results.py``: Result / Series / StreamEvent / KeyInfo values; ``errors.py``: the error types.

The user guide is docs/client.md.
"""
from chronosdb.client.aio import AsyncClient
from chronosdb.client.errors import (AuthError, BadRequest, ChronosDBError, ConnectionFailed,
                                     NotFound, QueryError, ServerError, StreamError)
from chronosdb.client.results import (CreatedKey, KeyInfo, Result, Series, StatementResult,
                                      StreamEvent)
from chronosdb.client.sync import Client

__all__ = [
    "AsyncClient", "AuthError", "BadRequest", "ChronosDBError", "Client", "ConnectionFailed",
    "CreatedKey", "KeyInfo", "NotFound", "QueryError", "Result", "Series", "ServerError",
    "StatementResult", "StreamError", "StreamEvent",
]
