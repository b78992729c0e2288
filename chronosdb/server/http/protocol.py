"""HTTP/1.1 server protocol: httptools (llhttp) parses, this class frames and forwards.

One ``HttpProtocol`` per connection. It only turns bytes into ``Request`` values and
``Response`` values into bytes; what a request means is the router's business.

* Keep-alive and pipelining: requests are queued in arrival order and answered in that order by
  one task per connection. When too many are queued, reading pauses (backpressure).
* Bodies: ``Content-Length`` and chunked bodies (httptools de-chunks), capped at
  ``max_body_bytes`` (413 and close when exceeded, without buffering the rest).
  ``Content-Encoding: gzip`` is inflated by the router's handlers with the same cap.
* Slow or stalled clients: headers must complete within ``header_timeout`` and the body within
  ``body_timeout`` of the request's start (408 and close); idle keep-alive connections are
  closed after ``keepalive_timeout``.
* ``Expect: 100-continue`` gets its interim response before the body is read.
* Writing: when the transport's buffer is full (``pause_writing``) the connection waits for
  ``resume_writing`` before it writes the next response.
* Streams (``Response.stream``) stay open as long as the handler's iterator yields; each chunk
  waits for the transport to drain, so a stalled client stops its producer instead of growing
  our buffers. When the client goes away the serving task is cancelled, which ends the stream.
* WebSocket: a request with ``Upgrade: websocket`` is routed like any other; a handler that
  answers 101 with ``Response.websocket`` takes the connection over. Framing is ``wsproto``'s
  (sans-I/O: we feed it bytes and write what it returns); ``WebSocketChannel`` is the small
  async face the handler sees. Bytes that arrive after the upgrade are kept for it.
* The stream loop: when the server has one (``Server.stream_loop``, a ``StreamLoop`` started by
  ``Server.start``), an open stream (a 200 whose body is marked ``stream_loop``) or an accepted
  WebSocket is not served here: the connection is handed over (``_hand_off``: its fd is
  duplicated, our transport closed) and a ``StreamConnection`` on the stream loop's thread
  writes the head and everything after it. Stream ticks then never delay the requests served
  on this loop. Without a stream loop (a Server that was not started) streams are served here.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from email.utils import formatdate

import httptools
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import RemoteProtocolError, generate_accept_token

from chronosdb.server.http.messages import REASONS, VERSION_HEADER, HttpError, Request, Response

log = logging.getLogger("chronosdb.http")

MAX_PIPELINED = 16          # queued requests per connection before reading pauses
MAX_HEADER_BYTES = 64 << 10 # all header lines of one request together
LINGER_SECONDS = 5.0        # how long a refused client may keep sending before we close


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server):
        self.server = server          # gives: config, router (async callable), metrics, tracker
        self.cfg = server.config
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue = RequestQueue()
        self.worker: asyncio.Task | None = None
        self.closing = False
        self.paused_reading = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.remote = ""
        # state of the request being parsed
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._last_header_name = b""
        self._body = []
        self._body_len = 0
        self._started = 0.0                      # loop time the request began
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_message = False
        self._rejected = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0                     # loop time the timer is set for
        self._deadline: tuple | None = None      # (loop time, callback, args) or None
        self._callback_error: HttpError | None = None
        self._streaming = False                  # the worker is sending a stream / runs a WebSocket
        self._upgrade_buffer: bytearray | None = None  # bytes after an Upgrade request's head
        self._ws: "WebSocketChannel | None" = None
        self._handed_off = False                 # the connection now lives on the stream loop

    # -- connection lifecycle --------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if peer else ""
        self.server.connections.add(self)
        self._loop = asyncio.get_running_loop()
        self.worker = self._loop.create_task(self._serve())
        self._arm_idle_timer()

    def connection_lost(self, exc):
        self.closing = True
        self.server.connections.discard(self)
        self._drop_timer()
        self.can_write.set()
        if self._ws is not None:
            self._ws.closed = True
        if self._handed_off:
            return                    # only our fd closed; the stream loop serves the connection
        if self.worker is not None:
            self.queue.put_nowait(None)
            if self._streaming:
                self.worker.cancel()  # an open stream would otherwise wait for its next event

    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def data_received(self, data: bytes):
        if self._ws is not None:
            self._ws.feed(data)
            return
        if self._upgrade_buffer is not None:
            self._upgrade_buffer += data
            return
        if self.closing or self._rejected:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            if self._headers.get("upgrade", "").lower() == "websocket" and not self._in_message:
                # The request is queued; its handler decides. Keep what followed its head.
                offset = e.args[0] if e.args else len(data)
                self._upgrade_buffer = bytearray(data[offset:])
                self._cancel_timer()
            else:
                self._reject(HttpError(400, "protocol upgrade is not supported here"))
        except HttpError as e:
            self._reject(e)
        except httptools.HttpParserError as e:
            # httptools wraps exceptions raised in callbacks; ours was kept in _callback_error.
            err, self._callback_error = self._callback_error, None
            self._reject(err or HttpError(400, f"malformed HTTP request: {e}"))

    def _fail(self, status: int, message: str):
        """Raise from inside an httptools callback, remembering the error for data_received."""
        self._callback_error = HttpError(status, message)
        raise self._callback_error

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self):
        self._in_message = True
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_len = 0
        self._started = self._loop.time()
        self._arm_request_timer(self.cfg.header_timeout, "request headers")

    def on_url(self, url: bytes):
        self._url += url
        if len(self._url) > MAX_HEADER_BYTES:
            self._fail(414, "request URL too long")

    def on_header(self, name: bytes, value: bytes):
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._fail(400, "request headers too large")
        try:
            key = name.decode("latin-1").lower()
            val = value.decode("latin-1")
        except UnicodeDecodeError:
            self._fail(400, "request header is not latin-1")
        if key in self._headers:
            self._headers[key] += ", " + val
        else:
            self._headers[key] = val

    def on_headers_complete(self):
        self._arm_request_timer(self.cfg.body_timeout, "request body")
        cl = self._headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > self.cfg.max_body_bytes:
            self._fail(413, f"request body too large: {cl} bytes, limit is {self.cfg.max_body_bytes}")
        if self._headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes):
        self._body_len += len(body)
        if self._body_len > self.cfg.max_body_bytes:
            self._fail(413, f"request body too large: over {self.cfg.max_body_bytes} bytes")
        self._body.append(body)

    def on_message_complete(self):
        self._in_message = False
        self._cancel_timer()
        url = httptools.parse_url(self._url)
        req = Request(
            method=self.parser.get_method().decode("ascii", "replace"),
            path=(url.path or b"/").decode("utf-8", "replace"),
            query_string=(url.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            remote=self.remote,
            keep_alive=self.parser.should_keep_alive(),
        )
        self.queue.put_nowait(req)
        if self.queue.qsize() >= MAX_PIPELINED and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()

    # -- timers ----------------------------------------------------------------------------
    # One deadline per connection (headers, body, keep-alive idle), kept as an attribute, and one
    # loop timer re-armed lazily. A request moves the deadline four times; cancelling and
    # creating a timer for each move was a measurable share of a small request's cost. The timer
    # is re-created only when the new deadline comes earlier than the time it is set for; when it
    # fires before the current deadline it is set again for that deadline; a cleared deadline
    # lets it lapse.
    def _set_deadline(self, when: float, expire, *args) -> None:
        self._deadline = (when, expire, args)
        if self._timer is None or when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self):
        """Clear the deadline (the timer, if set, lapses)."""
        self._deadline = None

    def _drop_timer(self):
        """Clear the deadline and cancel the timer (the connection is gone)."""
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self):
        self._timer = None
        d = self._deadline
        if d is None:
            return
        when, expire, args = d
        loop = asyncio.get_running_loop()
        # The deadline moved later since the timer was set (1 ms of slack: libuv's clock
        # ticks in milliseconds, a timer may fire a fraction early)
        if loop.time() + 0.001 < when:
            self._timer_at = when
            self._timer = loop.call_at(when, self._on_timer)
            return
        self._deadline = None
        expire(*args)

    def _arm_request_timer(self, seconds: float, what: str):
        """The request (headers, then body) must be complete ``seconds`` after it began."""
        self._set_deadline(self._started + seconds, self._timed_out, what)

    def _arm_idle_timer(self):
        self._set_deadline(self._loop.time() + self.cfg.keepalive_timeout, self._idle_timeout)

    def _timed_out(self, what: str):
        self.server.metrics.inc("http_request_timeouts_total")
        self._reject(HttpError(408, f"{what} not received in time"))

    def _idle_timeout(self):
        if not self._in_message and self.queue.empty() and self.transport is not None:
            self.transport.close()

    # -- answering -------------------------------------------------------------------------
    def _reject(self, err: HttpError):
        """A framing-level error: answer once (after queued answers) and close."""
        if self._rejected:
            return
        self._rejected = True
        self._cancel_timer()
        self.server.metrics.inc("http_requests_rejected_total", status=str(err.status))
        self.queue.put_nowait(err)

    async def _serve(self):
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if self.paused_reading and self.queue.qsize() < MAX_PIPELINED // 2 and not self.closing:
                self.paused_reading = False
                self.transport.resume_reading()
            if isinstance(item, HttpError):
                await self._send(Response.error(item.status, item.message), keep_alive=False)
                return
            t0 = time.perf_counter()
            try:
                resp = await self.server.router(item)
            except HttpError as e:
                resp = Response.error(e.status, e.message)
            except Exception:  # a bug: answer 500, log it, keep serving others
                log.exception("unhandled error serving %s %s", item.method, item.path)
                resp = Response.error(500, "internal error")
            self.server.metrics.observe_request(item.path, resp.status, time.perf_counter() - t0)
            if resp.websocket is not None:
                if resp.status == 101 and self._upgrade_buffer is not None and not self.closing:
                    if getattr(self.server, "stream_loop", None) is not None:
                        await self._hand_off(resp)
                    else:
                        await self._run_websocket(resp)
                    return
                if resp.on_abort is not None:
                    resp.on_abort()
                resp = Response.error(400, "a WebSocket answer needs an Upgrade: websocket request")
            keep = (item.keep_alive and not self.closing and not self.server.stopping
                    and self._upgrade_buffer is None)
            if (resp.stream is not None and item.method != "HEAD" and resp.status == 200
                    and getattr(resp.stream, "stream_loop", False) and getattr(self.server, "stream_loop", None) is not None):
                await self._hand_off(resp)
                return
            await self._send(resp, keep_alive=keep, head_only=item.method == "HEAD")
            if not keep:
                return
            if self.queue.empty() and not self._in_message:
                self._arm_idle_timer()

    async def _hand_off(self, resp: Response) -> None:
        """Give this connection to the stream loop (``StreamLoop``), which answers ``resp`` (an
        open stream or a WebSocket) from now on; this loop forgets the connection.

        The socket's fd is duplicated and our transport closed: libuv (and asyncio's selector)
        unregister and close only *their* fd, so the connection lives on in the duplicate, which
        the stream loop adopts. Reading is paused first so nothing more is read here; bytes
        already received after a WebSocket upgrade are passed along. Anything we wrote earlier
        on this connection must be flushed first, or the stream loop's bytes could overtake it.
        """
        while self.transport.get_write_buffer_size() and not self.closing:
            await self.can_write.wait()
            await asyncio.sleep(0.005)   # rare: a pipelined answer before the stream still sending
        pending = b"" if self._upgrade_buffer is None else bytes(self._upgrade_buffer)
        self._upgrade_buffer = None
        fd = -1
        if not self.closing:
            try:
                self.transport.pause_reading()
                sock = self.transport.get_extra_info("socket")
                fd = os.dup(sock.fileno())
            except (OSError, AttributeError, RuntimeError) as e:
                log.warning("could not hand a stream from %s to the stream loop: %s", self.remote, e)
                fd = -1
        if fd < 0:   # the client went away (or the socket is unusable): release the session
            await _release(resp)
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        self._handed_off = True
        self.closing = True
        self._drop_timer()
        self.server.connections.discard(self)
        self.transport.close()
        self.server.stream_loop.adopt(fd, resp, pending, self.remote)

    async def _run_websocket(self, resp: Response) -> None:
        self.transport.write(_head(resp, keep_alive=False))
        self._ws = WebSocketChannel(self)
        pending, self._upgrade_buffer = bytes(self._upgrade_buffer), None
        if pending:
            self._ws.feed(pending)
        self._streaming = True
        try:
            await resp.websocket(self._ws)
        finally:
            self._streaming = False
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    async def _send(self, resp: Response, keep_alive: bool, head_only: bool = False):
        """Write one response. ``head_only`` (a HEAD request): the GET answer's headers, its
        Content-Length included, and no body."""
        if self.closing or not await self._writable():
            aclose = getattr(resp.stream, "aclose", None)
            if aclose is not None:  # never started: let it release what it holds
                await aclose()
            return
        head = _head_lines(resp, keep_alive)
        if resp.stream is not None and head_only:
            aclose = getattr(resp.stream, "aclose", None)
            if aclose is not None:
                await aclose()
            resp = Response(resp.status, b"", resp.content_type, resp.headers)
        if resp.stream is not None:
            head.append("Transfer-Encoding: chunked")
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            self._streaming = True
            try:
                await _write_chunks(self, resp.stream)
            finally:
                self._streaming = False
                aclose = getattr(resp.stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            if not self.closing:
                self.transport.write(b"0\r\n\r\n")
        else:
            if resp.status != 204 and resp.status != 304:
                head.append(f"Content-Length: {len(resp.body)}")
            body = b"" if head_only else resp.body
            self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if not keep_alive and not self.closing:
            self.closing = True
            if self._rejected and self.transport.can_write_eof():
                # Lingering close: the client may still be sending the body we refused (e.g. a
                # 413). Closing now would reset the connection before it reads our answer, so
                # half-close, discard what still arrives, and close a little later.
                self.transport.write_eof()
                asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)
            else:
                self.transport.close()

    async def _writable(self) -> bool:
        await self.can_write.wait()
        return not self.closing


class RequestQueue:
    """The parsed requests of one connection, in order, for its worker task.

    What ``asyncio.Queue`` did here, without its generality (one consumer, no bound, no join):
    a request arriving while the worker waits wakes it through one future. asyncio.Queue's
    get/put and its loop-binding checks were a few per cent of a small query's time."""

    __slots__ = ("_items", "_waiter")

    def __init__(self):
        self._items = deque()
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        self._items.append(item)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    async def get(self):
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


