"""The connection's one lazily re-armed timer keeps every timeout's meaning.

A request moves the connection's deadline (headers, body, keep-alive idle) without touching the
loop's timer unless the new deadline is earlier; a timer that wakes before the current deadline
sleeps again. Checked here on a real server with short timeouts: the deadlines that moved later
(idle after several requests, headers of a second request on a kept-alive connection) still
fire on time, and never early.
"""
from __future__ import annotations

import socket
import time

import pytest
from serverproc import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("timers")
    cfg = d / "chronosdb.toml"
    cfg.write_text("header-timeout = 0.6\nbody-timeout = 0.6\nkeepalive-timeout = 0.8\n")
    s = ServerProcess(str(d / "data"), auth=False, extra=["--config", str(cfg)]).start()
    yield s
    s.stop()


def _read_answer(sock) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        rest += sock.recv(65536)
    return head


def _closed_after(sock, limit: float) -> float:
    """Seconds until the server closes the connection (EOF), at most ``limit``."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        data = sock.recv(65536)
    except socket.timeout:
        return float("inf")
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
    if data:
        while sock.recv(65536):
            pass
    return time.monotonic() - t0


def test_idle_timeout_counts_from_the_last_answer(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        for _ in range(5):   # each answer moves the idle deadline later
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(s).startswith(b"HTTP/1.1 204")
            time.sleep(0.3)  # well inside the 0.8 s idle timeout
        waited = _closed_after(s, 5)
    assert 0.4 <= waited <= 2.0, waited   # 0.8 s after the last answer, less the 0.3 s slept


def test_header_timeout_of_a_later_request_on_a_kept_alive_connection(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_answer(s).startswith(b"HTTP/1.1 204")
        time.sleep(0.2)
        t0 = time.monotonic()
        s.sendall(b"GET /ping HTTP/1.1\r\nHo")   # headers that never finish
        s.settimeout(5)
        head = _read_answer(s)
        waited = time.monotonic() - t0
    assert head.startswith(b"HTTP/1.1 408"), head[:80]
    assert 0.5 <= waited <= 2.0, waited


def test_a_busy_connection_is_not_closed(server):
    """Requests keep coming for longer than every timeout: nothing fires."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(s).startswith(b"HTTP/1.1 204")
            time.sleep(0.05)


def test_request_queue_keeps_order_and_wakes_its_worker():
    import asyncio

    from chronosdb.server.http.protocol import RequestQueue

    async def main():
        q = RequestQueue()
        got = []

        async def worker():
            for _ in range(4):
                got.append(await q.get())

        t = asyncio.create_task(worker())
        await asyncio.sleep(0)          # the worker waits on an empty queue
        q.put_nowait(1)
        q.put_nowait(2)                 # two before it runs: both, in order
        await asyncio.sleep(0)
        q.put_nowait(3)
        await asyncio.sleep(0.01)
        q.put_nowait(4)
        await t
        assert got == [1, 2, 3, 4] and q.empty() and q.qsize() == 0
        # a waiter cancelled before an item arrives loses nothing
        w = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        w.cancel()
        q.put_nowait(5)
        assert q.qsize() == 1 and await q.get() == 5

    asyncio.run(main())
