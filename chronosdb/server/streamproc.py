"""The stream process: open streams served by a second OS process, fed the writes by the server.

Why. The stream loop (``protocol.StreamLoop``) took stream ticks off the request loop, but it is
still a thread of the server's process, so its Python (delivering batches to ~100 queues,
turning them into rows and events, framing and writing them) took the GIL from the write path:
every /write waited for the GIL a little longer, and writers that send one request at a time
lost that time as throughput (ingest fell to ~0.65 of itself with 100 busy streams, with a
third of the machine idle). In a process of its own the same work runs on the idle core.

Shape. ``StreamProcess`` (the server's side) stands where the stream loop stood: the HTTP layer
checks a stream request as before, then hands the connection over with ``adopt`` (the socket's
fd). Here the fd goes to the child with the request's description (``SCM_RIGHTS`` over a Unix
socket pair); the child builds the ``StreamSession`` (the same class), subscribes it on *its*
bus and serves it on its own ``StreamLoop``. From then on the server forwards every write
published for a database with open streams, as its columns (pickle protocol 5: the arrays go
out-of-band, no per-point work), in the same ordered channel as the hand-overs, so a stream
misses no write accepted after its 200.

What stays with the server, asked over the channel: queries against storage (history, resume
after ``Last-Event-ID``, window rows: the child sends the bounds, the server runs the statement
it kept and sends back the series), key checks (a key change revokes streams from the server's
side), metrics (the child sends its counter increments; ``/metrics`` is the server's).

Frames, both ways: ``<u32 length><u8 type>`` then the payload (pickled, protocol 5, its arrays
following as raw buffers; a batch of numeric columns has a layout of its own, ``N``, see
``encode_batch``). Types, server to child: ``N`` / ``B`` batch, ``A`` adopt (with
the fd), ``R`` revoke, ``P`` query answer, ``L`` batches lost (the forwarding queue was full),
``F`` send your counters now (a token), ``X`` stop. Child to server: ``Q`` query, ``M``
metric increments, ``F`` the counters before this were sent (the token back), ``C`` stream
closed.

Not slowing writers: the writer's thread sends a batch's frame itself, without blocking and
without letting go of the GIL (``chanframe``); only what the socket does not take at once waits
for a sender thread. That queue is bounded in points; past the bound, batches are counted as lost
and the child tells the affected streams how many points they missed (a ``dropped`` event).
If the child dies, its streams end (their connections close with it) and the next stream
starts a new one. ``CHRONOSDB_STREAM_PROCESS=0`` (or ``stream-process = false``) keeps streams
in the server's process (the stream loop thread). See docs/streaming.md.
"""
from __future__ import annotations

import array
import asyncio
import collections
import gc
import itertools
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from chronosdb.ext.chanframe import encode_batch_frame, send_nowait
from chronosdb.model.fieldtype import FieldType

log = logging.getLogger("chronosdb.streamproc")

_HEAD = struct.Struct("<IB")
_U32 = struct.Struct("<I")
# Points of forwarded batches waiting for the sender; past this, batches are lost (see above).
# The child's CPU priority: "idle" (SCHED_IDLE: it runs on otherwise idle CPU time), or a nice
# increment (0 = the server's own priority). See _lower_priority.
PRIORITY = os.environ.get("CHRONOSDB_STREAM_PRIORITY", "idle")
FORWARD_MAX_POINTS = int(os.environ.get("CHRONOSDB_STREAM_FORWARD_POINTS", "4000000"))
CHANNEL_BUFFER_BYTES = 4 << 20
# How long a /metrics request waits for the stream process's counters (see sync_metrics).
METRICS_SYNC_SECONDS = 0.5


# -- framing ---------------------------------------------------------------------------------

