"""1,000 malformed requests: each gets a 4xx with a JSON error, never a 5xx; the server keeps
serving good writes meanwhile and stored data stays intact."""
from __future__ import annotations

import gzip
import json
import random
import socket
import threading
import time

from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions
from serverproc import ServerProcess


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            if len(rest) >= int(line.split(b":")[1]):
                                return buf
        except (socket.timeout, ConnectionResetError):
            pass
        return buf


def status_of(resp: bytes) -> int:
    assert resp.startswith(b"HTTP/1.1 "), resp[:100]
    return int(resp[9:12])


def json_error(resp: bytes) -> str:
    body = resp.partition(b"\r\n\r\n")[2]
    return json.loads(body)["error"]


def bad_requests(rng: random.Random):
    """(description, raw HTTP bytes) of many kinds of bad request."""
    def post(path, body, extra=b""):
        return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (path, len(body), extra, body)

    kinds = [
        lambda: ("bad line protocol", post(b"/write?db=db", rng.choice(
            [b"m", b"m v=", b"m v=1 x", b",t=1 v=1", b"m,t v=1", b'm v="open', b"m v=1i2", b"m v=tru"]))),
        lambda: ("bad utf-8", post(b"/write?db=db", b"m\xff\xfe v=1 1")),
        lambda: ("huge line", post(b"/write?db=db", b"m,t=" + b"x" * rng.randint(100_000, 2_000_000) + b" v=")),
        lambda: ("bad precision", post(b"/write?db=db&precision=" + rng.choice([b"x", b"ps", b"%00"]), b"m v=1 1")),
        lambda: ("truncated gzip", post(b"/write?db=db", gzip.compress(b"m v=1 1\n" * 100)[:-rng.randint(1, 20)],
                                         b"Content-Encoding: gzip\r\n")),
        lambda: ("not gzip", post(b"/write?db=db", b"plain", b"Content-Encoding: gzip\r\n")),
        lambda: ("oversized", b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\nm v=1"),
        lambda: ("no db", post(b"/write", b"m v=1 1")),
        lambda: ("unknown db", post(b"/write?db=nope", b"m v=1 1")),
        lambda: ("wrong method", b"DELETE /write?db=db HTTP/1.1\r\nHost: x\r\n\r\n"),
        lambda: ("unknown path", b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n"),
        lambda: ("no q", b"GET /query HTTP/1.1\r\nHost: x\r\n\r\n"),
        lambda: ("bad query", b"GET /query?q=SELEKT+nothing HTTP/1.1\r\nHost: x\r\n\r\n"),
        lambda: ("bad json write", post(b"/write?db=db", rng.choice([b"{", b"[1,2]", b'[{"name":"m"}]']),
                                        b"Content-Type: application/json\r\n")),
        lambda: ("garbage http", bytes(rng.getrandbits(8) for _ in range(rng.randint(5, 200))) + b"\r\n\r\n"),
        lambda: ("bad request line", b"GET\r\n\r\n"),
        lambda: ("bad chunking", b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        lambda: ("bad keys body", post(b"/api/keys", b"{not json")),
    ]
    while True:
        yield rng.choice(kinds)()


def test_malformed_requests_get_4xx_json_and_good_writes_continue(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text("header-timeout = 1.0\nbody-timeout = 2.0\n")
    s = ServerProcess(str(tmp_path / "data"), auth=False, extra=["--config", str(cfg)]).start()
    try:
        assert s.query("CREATE DATABASE db")[0] == 200
        good_acked = []
        stop = threading.Event()

        def good_writer():
            i = 0
            while not stop.is_set():
                st, _h, b = s.write(b"good v=%d %d" % (i, i + 1))
                assert st == 204, b
                good_acked.append(i)
                i += 1

        gw = threading.Thread(target=good_writer)
        gw.start()
        # slow partial requests, in parallel: headers never finish → 408
        slow_results = []

        def slow():
            r = raw_exchange(s.port, b"POST /write?db=db HTTP/1.1\r\nHost: x\r\nContent-Le", timeout=10)
            slow_results.append(r)

        slows = [threading.Thread(target=slow) for _ in range(10)]
        for t in slows:
            t.start()
        rng = random.Random(1234)
        gen = bad_requests(rng)
        seen = {}
        for _ in range(1000):
            what, raw = next(gen)
            resp = raw_exchange(s.port, raw)
            st = status_of(resp)
            assert 400 <= st < 500, (what, resp[:300])
            assert json_error(resp), what
            seen[what] = seen.get(what, 0) + 1
        for t in slows:
            t.join()
        stop.set()
        gw.join()
        assert len(slow_results) == 10 and all(status_of(r) == 408 for r in slow_results)
        assert len(seen) >= 15 and len(good_acked) > 10
        assert s.request("GET", "/ping")[0] == 204
        assert s.stop() == 0
        e = Engine(s.data_dir, EngineOptions(background=False))
        try:
            sid = int(e.index("db").ids_for_keys([b"good"], create=False)[0])
            t, v = StorageReader(e).scan("db", sid, b"v")
            assert v.tolist() == [float(i) for i in good_acked]
            assert e.index("db").measurements() == [b"good"]  # nothing from the bad requests
        finally:
            e.close()
    finally:
        s.kill()
