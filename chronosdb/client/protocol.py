"""What the client says to the server and how it reads the answers, without any I/O.

Both clients (``sync.Client`` over http.client, ``aio.AsyncClient`` over asyncio streams) are thin
drivers around this module: an API method builds a ``Call`` (method, target, headers, body and
whether it may be retried), the driver sends it -- retrying with ``backoff_delay`` when the call
is idempotent and the failure is a 5xx or a broken connection -- and hands the answer to
``check`` (a ``ChronosDBError`` for anything that is not a success) and a decoder. Streams are
read through ``SseParser``, which turns bytes into Server-Sent Events.

Which calls are retried, and why that is safe: writes (the same series+field+time written twice
keeps the last value, and a retry sends the same bytes, so a write applied before its answer was
lost is simply applied again), queries (InfluxQL statements are idempotent in effect: CREATE
DATABASE on an existing database and DROP of a missing one are not errors; SELECT INTO rewrites the
same points), pings, listings and key revocation. Creating a key is not retried: a retry after a
lost answer would make a second key.
"""
from __future__ import annotations

import base64
import gzip as gzip_module
import random
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import orjson

from chronosdb.client.errors import ChronosDBError, ConnectionFailed, error_for_status

USER_AGENT = "chronosdb-python-client"
# Cap of one backoff sleep, so a long run of retries does not wait minutes between attempts.
MAX_BACKOFF_SECONDS = 30.0
# Request bodies smaller than this are sent plain even with gzip=True: compressing a few hundred
# bytes costs more than it saves.
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True)
class Endpoint:
    """Where the server is: scheme, host, port and a path prefix (for a server behind a proxy)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: use http or https")
        if not parts.hostname:
            raise ValueError(f"no host in URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 8086)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Call:
    """One HTTP request as an API method wants it sent."""

    method: str
    target: str                      # path (after the endpoint's prefix) and query string
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = True               # idempotent: may be sent again after a 5xx or broken connection


def base_headers(key: str | None) -> dict[str, str]:
    h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if key:
        h["Authorization"] = f"Token {key}"
    return h


def target(path: str, params: dict | None = None) -> str:
    params = {k: v for k, v in (params or {}).items() if v is not None}
    return path + ("?" + urlencode(params) if params else "")


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------

def ping_call() -> Call:
    return Call("GET", "/ping")


def write_call(body: bytes, database: str, rp: str | None, precision: str, gzip: bool) -> Call:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if gzip and len(body) >= GZIP_MIN_BYTES:
        # Level 1: most of the ratio of higher levels on line protocol, at a fraction of the CPU.
        body = gzip_module.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Call("POST", target("/write", {"db": database, "rp": rp, "precision": precision}),
                body, headers)


def query_call(q: str, database: str | None, epoch: str | None, rp: str | None,
               params: dict | None) -> Call:
    form = {"q": q, "db": database, "epoch": epoch, "rp": rp}
    if params:
        form["params"] = orjson.dumps(params).decode()
    body = urlencode({k: v for k, v in form.items() if v is not None}).encode()
    return Call("POST", "/query", body, {"Content-Type": "application/x-www-form-urlencoded"})


def stream_call(q: str, database: str, rp: str | None, epoch: str | None, history: bool,
                partial: bool, last_event_id: str | None) -> Call:
    params = {"db": database, "q": q, "rp": rp, "epoch": epoch,
              "history": "true" if history else None, "partial": "true" if partial else None}
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return Call("GET", target("/stream", params), None, headers)


def create_key_call(database: str | None, scope: str, description: str, admin: bool) -> Call:
    doc: dict = {"admin": True} if admin else {"database": database, "scope": scope}
    doc["description"] = description
    return Call("POST", "/api/keys", orjson.dumps(doc), {"Content-Type": "application/json"},
                retry=False)


def list_keys_call(database: str | None) -> Call:
    return Call("GET", target("/api/keys", {"database": database}))


def revoke_key_call(key_id: str) -> Call:
    return Call("DELETE", "/api/keys/" + quote(key_id, safe=""))


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------

def error_message(status: int, body: bytes) -> str:
    """The server's ``{"error": ...}`` text, or the body itself when it is not that shape."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
    except orjson.JSONDecodeError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text or f"HTTP {status} with an empty body"


