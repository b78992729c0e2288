"""chronosdb.client.Client against a real `chronosdb serve` subprocess.

Every input form is written and read back exactly; errors carry the server's messages; retries
are checked against a server stopped and restarted on the same port and against a
fault-injecting proxy (``FaultProxy``) that answers 503 or cuts connections on demand; streams
are read from the real /stream endpoint, including a reconnect with Last-Event-ID.
"""
from __future__ import annotations

import datetime as dt
import gzip
import socket
import threading

import numpy as np
import pytest

from chronosdb.client import (AuthError, BadRequest, Client, ConnectionFailed, NotFound,
                              QueryError, ServerError, StreamError)
from chronosdb.client import protocol
from serverproc import ServerProcess

HOSTILE_TAGS = {"host name": "a,b=c d", "région": "é\"x\\y", "t=k": "v"}


# ---------------------------------------------------------------------------------------------
# A fault-injecting TCP proxy (threads; only sockets it made itself are touched)
# ---------------------------------------------------------------------------------------------

class FaultProxy:
    """Forwards 127.0.0.1:<port> to the server. ``fail_next(n, status)`` answers the first
    request of each of the next n *new* connections itself (with ``Connection: close``);
    ``drop_all()`` cuts every open connection."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._fail = 0
        self._status = 503
        self.failed = 0        # requests answered with the injected status
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail, self._status = n, status

    def drop_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the loop thread
        except OSError:
            pass
        self.sock.close()
        self.drop_all()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                fail = self._fail > 0
                if fail:
                    self._fail -= 1
            threading.Thread(target=self._serve, args=(client, fail), daemon=True).start()

    def _serve(self, client: socket.socket, fail: bool) -> None:
        if fail:
            self._answer_error(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _answer_error(self, client: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = b'{"error":"injected failure"}'
        with self._lock:
            self.failed += 1  # counted before answering: the client may look right after
        client.sendall(b"HTTP/1.1 %d Injected\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                       % (self._status, len(body), body))
        client.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("client") / "data")).start()
    yield s
    s.kill()


@pytest.fixture
def db(srv, request):
    """A fresh database per test, named after it."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:50]
    with Client(f"http://127.0.0.1:{srv.port}", srv.admin_key) as c:
        c.create_database(name)
    return name


@pytest.fixture
def client(srv, db):
    with Client(f"http://127.0.0.1:{srv.port}", srv.admin_key, db, backoff=0.02) as c:
        yield c


def rows_of(client, q):
    return client.query(q, epoch="ns").rows()


# ---------------------------------------------------------------------------------------------
# Writing each form, reading back exactly
# ---------------------------------------------------------------------------------------------

def test_ping(client):
    assert client.ping().startswith("1.")


def test_write_dicts_every_type_and_hostile_names(client):
    points = [
        {"measurement": "cpu load", "tags": HOSTILE_TAGS,
         "fields": {"f": 0.1, "i": -(2**63), "b": True, "s": 'he said "hi" \\ ok\nbye',
                    "big": 1.7976931348623157e308, "tiny": 5e-324},
         "time": 1_000},
        {"measurement": "cpu load", "tags": HOSTILE_TAGS, "fields": {"f": -0.0, "b": False},
         "time": 2_000},
    ]
    assert client.write(points) == 1
    rows = rows_of(client, 'SELECT * FROM "cpu load"')
    assert len(rows) == 2
    r0, r1 = rows
    assert r0["time"] == 1000 and r0["f"] == 0.1 and r0["i"] == -(2**63) and r0["b"] is True
    assert r0["s"] == 'he said "hi" \\ ok\nbye'
    assert r0["big"] == 1.7976931348623157e308 and r0["tiny"] == 5e-324
    for k, v in HOSTILE_TAGS.items():
        assert r0[k] == v and r1[k] == v
    assert r1["time"] == 2000 and r1["f"] == 0 and r1["b"] is False and r1["i"] is None


