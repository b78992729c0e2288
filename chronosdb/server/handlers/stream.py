"""``/stream`` (Server-Sent Events) and ``/ws/stream`` (WebSocket): streaming SELECTs.

A request is checked completely before the stream starts — key (read on the database), database
and policy exist, the query parses and is streamable — so every refusal is an ordinary JSON 4xx.
Then a ``StreamSession`` subscribes to the bus *before* anything is answered (no write accepted
after the 200 is missed), optionally replays history or the points after ``Last-Event-ID`` from
storage, and turns the subscription's batches into events. The pure parts (what a batch gives,
which windows are due) are in ``chronosdb.pubsub.streaming``; this module is the I/O edge.

Threads and processes: the checks happen on the request loop. In ``chronosdb serve`` the
checked request (``check_stream`` -> ``StreamRequest``) and the connection then go to the stream
process (``server.streamproc``), which builds the session there, on its own bus and stream loop;
its storage queries come back here (``run_stream_statement``). With ``stream-process = false``
the session is made here and runs on the server's *stream loop* (``protocol.StreamLoop``, its own
thread), which the HTTP layer hands the connection to; the subscription is made with that loop
so the bus delivers there. Either way ``revoke`` and ``close``, which other threads call (key
changes, shutdown), hop to the session's loop.

Coalescing: a session takes everything queued for it at each wake-up, and a raw stream receiving
more than ``CHRONOSDB_STREAM_PACE_ABOVE`` points/s (default 2000) waits for the next tick of a
``CHRONOSDB_STREAM_PACE_MS`` grid (default 50) first; the batches taken become one ``points``
event (``raw_series_many``: one entry per series). So a busy stream costs at most ~20 events a
second however fast the writes come, while a quiet stream's points go out at once. The event is formatted and encoded
once per (batches taken, query, epoch), shared by the sessions of an equal query (``_SHARED``).

Event framing: SSE ``id:``/``event:``/``data:`` blocks, or one WebSocket text message
``{"event", "id", "data"}`` per event. Idle streams get a heartbeat (an SSE comment, a WebSocket
ping) every ``CHRONOSDB_STREAM_HEARTBEAT`` seconds (default 15). A session whose key is revoked
(``Server.on_keys_changed``) gets an ``error`` event and is closed. See docs/streaming.md.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from chronosdb.auth.authorizer import Principal, credentials_from
from chronosdb.ext import resultenc
from chronosdb.model.errors import BadRequest, ChronosError
from chronosdb.pubsub import SubscriptionClosed
from chronosdb.pubsub.matcher import KeyInfo, MatchedBatch, MatchedRun
from chronosdb.pubsub.streaming import (DEFAULT_GRACE_NS, WindowTracker, bounded, combined_rows,
                                        compile_stream, max_time, one_series_events,
                                        one_series_spec, raw_series_many)
from chronosdb.query import statements
from chronosdb.query.influxql import ParseError, parse
from chronosdb.query.results import EPOCHS, StatementResult
from chronosdb.server.handlers.query import StatementAuth
from chronosdb.server.http.messages import HttpError, Response

log = logging.getLogger("chronosdb.stream")

HEARTBEAT_SECONDS = float(os.environ.get("CHRONOSDB_STREAM_HEARTBEAT", "15"))
GRACE_NS = int(float(os.environ.get("CHRONOSDB_STREAM_GRACE", str(DEFAULT_GRACE_NS / 1e9))) * 1e9)
# Per-subscriber queue bound, in points (see pubsub.broker): 100k points is a few MB at most.
QUEUE_POINTS = int(os.environ.get("CHRONOSDB_STREAM_QUEUE_POINTS", "100000"))
# Batches at least this large are turned into rows on a worker thread, not on the event loop.
OFFLOAD_POINTS = 20_000
# Coalescing (see StreamSession._events): a raw stream receiving more than PACE_ABOVE_POINTS
# points/s sends at most one points event per PACE_SECONDS (on a grid shared by all streams);
# whatever arrives meanwhile goes into that event. Quieter streams send each batch at once, so
# their delivery latency is untouched; a busy stream's latency is up to PACE_SECONDS more.
PACE_SECONDS = float(os.environ.get("CHRONOSDB_STREAM_PACE_MS", "50")) / 1000
PACE_ABOVE_POINTS = float(os.environ.get("CHRONOSDB_STREAM_PACE_ABOVE", "2000"))
# Running values of an open window are recomputed at most this often (partial=true).
PARTIAL_MIN_SECONDS = 0.25

_PREFIX = b'{"results":[{"statement_id":0,'
# Subscribers with an equal query get the *same* matched batch object from the bus; the rows
# event formatted and encoded for one of them from some batches is reused by the others
# (keyed by object identity; each entry keeps its objects alive so an id cannot be reused
# meanwhile). Recent entries only.
_SHARED: dict = {}
_SHARED_LIMIT = 16
_SUFFIX = b"]}\n"


def encode_data(series, epoch) -> bytes:
    """``{"series":[...]}`` for one event, by the same encoder /query uses."""
    doc = resultenc.encode_results([StatementResult(0, series)], epoch)
    if not doc.startswith(_PREFIX):  # no series: {"results":[{"statement_id":0}]}
        return b'{"series":[]}'
    return b"{" + doc[len(_PREFIX):-len(_SUFFIX)]


class _Ticker:
    """The pace grid of one event loop. A paced session waits here (``wait``) instead of
    sleeping on its own: at each tick one callback drains the queue of every waiting session,
    at the same instant, so sessions fed the same batches take the same set (their rows are
    combined once, ``streaming.combined_rows``, and equal queries share one event). Sessions
    that slept separately woke one after another, batches kept arriving in between, every
    session took a different set, and each combined its own.

    The tick also writes, in one pass, the events of every session that follows one series
    (``streaming.one_series_events``): such a session gets its event ready-made; the others get
    what they took and format it themselves."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.waiting: list = []
        self.handle = None
        self.hooks: list = []           # run once at the start of the next tick (before_tick)

    def wait(self, session, taken: list) -> asyncio.Future:
        """A future of ("event", StreamEvent | None) or ("items", items taken): ``taken`` plus
        what ``session.sub.drain()`` gives at the next tick (or its SubscriptionClosed)."""
        fut = self.loop.create_future()
        self.waiting.append((session, taken, fut))
        session.sub.tick_fed = True     # the bus may hold its batches for the tick
        self._arm()
        return fut

    def before_tick(self, fn) -> None:
        """Call ``fn()`` at the start of the next tick, before the held batches are released
        (the stream process reads its channel there while every reader waits for the tick)."""
        self.hooks.append(fn)
        self._arm()

    def _arm(self) -> None:
        """Set the callback for the next tick of the grid, unless it is set."""
        if self.handle is None:
            self.handle = self.loop.call_later(PACE_SECONDS - time.time() % PACE_SECONDS, self._tick)

    def _tick(self) -> None:
        self.handle = None
        hooks, self.hooks = self.hooks, []
        for fn in hooks:
            try:
                fn()
            except Exception:
                log.exception("stream tick: a hook failed")
        waiting, self.waiting = self.waiting, []
        buses = {}
        for session, _taken, _fut in waiting:
            buses[id(session.sub.bus)] = session.sub.bus
        for bus in buses.values():  # the batches held for this tick, into the queues
            bus.release(self.loop)
        entries = []
        for session, taken, fut in waiting:
            if fut.done():          # the session went away meanwhile
                session.sub.tick_fed = False
                continue
            try:
                # the points of what the drain takes: the queue keeps their sum
                session._rate_points += session.sub.queued_points
                entries.append((session, taken + session.sub.drain(), fut))
            except SubscriptionClosed as e:
                session.sub.tick_fed = False
                fut.set_exception(e)
        try:
            ready = _one_series_events(entries)
        except Exception:           # never strand the sessions: they format on their own
            log.exception("stream tick: bulk formatting failed")
            ready = {}
        again = []
        for session, items, fut in entries:
            ev = ready.get(id(session), _NOT_READY)
            if ev is not _NOT_READY and ev is not None and session.direct is not None \
                    and not session.revoked and session.direct(ev.sse_pieces()):
                # Written here, as the session would have written it; the session stays
                # waiting for the next tick without its coroutine (and the generators
                # between it and the connection) running for this event.
                session.last_sent = time.monotonic()
                again.append((session, [], fut))
                continue
            session.sub.tick_fed = False
            fut.set_result(("items", items) if ev is _NOT_READY else ("event", ev))
        if again:
            self.waiting.extend(again)
            self._arm()