def encode_frame(kind: bytes, obj, parts: bool = False):
    """One frame: ``obj`` pickled (protocol 5), its buffers (numpy arrays) appended raw. With
    ``parts``, the frame's pieces in order (the arrays not copied), for ``send_frame``."""
    bufs: list = []
    meta = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    raws = [b.raw() for b in bufs]
    parts_wanted = parts
    parts = [_U32.pack(len(meta)), meta, _U32.pack(len(raws))]
    parts += [struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))] if raws else []
    n = sum(len(p) for p in parts) + sum(r.nbytes for r in raws)
    if parts_wanted:
        return [_HEAD.pack(n, kind[0])] + parts + raws
    return b"".join([_HEAD.pack(n, kind[0])] + parts + raws)


def decode_payload(body: memoryview):
    """The object of a frame's payload; its arrays are views of ``body`` (no copy)."""
    (n_meta,) = _U32.unpack_from(body, 0)
    meta = body[4:4 + n_meta]
    pos = 4 + n_meta
    (n_bufs,) = _U32.unpack_from(body, pos)
    pos += 4
    lens = struct.unpack_from(f"<{n_bufs}Q", body, pos) if n_bufs else ()
    pos += 8 * n_bufs
    bufs = []
    for ln in lens:
        bufs.append(body[pos:pos + ln])
        pos += ln
    return pickle.loads(meta, buffers=bufs)


# A batch of numeric columns goes as an ``N`` frame, without pickle: unpickling a batch (its
# dataclasses, enum and arrays rebuilt one by one) was most of what reading a frame cost the
# child. Body: <u32 meta length> meta, then the arrays at offsets that are multiples of 8.
# meta: <u32 len(db)> <u32 len(rp)> <u32 keys> <u32 columns>, db, rp, one <u32> length per key,
# the keys end to end, then per column <u32 len(name)> <u8 field type> <u64 points> and its name.
# Per column, in order: series (int32), times (int64), values (float64 / int64 / uint8).
# Batches with a string column go as ``B`` (pickled).
_BATCH_HEAD = struct.Struct("<IIII")
_STRING = int(FieldType.STRING)
_COLUMN_HEAD = struct.Struct("<IBQ")
# Writers send the same series again and again: the keys of a frame are looked up by their
# bytes instead of split anew (bounded; cleared when full).
_KEYS_CACHE: dict[bytes, list] = {}
_KEYS_CACHE_LIMIT = 256


def encode_batch(db: str, rp: str, batch):
    """A batch's ``N`` frame, as parts for ``sendmsg`` (its arrays not copied); None when a
    column holds strings (send it pickled). Encoded in C (``chanframe``): on a writer's thread,
    right after its parse and WAL append, the Python version's steps ran cold at ~6x their
    warm cost."""
    return encode_batch_frame(db.encode(), rp.encode(), batch.keys, batch.columns, _STRING)


def decode_batch(body: memoryview):
    """(db, rp, WriteBatch) of an ``N`` frame's body; the arrays are views of ``body``."""
    import numpy as np
    from chronosdb.model.batch import FieldColumn, WriteBatch
    ldb, lrp, nkeys, ncols = _BATCH_HEAD.unpack_from(body, 4)
    pos = 4 + _BATCH_HEAD.size
    db = str(body[pos:pos + ldb], "utf-8")
    pos += ldb
    rp = str(body[pos:pos + lrp], "utf-8")
    pos += lrp
    lens = np.frombuffer(body, np.uint32, nkeys, pos)
    blob_at = pos + 4 * nkeys
    end = blob_at + int(lens.sum(dtype=np.int64))
    raw = bytes(body[pos:end])
    keys = _KEYS_CACHE.get(raw)
    if keys is None:
        blob = raw[4 * nkeys:]
        keys, at = [], 0
        for ln in lens.tolist():
            keys.append(blob[at:at + ln])
            at += ln
        if len(_KEYS_CACHE) >= _KEYS_CACHE_LIMIT:
            _KEYS_CACHE.clear()
        _KEYS_CACHE[raw] = keys
    pos = end
    heads = []
    for _ in range(ncols):
        ln, ftype, n = _COLUMN_HEAD.unpack_from(body, pos)
        pos += _COLUMN_HEAD.size
        heads.append((bytes(body[pos:pos + ln]), ftype, n))
        pos += ln
    cols = []
    for name, ftype, n in heads:
        ft = FieldType(ftype)
        arrs = []
        for dt in (np.int32, np.int64, ft.dtype):
            pos += -pos % 8
            a = np.frombuffer(body, dt, n, pos)
            pos += a.nbytes
            arrs.append(a)
        cols.append(FieldColumn(name, ft, *arrs))
    return db, rp, WriteBatch(list(keys), cols)


