"""The stream process (chronosdb.server.streamproc): its channel, and a real server whose streams
a second process serves — or, with CHRONOSDB_STREAM_PROCESS=0, a thread of its own."""
from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pytest

from chronosdb.ext import chanframe_ref
from chronosdb.ext.chanframe import send_nowait
from chronosdb.model.batch import WriteBatch
from chronosdb.server.config import ConfigError, ServerConfig
from chronosdb.server.streamproc import (FrameReader, LoopFrameReader, decode_batch, decode_payload,
                                         encode_batch, encode_frame, send_frame)
from serverproc import ServerProcess
from test_stream import SseClient, WsClient, data_events, rows, start_server


# -- the channel ---------------------------------------------------------------------------------

def _batch() -> WriteBatch:
    pts = [(f"m,host=h{i % 3}", "v", 1, 1000 + i, float(i)) for i in range(50)]
    pts += [("m,host=h0", "s", 4, 5000 + i, f"text {i} é") for i in range(7)]
    pts += [("m,host=h1", "n", 2, 6000 + i, -i) for i in range(5)]
    return WriteBatch.from_points(pts)


def _equal(a: WriteBatch, b: WriteBatch) -> bool:
    if a.keys != b.keys or len(a.columns) != len(b.columns):
        return False
    for x, y in zip(a.columns, b.columns):
        same = x.values == y.values if hasattr(x.values, "to_list") else np.array_equal(x.values, y.values)
        if (x.name, x.ftype) != (y.name, y.ftype) or not np.array_equal(x.series, y.series) \
                or not np.array_equal(x.times, y.times) or not same:
            return False
    return True


def test_a_batch_crosses_the_channel_whole_and_in_order():
    a, b = socket.socketpair()
    try:
        batches = [_batch(), WriteBatch([], []), _batch()]
        for i, wb in enumerate(batches):
            send_frame(a, encode_frame(b"B", ("db", "rp", wb), parts=i % 2 == 0))
        send_frame(a, encode_frame(b"R", (7, "why", False)))
        reader = FrameReader(b)
        for wb in batches:
            kind, body = reader.read()
            assert kind == b"B"
            db, rp, got = decode_payload(body)
            assert (db, rp) == ("db", "rp") and _equal(got, wb)
        kind, body = reader.read()
        assert kind == b"R" and decode_payload(body) == (7, "why", False)
    finally:
        a.close()
        b.close()


def _numeric_batch(n: int = 37) -> WriteBatch:
    pts = [(f"m,host=h{i % 5}", "v", 1, 1000 + i, i / 3) for i in range(n)]
    pts += [("m,host=h1", "n", 2, 6000 + i, -i * 10**15) for i in range(n % 7 + 1)]
    pts += [(f"other,host=é{i % 2}", "b", 3, 7000 + i, i % 2 == 0) for i in range(3)]
    return WriteBatch.from_points(pts)


def test_a_numeric_batch_crosses_as_its_own_frame_with_aligned_arrays():
    a, b = socket.socketpair()
    try:
        batches = [(_numeric_batch(n), f"db{n}", "autogen") for n in (1, 2, 37, 1000)]
        batches.append((WriteBatch([], []), "d", "r"))
        batches.append((batches[2][0], "db37", "autogen"))     # the same keys again (cached)
        for wb, db, rp in batches:
            send_frame(a, encode_batch(db, rp, wb))
        reader = LoopFrameReader(b)
        frames = []
        while len(frames) < len(batches):
            frames += reader.feed()
        for (wb, db, rp), (kind, body) in zip(batches, frames):
            assert kind == b"N"
            gdb, grp, got = decode_batch(body)
            assert (gdb, grp) == (db, rp) and _equal(got, wb)
            for c in got.columns:
                assert all(arr.ctypes.data % 8 == 0 for arr in (c.series, c.times, c.values))
        assert decode_batch(frames[-1][1])[2].keys is not decode_batch(frames[2][1])[2].keys
    finally:
        a.close()
        b.close()