async def _write_chunks(conn, stream) -> None:
    """Write an answer's stream as HTTP chunks (not the final empty one) until it ends or the
    connection closes, waiting for the client to drain after each chunk. ``conn`` has
    ``transport``, ``closing`` and ``can_write`` (the request loop's and the stream loop's
    connections both do)."""
    async for chunk in stream:
        if conn.closing:
            break
        if chunk:
            conn.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await conn.can_write.wait()


_date_cache = (0, "")


def _http_date() -> str:
    """The Date header's value, formatted once per second (every answer carries one; the
    pair is replaced whole, so the stream loop's thread never sees half of it)."""
    global _date_cache
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _head_lines(resp: Response, keep_alive: bool) -> list[str]:
    if resp.status == 101:   # a WebSocket upgrade: its own headers only
        return [f"HTTP/1.1 101 {REASONS[101]}", f"Date: {_http_date()}"] + \
            [f"{k}: {v}" for k, v in resp.headers]
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}",
            f"X-Influxdb-Version: {VERSION_HEADER}",
            "X-Influxdb-Build: OSS",
            f"Date: {_http_date()}"]
    if resp.content_type:
        head.append(f"Content-Type: {resp.content_type}")
    for k, v in resp.headers:
        head.append(f"{k}: {v}")
    if not keep_alive:
        head.append("Connection: close")
    return head