def test_query_binds_params(client):
    client.write([("pm", {"host": h}, {"v": i}, i) for h in ("a", "b") for i in range(5)])
    res = client.query("SELECT v FROM pm WHERE host = $h AND v >= $min", epoch="ns",
                       params={"h": "b", "min": 3})
    assert [r["v"] for r in res.rows()] == [3, 4]


def test_write_tuples_precision_and_time_forms(client):
    t0 = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    points = [
        ("m", {"h": "a"}, {"v": 1}, 1714979289),                                   # int, in s
        ("m", {"h": "a"}, {"v": 2}, t0 + dt.timedelta(seconds=1)),                 # datetime
        ("m", {"h": "a"}, {"v": 3}, "2024-05-06T07:08:11.999Z"),                   # RFC3339, truncated
        ("m", {"h": "a"}, {"v": 4}, np.datetime64("2024-05-06T07:08:12", "ns")),   # numpy
    ]
    client.write(points, precision="s")
    got = [(r["time"], r["v"]) for r in rows_of(client, "SELECT v FROM m")]
    base = int(t0.timestamp()) * 10**9
    assert got == [(base, 1), (base + 10**9, 2), (base + 2 * 10**9, 3), (base + 3 * 10**9, 4)]


def test_write_without_time_gets_one_instant(client):
    import time

    before = time.time_ns()
    client.write([{"measurement": "m", "fields": {"v": 1.0}}, ("m2", None, {"v": 2.0})])
    after = time.time_ns()
    t1 = rows_of(client, "SELECT v FROM m")[0]["time"]
    t2 = rows_of(client, "SELECT v FROM m2")[0]["time"]
    assert before <= t1 == t2 <= after


def test_write_columnar_numpy_batched(client):
    n = 1000
    rng = np.random.default_rng(3)
    times = np.arange(n, dtype=np.int64) * 1000 + 10**15
    hosts = np.array(["h%d" % (i % 7) for i in range(n)])
    usage = rng.standard_normal(n)
    count = rng.integers(-(2**40), 2**40, n)
    client.batch_size = 128
    sent = client.write(("cpu", {"host": hosts, "dc": "eu west"}, times,
                         {"usage": usage, "count": count, "up": usage > 0}))
    assert sent == 8  # ceil(1000 / 128) requests
    cols = client.query("SELECT usage, count, up, host, dc FROM cpu", epoch="ns").columns()
    order = np.argsort(cols["time"], kind="stable")
    assert cols["time"][order].tolist() == times.tolist()
    assert cols["usage"][order].tolist() == usage.tolist()
    assert cols["count"][order].tolist() == count.tolist()
    assert cols["up"][order].tolist() == (usage > 0).tolist()
    assert cols["host"][order].tolist() == hosts.tolist()
    assert set(cols["dc"].tolist()) == {"eu west"}


def test_write_dataframe(client):
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("2024-01-01", periods=6, freq="s", tz="UTC")
    df = pd.DataFrame({"host": ["a", "b", None, "a", "b", "a"],
                       "temp": [1.5, np.nan, 3.5, 4.5, 5.5, np.nan],
                       "n": np.arange(6, dtype=np.int64),
                       "label": ["x", "y", "z", "x y", "é", 'q"']}, index=idx)
    client.write(df, measurement="weather", tag_columns=["host"], precision="ms")
    back = client.query("SELECT * FROM weather").to_dataframe()
    assert list(back.index) == list(idx)
    assert back["n"].tolist() == list(range(6))
    temp = back["temp"].tolist()
    assert temp[0] == 1.5 and np.isnan(temp[1]) and temp[2:5] == [3.5, 4.5, 5.5]
    assert back["label"].tolist() == df["label"].tolist()
    assert back["host"].tolist() == ["a", "b", None, "a", "b", "a"]
    with pytest.raises(ValueError, match="measurement="):
        client.write(df, tag_columns=["host"])


def test_dataframe_needs_pandas_message():
    from chronosdb.client.results import Result

    r = Result.from_json({"results": [{"statement_id": 0}]})
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            r.to_dataframe()


