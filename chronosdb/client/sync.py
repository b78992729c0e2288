"""``Client``: the blocking client, over http.client with one keep-alive connection.

Every method builds a ``protocol.Call`` and hands it to ``_request``, which sends it on the
client's connection and retries idempotent calls after a 5xx or a broken connection, with
exponential backoff and jitter (``protocol.backoff_delay``). A keep-alive connection the server
closed while idle fails on reuse; that is retried at once, without counting as a retry. Streams
get their own connection each (see ``stream``). One Client is meant for one thread.
"""
from __future__ import annotations

import http.client
import random
import ssl
import time
from collections.abc import Iterator

from chronosdb.client import api, protocol
from chronosdb.client.errors import ChronosDBError, ConnectionFailed, ServerError
from chronosdb.client.points import encode_bodies
from chronosdb.client.protocol import Call, ClientSettings, SseParser
from chronosdb.client.results import CreatedKey, KeyInfo, Result, StreamEvent

# What a broken or refused connection looks like from http.client.
_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Client(ClientSettings):
    """A ChronosDB (InfluxDB 1.x API) client.

    ``url``: the server (``http://host:port``, optionally with a path prefix; https works too).
    ``key``: the API key, sent as ``Authorization: Token <key>``. ``database``: the default for
    write/query/stream. ``timeout``: seconds per request (connect and each read). ``gzip``:
    compress request bodies (1 KiB and up). ``retries``/``backoff``: how often and how patiently
    an idempotent request is retried after a 5xx answer or a connection failure (waits of about
    backoff, 2*backoff, 4*backoff... seconds, half of each randomized). ``batch_size``: at most
    this many lines per write request. ``stream_reconnects``: how many times in a row a stream
    may fail to reconnect before ``stream`` gives up. ``stream_idle_timeout``: seconds without a
    byte (not even a heartbeat) after which a stream counts as dropped.

    Writes are retried safely: writing the same series+field+time again keeps the last value, so
    a write applied before its answer was lost is only applied again.
    """

    def _init_io(self) -> None:
        self._conn: http.client.HTTPConnection | None = None

    # ------------------------------------------------------------------ connection and retries

    def _new_connection(self, timeout: float | None) -> http.client.HTTPConnection:
        e = self.endpoint
        if e.scheme == "https":
            return http.client.HTTPSConnection(e.host, e.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(e.host, e.port, timeout=timeout)

    def _send(self, conn: http.client.HTTPConnection, call: Call) -> http.client.HTTPResponse:
        headers = protocol.base_headers(self.key)
        headers.update(call.headers)
        conn.request(call.method, self.endpoint.prefix + call.target, body=call.body,
                     headers=headers)
        return conn.getresponse()

    def _send_once(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._new_connection(self.timeout)
        try:
            try:
                r = self._send(self._conn, call)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                # The server closed the idle keep-alive connection: a fresh one, at once.
                self._drop_connection()
                self._conn = self._new_connection(self.timeout)
                r = self._send(self._conn, call)
            body = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
            if r.will_close:
                self._drop_connection()
            return r.status, headers, body
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        """Send ``call``; retry as the class docstring says; raise for any non-2xx answer."""
        attempts = self.retries + 1 if call.retry else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                status, headers, body = self._send_once(call)
            except _CONNECTION_ERRORS as e:
                if last:
                    raise protocol.connection_failed(call, self.url, attempts, e) from e
            else:
                if not (protocol.retryable_status(status) and not last):
                    protocol.check(status, body)
                    return status, headers, body
            time.sleep(protocol.backoff_delay(attempt, self.backoff, self._rng))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (the client may still be used: it reconnects)."""
        self._drop_connection()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ API

    def ping(self) -> str:
        """Check the server answers; returns its version (the X-Influxdb-Version header)."""
        _s, headers, _b = self._request(protocol.ping_call())
        return headers.get("x-influxdb-version", "")

    def write(self, points, database: str | None = None, rp: str | None = None,
              precision: str = "ns", *, measurement: str | None = None, tag_columns=None,
              time_column: str | None = None) -> int:
        """Write points; returns how many requests it took (``batch_size`` lines each at most).

        ``points``: an iterable of dicts ``{"measurement", "tags", "fields", "time"}`` or tuples
        ``(measurement, tags, fields, time)``; one columnar block ``(measurement, tags, times,
        {field: array})``; or a pandas DataFrame with ``measurement=`` and ``tag_columns=`` (time
        from ``time_column=`` or the index). Integer times are in ``precision`` units; see
        chronosdb.client.points for every accepted form. Raises BadRequest with the server's
        message when it refuses points (a partial write has written the rest).
        """
        db = api.need_database(database, self.database, "write()")
        n = 0
        for body in encode_bodies(points, precision, self.batch_size, measurement=measurement,
                                  tag_columns=tag_columns, time_column=time_column):
            self._request(protocol.write_call(body, db, rp, precision, self.gzip))
            n += 1
        return n

    def write_lines(self, lines: bytes | str, database: str | None = None,
                    rp: str | None = None, precision: str = "ns") -> None:
        """Write line protocol as given (one request)."""
        db = api.need_database(database, self.database, "write_lines()")
        body = lines.encode() if isinstance(lines, str) else bytes(lines)
        self._request(protocol.write_call(body, db, rp, precision, self.gzip))

    def query(self, q: str, database: str | None = None, epoch: str | None = None,
              params: dict | None = None, rp: str | None = None,
              raise_errors: bool = True) -> Result:
        """Run one or more InfluxQL statements (separated by ';').

        ``epoch`` (ns, u, ms, s, m, h) gives integer times instead of RFC3339 strings; ``params``
        binds ``$name`` placeholders. A failed statement raises QueryError with the server's
        message (``raise_errors=False``: read ``result.statements[i].error`` instead).
        """
        call = protocol.query_call(q, database or self.database, epoch, rp, params)
        _s, _h, body = self._request(call)
        return api.decode_result(body, raise_errors)

    def create_database(self, name: str) -> None:
        self.query(f"CREATE DATABASE {api.quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        self.query(f"DROP DATABASE {api.quote_ident(name)}")

    def databases(self) -> list[str]:
        """The databases this client's key may read."""
        return api.decode_databases(self.query("SHOW DATABASES"))

    def create_key(self, database: str | None = None, scope: str = "readwrite",
                   description: str = "", *, admin: bool = False) -> CreatedKey:
        """Make an API key (needs an admin key). ``.key`` holds the secret: shown this once."""
        api.check_key_args(database, scope, admin)
        _s, _h, body = self._request(protocol.create_key_call(database, scope, description, admin))
        return api.decode_created_key(body)

    def keys(self, database: str | None = None) -> list[KeyInfo]:
        """The keys (ids, scopes, descriptions; never the secrets), optionally of one database."""
        _s, _h, body = self._request(protocol.list_keys_call(database))
        return api.decode_keys(body)

    def revoke_key(self, id_or_name: str) -> None:
        """Revoke a key by its id or, if no key has that id, by its (unique) description."""
        key_id = api.pick_key_id(self.keys(), id_or_name)
        self._request(protocol.revoke_key_call(key_id))

    # ------------------------------------------------------------------ streaming

    def stream(self, q: str, database: str | None = None, history: bool = False,
               partial: bool = False, last_event_id: str | None = None, *,
               rp: str | None = None, epoch: str | None = None) -> Iterator[StreamEvent]:
        """A streaming SELECT: an iterator of StreamEvent (history, points, window, partial,
        dropped), until the server ends the stream or the caller stops iterating.

        A dropped connection is reopened with ``Last-Event-ID`` set to the last id received, so
        no point is missed or repeated; after ``stream_reconnects`` failed attempts in a row it
        raises ConnectionFailed. An ``error`` event raises StreamError with the server's message;
        a 4xx before the stream starts raises here, at once. When this returns the server has
        subscribed the stream: every point written from then on will be delivered. Close the
        iterator (``.close()``) to end the stream.
        """
        db = api.need_database(database, self.database, "stream()")
        events = self._stream(q, db, history, partial, last_event_id, rp, epoch)
        next(events)  # connected and subscribed: points written from now on are delivered
        return events

    def _stream(self, q, db, history, partial, last_id, rp, epoch) -> Iterator[StreamEvent]:
        """The stream as a generator whose first item is None, yielded once subscribed."""
        failures = 0
        subscribed = False
        while True:
            call = protocol.stream_call(q, db, rp, epoch, history, partial, last_id)
            conn = self._new_connection(self.stream_idle_timeout)
            try:
                try:
                    r = self._send(conn, call)
                    if r.status != 200:
                        body = r.read()
                        if not protocol.retryable_status(r.status):
                            protocol.check(r.status, body)
                        raise ServerError(protocol.error_message(r.status, body), r.status)
                    if not subscribed:
                        subscribed = True
                        yield None
                    parser = SseParser()
                    while True:
                        chunk = r.read1(65536)
                        if not chunk:
                            break  # the server closed the stream: reconnect
                        failures = 0  # bytes arrived: this connection worked
                        for raw in parser.feed(chunk):
                            ev = api.decode_event(raw)
                            if ev is None:
                                continue
                            if ev.id is not None:
                                last_id = ev.id
                            yield ev
                except (ServerError, *_CONNECTION_ERRORS) as e:
                    error: ChronosDBError | BaseException = e
                else:
                    error = ConnectionFailed("the server closed the stream")
            finally:
                conn.close()
            if failures >= self.stream_reconnects:
                if isinstance(error, ChronosDBError):
                    raise error
                raise ConnectionFailed(f"stream to {self.url} failed {failures + 1} times in a "
                                       f"row: {type(error).__name__}: {error}") from error
            time.sleep(protocol.backoff_delay(failures, self.backoff, self._rng))
            failures += 1
