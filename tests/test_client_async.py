"""chronosdb.client.AsyncClient against a real `chronosdb serve` subprocess: the same claims as
tests/test_client.py (every write form reads back exactly, errors carry the server's messages,
retries, gzip, keys, streams with reconnects), driven through asyncio streams."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from chronosdb.client import (AsyncClient, AuthError, BadRequest, ConnectionFailed, NotFound,
                              QueryError, ServerError, StreamError)
from serverproc import ServerProcess
from test_client import HOSTILE_TAGS, FaultProxy


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("aclient") / "data")).start()
    yield s
    s.kill()


@pytest.fixture
def db(srv, request):
    name = "a_" + request.node.name[:50]

    async def make():
        async with AsyncClient(f"http://127.0.0.1:{srv.port}", srv.admin_key) as c:
            await c.create_database(name)
    run(make())
    return name


def client_for(srv, db, url=None, **kw):
    kw.setdefault("backoff", 0.02)
    return AsyncClient(url or f"http://127.0.0.1:{srv.port}", srv.admin_key, db, **kw)


def test_write_forms_and_read_back(srv, db):
    async def go():
        async with client_for(srv, db, batch_size=50) as c:
            assert (await c.ping()).startswith("1.")
            await c.write([
                {"measurement": "m x", "tags": HOSTILE_TAGS,
                 "fields": {"f": 2.5, "i": 7, "b": True, "s": 'q"\\'}, "time": 10},
                ("m x", HOSTILE_TAGS, {"f": 3.5}, 20),
            ])
            rows = (await c.query('SELECT * FROM "m x"', epoch="ns")).rows()
            assert [(r["time"], r["f"]) for r in rows] == [(10, 2.5), (20, 3.5)]
            assert rows[0]["s"] == 'q"\\' and rows[0]["i"] == 7 and rows[0]["b"] is True
            assert all(rows[0][k] == v for k, v in HOSTILE_TAGS.items())
            times = np.arange(300, dtype=np.int64)
            vals = np.linspace(0, 1, 300)
            n = await c.write(("col", {"h": np.where(times % 2, "odd", "even")}, times, {"v": vals}),
                              precision="ms")
            assert n == 6
            cols = (await c.query("SELECT v, h FROM col", epoch="ms")).columns()
            order = np.argsort(cols["time"], kind="stable")
            assert cols["time"][order].tolist() == times.tolist()
            assert cols["v"][order].tolist() == vals.tolist()
            assert cols["h"][order].tolist() == ["odd" if t % 2 else "even" for t in times]
    run(go())


def test_gzip_and_write_lines(srv, db):
    async def go():
        async with client_for(srv, db, gzip=True) as c:
            await c.write_lines("".join(f"z v={i}i {i}\n" for i in range(2000)))
            rows = (await c.query("SELECT count(v) FROM z")).rows()
            assert rows[0]["count"] == 2000
    run(go())


def test_errors_and_keys(srv, db):
    async def go():
        async with client_for(srv, db) as c:
            with pytest.raises(BadRequest) as e:
                await c.write_lines("bad line")
            assert e.value.message.startswith("unable to parse 'bad line'")
            with pytest.raises(NotFound, match='database not found: "nope"'):
                await c.write_lines("m v=1", database="nope")
            with pytest.raises(QueryError, match="database not found: nodb"):
                await c.query("SELECT * FROM nodb.autogen.m")
            k = await c.create_key(db, "write", "w1")
            assert [x.id for x in await c.keys(db)] == [k.id]
            async with AsyncClient(f"http://127.0.0.1:{srv.port}", k.key, db) as w:
                await w.write([("m", None, {"v": 1.0}, 1)])
                with pytest.raises(AuthError) as e:
                    await w.query("SELECT * FROM m")
                assert e.value.status == 403
                await c.revoke_key("w1")
                with pytest.raises(AuthError) as e:
                    await w.write([("m", None, {"v": 1.0}, 1)])
                assert e.value.status == 401
            assert db in await c.databases()
            await c.drop_database(db)
            assert db not in await c.databases()
    run(go())


def test_retries_503_and_stale_connection(srv, db):
    proxy = FaultProxy(srv.port)

    async def go():
        async with client_for(srv, db, url=proxy.url, retries=2, backoff=0.01) as c:
            proxy.fail_next(2)
            await c.write([("r", None, {"v": 1.0}, 1)])
            assert proxy.failed == 2
            proxy.drop_all()          # the idle keep-alive connection dies
            assert (await c.query("SELECT v FROM r", epoch="ns")).rows() == [{"time": 1, "v": 1.0}]
            await c.close()
            proxy.fail_next(3)
            with pytest.raises(ServerError, match="injected failure"):
                await c.ping()
            await c.close()
            proxy.fail_next(1)
            with pytest.raises(ServerError):
                await c.create_key(db, "read")   # not idempotent: one attempt
            assert proxy.failed == 6
    try:
        run(go())
    finally:
        proxy.close()


def test_retries_across_a_server_restart(tmp_path):
    s = ServerProcess(str(tmp_path / "data")).start()
    s2 = ServerProcess(s.data_dir, port=s.port)
    try:
        async def go():
            c = AsyncClient(f"http://127.0.0.1:{s.port}", s.admin_key, "db", retries=0)
            await c.create_database("db")
            await c.write([("m", None, {"v": 1.0}, 1)])
            assert s.stop() == 0
            with pytest.raises(ConnectionFailed):
                await c.write([("m", None, {"v": 2.0}, 2)])
            t = threading.Thread(target=s2.start)
            c.retries, c.backoff = 12, 0.05
            t.start()
            try:
                await c.write([("m", None, {"v": 2.0}, 2)])
            finally:
                await asyncio.get_running_loop().run_in_executor(None, t.join)
            assert [r["v"] for r in (await c.query("SELECT v FROM m")).rows()] == [1.0, 2.0]
            await c.close()
        run(go())
    finally:
        s.kill()
        s2.kill()


def test_stream_history_live_reconnect_and_revocation(srv, db):
    proxy = FaultProxy(srv.port)

    async def go():
        async with client_for(srv, db) as c:
            await c.write([("s", None, {"v": 1.0}, 1000)])
            async with await client_for(srv, db, url=proxy.url).stream(
                    "SELECT v FROM s", history=True, epoch="ns") as st:
                ev = await st.__anext__()
                assert (ev.event, ev.id, ev.series[0].values) == ("history", "1000", [[1000, 1.0]])
                await c.write([("s", None, {"v": 2.0}, 2000)])
                ev = await st.__anext__()
                assert (ev.event, ev.id, ev.series[0].values) == ("points", "2000", [[2000, 2.0]])
                proxy.drop_all()
                await c.write([("s", None, {"v": 3.0}, 3000)])
                ev = await st.__anext__()
                assert ev.series[0].values == [[3000, 3.0]] and proxy.accepted == 2
            with pytest.raises(NotFound):
                await c.stream("SELECT v FROM s", database="nope")
            k = await c.create_key(db, "read", "reader")
            async with AsyncClient(f"http://127.0.0.1:{srv.port}", k.key, db) as rc:
                st = await rc.stream("SELECT v FROM s", epoch="ns")
                await c.write([("s", None, {"v": 4.0}, 4000)])
                got = []
                with pytest.raises(StreamError, match="revoked"):
                    async for ev in st:
                        got.append(ev.series[0].values)
                        await c.revoke_key(k.id)
                assert got == [[[4000, 4.0]]]
    try:
        run(go())
    finally:
        proxy.close()