def test_numeric_frames_of_any_layout_decode_to_their_batch():
    """Keys, names and database lengths that leave every array at a different offset mod 8;
    the C encoder's pieces equal the reference twin's bytes."""
    from chronosdb.model.fieldtype import FieldType
    rng = np.random.default_rng(5)
    frames, sent = [], []
    a, b = socket.socketpair()
    try:
        reader = LoopFrameReader(b)
        for _ in range(60):
            pts = []
            for j in range(int(rng.integers(1, 4))):
                ftype = (FieldType.FLOAT, FieldType.INTEGER, FieldType.BOOLEAN)[j % 3]
                for i in range(int(rng.integers(1, 30))):
                    value = (float(rng.random()), int(rng.integers(-10**12, 10**12)), bool(i % 2))[j % 3]
                    pts.append(("m" * int(rng.integers(1, 9)) + f",k=v{i % 4}", "f" * (j + 1),
                                int(ftype), int(rng.integers(0, 10**18)), value))
            wb = WriteBatch.from_points(pts)
            db, rp = "d" * int(rng.integers(1, 12)), "r" * int(rng.integers(0, 12))
            parts = encode_batch(db, rp, wb)
            assert b"".join(bytes(memoryview(x).cast("B")) for x in parts) == \
                chanframe_ref.encode_batch_frame(db.encode(), rp.encode(), wb.keys, wb.columns,
                                                 int(FieldType.STRING))
            send_frame(a, parts)
            sent.append((db, rp, wb))
            frames += reader.feed()
        for (db, rp, wb), (kind, body) in zip(sent, frames, strict=True):
            gdb, grp, got = decode_batch(body)
            assert kind == b"N" and (gdb, grp) == (db, rp) and _equal(got, wb)
            for c in got.columns:
                assert all(arr.ctypes.data % 8 == 0 for arr in (c.series, c.times, c.values))
    finally:
        a.close()
        b.close()


def test_send_nowait_sends_what_fits_and_never_blocks():
    a, b = socket.socketpair()
    try:
        pieces = [b"ab", memoryview(b"cd"), np.arange(3, dtype=np.int32), bytearray(b"!")]
        assert send_nowait(a.fileno(), pieces) == 2 + 2 + 12 + 1
        assert b.recv(100) == b"abcd" + np.arange(3, dtype=np.int32).tobytes() + b"!"
        assert send_nowait(a.fileno(), []) == 0
        assert send_nowait(a.fileno(), [b"y"] * 1500) == 1024    # IOV_MAX pieces at a time
        assert b.recv(2000) == b"y" * 1024
        total, big = 0, np.zeros(1 << 16)
        while (n := send_nowait(a.fileno(), [big])) > 0:     # a prefix, then nothing: never blocks
            total += n
        assert 0 < total and send_nowait(a.fileno(), [b"x"]) == 0
        b.close()
        with pytest.raises(OSError):                          # no SIGPIPE: an error
            send_nowait(a.fileno(), [b"x"])
        with pytest.raises(TypeError):
            send_nowait(a.fileno(), ["not a buffer"])
    finally:
        a.close()
        b.close()


def test_a_batch_with_strings_is_not_a_numeric_frame():
    assert encode_batch("db", "rp", _batch()) is None


def _next_frame(reader):
    """The next frame from either reader (the child's loop-side one returns what it completed)."""
    if isinstance(reader, LoopFrameReader):
        if not getattr(reader, "_ready", None):
            reader._ready = reader.feed()
        return reader._ready.pop(0)
    return reader.read()


@pytest.mark.parametrize("reader_cls", [FrameReader, LoopFrameReader])
def test_an_fd_travels_with_its_frame(reader_cls):
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        send_frame(a, encode_frame(b"B", ("db", "rp", _batch())))
        send_frame(a, encode_frame(b"A", {"sid": 1}), fd=w)
        reader = reader_cls(b)
        assert _next_frame(reader)[0] == b"B"
        if reader_cls is FrameReader:
            assert reader.take_fd() == -1   # no fd came with it
        kind, body = _next_frame(reader)
        assert kind == b"A" and decode_payload(body) == {"sid": 1}
        fd = reader.take_fd()
        assert fd >= 0 and reader.take_fd() == -1
        os.write(fd, b"through the passed fd")
        os.close(fd)
        assert os.read(r, 100) == b"through the passed fd"
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


