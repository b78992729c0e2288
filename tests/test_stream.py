"""Test helpers: a Server-Sent Events reader and a WebSocket (wsproto) reader for /stream and
/ws/stream, each on a thread that puts parsed events on a queue; ``wait_for`` polls it with a
deadline (no sleeps as synchronisation)."""
from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from urllib.parse import urlencode

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Message, Ping, RejectConnection,
                            RejectData, Request)


class _Reader:
    def __init__(self):
        self.events: queue.Queue = queue.Queue()
        self.closed = threading.Event()

    def next(self, timeout: float = 10.0) -> dict:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no stream event within {timeout} s") from None

    def wait_for(self, pred, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("expected stream event did not arrive in time")
            ev = self.next(left)
            if pred(ev):
                return ev


class SseClient(_Reader):
    def __init__(self, port: int, params: dict, key: str | None = None, headers: dict | None = None):
        super().__init__()
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Token {key}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/stream?" + urlencode(params), headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        if self.status != 200:
            self.body = json.loads(self.resp.read())
            self.conn.close()
            return
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        buf = b""
        try:
            while True:
                chunk = self.resp.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    self.events.put(self._parse(block.decode()))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed by the test (close() races the reader) or by the server
        finally:
            self.closed.set()

    @staticmethod
    def _parse(block: str) -> dict:
        ev = {"event": None, "id": None, "data": None, "comment": None}
        for line in block.split("\n"):
            if line.startswith(":"):
                ev["comment"] = line[1:].strip()
            elif line.startswith("id: "):
                ev["id"] = line[4:]
            elif line.startswith("event: "):
                ev["event"] = line[7:]
            elif line.startswith("data: "):
                ev["data"] = json.loads(line[6:])
        return ev

    def close(self):
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conn.close()


class WsClient(_Reader):
    """Events as {"event", "id", "data"}; pings appear as {"event": "ping"}; the server's close
    as {"event": "close", "code": ...}."""

    def __init__(self, port: int, params: dict, key: str | None = None):
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.ws = WSConnection(ConnectionType.CLIENT)
        target = "/ws/stream?" + urlencode(params)
        extra = [("Authorization", f"Token {key}")] if key else []
        self.sock.sendall(self.ws.send(Request(host="127.0.0.1", target=target, extra_headers=extra)))
        self.status = None
        self.reject_body = b""
        self._lock = threading.Lock()
        while self.status is None:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed during the WebSocket handshake")
            self.ws.receive_data(data)
            self._handle_events()
        if self.status == 101:
            threading.Thread(target=self._run, daemon=True).start()

    def _handle_events(self):
        for ev in self.ws.events():
            if isinstance(ev, AcceptConnection):
                self.status = 101
            elif isinstance(ev, RejectConnection):
                self.status = ev.status_code
            elif isinstance(ev, RejectData):
                self.reject_body += ev.data
                if ev.body_finished:
                    self.body = json.loads(self.reject_body)
            elif isinstance(ev, Message):
                self.events.put(json.loads(ev.data))
            elif isinstance(ev, Ping):
                self.events.put({"event": "ping"})
                with self._lock:
                    self.sock.sendall(self.ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                self.events.put({"event": "close", "code": ev.code})
                try:
                    with self._lock:
                        self.sock.sendall(self.ws.send(ev.response()))
                except Exception:
                    pass

    def _run(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.ws.receive_data(data)
                self._handle_events()
        except OSError:
            pass
        finally:
            self.closed.set()

    def send_ping(self, payload: bytes = b"hello"):
        with self._lock:
            self.sock.sendall(self.ws.send(Ping(payload)))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# Tests: /stream against a real server subprocess
# ----------------------------------------------------------------------------------------------
import os  # noqa: E402

import pytest  # noqa: E402

from serverproc import ServerProcess  # noqa: E402

STREAM_ENV = {"CHRONOSDB_STREAM_HEARTBEAT": "0.5", "CHRONOSDB_STREAM_GRACE": "0.2"}


def start_server(data_dir: str, env: dict = STREAM_ENV) -> ServerProcess:
    """A server started with ``env`` added to its environment (ours is left as it was)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return ServerProcess(data_dir).start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(str(tmp_path_factory.mktemp("stream") / "data"))
    s.query("CREATE DATABASE db")
    s.query("CREATE DATABASE other")
    yield s
    s.kill()


def make_key(srv, db: str, scope: str) -> tuple[str, str]:
    st, doc = srv.json("POST", "/api/keys", json.dumps({"database": db, "scope": scope}).encode())
    assert st in (200, 201), doc
    return doc["id"], doc["key"]


def data_events(client, kind="points"):
    """Skip comments (heartbeats, the opening comment) and return the next event of ``kind``."""
    return client.wait_for(lambda e: e.get("event") == kind)


def rows(ev) -> list:
    return [r for s in ev["data"]["series"] for r in s["values"]]


def test_points_written_by_another_client_arrive_in_order(srv):
    c = SseClient(srv.port, {"db": "db", "q": "SELECT value, host FROM m1 WHERE value > 0",
                             "epoch": "ns"}, key=srv.admin_key)
    assert c.status == 200
    assert c.headers["content-type"] == "text/event-stream"
    assert c.headers["cache-control"] == "no-cache"
    try:
        lines = [f"m1,host=h{i % 2} value={i}.5 {1000 + i}" for i in range(1, 6)]
        lines.append("m1,host=h0 value=-1 2000")        # filtered out by the field condition
        lines.append("m2,host=h0 value=7 1001")          # another measurement
        for line in lines:
            st, _h, body = srv.write(line.encode())
            assert st == 204, body
        got = []
        while len(got) < 5:
            ev = data_events(c)
            assert ev["id"] is not None
            got.extend(rows(ev))
        assert got == [[1000 + i, i + 0.5, f"h{i % 2}"] for i in range(1, 6)]
        assert int(ev["id"]) == 1005
    finally:
        c.close()


def test_one_write_many_series_batched_in_time_order(srv):
    c = SseClient(srv.port, {"db": "db", "q": "SELECT * FROM m3 GROUP BY host", "epoch": "ns"},
                  key=srv.admin_key)
    try:
        body = b"m3,host=b v=2i 20\nm3,host=a v=1i 30\nm3,host=a v=0i 10\nm3,host=b s=\"x\" 20\n"
        assert srv.write(body)[0] == 204
        ev = data_events(c)
        series = {s["tags"]["host"]: s for s in ev["data"]["series"]}
        assert series["a"]["columns"] == ["time", "s", "v"]
        assert series["a"]["values"] == [[10, None, 0], [30, None, 1]]
        assert series["b"]["values"] == [[20, "x", 2]]   # fields of one row merged
    finally:
        c.close()


def test_window_row_arrives_when_window_closes(srv):
    import time as _t
    c = SseClient(srv.port, {"db": "db", "epoch": "s",
                             "q": "SELECT mean(v), count(v) FROM m4 GROUP BY time(1s)"}, key=srv.admin_key)
    try:
        now = _t.time_ns()
        sec = now // 10**9
        body = f"m4 v=1 {sec * 10**9 + 1}\nm4 v=3 {sec * 10**9 + 2}\n".encode()
        assert srv.write(body)[0] == 204
        ev = data_events(c, "window")
        assert ev["data"]["series"][0]["values"] == [[sec, 2, 2]]
        assert int(ev["id"]) == sec * 10**9
        assert _t.time_ns() >= (sec + 1) * 10**9   # not before the window closed
    finally:
        c.close()


def test_partial_running_values(srv):
    import time as _t
    c = SseClient(srv.port, {"db": "db", "epoch": "s", "partial": "true",
                             "q": "SELECT sum(v) FROM m5 GROUP BY time(1h)"}, key=srv.admin_key)
    try:
        t = _t.time_ns()
        assert srv.write(f"m5 v=4 {t}".encode())[0] == 204
        ev = data_events(c, "partial")
        assert ev["id"] is None
        assert ev["data"]["series"][0]["values"][0][1] == 4
    finally:
        c.close()


def test_history_then_live(srv):
    assert srv.write(b"m6 v=1 100\nm6 v=2 200\n")[0] == 204
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m6", "epoch": "ns", "history": "true"},
                  key=srv.admin_key)
    try:
        ev = data_events(c, "history")
        assert rows(ev) == [[100, 1], [200, 2]]
        assert srv.write(b"m6 v=3 300\n")[0] == 204
        ev = data_events(c, "points")
        assert rows(ev) == [[300, 3]]
    finally:
        c.close()


def test_reconnect_with_last_event_id_gets_exactly_the_missed_points(srv):
    q = {"db": "db", "q": "SELECT v FROM m7", "epoch": "ns"}
    c = SseClient(srv.port, q, key=srv.admin_key)
    for t in (1, 2, 3):
        assert srv.write(f"m7 v={t} {t}".encode())[0] == 204
    got, last = [], None
    while len(got) < 3:
        ev = data_events(c)
        got += rows(ev)
        last = ev["id"]
    c.close()
    assert last == "3"
    for t in (4, 5):  # written while disconnected
        assert srv.write(f"m7 v={t} {t}".encode())[0] == 204
    c2 = SseClient(srv.port, q, key=srv.admin_key, headers={"Last-Event-ID": last})
    try:
        ev = data_events(c2)
        assert rows(ev) == [[4, 4], [5, 5]]
        assert ev["id"] == "5"
        assert srv.write(b"m7 v=6 6")[0] == 204
        ev = data_events(c2)
        assert rows(ev) == [[6, 6]]      # no duplicate of 4 or 5 before it
    finally:
        c2.close()


def test_heartbeat_comment_when_idle(srv):
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM idle"}, key=srv.admin_key)
    try:
        ev = c.wait_for(lambda e: e.get("comment") == "heartbeat", timeout=10)
        assert ev["event"] is None
    finally:
        c.close()


@pytest.mark.parametrize("case", ["no_key", "bad_key", "write_only", "other_db", "read", "readwrite", "admin"])
def test_auth_matrix(srv, case):
    expected = {"no_key": 401, "bad_key": 401, "write_only": 403, "other_db": 403,
                "read": 200, "readwrite": 200, "admin": 200}[case]
    key = {"no_key": None, "bad_key": "cdb_notakey", "admin": srv.admin_key}.get(case)
    if case in ("write_only", "read", "readwrite"):
        key = make_key(srv, "db", {"write_only": "write"}.get(case, case))[1]
    if case == "other_db":
        key = make_key(srv, "other", "read")[1]
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m"}, key=key)
    try:
        assert c.status == expected
        if expected != 200:
            assert "error" in c.body
    finally:
        c.close()


def test_key_as_p_parameter(srv):
    _id, key = make_key(srv, "db", "read")
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m", "p": key})
    try:
        assert c.status == 200
    finally:
        c.close()


@pytest.mark.parametrize("params,status,text", [
    ({"db": "nope", "q": "SELECT v FROM m"}, 404, "database not found"),
    ({"db": "db", "q": "SELEC v FROM"}, 400, "error parsing query"),
    ({"db": "db", "q": "SHOW DATABASES"}, 400, "SELECT"),
    ({"db": "db", "q": "SELECT mean(v) FROM m"}, 400, "unsupported for streaming"),
    ({"db": "db", "q": "SELECT v FROM m; SELECT v FROM m"}, 400, "exactly one"),
    ({"db": "db"}, 400, '"q"'),
    ({"q": "SELECT v FROM m"}, 400, '"db"'),
    ({"db": "db", "q": "SELECT v FROM m", "history": "maybe"}, 400, "history"),
])
def test_bad_requests_are_json_errors(srv, params, status, text):
    c = SseClient(srv.port, params, key=srv.admin_key)
    assert c.status == status
    assert text in c.body["error"]


def test_bad_last_event_id(srv):
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m"}, key=srv.admin_key,
                  headers={"Last-Event-ID": "yesterday"})
    assert c.status == 400 and "Last-Event-ID" in c.body["error"]


def test_revoked_key_closes_its_stream(srv):
    key_id, key = make_key(srv, "db", "read")
    _id2, other = make_key(srv, "db", "read")
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m8"}, key=key)
    keep = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m8"}, key=other)
    try:
        assert c.status == 200 and keep.status == 200
        st, _h, _b = srv.request("DELETE", f"/api/keys/{key_id}")
        assert st in (200, 204)
        ev = data_events(c, "error")
        assert "revoked" in ev["data"]["error"]
        assert c.closed.wait(10)
        assert srv.write(b"m8 v=1 1")[0] == 204
        assert rows(data_events(keep)) == [[ "1970-01-01T00:00:00.000000001Z", 1]]
    finally:
        c.close()
        keep.close()


def test_metrics_count_streams(srv):
    st, _h, body = srv.request("GET", "/metrics")
    assert st == 200
    assert b"chronosdb_streams_opened_total" in body
    assert b"chronosdb_pubsub_points_delivered_total" in body


def test_cli_follow_prints_live_rows(srv):
    import io

    from chronosdb.cli.client import CliClient
    from chronosdb.cli.follow import follow

    out = io.StringIO()
    client = CliClient(f"127.0.0.1:{srv.port}", srv.admin_key)
    t = threading.Thread(target=follow, args=(client, "db", None, "SELECT v FROM cli1", "ns", False, False),
                         kwargs={"out": out, "max_events": 1}, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        assert srv.write(b"cli1 v=42 7")[0] == 204   # until the stream (opened meanwhile) sees one
        t.join(0.2)
    assert not t.is_alive()
    text = out.getvalue()
    assert "name: cli1" in text and "42" in text


def test_stream_head_announces_close_after_the_stream(srv):
    # Open streams are served on the stream loop, which closes the connection when the stream
    # ends instead of reusing it: the head says so.
    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m9"}, key=srv.admin_key)
    try:
        assert c.status == 200
        assert c.headers["content-type"] == "text/event-stream"
        assert c.headers["connection"] == "close"
        assert c.headers["transfer-encoding"] == "chunked"
        assert c.next()["comment"] == "stream open"
        assert srv.write(b"m9 v=3 9")[0] == 204
        assert rows(data_events(c)) == [["1970-01-01T00:00:00.000000009Z", 3]]
    finally:
        c.close()


def test_many_streams_and_writes_interleave(srv):
    # Streams live on their own loop thread: while several are open, /write and /query keep
    # being answered on the request loop and every stream still sees every point.
    clients = [SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m10", "epoch": "ns"},
                         key=srv.admin_key) for _ in range(8)]
    try:
        for t in range(1, 21):
            assert srv.write(f"m10 v={t} {t}".encode())[0] == 204
        st, doc = srv.query("SELECT count(v) FROM m10", db="db")
        assert st == 200 and doc["results"][0]["series"][0]["values"][0][1] == 20
        for c in clients:
            got = []
            while len(got) < 20:
                got += [r[0] for r in rows(data_events(c))]
            assert got == list(range(1, 21))
    finally:
        for c in clients:
            c.close()


def test_shutdown_ends_open_streams_and_exits_cleanly(tmp_path):
    s = start_server(str(tmp_path / "data"))
    try:
        s.query("CREATE DATABASE db")
        sse = SseClient(s.port, {"db": "db", "q": "SELECT v FROM sd"}, key=s.admin_key)
        ws = WsClient(s.port, {"db": "db", "q": "SELECT v FROM sd"}, key=s.admin_key)
        assert sse.status == 200 and ws.status == 101
        assert s.write(b"sd v=1 1")[0] == 204
        data_events(sse)
        ws.wait_for(lambda e: e.get("event") == "points")
        assert s.stop() == 0
        assert data_events(sse, "error")["data"]["error"] == "server shutting down"
        assert sse.closed.wait(10)
        assert ws.wait_for(lambda e: e.get("event") == "error")["data"]["error"] == "server shutting down"
        assert ws.wait_for(lambda e: e.get("event") == "close")["code"] == 1001
    finally:
        s.kill()


def test_busy_streams_following_one_series_each_get_exactly_their_points(srv):
    """Streams receiving thousands of points a second are paced: at each tick the events of
    those following one series are written in one pass for all of them (counted as
    how="tick"); others format their own. Each still gets exactly its points, in order."""
    def tick_events():
        st, _h, body = srv.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith('chronosdb_stream_events_total{how="tick"}'):
                return float(line.split()[-1])
        return 0.0

    hosts = [f"h{i}" for i in range(4)]
    one = [SseClient(srv.port, {"db": "db", "q": f"SELECT v, n FROM m11 WHERE host = '{h}'", "epoch": "ns"},
                     key=srv.admin_key) for h in hosts]
    rfc = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m11 WHERE host = 'h1'"}, key=srv.admin_key)
    every = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m11", "epoch": "ns"}, key=srv.admin_key)
    before = tick_events()
    try:
        n_req, per_req = 30, 400
        for r in range(n_req):
            body = "\n".join(f"m11,host=h{i % 4} v={r * per_req + i}.5,n={i}i {10**6 + r * per_req + i}"
                             for i in range(per_req))
            assert srv.write(body.encode())[0] == 204
        total = n_req * per_req
        for k, c in enumerate(one):
            got = []
            while len(got) < total // 4:
                got += rows(data_events(c))
            want = [[10**6 + j, j + 0.5, j % per_req] for j in range(total) if j % 4 == k]
            assert got == want
        got = []
        while len(got) < total // 4:
            got += rows(data_events(rfc))
        assert [r[1] for r in got] == [j + 0.5 for j in range(total) if j % 4 == 1]
        assert got[0][0] == "1970-01-01T00:00:00.001000001Z"
        got = []
        while len(got) < total:
            got += rows(data_events(every))
        assert [r[0] for r in got] == [10**6 + j for j in range(total)]
        assert tick_events() > before
    finally:
        for c in one + [rfc, every]:
            c.close()


def test_a_busy_stream_stays_paced_while_the_tick_drains_it(srv):
    """A stream over PACE_ABOVE points/s is paced; the points its tick drains count toward
    its rate, so under steady load it stays paced: no event is written outside a tick once it
    is busy. (The rate once counted only what the stream took between ticks; it then fell
    below the threshold every so often and the stream sent unpaced events of a few batches.)"""
    def events(how):
        st, _h, body = srv.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(f'chronosdb_stream_events_total{{how="{how}"}}'):
                return float(line.split()[-1])
        return 0.0

    c = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m12 WHERE host = 'a'", "epoch": "ns"},
                  key=srv.admin_key)
    try:
        t = 0

        def write_for(seconds):
            nonlocal t
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                body = "\n".join(f"m12,host=a v={t + i} {t + i + 1}" for i in range(100))
                t += 100
                assert srv.write(body.encode())[0] == 204
                time.sleep(0.002)

        write_for(0.8)                      # the stream becomes busy
        stream0, tick0 = events("stream"), events("tick")
        write_for(2.0)
        stream1, tick1 = events("stream"), events("tick")
        assert tick1 - tick0 >= 10
        # (A writer stalled a quarter second by a slow disk may let one span look quiet.)
        assert stream1 - stream0 <= 2
        got = []
        while len(got) < t:
            got += [r[1] for r in rows(data_events(c))]
        assert got == list(range(t))
        # Paced events went out from the tick without the session's coroutine; once the
        # writes stop it is back on its own: heartbeats while idle, then a single point at once.
        assert c.wait_for(lambda e: e.get("comment") == "heartbeat")
        assert srv.write(f"m12,host=a v=-1 {t + 10}".encode())[0] == 204
        assert rows(data_events(c)) == [[t + 10, -1]]
    finally:
        c.close()


def test_streams_open_and_quiet_ones_get_their_points_while_busy_ones_wait_for_the_tick(srv):
    """While every stream a write is for waits for the pace tick, the bus holds the write's
    batches until the tick, and the stream process reads its channel only at the ticks. A
    stream opened meanwhile still starts, a quiet stream's point still arrives, and the busy
    stream still gets exactly its points, in order."""
    busy = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m13 WHERE host = 'a'", "epoch": "ns"},
                     key=srv.admin_key)
    written = [0]
    stop = threading.Event()

    def writer():
        t = 0
        while not stop.is_set():
            body = "\n".join(f"m13,host=a v={t + i} {t + i + 1}" for i in range(100))
            assert srv.write(body.encode())[0] == 204
            t += 100
            written[0] = t
            time.sleep(0.002)

    th = threading.Thread(target=writer)
    th.start()
    try:
        time.sleep(0.8)                     # the stream is busy: paced
        quiet = SseClient(srv.port, {"db": "db", "q": "SELECT v FROM m14", "epoch": "ns"},
                          key=srv.admin_key)
        try:
            assert quiet.status == 200
            assert srv.write(b"m14 v=7 123")[0] == 204
            assert rows(data_events(quiet)) == [[123, 7]]
        finally:
            quiet.close()
        time.sleep(0.3)
    finally:
        stop.set()
        th.join()
    got = []
    while len(got) < written[0]:
        got += [r[1] for r in rows(data_events(busy))]
    busy.close()
    assert got == list(range(written[0]))