class FrameReader:
    """Frames (and the fds passed with them, in order) from a blocking Unix stream socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fds: list[int] = []

    def _recv_into(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n, anc, _flags, _addr = self.sock.recvmsg_into([view[got:]], socket.CMSG_SPACE(16 * 4))
            self._keep_fds(anc)
            if n == 0:
                raise EOFError("the other side closed the channel")
            got += n

    def read(self) -> tuple[bytes, memoryview]:
        head = bytearray(_HEAD.size)
        self._recv_into(memoryview(head))
        n, kind = _HEAD.unpack(head)
        body = bytearray(n)
        self._recv_into(memoryview(body))
        return bytes([kind]), memoryview(body)

    def take_fd(self) -> int:
        return self.fds.pop(0) if self.fds else -1

    def _keep_fds(self, anc) -> None:
        """Keep, in order, the fds that came in a receive's ancillary data."""
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self.fds.extend(fds)


class LoopFrameReader(FrameReader):
    """Frames from the same kind of socket, read by an event loop's reader callback: ``feed``
    takes what has arrived without blocking (``MSG_DONTWAIT``: the socket itself stays blocking
    for the threads that send on it) and returns the frames it completed, in order. A frame's
    body is received straight into its own buffer, as ``read`` does, so no byte is copied twice."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        self._head = bytearray(_HEAD.size)
        self._kind = None           # while a body is being received: its frame type
        self._buf = self._head
        self._got = 0

    def feed(self) -> list:
        """``[(kind, body)]`` of the frames completed by what can be read now. Raises EOFError
        when the other side has closed (after returning the frames that came before)."""
        out = []
        while True:
            view = memoryview(self._buf)[self._got:]
            if len(view):
                try:
                    n, anc, _flags, _addr = self.sock.recvmsg_into(
                        [view], socket.CMSG_SPACE(16 * 4), socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return out
                self._keep_fds(anc)
                if n == 0:
                    if out:             # the frames before the end first; EOFError next time
                        return out
                    raise EOFError("the other side closed the channel")
                self._got += n
                if self._got < len(self._buf):
                    continue
            if self._kind is None:          # a head is complete: receive its body next
                n_body, kind = _HEAD.unpack(self._head)
                self._kind, self._buf, self._got = bytes([kind]), bytearray(n_body), 0
                if n_body:
                    continue
            out.append((self._kind, memoryview(self._buf)))
            self._kind, self._buf, self._got = None, self._head, 0


def send_frame(sock: socket.socket, frame, fd: int | None = None) -> None:
    """Send a frame (bytes, or its parts: ``encode_frame(..., parts=True)``) whole; ``fd``
    goes with its first byte."""
    parts = [frame] if isinstance(frame, (bytes, bytearray)) else frame
    anc = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    total = sum(memoryview(p).nbytes for p in parts)
    sent = sock.sendmsg(parts, anc)
    if sent < total:                   # a full socket buffer: the rest in one piece
        sock.sendall(memoryview(b"".join(parts))[sent:])


# -- the server's side ---------------------------------------------------------------------------

class RemoteStream:
    """The server's record of a stream the child serves: what key checks, revocation and the
    child's queries need (``server.streams`` holds these as it holds local sessions)."""

    def __init__(self, owner: "StreamProcess", sid: int, request):
        self.owner, self.sid, self.request = owner, sid, request
        self.shutting_down = False

    def still_authorized(self) -> bool:
        from chronosdb.server.handlers.stream import key_authorizes
        return key_authorizes(self.owner.server, self.request.key, self.request.plan.db)

    def revoke(self, reason: str) -> None:
        self.owner._send_control(b"R", (self.sid, reason, self.shutting_down))


