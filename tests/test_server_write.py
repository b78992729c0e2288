"""/write, /ping, /health, /metrics and UDP against a real `chronosdb serve` subprocess."""
from __future__ import annotations

import gzip
import json
import socket
import time

import numpy as np
import pytest

from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions
from serverproc import free_port


def read_back(data_dir, db, key: bytes, field: bytes):
    e = Engine(data_dir, EngineOptions(background=False))
    try:
        sid = int(e.index(db).ids_for_keys([key], create=False)[0])
        return StorageReader(e).scan(db, sid, field) if sid else None
    finally:
        e.close()


def create_db(s, name="db"):
    status, doc = s.query(f"CREATE DATABASE {name}")
    assert status == 200, doc


def test_ping_and_health(server):
    status, h, body = server.request("GET", "/ping")
    assert status == 204 and body == b"" and h["x-influxdb-version"].startswith("1.")
    status, doc = server.json("GET", "/ping?verbose=true")
    assert status == 200 and "version" in doc
    status, doc = server.json("GET", "/health")
    assert status == 200 and doc["status"] == "pass"


def test_write_then_restart_reads_back(server):
    create_db(server)
    body = b"cpu,host=a,region=eu usage=1.5,n=3i,ok=true,msg=\"hi there\" 1000\ncpu,region=eu,host=a usage=2.5 2000\n"
    status, _h, b = server.write(body)
    assert status == 204, b
    assert server.stop() == 0
    t, v = read_back(server.data_dir, "db", b"cpu,host=a,region=eu", b"usage")
    assert t.tolist() == [1000, 2000] and v.tolist() == [1.5, 2.5]
    assert read_back(server.data_dir, "db", b"cpu,host=a,region=eu", b"n")[1].tolist() == [3]
    assert read_back(server.data_dir, "db", b"cpu,host=a,region=eu", b"msg")[1].to_list() == [b"hi there"]


def test_precision_and_default_time(server):
    create_db(server)
    assert server.write(b"m v=1 5", params="&precision=s")[0] == 204
    before = time.time_ns()
    assert server.write(b"m v=2")[0] == 204
    after = time.time_ns()
    server.stop()
    t, v = read_back(server.data_dir, "db", b"m", b"v")
    assert t[0] == 5 * 10**9 and before <= t[1] <= after


@pytest.mark.parametrize("path,body,status,needle", [
    ("/write", b"m v=1", 400, "database is required"),
    ("/write?db=nope", b"m v=1", 404, 'database not found: \\"nope\\"'),
    ("/write?db=db&rp=nope", b"m v=1", 404, "retention policy not found"),
    ("/write?db=db&precision=x", b"m v=1", 400, "invalid precision"),
    ("/write?db=db", b"m v=", 400, "unable to parse 'm v='"),
    ("/write?db=db", b"m", 400, "unable to parse"),
])
def test_write_errors_are_json_4xx(server, path, body, status, needle):
    create_db(server)
    st, h, b = server.request("POST", path, body)
    assert st == status, b
    assert h["content-type"] == "application/json"
    assert needle in b.decode()
    assert set(json.loads(b)) == {"error"}


def test_partial_write_keeps_good_lines(server):
    create_db(server)
    st, _h, b = server.write(b"m v=1 1\nm v=oops 2\nm v=3 3\n")
    assert st == 400
    msg = json.loads(b)["error"]
    assert msg.startswith("partial write: unable to parse 'm v=oops 2'") and msg.endswith("dropped=1")
    st, _h, b = server.write(b"m v=5i 4\nm w=1 4\n")  # v is a float: conflict
    msg = json.loads(b)["error"]
    assert st == 400 and "field type conflict" in msg and '"v"' in msg and '"m"' in msg and "dropped=1" in msg
    server.stop()
    assert read_back(server.data_dir, "db", b"m", b"v")[1].tolist() == [1.0, 3.0]
    assert read_back(server.data_dir, "db", b"m", b"w")[1].tolist() == [1.0]


