"""Subscriptions: the line protocol encoding, the bounded retry queue, and real servers forwarding
to a second real ``chronosdb serve`` over HTTP and to UDP sockets held by the test."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import numpy as np
import pytest

from chronosdb.ext.lineproto import parse as parse_lines
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.server.metrics import Metrics
from chronosdb.subscriptions.definitions import redact
from chronosdb.ext.lpencode import encode_batch
from chronosdb.subscriptions.service import Destination, Payload, split_datagrams
from serverproc import free_port


def _wait_for(predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(interval)  # polling threads/servers we do not control; the deadline bounds it


# --- encoding ---------------------------------------------------------------------------------

def _random_batch(rng: np.random.Generator, n: int) -> WriteBatch:
    keys = [b"cpu,host=a", b"cpu,host=b\\ c,region=e\\,u", b"we\\ ird\\,m,k\\=1=v\\=2", b"mem"]
    cols = []
    for name, ftype in ((b"f", FieldType.FLOAT), (b"i n", FieldType.INTEGER), (b"b,=", FieldType.BOOLEAN),
                        (b"s", FieldType.STRING)):
        series = rng.integers(0, len(keys), n).astype(np.int32)
        times = rng.integers(-10**12, 2 * 10**18, n)
        if ftype is FieldType.FLOAT:
            values = np.concatenate([rng.normal(0, 1e6, n - 3), [0.1, 1e300, -5e-324]])
        elif ftype is FieldType.INTEGER:
            values = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)
        elif ftype is FieldType.BOOLEAN:
            values = rng.integers(0, 2, n).astype(np.uint8)
        else:
            values = StringArray.from_list([["", "plain", 'quo"te', "back\\slash", "ünï", "a b,c=d"][k % 6]
                                            for k in rng.integers(0, 6, n)])
        cols.append(FieldColumn(name, ftype, series, times, values))
    return WriteBatch(keys, cols)


def _points(batch: WriteBatch) -> set:
    out = set()
    for c in batch.columns:
        vals = c.values.to_list() if isinstance(c.values, StringArray) else c.values.tolist()
        for s, t, v in zip(c.series.tolist(), c.times.tolist(), vals):
            out.add((batch.keys[s], c.name, int(c.ftype), t, v))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forwarded_encoding_parses_back_to_the_same_points(seed):
    batch = _random_batch(np.random.default_rng(seed), 200)
    body = encode_batch(batch)
    assert body.endswith(b"\n")
    res = parse_lines(body)
    assert not res.errors, res.errors[:3]
    assert _points(res.batch) == _points(batch)


def test_datagrams_split_at_line_boundaries_under_the_limit():
    rng = np.random.default_rng(5)
    body = b"".join(b"m v=%di %d\n" % (int(x), int(x)) * int(r) for x, r in zip(rng.integers(0, 10**9, 3000),
                                                                                 rng.integers(1, 4, 3000)))
    parts = split_datagrams(body, 1000)
    assert b"".join(parts) == body
    assert all(len(p) <= 1000 and p.endswith(b"\n") for p in parts)
    assert split_datagrams(b"", 1000) == []


def test_redact_hides_passwords():
    assert redact("http://u:secret@h:1/x") == "http://u:***@h:1/x"
    assert redact("udp://h:1") == "udp://h:1"


# --- the bounded retry queue ------------------------------------------------------------------

class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append((self.path, self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_a_full_queue_drops_the_oldest_and_the_rest_is_retried_until_delivered():
    port = free_port()
    metrics = Metrics()
    labels = {"subscription": "db.autogen.s", "destination": f"http://127.0.0.1:{port}"}
    d = Destination(f"http://127.0.0.1:{port}", labels, metrics, queue_bodies=3)
    try:
        batches = [WriteBatch.from_points([("m", "v", FieldType.INTEGER, i, i)]) for i in range(10)]
        for b in batches:
            d.enqueue(Payload("db", "autogen", b))
        assert d.dropped == 7
        assert metrics.get("subscription_bodies_dropped_total", **labels) == 7
        _wait_for(lambda: d.failures >= 2 and not d.live)  # nobody listens yet: retried with backoff
        _Receiver.bodies = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            _wait_for(lambda: d.forwarded == 3)
            assert d.depth() == 0 and d.live
            assert [b for _p, b in _Receiver.bodies] == [b"m v=%di %d\n" % (i, i) for i in (7, 8, 9)]
            assert all(p == "/write?db=db&rp=autogen" for p, _b in _Receiver.bodies)
            assert metrics.get("subscription_writes_forwarded_total", **labels) == 3
            assert metrics.get("subscription_queue_depth", **labels) == 0
        finally:
            srv.shutdown()
            srv.server_close()
    finally:
        d.stop()


# --- real servers -----------------------------------------------------------------------------

def _udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    return s


def _recv_lines(sock, n_lines):
    lines = []
    while len(lines) < n_lines:
        data, _addr = sock.recvfrom(65536)
        lines += data.decode().splitlines()
    return lines


def _recv_values(sock, n_values) -> set:
    """Field values received as points (the encoder may put a point's fields on one line or
    several; both are line protocol)."""
    points: set = set()
    while len(points) < n_values:
        data, _addr = sock.recvfrom(65536)
        res = parse_lines(data)
        assert not res.errors
        points |= _points(res.batch)
    return points


def _ok(resp):
    status, doc = resp
    assert status == 200 and "error" not in doc["results"][0], doc
    return doc["results"][0]


def test_writes_are_forwarded_to_another_server_over_http_and_to_udp(start_server):
    src = start_server()
    dst = start_server()
    _ok(src.query("CREATE DATABASE db"))
    _ok(dst.query("CREATE DATABASE db"))
    udp = _udp_socket()
    try:
        url = f"http://user:{dst.admin_key}@127.0.0.1:{dst.port}"
        uport = udp.getsockname()[1]
        _ok(src.query(f"CREATE SUBSCRIPTION s1 ON db.autogen DESTINATIONS ALL '{url}', 'udp://127.0.0.1:{uport}'"))
        body = "\n".join(f"cpu,host=h{i % 3} usage={i}.25,n={i}i,ok=true,s=\"x{i}\" {1_600_000_000_000_000_000 + i}"
                         for i in range(500)).encode()
        status, _h, b = src.write(body)
        assert status == 204, b
        status, _h, b = src.write(b"mem,host=h0 free=7i 1600000000000000000")
        assert status == 204, b

        points = _recv_values(udp, 500 * 4 + 1)
        assert (b"mem,host=h0", b"free", int(FieldType.INTEGER), 1_600_000_000_000_000_000, 7) in points
        assert parse_lines(body).batch and _points(parse_lines(body).batch) <= points

        q = "SELECT * FROM cpu GROUP BY host"

        def same():
            a = src.query(q, db="db")[1]
            b = dst.query(q, db="db")[1]
            return a == b and "series" in b["results"][0] and a

        doc = _wait_for(same)
        assert sum(len(s["values"]) for s in doc["results"][0]["series"]) == 500
        _wait_for(lambda: dst.query("SELECT free FROM mem", db="db")[1]["results"][0].get("series"))

        # SHOW SUBSCRIPTIONS: InfluxDB's columns; destinations a JSON array, as InfluxDB's
        res = _ok(src.query("SHOW SUBSCRIPTIONS"))
        assert res["series"] == [{"name": "db", "columns": ["retention_policy", "name", "mode", "destinations"],
                                  "values": [["autogen", "s1", "ALL", [url, f"udp://127.0.0.1:{uport}"]]]}]
        _st, _h, metrics = src.request("GET", "/metrics")
        text = metrics.decode()
        assert f'chronosdb_subscription_writes_forwarded_total{{destination="udp://127.0.0.1:{uport}",subscription="db.autogen.s1"}} 2' in text
        assert dst.admin_key not in text  # credentials never reach the metrics
        stats = _ok(src.query("SHOW STATS FOR 'subscriber'"))["series"]
        assert {s["tags"]["destination"] for s in stats} == {f"http://user:***@127.0.0.1:{dst.port}",
                                                              f"udp://127.0.0.1:{uport}"}
    finally:
        udp.close()


def test_any_mode_sends_each_write_to_one_destination_round_robin(start_server):
    src = start_server(auth=False)
    _ok(src.query("CREATE DATABASE db"))
    a, b = _udp_socket(), _udp_socket()
    try:
        _ok(src.query(f"CREATE SUBSCRIPTION s ON db.autogen DESTINATIONS ANY "
                      f"'udp://127.0.0.1:{a.getsockname()[1]}', 'udp://127.0.0.1:{b.getsockname()[1]}'"))
        for i in range(6):
            status, _h, _b = src.write(f"m v={i}i {i}".encode())
            assert status == 204
        got_a, got_b = _recv_lines(a, 3), _recv_lines(b, 3)
        assert sorted(got_a + got_b) == sorted(f"m v={i}i {i}" for i in range(6))
    finally:
        a.close()
        b.close()


def test_subscription_statements_errors_and_persistence(start_server, tmp_path):
    data_dir = str(tmp_path / "subs")
    srv = start_server(data_dir=data_dir, auth=False)
    _ok(srv.query("CREATE DATABASE db"))
    _ok(srv.query("CREATE SUBSCRIPTION s ON db.autogen DESTINATIONS ANY 'http://127.0.0.1:9', 'udp://127.0.0.1:9'"))
    for stmt, error in [
        ("CREATE SUBSCRIPTION s ON db.autogen DESTINATIONS ANY 'http://h:1'", "subscription already exists"),
        ("CREATE SUBSCRIPTION t ON db.nope DESTINATIONS ANY 'http://h:1'", "retention policy not found: nope"),
        ("CREATE SUBSCRIPTION t ON nodb.autogen DESTINATIONS ANY 'http://h:1'", "database not found: nodb"),
        ("CREATE SUBSCRIPTION t ON db.autogen DESTINATIONS ANY 'ftp://h:1'", "invalid subscription URL: ftp://h:1"),
        ("CREATE SUBSCRIPTION t ON db.autogen DESTINATIONS ANY 'http://h'", "invalid subscription URL: http://h"),
        ("DROP SUBSCRIPTION nope ON db.autogen", "subscription not found"),
        ("DROP SUBSCRIPTION s ON nodb.autogen", "database not found: nodb"),
    ]:
        status, doc = srv.query(stmt)
        assert status == 200 and doc["results"][0]["error"] == error, (stmt, doc)
    srv.stop()
    srv = start_server(data_dir=data_dir, auth=False)
    show = _ok(srv.query("SHOW SUBSCRIPTIONS"))["series"]
    assert show[0]["values"] == [["autogen", "s", "ANY", ["http://127.0.0.1:9", "udp://127.0.0.1:9"]]]
    _ok(srv.query("DROP SUBSCRIPTION s ON db.autogen"))
    assert _ok(srv.query("SHOW SUBSCRIPTIONS")).get("series", []) == []
    _ok(srv.query("CREATE SUBSCRIPTION s2 ON db.autogen DESTINATIONS ALL 'udp://127.0.0.1:9'"))
    _ok(srv.query("DROP DATABASE db"))
    assert _ok(srv.query("SHOW SUBSCRIPTIONS")).get("series", []) == []