def _child_env() -> dict:
    """The child's environment: ours, plus malloc settings for a process that allocates and
    frees the same few large buffers (received batches, a tick's row arrays) many times a
    second: served from the heap and kept, not mapped fresh each time (the kernel zeroing new
    pages took a quarter of the child's CPU), unless the operator set GLIBC_TUNABLES."""
    env = dict(os.environ)
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=33554432:"
                                     "glibc.malloc.trim_threshold=268435456")
    return env


class _Child:
    """One child process and the channel to it.

    Sending: the calling thread (a writer's, for batches) sends the frame itself when nothing
    is waiting, without blocking (``MSG_DONTWAIT``) and without letting go of the GIL
    (``chanframe.send_nowait``): no thread hand-off per batch and no wait to take the GIL back
    (each cost the write path a GIL round trip). What does not go out at once (a full socket buffer) waits
    in ``backlog``, in order, for the sender thread, which sends it blocking; while anything
    waits, later frames queue behind it. The backlog is bounded in points: past the bound,
    batches are counted as lost (``L`` frames tell the child)."""

    def __init__(self, owner: "StreamProcess"):
        self.owner = owner
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chronosdb.server.streamproc", str(theirs.fileno()),
             str(logging.getLogger("chronosdb").getEffectiveLevel())],
            pass_fds=(theirs.fileno(),), close_fds=True, env=_child_env())
        theirs.close()
        # Room for a pace tick's worth of batches (the child may read only at its ticks, see
        # ChildServer.serve): while they fit, the writer's thread sends them itself. The
        # kernel caps it at net.core.wmem_max.
        try:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER_BYTES)
        except OSError:
            pass
        self.sock = ours
        self.backlog: collections.deque = collections.deque()   # (parts, fd, points)
        self.backlog_points = 0
        self.lost: dict[str, int] = {}      # db -> points lost since the child last heard
        self.busy = False                   # the sender thread is sending a backlog item
        self.cond = threading.Condition(threading.Lock())
        self.dead = False
        self.stopped = False
        self.sender = threading.Thread(target=self._send_loop, name="chronosdb-stream-send", daemon=True)
        self.reader = threading.Thread(target=self._read_loop, name="chronosdb-stream-recv", daemon=True)
        self.sender.start()
        self.reader.start()

    def put(self, kind: bytes, obj, fd: int | None = None, db: str | None = None, points: int = 0) -> None:
        """Send a frame now or queue it (a batch of ``db``: ``points``); ``fd`` is ours to close."""
        with self.cond:
            if self.dead or self.stopped:
                if fd is not None:
                    os.close(fd)
                return
            if points and self.backlog_points + points > FORWARD_MAX_POINTS and self.backlog:
                self.lost[db] = self.lost.get(db, 0) + points
                return
            parts = []
            if self.lost and kind == b"B":
                for ldb, n in self.lost.items():
                    parts += encode_frame(b"L", (ldb, n), parts=True)
                self.lost = {}
            frame = encode_batch(*obj) if kind == b"B" else None
            parts += frame if frame is not None else encode_frame(kind, obj, parts=True)
            if self.backlog or self.busy:
                self._queue(parts, fd, points)
                return
            try:
                if fd is None:      # (holding the GIL: see chanframe)
                    sent = send_nowait(self.sock.fileno(), parts)
                else:
                    sent = self.sock.sendmsg(parts, [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                      array.array("i", [fd]))], socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                self._died(e)
                if fd is not None:
                    os.close(fd)
                return
            if sent > 0 and fd is not None:
                os.close(fd)        # it went with the first byte
                fd = None
            total = sum(memoryview(x).nbytes for x in parts)
            if sent < total:
                rest = memoryview(b"".join(parts))[sent:] if sent else None
                self._queue([rest] if rest is not None else parts, fd, points)

    def _queue(self, parts, fd, points) -> None:
        self.backlog.append((parts, fd, points))
        self.backlog_points += points
        self.cond.notify()

    def _died(self, e) -> None:
        if not self.dead:
            log.warning("stream process channel: %s", e)
        self.dead = True

    def _send_loop(self) -> None:
        while True:
            with self.cond:
                while not self.backlog and not self.stopped:
                    self.cond.wait()
                if not self.backlog:
                    return
                parts, fd, points = self.backlog.popleft()
                self.busy = True
            try:
                if not self.dead:
                    send_frame(self.sock, parts, fd)
            except OSError as e:
                self._died(e)
            except Exception:          # a bug: never let the sender thread end on it
                log.exception("stream process channel: could not send a frame")
            finally:
                if fd is not None:
                    os.close(fd)
                with self.cond:
                    self.busy = False
                    self.backlog_points -= points

    def _read_loop(self) -> None:
        reader = FrameReader(self.sock)
        try:
            while True:
                kind, body = reader.read()
                self.owner._from_child(self, kind, decode_payload(body))
        except (EOFError, OSError):
            pass
        self.dead = True
        self.owner._child_gone(self)

    def stop(self) -> None:
        """Tell the child to stop (after everything queued), and end the sender thread."""
        self.put(b"X", None)
        with self.cond:
            self.stopped = True
            self.cond.notify()