_NOT_READY = object()


def _one_series_events(entries) -> dict:
    """{id(session): StreamEvent or None (no row)} for the sessions of a tick whose event
    ``streaming.one_series_events`` writes: live parts only (no resume catch-up, no drop
    notice), a stream it can serve, sessions grouped by the batches they took."""
    groups: dict[tuple, tuple] = {}
    for session, items, _fut in entries:
        if session.one_series is None or session.catch_up_batches > 0 or not items:
            continue
        shareds = _shareds_of(items)
        if shareds is None:
            continue
        ids = tuple(map(id, shareds))
        if len(set(ids)) != len(ids):
            continue
        groups.setdefault(ids, (shareds, []))[1].append(session)
    ready: dict = {}
    for shareds, sessions in groups.values():
        comb = combined_rows(shareds)
        res = one_series_events(comb, [(s.plan, s.one_series, s.epoch, s.heads) for s in sessions])
        n = 0
        for s, r in zip(sessions, res):
            if r is False:
                continue
            ready[id(s)] = None if r is None else s._advance(r[1], r[0], counted=True)
            n += r is not None
        if n:
            sessions[0].server.metrics.inc("stream_events_total", n, how="tick")
    return ready


def _shareds_of(items) -> tuple | None:
    """The published batches of a drain's items, in order, when they all are live parts from
    the bus (``MatchedBatch``, or a tick's ``MatchedRun``); None otherwise."""
    out: list = []
    for k, p in items:
        if k != "batch":
            return None
        if isinstance(p, MatchedBatch):
            out.append(p.shared)
        elif isinstance(p, MatchedRun):
            out.extend(p.shareds)
        else:
            return None
    return tuple(out)