def test_gzip_bodies(server):
    create_db(server)
    body = gzip.compress(b"g v=1 1\ng v=2 2\n")
    st, _h, b = server.write(body, headers={"Content-Encoding": "gzip"})
    assert st == 204, b
    st, _h, b = server.write(body[:-6], headers={"Content-Encoding": "gzip"})
    assert st == 400 and "gzip" in json.loads(b)["error"]
    server.stop()
    assert read_back(server.data_dir, "db", b"g", b"v")[1].tolist() == [1.0, 2.0]


def test_body_limit_413(start_server):
    s = start_server(auth=False, extra=["--config", "/dev/null"])
    create_db(s)
    big = b"m v=1 1\n" * (26 * 1024 * 1024 // 8)
    st, _h, b = s.write(big)
    assert st == 413 and "too large" in json.loads(b)["error"]
    # a gzip bomb: small on the wire, over the limit inflated
    st, _h, b = s.write(gzip.compress(big), headers={"Content-Encoding": "gzip"})
    assert st == 413
    assert s.write(b"m v=1 1")[0] == 204


def test_json_write_format(server):
    create_db(server)
    doc = [{"name": "events", "columns": ["time", "type", "value"],
            "points": [[1000, "click", 1], [2000, "view", 2.5]]}]
    st, _h, b = server.write(json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    assert st == 204, b
    st, _h, b = server.write(b"[{\"name\": 3}]", headers={"Content-Type": "application/json"})
    assert st == 400 and "name" in json.loads(b)["error"]
    server.stop()
    t, v = read_back(server.data_dir, "db", b"events", b"value")
    assert t.tolist() == [10**9, 2 * 10**9] and v.tolist() == [1.0, 2.5]  # ms by default
    assert read_back(server.data_dir, "db", b"events", b"type")[1].to_list() == [b"click", b"view"]


def test_keep_alive_and_pipelining(server):
    create_db(server)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        reqs = b"".join(
            b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            for body in (b"p v=1 1", b"p v=2 2", b"p v=3 3"))
        s.sendall(reqs + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        deadline = time.monotonic() + 10
        while buf.count(b"HTTP/1.1 204") < 4 and time.monotonic() < deadline:
            buf += s.recv(65536)
        assert buf.count(b"HTTP/1.1 204") == 4
    # chunked request body
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"4\r\np v=\r\n5\r\n4 4\nq\r\n5\r\n v=1 \r\n1\r\n4\r\n0\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 204")
    server.stop()
    assert read_back(server.data_dir, "db", b"p", b"v")[1].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_metrics(server):
    create_db(server)
    server.write(b"m v=1 1\nm v=2 2")
    server.write(b"bad")
    st, h, b = server.request("GET", "/metrics")
    text = b.decode()
    assert st == 200 and h["content-type"].startswith("text/plain")
    assert "chronosdb_points_written_total 2" in text
    assert 'chronosdb_write_errors_total{kind="parse"} 1' in text
    assert 'chronosdb_http_request_duration_seconds_count{route="/write"}' in text
    assert "chronosdb_wal_fsyncs" in text and "chronosdb_cache_bytes" in text


def test_udp_input(start_server):
    port = free_port(socket.SOCK_DGRAM)
    s = start_server(auth=False, udp=[f"127.0.0.1:{port}=udpdb"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for i in range(50):
            u.sendto(b"u,host=a v=%d %d" % (i, i + 1), ("127.0.0.1", port))
        u.sendto(b"this is not line protocol", ("127.0.0.1", port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = s.request("GET", "/metrics")[2].decode()
        if "chronosdb_udp_parse_errors_total 1" in text and "chronosdb_points_written_total 50" in text:
            break
        time.sleep(0.05)
    assert "chronosdb_udp_datagrams_total 51" in text
    assert "chronosdb_udp_parse_errors_total 1" in text
    s.stop()
    t, v = read_back(s.data_dir, "udpdb", b"u,host=a", b"v")
    assert v.tolist() == list(np.arange(50.0))


def test_sigterm_finishes_and_exits_zero(server):
    create_db(server)
    assert server.write(b"m v=1 1")[0] == 204
    assert server.stop() == 0
    assert "stopped" in server.output() or server.proc.returncode == 0
