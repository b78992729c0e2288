"""Requests and responses as plain values; the protocol turns them into bytes."""
from __future__ import annotations

from dataclasses import dataclass, field
import orjson

from chronosdb.ext.urlquery import parse_query_string
from chronosdb.model.errors import ChronosError

VERSION_HEADER = "1.6.7-chronosdb"  # clients read the major.minor as the InfluxDB API level

REASONS = {100: "Continue", 101: "Switching Protocols", 200: "OK", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Request Entity Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
           422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


@dataclass
class Request:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]            # lower-case names
    body: bytes = b""
    remote: str = ""
    keep_alive: bool = True
    _params: dict | None = field(default=None, repr=False)
    _form: dict | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, str]:
        """Query-string parameters, and for a url-encoded POST form, its fields too."""
        if self._params is None:
            p = parse_query_string(self.query_string)
            ctype = self.headers.get("content-type", "")
            if self.method == "POST" and ctype.startswith("application/x-www-form-urlencoded"):
                try:
                    p.update(parse_query_string(self.body.decode("utf-8")))
                except UnicodeDecodeError as e:
                    raise HttpError(400, "request form is not valid UTF-8") from e
            self._params = p
        return self._params


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: object = None  # an async iterator of bytes chunks (chunked transfer) instead of body
    # A 101 answer to a WebSocket upgrade: ``async websocket(channel)`` then owns the connection
    # (a ``protocol.WebSocketChannel``); ``on_abort()`` runs if the connection is gone before.
    websocket: object = None
    on_abort: object = None
    # Streams: ``on_flow(True)`` when the client stops taking data (the connection's send
    # buffer is full), ``on_flow(False)`` when it drains again. Called on the serving loop.
    on_flow: object = None

    @classmethod
    def json(cls, obj, status: int = 200, pretty: bool = False) -> "Response":
        opt = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if pretty else 0)
        return cls(status, orjson.dumps(obj, option=opt))

    @classmethod
    def error(cls, status: int, message: str) -> "Response":
        return cls(status, orjson.dumps({"error": message}))

    @classmethod
    def empty(cls, status: int = 204) -> "Response":
        return cls(status, b"", None)


class HttpError(ChronosError):
    """An error raised by the HTTP layer itself (bad request framing, limits, routing)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