_TICKERS: dict = {}


def pace_ticker(loop) -> _Ticker:
    """The pace ticker of ``loop`` (one per event loop; the stream process registers its
    channel reads on it)."""
    t = _TICKERS.get(loop)
    if t is None:
        t = _TICKERS[loop] = _Ticker(loop)
        if len(_TICKERS) > 8:       # loops of finished servers (tests start many)
            for old in [lp for lp in _TICKERS if lp.is_closed()]:
                del _TICKERS[old]
    return t


def _remember(key, value) -> None:
    if len(_SHARED) >= _SHARED_LIMIT:
        _SHARED.pop(next(iter(_SHARED)))
    _SHARED[key] = value


class StreamEvent:
    __slots__ = ("kind", "id", "data")

    def __init__(self, kind: str, id: str | None, data: bytes):
        self.kind, self.id, self.data = kind, id, data

    def sse(self) -> bytes:
        return b"".join(self.sse_pieces())

    def sse_pieces(self) -> list:
        """The SSE block in pieces (the data not copied): what ``sse`` joins."""
        if self.kind == "heartbeat":
            return [b": heartbeat\n\n"]
        head = f"id: {self.id}\n" if self.id is not None else ""
        return [f"{head}event: {self.kind}\ndata: ".encode(), self.data, b"\n\n"]

    def ws(self) -> bytes:
        ident = b"null" if self.id is None else b'"' + self.id.encode() + b'"'
        return b'{"event":"' + self.kind.encode() + b'","id":' + ident + b',"data":' + self.data + b"}"