def test_closed_channel_is_an_eof():
    a, b = socket.socketpair()
    a.sendall(encode_frame(b"B", ("db", "rp", _batch()))[:20])   # a frame cut short
    a.close()
    with pytest.raises(EOFError):
        FrameReader(b).read()
    b.close()


def test_loop_reader_assembles_frames_from_any_cut_of_the_bytes():
    """The child's loop-side reader: whatever the socket hands over at a time (a byte, half a
    head, a frame and a half), ``feed`` returns exactly the completed frames, in order, and an
    fd with the frame it travelled with; nothing blocks when nothing is there."""
    frames = [encode_frame(b"B", ("db", "rp", _batch())), encode_frame(b"R", (7, "why", False)),
              encode_frame(b"X", None), encode_frame(b"B", ("db", "rp", WriteBatch([], [])))]
    stream = b"".join(frames)
    for cut in (1, 3, 5, 64, 1000, len(stream)):
        a, b = socket.socketpair()
        try:
            reader = LoopFrameReader(b)
            assert reader.feed() == []              # nothing there: returns, does not block
            got = []
            for i in range(0, len(stream), cut):
                a.sendall(stream[i:i + cut])
                got += [(k, bytes(body)) for k, body in reader.feed()]
            assert [k for k, _b in got] == [b"B", b"R", b"X", b"B"]
            assert _equal(decode_payload(memoryview(got[0][1]))[2], _batch())
            assert decode_payload(memoryview(got[1][1])) == (7, "why", False)
            assert decode_payload(memoryview(got[2][1])) is None
            assert len(decode_payload(memoryview(got[3][1]))[2].keys) == 0
        finally:
            a.close()
            b.close()


def test_loop_reader_eof():
    a, b = socket.socketpair()
    reader = LoopFrameReader(b)
    a.sendall(encode_frame(b"R", (7, "why", False)))
    a.shutdown(socket.SHUT_WR)                          # a whole frame, then the end
    assert [k for k, _b in reader.feed()] == [b"R"]     # the frame is not lost to the end
    with pytest.raises(EOFError):
        reader.feed()
    a.close()
    b.close()
    a, b = socket.socketpair()
    reader = LoopFrameReader(b)
    a.sendall(encode_frame(b"B", ("db", "rp", _batch()))[:20])   # a frame cut short, then closed
    assert reader.feed() == []
    a.close()
    with pytest.raises(EOFError):
        reader.feed()
    b.close()


def test_config_stream_process(tmp_path, monkeypatch):
    monkeypatch.delenv("CHRONOSDB_STREAM_PROCESS", raising=False)
    assert ServerConfig().stream_process is True
    monkeypatch.setenv("CHRONOSDB_STREAM_PROCESS", "0")
    assert ServerConfig().stream_process is False
    path = tmp_path / "c.toml"
    path.write_text("stream-process = true\n")
    assert ServerConfig.from_sources(None, str(path)).stream_process is True
    path.write_text('stream-process = "yes"\n')
    with pytest.raises(ConfigError, match="stream-process must be true or false"):
        ServerConfig.from_sources(None, str(path))


# -- a real server ---------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def _stream_process(srv, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _children(srv.proc.pid):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"chronosdb.server.streamproc" in f.read():
                    return pid
        time.sleep(0.05)
    raise AssertionError("no stream process")


def _server(tmp_path, env: dict) -> ServerProcess:
    s = start_server(str(tmp_path / "data"), env)
    s.query("CREATE DATABASE db")
    return s


@pytest.mark.parametrize("process", ["1", "0"])
def test_streams_in_either_mode_get_points_history_and_windows(tmp_path, process):
    s = _server(tmp_path, {"CHRONOSDB_STREAM_PROCESS": process, "CHRONOSDB_STREAM_GRACE": "0.2"})
    try:
        assert s.write(b"pm,host=a v=1 1\npm,host=b v=2 2")[0] == 204
        c = SseClient(s.port, {"db": "db", "q": "SELECT v FROM pm WHERE host = 'a'", "epoch": "ns",
                               "history": "true"}, key=s.admin_key)
        assert c.status == 200
        # history: the server's storage, asked for by the stream process when there is one
        assert rows(data_events(c, "history")) == [[1, 1]]
        assert s.write(b"pm,host=a v=3 3\npm,host=b v=4 4\npm,host=a v=5 5")[0] == 204
        assert rows(data_events(c)) == [[3, 3], [5, 5]]
        now = time.time_ns()
        w = WsClient(s.port, {"db": "db", "q": "SELECT count(v) FROM pm GROUP BY time(1s)", "epoch": "ns"},
                     key=s.admin_key)
        assert s.write(b"pm,host=a v=6 %d" % now)[0] == 204
        ev = w.wait_for(lambda e: e.get("event") == "window")
        assert ev["data"]["series"][0]["values"][0][1] == 1
        if process == "1":
            pid = _stream_process(s)
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE   # writes come first
        else:
            assert _children(s.proc.pid) == []
        c.close()
        w.close()
    finally:
        s.kill()


