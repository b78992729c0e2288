"""The errors the client raises: one type per kind of failure, each carrying the server's message.

``ChronosDBError`` is the base: ``.status`` is the HTTP status (``None`` when no answer came) and
``.message`` the server's ``{"error": "..."}`` text (or, for failures on this side, what went
wrong). ``error_for_status`` is the one place a status is turned into a type.
"""
from __future__ import annotations


class ChronosDBError(Exception):
    """Base of every client error."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message


class BadRequest(ChronosDBError):
    """400: the server refused the request (bad line protocol, bad query, bad parameters...)."""


class AuthError(ChronosDBError):
    """401 (no, unknown or revoked key) or 403 (the key does not cover the request)."""


class NotFound(ChronosDBError):
    """404: unknown database, retention policy, key or endpoint."""


class ServerError(ChronosDBError):
    """5xx: the server failed or is shutting down (retried, for idempotent requests)."""


class ConnectionFailed(ChronosDBError):
    """No answer: the connection could not be made, or broke, or timed out (retried, for
    idempotent requests)."""


class QueryError(ChronosDBError):
    """A statement of a query failed (HTTP 200 with ``results[i].error``).

    ``.statement_id`` is the index of the failed statement; ``.result`` the whole Result, so the
    statements before it can still be read.
    """

    def __init__(self, message: str, statement_id: int, result=None):
        super().__init__(message)
        self.statement_id = statement_id
        self.result = result


class StreamError(ChronosDBError):
    """The server ended a stream with an ``error`` event (for example: the key was revoked)."""


def error_for_status(status: int, message: str) -> ChronosDBError:
    if status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NotFound
    elif status >= 500:
        cls = ServerError
    elif status == 400:
        cls = BadRequest
    else:
        cls = ChronosDBError
    return cls(message, status)