def _error_event(message: str) -> StreamEvent:
    import orjson
    return StreamEvent("error", None, orjson.dumps({"error": message}))


class StreamSession:
    """One open stream: its subscription, cursor and windows. Iterate ``events()``."""

    def __init__(self, server, plan, principal: Principal, key: str | None, epoch, history: bool,
                 partial: bool, resume_after: int | None):
        self.server, self.plan, self.principal, self.key = server, plan, principal, key
        self.epoch, self.history, self.partial = epoch, history, partial
        self.cursor = resume_after
        self.query_text = plan.stmt  # equal statements share encoded rows (see _SHARED)
        self.resume = resume_after is not None
        self._rate_since, self._rate_points, self._rate_busy = time.monotonic(), 0, False
        self.keys = KeyInfo()
        self.one_series = one_series_spec(plan)   # None: its ticks are always formatted here
        self.heads: dict = {}                      # one_series_events' series heads, per key
        self.catch_up_batches = 0                  # queued batches that may repeat a resume
        self.sid = None                   # the stream process's number for it (streamproc)
        # Set by the connection serving the stream when it can take an SSE chunk outside the
        # session's coroutine (``write_chunk_now``): a pace tick then writes this session's
        # event itself and keeps it waiting for the next tick (see _Ticker).
        self.direct = None
        self.last_sent = time.monotonic()  # when an event or heartbeat last went out
        self.revoked: str | None = None
        self.shutting_down = False        # ended by shutdown (WebSocket close 1001, not 1008)
        self.tracker = WindowTracker(plan.interval, plan.offset, GRACE_NS) if plan.kind == "window" else None
        # With a stream loop (server started), the session runs there: the bus hands batches
        # to that loop, and only its thread touches the subscription.
        self.stream_loop = getattr(server, "stream_loop", None)
        self.sub = server.bus.subscribe(plan.filter, max_points=QUEUE_POINTS, overflow="notify",
                                        loop=self.stream_loop.loop if self.stream_loop else None)
        server.streams.add(self)
        server.metrics.inc("streams_opened_total")

    # -- control ------------------------------------------------------------------------------
    def still_authorized(self) -> bool:
        return key_authorizes(self.server, self.key, self.plan.db)

    def revoke(self, reason: str) -> None:
        """End the stream with an ``error`` event. Any thread: the work hops to the session's
        loop (the subscription's waiter belongs to it)."""
        self._on_loop(self._revoke, reason)

    def _revoke(self, reason: str) -> None:
        self.revoked = reason
        self.sub.close(reason)

    def flow(self, paused: bool) -> None:
        """The client stopped (True) or resumed (False) taking data: while it is stalled its
        queue keeps copies of its parts, not whole published batches (see pubsub.broker)."""
        self.sub.stalled = paused

    def close(self) -> None:
        self.server.streams.discard(self)
        self._on_loop(self.sub.close, "stream closed")
        closed = getattr(self.server, "session_closed", None)   # the stream process tells the server
        if closed is not None:
            closed(self)

    def _on_loop(self, fn, *args) -> None:
        if self.stream_loop is None:
            fn(*args)
        else:
            self.stream_loop.call(fn, *args)

    # -- queries through the ordinary executor -------------------------------------------------
    async def _run(self, after: int | None = None, start: int | None = None, end: int | None = None):
        """The stream's statement, bounded (``streaming.bounded``), answered from storage. In
        the stream process the server runs it (``ChildServer.stream_query``)."""
        remote = getattr(self.server, "stream_query", None)
        if remote is not None:
            return await remote(self, after, start, end)
        return await run_stream_statement(self.server, self.plan, self.principal, after, start, end)

    def _event(self, kind: str, series, ident: int | None) -> StreamEvent:
        return StreamEvent(kind, None if ident is None else str(ident), encode_data(series, self.epoch))

    def _busy(self, items) -> bool:
        """Is this stream receiving more than PACE_ABOVE_POINTS points/s (measured over
        quarter-second spans)? Only busy streams are paced, so a quiet stream's points go out
        at once. The rate counts every batch taken: those ``items`` and those a pace tick
        drained (counted there)."""
        now = time.monotonic()
        self._rate_points += sum(p.n_values for k, p in items if k == "batch")
        span = now - self._rate_since
        if span >= 0.25:
            self._rate_busy = self._rate_points / span > PACE_ABOVE_POINTS
            self._rate_since, self._rate_points = now, 0
        return self._rate_busy or self._rate_points > PACE_ABOVE_POINTS * 0.25

    async def _points_event(self, taken: list) -> StreamEvent | None:
        """One points event for the batches taken at one wake-up ((batch, after) pairs), or
        None when they give no rows. Formatted in one ``raw_series_many`` pass; sessions of an
        equal query usually take the same batches together and share the result (``_SHARED``,
        not when a resume cursor applies). While one session computes it, the others wait for
        its result instead of computing it too."""
        key = fut = None
        if all(after is None for _b, after in taken):
            key = (tuple(id(b) for b, _a in taken), self.query_text, self.epoch)
            hit = _SHARED.get(key)
            if hit is not None and all(x is y for x, (y, _a) in zip(hit[0], taken)):
                res = hit[1]
                if isinstance(res, asyncio.Future):
                    res = await asyncio.shield(res)
                if res is not None:             # None: the computing session went away
                    return self._advance(*res)
            else:
                fut = asyncio.get_running_loop().create_future()
                _remember(key, (tuple(b for b, _a in taken), fut))
        res = None
        try:
            if sum(b.n_values for b, _a in taken) >= OFFLOAD_POINTS:
                series = await self.server.run_blocking(raw_series_many, self.plan, taken, self.keys)
            else:
                series = raw_series_many(self.plan, taken, self.keys)
            res = (max_time(series), encode_data(series, self.epoch) if series else None)
        finally:
            if fut is not None:
                fut.set_result(res)
                if res is not None and _SHARED.get(key, (None, None))[1] is fut:
                    _SHARED[key] = (tuple(b for b, _a in taken), res)
        return self._advance(*res)

    def _advance(self, t, data, counted: bool = False) -> StreamEvent | None:
        if data is None:
            return None
        if not counted:
            self.server.metrics.inc("stream_events_total", how="stream")
        self.cursor = t if self.cursor is None else max(self.cursor, t)
        return StreamEvent("points", str(self.cursor), data)

    # -- the event source ---------------------------------------------------------------------
    async def events(self):
        try:
            async for ev in self._events():
                yield ev
        except ChronosError as e:
            yield _error_event(str(e))
        finally:
            self.close()

    async def _events(self):
        plan = self.plan
        if self.resume or self.history:
            if plan.kind == "raw":
                series = await self._run(after=self.cursor)
                t = max_time(series)
                if t is not None:
                    self.cursor = t if self.cursor is None else max(self.cursor, t)
                kind = "points" if self.resume else "history"
                for s in series:
                    yield self._event(kind, [s], self.cursor)
            else:
                now = time.time_ns()
                closed_end = self.tracker.start_of(now - GRACE_NS)
                if self.resume:
                    start = self.cursor + plan.interval
                    if start < closed_end:
                        series = await self._run(start=start, end=closed_end)
                        if series:
                            self.cursor = closed_end - plan.interval
                            yield self._event("window", series, self.cursor)
                else:
                    series = await self._run()
                    if series:
                        yield self._event("history", series, None)
            # Batches queued while storage was read may hold points that answer already had.
            self.catch_up_batches = len(self.sub._queue)
        if self.tracker is not None:
            # The open window (and one still in its grace) may hold points written before we
            # subscribed: make sure they are emitted when they close.
            now = time.time_ns()
            self.tracker.dirty.update({self.tracker.start_of(now), self.tracker.start_of(now - GRACE_NS)})
            if self.cursor is not None:
                self.tracker.dirty = {s for s in self.tracker.dirty if s > self.cursor}
        # Windows at or before this were answered by the resume above; later ones come live
        # (a window may come again, recomputed, if points for it arrive after it was sent).
        resumed_through = self.cursor if plan.kind == "window" else None
        self.last_sent = time.monotonic()
        last_partial = 0.0
        partial_dirty = False
        while True:
            if self.revoked:
                yield _error_event(self.revoked)
                return
            timeout = HEARTBEAT_SECONDS - (time.monotonic() - self.last_sent)
            if self.tracker is not None:
                dl = self.tracker.next_deadline()
                if dl is not None:
                    timeout = min(timeout, (dl - time.time_ns()) / 1e9)
                if partial_dirty:
                    timeout = min(timeout, PARTIAL_MIN_SECONDS - (time.monotonic() - last_partial))
            try:
                items = await self.sub.get_many(max(timeout, 0.0))
                if items and plan.kind == "raw" and self._busy(items) and PACE_SECONDS > 0:
                    # Coalescing under load: wait for the next tick of the PACE_SECONDS grid
                    # and take everything queued by then as one event. The tick drains every
                    # paced stream at once (_Ticker), so streams take the same batches: their
                    # rows are combined once (streaming.combined_rows) and sessions of an
                    # equal query share one formatted event (_SHARED).
                    kind, got = await pace_ticker(asyncio.get_running_loop()).wait(self, items)
                    if kind == "event":
                        if got is not None:
                            yield got
                            self.last_sent = time.monotonic()
                        elif time.monotonic() - self.last_sent >= HEARTBEAT_SECONDS:
                            yield StreamEvent("heartbeat", None, b"")
                            self.last_sent = time.monotonic()
                        continue
                    items = got
            except SubscriptionClosed as e:
                yield _error_event(self.revoked or e.reason)
                return
            taken: list = []            # (batch, after) of the raw batches taken, in order
            for kind, payload in items:
                if kind == "dropped":
                    if taken:
                        ev = await self._points_event(taken)
                        taken = []
                        if ev is not None:
                            yield ev
                    yield StreamEvent("dropped", None, b'{"missed":%d}' % payload)
                    self.last_sent = time.monotonic()
                elif plan.kind == "raw":
                    after = self.cursor if self.catch_up_batches > 0 else None
                    taken.extend((part, after) for part in _parts(payload))
                    self.catch_up_batches = max(0, self.catch_up_batches - 1)
                else:
                    for part in _parts(payload):
                        self.tracker.touch_batch(part)
                    partial_dirty = self.partial
            if taken:
                ev = await self._points_event(taken)
                if ev is not None:
                    yield ev
                    self.last_sent = time.monotonic()
            if self.tracker is not None:
                for start in self.tracker.due(time.time_ns()):
                    if resumed_through is not None and start <= resumed_through:
                        continue
                    series = await self._run(start=start, end=start + plan.interval)
                    if series:
                        self.cursor = start if self.cursor is None else max(self.cursor, start)
                        yield self._event("window", series, self.cursor)
                        self.last_sent = time.monotonic()
                if partial_dirty and time.monotonic() - last_partial >= PARTIAL_MIN_SECONDS:
                    partial_dirty = False
                    last_partial = time.monotonic()
                    for start in self.tracker.open_windows(time.time_ns()):
                        series = await self._run(start=start, end=start + plan.interval)
                        if series:
                            yield self._event("partial", series, None)
                            self.last_sent = time.monotonic()
            if time.monotonic() - self.last_sent >= HEARTBEAT_SECONDS:
                yield StreamEvent("heartbeat", None, b"")
                self.last_sent = time.monotonic()