def test_write_lines_and_gzip(srv, db):
    with Client(f"http://127.0.0.1:{srv.port}", srv.admin_key, db, gzip=True) as c:
        lines = "".join(f"g,k=v x={i}i {i}\n" for i in range(3000))
        call = protocol.write_call(lines.encode(), db, None, "ns", True)
        assert call.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(call.body) == lines.encode()
        c.write_lines(lines)
        c.write([("g", {"k": "v"}, {"y": float(i)}, i) for i in range(3000)])
        rows = c.query("SELECT x, y FROM g", epoch="ns").rows()
        assert [(r["time"], r["x"], r["y"]) for r in rows] == [(i, i, i) for i in range(3000)]


def test_multiple_statements_and_result_shapes(client):
    client.write([("a", {"t": "1"}, {"v": 1.5}, 1), ("a", {"t": "2"}, {"v": 2.5}, 2)])
    r = client.query("SELECT v FROM a GROUP BY t; SELECT count(v) FROM a", epoch="ns")
    assert [s.statement_id for s in r.statements] == [0, 1]
    assert [(s.name, s.tags) for s in r.statements[0].series] == [("a", {"t": "1"}), ("a", {"t": "2"})]
    assert r.rows()[:2] == [{"t": "1", "time": 1, "v": 1.5}, {"t": "2", "time": 2, "v": 2.5}]
    assert r.statements[1].series[0].values == [[0, 2]]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_errors_carry_server_messages(srv, client, db):
    with pytest.raises(BadRequest) as e:
        client.write_lines("cpu value=")
    assert e.value.status == 400 and e.value.message.startswith("unable to parse 'cpu value='")
    with pytest.raises(NotFound) as e:
        client.write([("m", None, {"v": 1}, 1)], database="no_such_db")
    assert e.value.message == 'database not found: "no_such_db"'
    with pytest.raises(BadRequest, match="error parsing query"):
        client.query("SELEKT 1")
    with pytest.raises(QueryError) as e:
        client.query("SELECT * FROM m; SELECT * FROM nodb.autogen.m")
    assert e.value.statement_id == 1 and e.value.message == "database not found: nodb"
    assert e.value.result.statements[0].error is None
    r = client.query("SELECT * FROM nodb.autogen.m", raise_errors=False)
    assert r.statements[0].error == e.value.message
    with pytest.raises(AuthError) as e:
        Client(f"http://127.0.0.1:{srv.port}", "cdb_" + "x" * 43, db).query("SHOW DATABASES")
    assert e.value.status == 401 and "authorization failed" in e.value.message
    reader = client.create_key(db, "read", "ro")
    with Client(f"http://127.0.0.1:{srv.port}", reader.key, db) as ro:
        with pytest.raises(AuthError) as e:
            ro.write([("m", None, {"v": 1.0}, 1)])
        assert e.value.status == 403 and reader.id in e.value.message
        assert ro.databases() == [db]


def test_bad_points_refused_before_sending(client):
    with pytest.raises(ValueError, match="nan"):
        client.write([("m", None, {"v": float("nan")}, 1)])
    with pytest.raises(ValueError, match="outside int64"):
        client.write([("m", None, {"v": 2**63}, 1)])
    with pytest.raises(ValueError, match="no field"):
        client.write([("m", None, {"v": None}, 1)])
    with pytest.raises(TypeError, match="write_lines"):
        client.write("m v=1")
    with pytest.raises(ValueError, match="needs a database"):
        Client("http://127.0.0.1:1").write([("m", None, {"v": 1}, 1)])


# ---------------------------------------------------------------------------------------------
# Keys and databases
# ---------------------------------------------------------------------------------------------