class StreamProcess:
    """Stands where ``StreamLoop`` stands in the server (``Server.stream_loop``): ``adopt``
    hands a checked stream's connection to the child process. Any thread may call it."""

    def __init__(self, server, loop: asyncio.AbstractEventLoop):
        self.server = server
        self._main_loop = loop          # the request loop: the child's queries run from there
        self._child: _Child | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._streams: dict[int, RemoteStream] = {}
        self._dbs: dict[str, int] = {}       # database -> open streams (writes forwarded)
        self._syncs: dict[int, asyncio.Future] = {}   # metrics syncs waiting for the child
        self.stopping = False

    def _ensure_child(self) -> _Child:
        with self._lock:
            if self._child is None or self._child.dead:
                self._child = _Child(self)
                log.info("stream process started (pid %d)", self._child.proc.pid)
            return self._child

    # -- the HTTP layer's hand-over -----------------------------------------------------------
    def adopt(self, fd: int, resp, pending: bytes, remote: str) -> None:
        body = resp.stream if resp.websocket is None else resp.websocket
        request = body.request
        if self.stopping:
            os.close(fd)
            return
        sid = next(self._ids)
        rs = RemoteStream(self, sid, request)
        child = self._ensure_child()
        with self._lock:
            self._streams[sid] = rs
            self._dbs[request.plan.db] = self._dbs.get(request.plan.db, 0) + 1
        self.server.streams.add(rs)
        spec = {"sid": sid, "ws": resp.websocket is not None, "headers": resp.headers,
                "q": request.q, "db": request.plan.db, "rp": request.rp, "fields": request.fields,
                "now": request.now, "epoch": request.epoch, "history": request.history,
                "partial": request.partial, "resume": request.resume,
                "pending": pending, "remote": remote}
        child.put(b"A", spec, fd=fd)

    def _forget(self, sid: int) -> None:
        with self._lock:
            rs = self._streams.pop(sid, None)
            if rs is not None:
                db = rs.request.plan.db
                left = self._dbs.get(db, 0) - 1
                if left > 0:
                    self._dbs[db] = left
                else:
                    self._dbs.pop(db, None)
        if rs is not None:
            self.server.streams.discard(rs)

    # -- the writer's thread -----------------------------------------------------------------
    def publish(self, db: str, rp: str, batch) -> None:
        """The engine's write listener: forward the batch when the child serves a stream of
        ``db``. Only a queue put on this thread."""
        if not self._dbs or db not in self._dbs:
            return
        child = self._child
        if child is not None and not child.dead:
            child.put(b"B", (db, rp, batch), db=db, points=batch.n_values)

    def _send_control(self, kind: bytes, obj) -> None:
        child = self._child
        if child is not None and not child.dead:
            child.put(kind, obj)

    async def sync_metrics(self, timeout: float = METRICS_SYNC_SECONDS) -> None:
        """Have the child send the counters it has summed since its last flush (it sends them
        on its own only every ``_Forwarded.FLUSH_SECONDS``), so that what /metrics renders
        counts everything the streams did before the request. Gives up after ``timeout``
        (what arrived is rendered) and returns at once when there is no child."""
        child = self._child
        if child is None or child.dead:
            return
        token = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._syncs[token] = fut
        try:
            child.put(b"F", token)
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            log.warning("stream process: no metrics within %.2f s", timeout)
        finally:
            self._syncs.pop(token, None)

    def _synced(self, token: int) -> None:
        fut = self._syncs.get(token)
        if fut is not None:
            try:
                fut.get_loop().call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))
            except RuntimeError:        # the loop is closed: the server is stopping
                pass

    # -- from the child (its reader thread) ----------------------------------------------------
    def _from_child(self, child: _Child, kind: bytes, obj) -> None:
        if kind == b"M":
            for name, value, labels in obj:
                self.server.metrics.inc(name, value, **dict(labels))
        elif kind == b"F":
            self._synced(obj)
        elif kind == b"C":
            self._forget(obj)
        elif kind == b"Q":
            qid, sid, bounds = obj
            loop = self._main_loop
            if loop is None or loop.is_closed():
                child.put(b"P", (qid, False, "server stopping"))
                return
            try:
                asyncio.run_coroutine_threadsafe(self._answer(child, qid, sid, bounds), loop)
            except RuntimeError:
                child.put(b"P", (qid, False, "server stopping"))

    async def _answer(self, child: _Child, qid: int, sid: int, bounds) -> None:
        from chronosdb.server.handlers.stream import run_stream_statement
        rs = self._streams.get(sid)
        try:
            if rs is None:
                raise LookupError("stream closed")
            series = await run_stream_statement(self.server, rs.request.plan, rs.request.principal, *bounds)
            child.put(b"P", (qid, True, series))
        except Exception as e:      # the child turns it into the stream's error event
            child.put(b"P", (qid, False, str(e) or type(e).__name__))

    def _child_gone(self, child: _Child) -> None:
        for token in list(self._syncs):     # no counters will come: /metrics need not wait
            self._synced(token)
        if self.stopping:
            return
        try:
            code = child.proc.wait(5)   # reap it (this is the channel's reader thread)
        except subprocess.TimeoutExpired:
            code = None
        log.error("stream process %d ended (exit code %s); its streams are closed", child.proc.pid, code)
        with self._lock:
            gone = list(self._streams)
        for sid in gone:
            self._forget(sid)

    # -- lifecycle ---------------------------------------------------------------------------
    async def stop(self, grace: float = 5.0) -> None:
        """Let the child end its streams (they were revoked by ``end_streams``) and exit."""
        self.stopping = True
        child = self._child
        if child is None:
            return
        child.stop()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, child.proc.wait, grace + 5)
        except subprocess.TimeoutExpired:
            log.warning("stream process %d did not stop in time: killing it", child.proc.pid)
            child.proc.kill()
            await loop.run_in_executor(None, child.proc.wait)
        try:
            child.sock.close()
        except OSError:
            pass