def _parts(batch) -> list:
    """A queued item's batches: a tick's ``MatchedRun`` is the parts of several."""
    return batch.parts() if isinstance(batch, MatchedRun) else [batch]


class _SseBody:
    """The chunked body of an SSE answer. ``aclose`` ends the session even if never iterated.
    ``stream_loop``: the HTTP layer serves it on the stream loop (``protocol.StreamLoop``)."""

    stream_loop = True

    def __init__(self, session: StreamSession):
        self.session = session
        self._gen = None

    def __aiter__(self):
        self._gen = self._chunks()
        return self._gen

    async def _chunks(self):
        yield b": stream open\n\n"  # lets clients and proxies see the stream start at once
        async for ev in self.session.events():
            yield ev.sse()
            if ev.kind == "error":
                return

    def attach_writer(self, write_chunk_now) -> None:
        """The connection's ``write_chunk_now(pieces) -> bool``, for the pace tick (_Ticker)."""
        self.session.direct = write_chunk_now

    async def aclose(self):
        if self._gen is not None:
            await self._gen.aclose()
        self.session.close()


def _bool_param(params, name: str) -> bool:
    v = params.get(name, "").lower()
    if v in ("", "false", "0"):
        return False
    if v in ("true", "1"):
        return True
    raise BadRequest(f'invalid {name} "{params[name]}": expected true or false')