def test_keys_and_databases(srv, client, db):
    assert db in client.databases()
    k = client.create_key(db, "readwrite", "svc-a")
    assert k.key.startswith("cdb_") and k.database == db and k.scope == "readwrite"
    assert {(x.id, x.description) for x in client.keys(db)} == {(k.id, "svc-a")}
    with Client(f"http://127.0.0.1:{srv.port}", k.key, db) as c2:
        c2.write([("m", None, {"v": 1.0}, 1)])
        client.revoke_key("svc-a")  # by description
        with pytest.raises(AuthError):
            c2.write([("m", None, {"v": 1.0}, 1)])
    k2 = client.create_key(db, "read")
    client.revoke_key(k2.id)
    assert client.keys(db) == []
    with pytest.raises(NotFound):
        client.revoke_key("nope")
    admin = client.create_key(admin=True, description="second admin")
    assert admin.database is None and admin.scope == "admin"
    client.revoke_key(admin.id)
    with pytest.raises(ValueError, match="scope"):
        client.create_key(db, "admin")
    with pytest.raises(NotFound, match="database not found"):
        client.create_key("no_such_db", "read")
    client.drop_database(db)
    assert db not in client.databases()


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------

def test_retries_on_503_only_for_idempotent_calls(srv, db):
    proxy = FaultProxy(srv.port)
    try:
        with Client(proxy.url, srv.admin_key, db, retries=3, backoff=0.01) as c:
            proxy.fail_next(2)
            c.write([("r", None, {"v": 1.0}, 1)])
            assert proxy.failed == 2
            assert c.query("SELECT v FROM r", epoch="ns").rows() == [{"time": 1, "v": 1.0}]
            c.close()  # the proxy injects on new connections; the client holds one open
            proxy.fail_next(4)
            with pytest.raises(ServerError) as e:
                c.query("SELECT v FROM r")
            assert e.value.status == 503 and e.value.message == "injected failure"
            assert proxy.failed == 6
            c.close()
            proxy.fail_next(1)
            with pytest.raises(ServerError):
                c.create_key(db, "read")  # not idempotent: never sent twice
            assert proxy.failed == 7
            assert c.keys(db) == []
            c.close()
            proxy.fail_next(1, status=400)
            with pytest.raises(BadRequest, match="injected failure"):
                c.ping()  # 4xx: not retried
            assert proxy.failed == 8
    finally:
        proxy.close()


def test_retries_across_a_server_restart(tmp_path):
    s = ServerProcess(str(tmp_path / "data")).start()
    s2 = ServerProcess(s.data_dir, port=s.port)
    try:
        c = Client(f"http://127.0.0.1:{s.port}", s.admin_key, "db", retries=0)
        c.create_database("db")
        c.write([("m", None, {"v": 1.0}, 1)])
        assert s.stop() == 0
        with pytest.raises(ConnectionFailed, match="ConnectionRefused"):
            c.write([("m", None, {"v": 2.0}, 2)])
        # Restart on the same port from another thread while the client is retrying.
        t = threading.Thread(target=s2.start)
        c.retries, c.backoff = 12, 0.05
        t.start()
        try:
            c.write([("m", None, {"v": 2.0}, 2)])
        finally:
            t.join()
        assert [r["v"] for r in c.query("SELECT v FROM m").rows()] == [1.0, 2.0]
        c.close()
        assert s2.stop() == 0
    finally:
        s.kill()
        s2.kill()


def test_stale_keepalive_connection_is_replaced(srv, db):
    proxy = FaultProxy(srv.port)
    try:
        with Client(proxy.url, srv.admin_key, db, retries=0) as c:
            c.ping()
            proxy.drop_all()  # the server side of the idle connection goes away
            c.ping()          # retries=0, yet it works: a fresh connection, at once
            assert proxy.accepted == 2
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------

def test_stream_history_live_and_reconnect(srv, client, db):
    client.write([("s", {"h": "a"}, {"v": 1.0}, 1000), ("s", {"h": "a"}, {"v": 2.0}, 2000)])
    proxy = FaultProxy(srv.port)
    try:
        sc = Client(proxy.url, srv.admin_key, db, backoff=0.02)
        it = sc.stream("SELECT v FROM s", history=True, epoch="ns")
        ev = next(it)
        assert ev.event == "history" and ev.id == "2000"
        assert ev.series[0].values == [[1000, 1.0], [2000, 2.0]]
        client.write([("s", {"h": "a"}, {"v": 3.0}, 3000)])
        ev = next(it)
        assert (ev.event, ev.id, ev.series[0].values) == ("points", "3000", [[3000, 3.0]])
        proxy.drop_all()                      # the connection breaks...
        client.write([("s", {"h": "a"}, {"v": 4.0}, 4000)])   # ...and a point arrives meanwhile
        ev = next(it)                         # reconnected with Last-Event-ID: 3000
        assert ev.event == "points" and ev.series[0].values == [[4000, 4.0]]
        assert proxy.accepted == 2
        client.write([("s", {"h": "a"}, {"v": 5.0}, 5000)])
        ev = next(it)
        assert ev.series[0].values == [[5000, 5.0]]  # nothing repeated
        it.close()
    finally:
        proxy.close()