def test_a_batch_of_more_frame_pieces_than_one_send_takes_arrives_whole_and_in_order(tmp_path):
    """400 fields: a frame of ~1,600 pieces, over the 1,024 one gathered send takes; the rest
    goes after it through the sender thread, and the next batch waits behind it."""
    s = _server(tmp_path, {"CHRONOSDB_STREAM_PROCESS": "1"})
    try:
        c = SseClient(s.port, {"db": "db", "q": "SELECT f0, f211, f399 FROM wide", "epoch": "ns"},
                      key=s.admin_key)
        assert c.status == 200
        line = "wide " + ",".join(f"f{i}={i}.5" for i in range(400))
        assert s.write(f"{line} 10".encode())[0] == 204
        assert s.write(b"wide f0=-1,f211=-2,f399=-3 11")[0] == 204
        got = rows(data_events(c))
        while len(got) < 2:
            got += rows(data_events(c))
        assert got == [[10, 0.5, 211.5, 399.5], [11, -1, -2, -3]]
        c.close()
    finally:
        s.kill()


def _metric(srv, prefix: str) -> float:
    st, _h, body = srv.request("GET", "/metrics")
    assert st == 200
    return sum(float(ln.split()[-1]) for ln in body.decode().splitlines() if ln.startswith(prefix))


def test_metrics_count_what_the_stream_process_did_before_the_request(tmp_path):
    """The stream process sends its counters once a second on its own; a /metrics request
    asks for them first, so it counts every event a client has already received."""
    s = _server(tmp_path, {"CHRONOSDB_STREAM_PROCESS": "1"})
    try:
        c = SseClient(s.port, {"db": "db", "q": "SELECT v FROM mm", "epoch": "ns"}, key=s.admin_key)
        assert c.status == 200
        for i in range(1, 6):
            assert s.write(b"mm v=%d %d" % (i, i))[0] == 204
            assert rows(data_events(c)) == [[i, i]]
            assert _metric(s, "chronosdb_stream_events_total") == i
            assert _metric(s, "chronosdb_pubsub_points_delivered_total") == i
        c.close()
    finally:
        s.kill()


def test_when_the_stream_process_dies_its_streams_end_and_the_next_starts_a_new_one(tmp_path):
    s = _server(tmp_path, {"CHRONOSDB_STREAM_PROCESS": "1"})
    try:
        c = SseClient(s.port, {"db": "db", "q": "SELECT v FROM dm", "epoch": "ns"}, key=s.admin_key)
        assert c.status == 200
        assert s.write(b"dm v=1 1")[0] == 204
        assert rows(data_events(c)) == [[1, 1]]
        pid = _stream_process(s)
        os.kill(pid, signal.SIGKILL)   # the server we started started it
        t0 = time.monotonic()
        assert s.request("GET", "/metrics")[0] == 200     # not waiting for a dead child
        assert time.monotonic() - t0 < 5
        assert c.closed.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid in _children(s.proc.pid):
            time.sleep(0.05)           # reaped by the server: it was told the child ended
        c2 = SseClient(s.port, {"db": "db", "q": "SELECT v FROM dm", "epoch": "ns"}, key=s.admin_key)
        assert c2.status == 200
        assert s.write(b"dm v=2 2")[0] == 204
        assert rows(data_events(c2)) == [[2, 2]]
        assert _stream_process(s) != pid
        assert s.request("GET", "/ping", key=None)[0] == 204
        c2.close()
    finally:
        s.kill()