class StreamRequest:
    """A stream request that passed every check (``check_stream``): what a session is made of,
    here or in the stream process (which compiles ``q`` again with the same field names and
    clock, and gets the rest as they are)."""

    __slots__ = ("q", "plan", "rp", "principal", "key", "epoch", "history", "partial", "resume",
                 "fields", "now")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def check_stream(server, req) -> StreamRequest:
    """Check everything a stream needs; raises the 4xx errors."""
    if req.method != "GET":
        raise HttpError(405, "streams require GET")
    params = req.params
    principal = server.authenticate(req)
    db = params.get("db", "")
    if not db:
        raise BadRequest('missing required parameter "db"')
    server.authorizer.require(principal, "read", db)
    rp = params.get("rp") or None
    server.engine.catalog.policy(db, rp)  # 404 for an unknown database or policy
    q = params.get("q", "")
    if not q.strip():
        raise BadRequest('missing required parameter "q"')
    epoch = params.get("epoch") or None
    if epoch is not None and epoch not in EPOCHS:
        raise BadRequest(f'invalid epoch "{epoch}": expected one of ns, u, ms, s, m, h')
    try:
        stmts = parse(q)
    except ParseError as e:
        raise BadRequest(f"error parsing query: {e}") from None
    history, partial = _bool_param(params, "history"), _bool_param(params, "partial")
    last = req.headers.get("last-event-id") or params.get("last_event_id")
    resume = None
    if last:
        try:
            resume = int(last.strip())
        except ValueError:
            raise BadRequest(f'invalid Last-Event-ID "{last[:64]}": expected the id of an event '
                             f'this server sent') from None
    index = server.engine.index(db)
    fields: dict[bytes, list[str]] = {}

    def field_names(meas: bytes):   # recorded: the stream process compiles with the same names
        fields[meas] = [f.decode("utf-8", "replace") for f in index.field_types(meas)]
        return fields[meas]

    now = time.time_ns()
    plan = compile_stream(stmts, db, rp, field_names, now)
    return StreamRequest(q=q, plan=plan, rp=rp, principal=principal,
                         key=credentials_from(req.headers, params), epoch=epoch, history=history,
                         partial=partial, resume=resume, fields=fields, now=now)