def _head(resp: Response, keep_alive: bool) -> bytes:
    """The head of an answer; a stream's says chunked."""
    head = _head_lines(resp, keep_alive)
    if resp.stream is not None:
        head.append("Transfer-Encoding: chunked")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


async def _release(resp: Response) -> None:
    """An answer that will never be sent: let its stream / WebSocket session go."""
    aclose = getattr(resp.stream, "aclose", None)
    if aclose is not None:
        await aclose()
    if resp.on_abort is not None:
        resp.on_abort()


def websocket_handshake_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """The 101 answer's headers for a WebSocket opening handshake (RFC 6455 section 4.2), or
    HttpError 400 naming what is wrong with the request. No extensions, no subprotocols."""
    key = headers.get("sec-websocket-key", "").strip()
    if not key:
        raise HttpError(400, "WebSocket handshake without Sec-WebSocket-Key")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HttpError(400, "unsupported Sec-WebSocket-Version: expected 13")
    if "upgrade" not in headers.get("connection", "").lower():
        raise HttpError(400, "WebSocket handshake without Connection: Upgrade")
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", generate_accept_token(key.encode("latin-1")).decode("ascii"))]


class WebSocketChannel:
    """The server end of an upgraded connection, as the handler sees it.

    ``wsproto`` does all framing (masking, fragmentation, control frames, close handshake); this
    class feeds it the bytes that arrive and writes the bytes it produces. Pings from the client
    are answered; a client's close is answered and ends the channel. Messages from the client
    are read and ignored: streams are one-way. Writes wait while the transport is paused.
    """

    def __init__(self, proto: HttpProtocol):
        self.proto = proto
        self.conn = WsConnection(ConnectionType.SERVER)
        self.closed = False
        self.close_code: int | None = None  # the client's, when it closed first

    def _write(self, data: bytes) -> None:
        t = self.proto.transport
        if data and t is not None and not t.is_closing():
            t.write(data)

    def feed(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
            events = list(self.conn.events())
        except RemoteProtocolError as e:
            log.info("websocket protocol error from %s: %s", self.proto.remote, e)
            self.closed = True
            if self.conn.state not in (ConnectionState.CLOSED, ConnectionState.LOCAL_CLOSING):
                self._write(self.conn.send(CloseConnection(1002, "protocol error")))
            self.proto.transport.close()
            return
        for ev in events:
            if isinstance(ev, Ping):
                self._write(self.conn.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                self.close_code = ev.code
                if self.conn.state is ConnectionState.REMOTE_CLOSING:
                    self._write(self.conn.send(ev.response()))
                self.closed = True
                self.proto.transport.close()
            elif isinstance(ev, (TextMessage, BytesMessage)):
                pass

    async def send_text(self, text: bytes | str) -> None:
        if self.closed or not await self.proto._writable():
            self.closed = True
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        self._write(self.conn.send(Message(data=text)))

    async def ping(self) -> None:
        if not self.closed and await self.proto._writable():
            self._write(self.conn.send(Ping(b"heartbeat")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed and self.conn.state is ConnectionState.OPEN:
            self._write(self.conn.send(CloseConnection(code, reason)))
        self.closed = True


# -- the stream loop ------------------------------------------------------------------------------

class StreamLoop:
    """A second event loop, on its own thread, that serves every open stream.

    Why: a stream tick (slicing, formatting, encoding and writing the events of ~100 streams)
    takes milliseconds of Python; on the request loop, /write and /query requests waited behind
    every tick, and writers that send one request at a time per connection lost that time as
    throughput. Here the request loop parses and checks a stream request, answers its errors,
    subscribes, then hands the connection over (``HttpProtocol._hand_off``: a duplicated fd) and
    forgets it; this loop writes the response head and the stream until it ends. The bus hands
    published batches straight to this loop (subscriptions are made with ``loop=self.loop``).

    Thread rules: ``adopt``, ``call`` and ``stop`` may be called from any thread; everything else
    runs on this loop's thread.
    """

    def __init__(self, name: str = "chronosdb-streams"):
        try:
            import uvloop
            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self.connections: set[StreamConnection] = set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def call(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the stream loop (now, if already on it). A stopped loop ignores it."""
        if self.on_loop():
            fn(*args)
            return
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:   # closed: nothing left to act on
            pass

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def adopt(self, fd: int, resp: Response, pending: bytes, remote: str) -> None:
        """Serve ``resp`` on the connection whose (duplicated) fd is ``fd``; we own the fd now."""
        try:
            self.loop.call_soon_threadsafe(self._start_adopt, fd, resp, pending, remote)
        except RuntimeError:
            os.close(fd)

    def _start_adopt(self, fd, resp, pending, remote) -> None:
        self.loop.create_task(self._adopt(fd, resp, pending, remote))

    async def _adopt(self, fd, resp, pending, remote) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            await _release(resp)
            return
        try:
            await self.loop.connect_accepted_socket(
                lambda: StreamConnection(self, resp, pending, remote), sock)
        except Exception:
            log.exception("could not adopt a stream connection from %s", remote)
            sock.close()
            await _release(resp)

    async def stop(self, grace: float = 5.0) -> None:
        """(From another loop.) Let the streams end (they were told to: revoked), wait up to
        ``grace`` seconds for them, close what is left, stop the loop and join its thread."""
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._close_all(grace), self.loop)
        try:
            await asyncio.wrap_future(fut)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)

    async def _close_all(self, grace: float) -> None:
        tasks = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
            if c.task is not None:
                c.task.cancel()
        rest = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        if rest:
            await asyncio.wait(rest, timeout=1.0)


class StreamConnection(asyncio.Protocol):
    """One handed-over connection on the stream loop: writes the head, then the stream (chunked,
    each chunk waiting for the transport to drain) or runs the WebSocket; then closes. The
    connection is not reused afterwards (the head says ``Connection: close``). The client going
    away cancels the serving task, which ends the stream."""

    def __init__(self, owner: StreamLoop, resp: Response, pending: bytes, remote: str):
        self.owner, self.resp, self.pending, self.remote = owner, resp, pending, remote
        self.transport = None
        self.task: asyncio.Task | None = None
        self.closing = False
        self.can_write = asyncio.Event()
        self.can_write.set()
        self._ws: WebSocketChannel | None = None
        self._released = False

    def connection_made(self, transport):
        self.transport = transport
        self.owner.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        # A task cancelled before it ever ran (the client left at once) runs none of _serve's
        # cleanup: release the session from here then.
        self.task.add_done_callback(self._task_done)

    def _task_done(self, _task) -> None:
        if not self._released:
            asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        if not self._released:
            self._released = True
            await _release(self.resp)

    def connection_lost(self, exc):
        self.closing = True
        self.can_write.set()
        self.owner.connections.discard(self)
        if self._ws is not None:
            self._ws.closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self):
        self.can_write.clear()
        if self.resp.on_flow is not None:
            self.resp.on_flow(True)

    def resume_writing(self):
        self.can_write.set()
        if self.resp.on_flow is not None:
            self.resp.on_flow(False)

    def data_received(self, data: bytes):
        if self._ws is not None:
            self._ws.feed(data)
        # an SSE client has nothing more to say; what it sends is ignored

    async def _writable(self) -> bool:
        await self.can_write.wait()
        return not self.closing

    def write_chunk_now(self, pieces: list) -> bool:
        """Write one chunk of the stream now — the bytes ``pieces`` end to end — from outside
        its serving task, if the connection takes data without waiting (open, below the
        transport's high-water mark); False when it wrote nothing. The pieces go out as they
        are (one gathered write), not joined into one copy first. The serving task must be
        waiting for the stream's next chunk (between chunks), as a paced stream waiting for its
        tick is."""
        t = self.transport
        if self.closing or t is None or not self.can_write.is_set() or t.is_closing():
            return False
        t.writelines([b"%x\r\n" % sum(map(len, pieces)), *pieces, b"\r\n"])
        return True

    async def _serve(self) -> None:
        resp = self.resp
        try:
            self.transport.write(_head(resp, keep_alive=False))
            if resp.websocket is not None:
                self._ws = WebSocketChannel(self)
                if self.pending:
                    self._ws.feed(self.pending)
                await resp.websocket(self._ws)
                return
            attach = getattr(resp.stream, "attach_writer", None)
            if attach is not None:
                attach(self.write_chunk_now)
            try:
                await _write_chunks(self, resp.stream)
            finally:
                await self._release()
            if not self.closing:
                self.transport.write(b"0\r\n\r\n")
        finally:
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            await self._release()   # a WebSocket session that ended or was cancelled