# -- the child -----------------------------------------------------------------------------------

class _Forwarded:
    """The child's metrics: increments summed and sent to the server once a second, by a timer
    on the stream loop, and whenever the server asks (an ``F`` frame: a /metrics request, see
    ``StreamProcess.sync_metrics``). Every 20 ms, as they were sent until the tenth session,
    each arrival woke the server's channel reader, whose taking the GIL from the writers cost
    ingest ~7 % with 100 busy streams (0.89 -> 0.96, interleaved A/B of the two intervals)."""

    FLUSH_SECONDS = 1.0

    def __init__(self, send, loop: asyncio.AbstractEventLoop):
        self._send = send
        self._lock = threading.Lock()
        self._acc: dict = {}
        self._loop = loop
        loop.call_soon_threadsafe(self._tick)

    def inc(self, name: str, value: float = 1, **labels) -> None:
        k = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._acc[k] = self._acc.get(k, 0) + value

    def flush(self) -> None:
        with self._lock:
            acc, self._acc = self._acc, {}
        if acc:
            self._send(b"M", [(name, v, labels) for (name, labels), v in acc.items()])

    def _tick(self) -> None:
        try:
            self.flush()
        except OSError:
            return              # the channel is gone: so is the server
        self._loop.call_later(self.FLUSH_SECONDS, self._tick)