def open_session(server, req) -> StreamSession:
    """Check everything a stream needs and subscribe; raises the 4xx errors."""
    r = check_stream(server, req)
    return StreamSession(server, r.plan, r.principal, r.key, r.epoch, r.history, r.partial, r.resume)


def key_authorizes(server, key: str | None, db: str) -> bool:
    """Does ``key`` (still) give read access to ``db``? (Always, with auth off.)"""
    if not server.authorizer.enabled:
        return True
    info = server.keys.verify(key) if key else None
    return info is not None and Principal.from_key(info).can("read", db)


async def run_stream_statement(server, plan, principal, after=None, start=None, end=None):
    """A stream's statement, bounded, through the ordinary executor: its series, or
    BadRequest with the statement's error."""
    stmt = plan.stmt if after is None and start is None and end is None else \
        bounded(plan.stmt, after=after, start=start, end=end)
    ctx = statements.QueryContext(server.engine, plan.db, plan.rp, StatementAuth(server, principal),
                                  limits=server.query_limits)
    res = (await server.run_blocking(statements.execute, [stmt], ctx))[0]
    if res.error:
        raise BadRequest(res.error)
    return res.series


def _in_stream_process(server) -> bool:
    from chronosdb.server.streamproc import StreamProcess
    return isinstance(getattr(server, "stream_loop", None), StreamProcess)


