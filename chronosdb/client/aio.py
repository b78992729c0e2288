"""``AsyncClient``: the asyncio client, over asyncio streams (standard library only).

The same API as ``sync.Client`` with ``async`` methods, and the same requests (chronosdb.client
.protocol), retries and errors. HTTP/1.1 is spoken by ``_HttpConnection``: one request at a time
on a keep-alive connection, bodies with Content-Length, answers with Content-Length, chunked
transfer or read-to-close. Requests of one client are serialised on its connection by a lock;
each stream has a connection of its own.
"""
from __future__ import annotations

import asyncio
import random
import ssl

from chronosdb.client import api, protocol
from chronosdb.client.errors import ChronosDBError, ConnectionFailed, ServerError
from chronosdb.client.points import encode_bodies
from chronosdb.client.protocol import Call, ClientSettings, Endpoint, SseParser
from chronosdb.client.results import CreatedKey, KeyInfo, Result, StreamEvent

# Longest status line or header line accepted from a server.
MAX_LINE = 65536


class _ProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.1 we can read (treated as a broken connection)."""


class _HttpConnection:
    """One HTTP/1.1 connection: send a request, read the answer's head, then its body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.reusable = True
        self._remaining: int | None = None   # Content-Length bytes still to read
        self._chunked = False
        self._chunk_left = 0
        self._eof = False

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float) -> "_HttpConnection":
        ctx = ssl.create_default_context() if endpoint.scheme == "https" else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port, ssl=ctx, limit=MAX_LINE),
            timeout)
        return cls(reader, writer)

    async def send(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
                   host: str) -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await self.writer.drain()

    async def read_head(self) -> tuple[int, dict[str, str]]:
        line = await self.reader.readline()
        if not line:
            raise ConnectionResetError("the server closed the connection without answering")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise _ProtocolError(f"not an HTTP/1.x status line: {line[:100]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("the connection closed inside the answer's headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        self._remaining = None
        self._eof = False
        if status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
        elif not self._chunked and "content-length" in headers:
            self._remaining = int(headers["content-length"])
        elif not self._chunked:
            self.reusable = False  # the body ends when the server closes
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        return status, headers

    async def read_some(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._eof:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size_line = await self.reader.readline()
                if not size_line:
                    raise ConnectionResetError("the connection closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = await self.reader.read(min(self._chunk_left, 65536))
            if not data:
                raise ConnectionResetError("the connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await self.reader.readexactly(2)  # CRLF after the chunk
            return data
        if self._remaining is not None:
            if self._remaining == 0:
                self._eof = True
                return b""
            data = await self.reader.read(min(self._remaining, 65536))
            if not data:
                raise ConnectionResetError("the connection closed inside the answer's body")
            self._remaining -= len(data)
            return data
        data = await self.reader.read(65536)
        if not data:
            self._eof = True
        return data

    async def read_body(self) -> bytes:
        parts = []
        while True:
            piece = await self.read_some()
            if not piece:
                return b"".join(parts)
            parts.append(piece)

    def close(self) -> None:
        self.reusable = False
        try:
            self.writer.close()
        except RuntimeError:  # the loop is already closed
            pass


class AsyncStream:
    """An async iterator of StreamEvent that can also be awaited (to connect and subscribe)."""

    def __init__(self, events):
        self._events = events      # async generator; its first item (None) marks "subscribed"
        self._subscribed = False

    async def _subscribe(self) -> "AsyncStream":
        if not self._subscribed:
            await self._events.__anext__()
            self._subscribed = True
        return self

    def __await__(self):
        return self._subscribe().__await__()

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> StreamEvent:
        await self._subscribe()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> "AsyncStream":
        return await self._subscribe()

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class AsyncClient(ClientSettings):
    """The asyncio twin of ``chronosdb.client.Client``: same arguments, same methods (awaited),
    same errors and retries. ``stream`` returns an async iterator. Use ``async with`` or
    ``await client.close()``."""

    def _init_io(self) -> None:
        self._conn: _HttpConnection | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ connection and retries

    def _headers(self, call: Call) -> dict[str, str]:
        h = protocol.base_headers(self.key)
        h.update(call.headers)
        return h

    async def _exchange(self, conn: _HttpConnection, call: Call) -> tuple[int, dict, bytes]:
        await conn.send(call.method, self.endpoint.prefix + call.target, self._headers(call),
                        call.body, self.endpoint.host_header)
        status, headers = await conn.read_head()
        body = await conn.read_body()
        return status, headers, body

    async def _send_once(self, call: Call) -> tuple[int, dict, bytes]:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = await _HttpConnection.open(self.endpoint, self.timeout)
        try:
            try:
                result = await asyncio.wait_for(self._exchange(self._conn, call), self.timeout)
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # The server closed the idle keep-alive connection: a fresh one, at once.
                self._drop_connection()
                self._conn = await _HttpConnection.open(self.endpoint, self.timeout)
                result = await asyncio.wait_for(self._exchange(self._conn, call), self.timeout)
            if not self._conn.reusable:
                self._drop_connection()
            return result
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _request(self, call: Call) -> tuple[int, dict, bytes]:
        attempts = self.retries + 1 if call.retry else 1
        async with self._lock:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                try:
                    status, headers, body = await self._send_once(call)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        ValueError) as e:
                    if last:
                        raise protocol.connection_failed(call, self.url, attempts, e) from e
                else:
                    if not (protocol.retryable_status(status) and not last):
                        protocol.check(status, body)
                        return status, headers, body
                await asyncio.sleep(protocol.backoff_delay(attempt, self.backoff, self._rng))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._drop_connection()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------------ API (see sync.Client)

    async def ping(self) -> str:
        _s, headers, _b = await self._request(protocol.ping_call())
        return headers.get("x-influxdb-version", "")

    async def write(self, points, database: str | None = None, rp: str | None = None,
                    precision: str = "ns", *, measurement: str | None = None, tag_columns=None,
                    time_column: str | None = None) -> int:
        db = api.need_database(database, self.database, "write()")
        n = 0
        for body in encode_bodies(points, precision, self.batch_size, measurement=measurement,
                                  tag_columns=tag_columns, time_column=time_column):
            await self._request(protocol.write_call(body, db, rp, precision, self.gzip))
            n += 1
        return n

    async def write_lines(self, lines: bytes | str, database: str | None = None,
                          rp: str | None = None, precision: str = "ns") -> None:
        db = api.need_database(database, self.database, "write_lines()")
        body = lines.encode() if isinstance(lines, str) else bytes(lines)
        await self._request(protocol.write_call(body, db, rp, precision, self.gzip))

    async def query(self, q: str, database: str | None = None, epoch: str | None = None,
                    params: dict | None = None, rp: str | None = None,
                    raise_errors: bool = True) -> Result:
        call = protocol.query_call(q, database or self.database, epoch, rp, params)
        _s, _h, body = await self._request(call)
        return api.decode_result(body, raise_errors)

    async def create_database(self, name: str) -> None:
        await self.query(f"CREATE DATABASE {api.quote_ident(name)}")

    async def drop_database(self, name: str) -> None:
        await self.query(f"DROP DATABASE {api.quote_ident(name)}")

    async def databases(self) -> list[str]:
        return api.decode_databases(await self.query("SHOW DATABASES"))

    async def create_key(self, database: str | None = None, scope: str = "readwrite",
                         description: str = "", *, admin: bool = False) -> CreatedKey:
        api.check_key_args(database, scope, admin)
        call = protocol.create_key_call(database, scope, description, admin)
        _s, _h, body = await self._request(call)
        return api.decode_created_key(body)

    async def keys(self, database: str | None = None) -> list[KeyInfo]:
        _s, _h, body = await self._request(protocol.list_keys_call(database))
        return api.decode_keys(body)

    async def revoke_key(self, id_or_name: str) -> None:
        key_id = api.pick_key_id(await self.keys(), id_or_name)
        await self._request(protocol.revoke_key_call(key_id))

    # ------------------------------------------------------------------ streaming

    def stream(self, q: str, database: str | None = None, history: bool = False,
               partial: bool = False, last_event_id: str | None = None, *,
               rp: str | None = None, epoch: str | None = None) -> "AsyncStream":
        """An async iterator of StreamEvent; reconnects as sync.Client.stream does.

        ``async for ev in client.stream(q)`` connects on the first iteration;
        ``s = await client.stream(q)`` connects (raising a 4xx at once) and returns once the
        server has subscribed the stream, so every point written after that is delivered.
        Close it with ``await s.aclose()`` or ``async with``.
        """
        db = api.need_database(database, self.database, "stream()")
        return AsyncStream(self._stream(q, db, history, partial, last_event_id, rp, epoch))

    async def _stream(self, q, db, history, partial, last_id, rp, epoch):
        """The stream as an async generator whose first item is None, yielded once subscribed."""
        failures = 0
        subscribed = False
        while True:
            call = protocol.stream_call(q, db, rp, epoch, history, partial, last_id)
            conn = None
            try:
                try:
                    conn = await _HttpConnection.open(self.endpoint, self.timeout)
                    await conn.send(call.method, self.endpoint.prefix + call.target,
                                    self._headers(call), None, self.endpoint.host_header)
                    status, _headers = await asyncio.wait_for(conn.read_head(), self.timeout)
                    if status != 200:
                        body = await asyncio.wait_for(conn.read_body(), self.timeout)
                        if not protocol.retryable_status(status):
                            protocol.check(status, body)
                        raise ServerError(protocol.error_message(status, body), status)
                    if not subscribed:
                        subscribed = True
                        yield None
                    parser = SseParser()
                    while True:
                        chunk = await asyncio.wait_for(conn.read_some(), self.stream_idle_timeout)
                        if not chunk:
                            break
                        failures = 0
                        for raw in parser.feed(chunk):
                            ev = api.decode_event(raw)
                            if ev is None:
                                continue
                            if ev.id is not None:
                                last_id = ev.id
                            yield ev
                except (ServerError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        ValueError) as e:
                    error: BaseException = e
                else:
                    error = ConnectionFailed("the server closed the stream")
            finally:
                if conn is not None:
                    conn.close()
            if failures >= self.stream_reconnects:
                if isinstance(error, ChronosDBError):
                    raise error
                raise ConnectionFailed(f"stream to {self.url} failed {failures + 1} times in a "
                                       f"row: {type(error).__name__}: {error}") from error
            await asyncio.sleep(protocol.backoff_delay(failures, self.backoff, self._rng))
            failures += 1