class ChildServer:
    """What ``StreamSession`` needs of a server, in the child: a bus fed by the server's
    forwarded writes, a stream loop, metrics sent back, storage queries asked of the server."""

    def __init__(self, sock: socket.socket):
        from chronosdb.pubsub import Bus
        from chronosdb.server.http.protocol import StreamLoop
        self.sock = sock
        self._send_lock = threading.Lock()
        self.stream_loop = StreamLoop()
        self.metrics = _Forwarded(self.send, self.stream_loop.loop)
        self.bus = Bus(self.metrics)
        self.streams: set = set()
        self.sessions: dict[int, object] = {}
        self._qids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="chronosdb-stream-worker")

    async def run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def send(self, kind: bytes, obj) -> None:
        frame = encode_frame(kind, obj)
        with self._send_lock:
            self.sock.sendall(frame)

    # -- asked by the sessions (on the stream loop) -----------------------------------------
    async def stream_query(self, session, after=None, start=None, end=None):
        from chronosdb.model.errors import BadRequest
        qid = next(self._qids)
        fut = self.stream_loop.loop.create_future()
        self._waiting[qid] = fut
        try:
            self.send(b"Q", (qid, session.sid, (after, start, end)))
            ok, res = await fut
        finally:
            self._waiting.pop(qid, None)
        if not ok:
            raise BadRequest(res)
        return res

    def session_closed(self, session) -> None:
        if self.sessions.pop(session.sid, None) is not None:
            self.metrics.flush()
            try:
                self.send(b"C", session.sid)
            except OSError:
                pass

    # -- the channel, read on the stream loop ----------------------------------------------------
    def serve(self) -> None:
        """Serve until the server says stop or the channel closes. The channel is read on the
        stream loop itself (a reader callback), not on a thread of its own: a reading thread
        woke for every batch and took the GIL from the loop in the middle of its ticks, and the
        two threads' hand-offs cost the child a context switch per batch, each one a
        preemption on a core the writers wanted. On the loop, every frame that has arrived is
        taken in one callback and the bus hands its batches over together."""
        done = threading.Event()
        reader = LoopFrameReader(self.sock)
        loop = self.stream_loop.loop
        fileno = self.sock.fileno()

        def readable() -> None:
            try:
                frames = reader.feed()
            except (EOFError, OSError):
                frames, stop = [], True
            else:
                stop = False
            for kind, body in frames:
                if stop:
                    break
                try:
                    if kind == b"N":
                        self.bus.publish(*decode_batch(body))
                        continue
                    stop = self._dispatch(kind, decode_payload(body), reader)
                except Exception:       # a bug: log it, keep serving the other frames
                    log.exception("stream process: could not handle a %r frame", kind)
            # The batches just read, into the queues or held, now: a tick reading the channel
            # (below) must release them in the same tick, not the next one.
            self.bus.deliver_pending(loop)
            if stop:
                loop.remove_reader(fileno)
                done.set()
            elif self.bus.holding(loop):
                # Every stream the last batches were for waits for the pace tick: stop reading
                # until then, and read what came meanwhile at the tick, before it releases
                # the held batches (the bus would only have held them). One wake-up per tick
                # instead of one per forwarded batch; the batches wait in the socket buffer.
                loop.remove_reader(fileno)
                pace_ticker(loop).before_tick(resume)

        def resume() -> None:
            loop.add_reader(fileno, readable)
            readable()

        from chronosdb.server.handlers.stream import pace_ticker
        try:
            loop.call_soon_threadsafe(loop.add_reader, fileno, readable)
        except RuntimeError:
            return
        done.wait()

    def _dispatch(self, kind: bytes, obj, reader: FrameReader) -> bool:
        """Act on one frame from the server (on the stream loop); True for stop."""
        if kind == b"B":
            self.bus.publish(*obj)
        elif kind == b"A":
            self._adopt(obj, reader.take_fd())
        elif kind == b"R":
            sid, reason, shutting_down = obj
            s = self.sessions.get(sid)
            if s is not None:
                s.shutting_down = shutting_down
                s.revoke(reason)
        elif kind == b"P":
            qid, ok, res = obj
            self._answered(qid, ok, res)
        elif kind == b"L":
            db, n = obj
            self._lost(db, n)
        elif kind == b"F":
            self.metrics.flush()
            self.send(b"F", obj)        # after the counters: the server has them when it reads this
        elif kind == b"X":
            return True
        return False

    def _answered(self, qid, ok, res) -> None:
        fut = self._waiting.get(qid)
        if fut is not None and not fut.done():
            fut.set_result((ok, res))

    def _lost(self, db: str, n: int) -> None:
        for s in list(self.sessions.values()):
            if s.plan.db == db:
                s.sub.missed += n
                s.sub._notify()

    def _adopt(self, spec: dict, fd: int) -> None:
        from chronosdb.server.handlers.stream import remote_response
        if fd < 0:
            log.error("stream hand-over without its connection")
            return
        try:
            session, resp = remote_response(self, spec)
        except Exception:
            log.exception("could not start a handed-over stream")
            os.close(fd)
            self.send(b"C", spec["sid"])
            return
        self.sessions[spec["sid"]] = session
        self.stream_loop.adopt(fd, resp, spec["pending"], spec["remote"])

    def stop(self, grace: float = 5.0) -> None:
        async def _stop():
            await self.stream_loop.stop(grace)
        asyncio.run(_stop())
        self.metrics.flush()