class _Handed:
    """The body (or WebSocket runner) of a stream the stream process will serve: only the
    checked request, which ``StreamProcess.adopt`` sends there with the connection."""

    stream_loop = True

    def __init__(self, request: StreamRequest):
        self.request = request

    async def aclose(self):
        pass


_SSE_HEADERS = [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]


async def handle_stream(server, req) -> Response:
    if _in_stream_process(server):
        return Response(200, b"", "text/event-stream", headers=_SSE_HEADERS, stream=_Handed(check_stream(server, req)))
    session = open_session(server, req)
    return _sse_response(session)


def _sse_response(session: StreamSession) -> Response:
    return Response(200, b"", "text/event-stream", headers=list(_SSE_HEADERS),
                    stream=_SseBody(session), on_flow=session.flow)


async def handle_ws_stream(server, req) -> Response:
    if req.headers.get("upgrade", "").lower() != "websocket":
        raise HttpError(400, "this endpoint speaks WebSocket: send an Upgrade: websocket request")
    from chronosdb.server.http.protocol import websocket_handshake_headers
    headers = websocket_handshake_headers(req.headers)   # 400 for a malformed handshake, before any work
    if _in_stream_process(server):
        return Response(101, b"", None, headers=headers, websocket=_Handed(check_stream(server, req)))
    return _ws_response(open_session(server, req), headers)


def _ws_response(session: StreamSession, headers) -> Response:
    async def run(channel) -> None:
        try:
            async for ev in session.events():
                if ev.kind == "heartbeat":
                    await channel.ping()
                else:
                    await channel.send_text(ev.ws())
                if ev.kind == "error" or channel.closed:
                    break
            if session.shutting_down:
                code, reason = 1001, "server shutting down"
            elif session.revoked:
                code, reason = 1008, "key revoked"
            else:
                code, reason = 1000, "stream ended"
            await channel.close(code, reason)
        finally:
            session.close()

    return Response(101, b"", None, headers=headers, websocket=run, on_abort=session.close,
                    on_flow=session.flow)


def remote_response(child_server, spec: dict):
    """In the stream process: the session and the answer for a handed-over stream (``spec``
    from ``StreamProcess.adopt``)."""
    fields = spec["fields"]
    plan = compile_stream(parse(spec["q"]), spec["db"], spec["rp"], lambda m: fields.get(m, []), spec["now"])
    session = StreamSession(child_server, plan, None, None, spec["epoch"], spec["history"],
                            spec["partial"], spec["resume"])
    session.sid = spec["sid"]
    if spec["ws"]:
        return session, _ws_response(session, spec["headers"])
    return session, _sse_response(session)


def close_unauthorized_streams(server) -> int:
    """After a key change: end the streams whose key no longer authorizes them."""
    n = 0
    for s in list(server.streams):
        if not s.still_authorized():
            s.revoke("key revoked: it no longer authorizes reading this database")
            n += 1
    return n


def end_streams(server, reason: str) -> None:
    """Shutdown: every open stream gets an ``error`` event (``reason``) and ends."""
    for s in list(server.streams):
        s.shutting_down = True
        s.revoke(reason)