def check(status: int, body: bytes) -> None:
    """Raise the ChronosDBError for a non-2xx answer."""
    if not 200 <= status < 300:
        raise error_for_status(status, error_message(status, body))


def json_body(body: bytes):
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ChronosDBError(f"the server's answer is not valid JSON: {e}") from None


def retryable_status(status: int) -> bool:
    return status >= 500


def connection_failed(call: "Call", url: str, attempts: int, e: BaseException) -> ConnectionFailed:
    """The error for a request whose last attempt could not reach the server."""
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return ConnectionFailed(f"{call.method} {call.target.split('?')[0]} to {url} failed{tried}: "
                            f"{type(e).__name__}: {e}")


def backoff_delay(attempt: int, base: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): exponential, with jitter.

    The delay doubles with each attempt (capped), and a random half of it is dropped so clients
    that failed together do not retry in lockstep.
    """
    d = min(MAX_BACKOFF_SECONDS, base * (2 ** attempt))
    return d / 2 + rng.random() * d / 2


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f":{key}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------------------------

@dataclass
class RawEvent:
    event: str
    id: str | None
    data: str


class SseParser:
    """Bytes of a text/event-stream in, complete events out (the WHATWG SSE framing).

    Lines end with LF, CRLF or CR; ``field: value`` lines accumulate into an event that a blank
    line dispatches; lines starting with ':' are comments (the server's heartbeats). ``comments``
    counts them so a reader can tell the stream is alive. ``RawEvent.id`` is the id sent with
    that event (None when it had none); remembering the last one for a reconnect is the reader's
    job.
    """

    def __init__(self):
        self._buf = b""
        self._event = ""
        self._id: str | None = None
        self._data: list[str] = []
        self.comments = 0

    def feed(self, data: bytes) -> list[RawEvent]:
        out: list[RawEvent] = []
        buf = self._buf + data
        start = 0
        n = len(buf)
        while True:
            i = buf.find(b"\n", start)
            j = buf.find(b"\r", start, i if i >= 0 else n)
            if j >= 0:
                if j + 1 == n:  # a CR at the end: wait for a possible LF
                    break
                end, nxt = j, j + 2 if buf[j + 1:j + 2] == b"\n" else j + 1
            elif i >= 0:
                end, nxt = i, i + 1
            else:
                break
            self._line(buf[start:end].decode("utf-8", "replace"), out)
            start = nxt
        self._buf = buf[start:]
        return out

    def _line(self, line: str, out: list[RawEvent]) -> None:
        if not line:
            if self._data or self._event:
                out.append(RawEvent(self._event or "message", self._id, "\n".join(self._data)))
            self._event, self._data, self._id = "", [], None
            return
        if line.startswith(":"):
            self.comments += 1
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value or None
        # "retry" and unknown fields are ignored

class ClientSettings:
    """What ``Client`` and ``AsyncClient`` are configured with (their docstrings say what each
    setting means); the two differ only in how they do I/O."""

    def __init__(self, url: str = "http://127.0.0.1:8086", key: str | None = None,
                 database: str | None = None, *, timeout: float = 10, gzip: bool = False,
                 retries: int = 3, backoff: float = 0.2, batch_size: int = 5000,
                 stream_reconnects: int = 5, stream_idle_timeout: float = 60.0):
        self.endpoint = Endpoint.parse(url)
        self.url = url
        self.key = key
        self.database = database
        self.timeout = timeout
        self.gzip = gzip
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.batch_size = batch_size
        self.stream_reconnects = stream_reconnects
        self.stream_idle_timeout = stream_idle_timeout
        self._rng = random.Random()
        self._init_io()

    def _init_io(self) -> None:
        """The I/O side's own state (a connection, a lock)."""