def test_stream_resume_from_given_id_and_errors(srv, client, db):
    client.write([("s", None, {"v": float(i)}, i * 1000) for i in range(1, 5)])
    it = client.stream("SELECT v FROM s", last_event_id="2000", epoch="ns")
    ev = next(it)
    assert ev.event == "points" and ev.series[0].values == [[3000, 3.0], [4000, 4.0]]
    it.close()
    with pytest.raises(NotFound, match="database not found"):
        client.stream("SELECT v FROM s", database="no_such_db")
    with pytest.raises(BadRequest):
        client.stream("SHOW DATABASES")


def test_stream_error_event_when_key_revoked(srv, client, db):
    k = client.create_key(db, "read", "streamer")
    with Client(f"http://127.0.0.1:{srv.port}", k.key, db) as rc:
        it = rc.stream("SELECT v FROM s", epoch="ns")
        client.write([("s", None, {"v": 1.0}, 1)])
        assert next(it).event == "points"
        client.revoke_key(k.id)
        with pytest.raises(StreamError, match="revoked"):
            next(it)


# ---------------------------------------------------------------------------------------------
# Pure parts: the SSE parser, the backoff rule, time conversion
# ---------------------------------------------------------------------------------------------

def test_sse_parser_any_chunking():
    import random

    stream = (b"id: 5\nevent: points\ndata: {\"series\":[]}\n\n"
              b": heartbeat\n\n"
              b"event: partial\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
              b"event: dropped\rdata: {\"missed\": 3}\r\r\n")  # a lone CR waits for a possible LF
    want = [("points", "5", '{"series":[]}'), ("partial", None, '{"a":\n1}'),
            ("dropped", None, '{"missed": 3}')]
    rng = random.Random(1)
    for _ in range(200):
        p = protocol.SseParser()
        got, i = [], 0
        while i < len(stream):
            n = rng.randint(1, 7)
            got += p.feed(stream[i:i + n])
            i += n
        assert [(e.event, e.id, e.data) for e in got] == want
        assert p.comments == 1


def test_backoff_grows_with_jitter_and_is_capped():
    import random

    rng = random.Random(3)
    for attempt in range(12):
        d = min(protocol.MAX_BACKOFF_SECONDS, 0.2 * 2 ** attempt)
        for _ in range(50):
            assert d / 2 <= protocol.backoff_delay(attempt, 0.2, rng) <= d


def test_time_forms_to_units():
    from chronosdb.client.points import time_to_ns, to_units

    assert time_to_ns("2020-09-13T12:26:40.123456789Z") == 1_600_000_000_123_456_789
    assert time_to_ns("2020-09-13T14:26:40+02:00") == 1_600_000_000 * 10**9
    assert time_to_ns(dt.datetime(2020, 9, 13, 12, 26, 40, 5)) == 1_600_000_000_000_005_000
    assert time_to_ns(np.datetime64(1_600_000_000_123, "ms")) == 1_600_000_000_123_000_000
    assert to_units("2020-09-13T12:26:40.999Z", 10**9, 0) == 1_600_000_000
    assert to_units(None, 1000, 5_000_999) == 5000 and to_units(42, 10**9, 0) == 42
    with pytest.raises(ValueError, match="RFC3339"):
        time_to_ns("yesterday")
    with pytest.raises(TypeError, match="not supported"):
        to_units(1.5, 1, 0)