def _no_huge_pages() -> None:
    """numpy asks for transparent huge pages for its large arrays; each fresh 2 MiB page is
    zeroed by the kernel on first touch, and a tick's short-lived row arrays kept touching
    fresh ones. Small pages here."""
    try:
        import numpy as np
        getattr(np, "_core", None) and np._core.multiarray._set_madvise_hugepage(False)
    except (AttributeError, ImportError):
        pass


def _lower_priority(priority: str) -> None:
    """Writes come first: the child runs on the CPU time the server's write path leaves (on the
    2-core bench machine, ingest with 100 busy streams: 0.78 of itself with the child at nice
    10, 0.75-0.92 under SCHED_IDLE; docs/streaming.md). When the writers leave too little CPU,
    the streams' queues fill and their clients get ``dropped`` events: a slow subscriber never
    slows writers."""
    try:
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif int(priority):
            os.nice(int(priority))
    except (AttributeError, OSError, ValueError) as e:
        log.warning("stream process: could not set priority %r: %s", priority, e)


def child_main(argv: list[str]) -> int:
    fd, level = int(argv[0]), int(argv[1]) if len(argv) > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Few objects live long here, and cycles are rare: collect seldom (the collector's passes
    # over the sessions' objects were a tenth of the child's CPU).
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    _no_huge_pages()
    _lower_priority(PRIORITY)
    sock = socket.socket(fileno=fd)
    server = ChildServer(sock)
    try:
        server.serve()
    finally:
        try:
            server.stop()
        except Exception:
            log.exception("stream process: stopping")
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
