"""Small read-only queries run on the event loop; over its budget a query starts over in the pool.

The real ``Server`` composition (engine, router, handlers, metrics) in-process, requests handed
to its router. The inline budget is set per test (``INLINE_BUDGET``), so what runs where does not
depend on this machine's speed; the answers must be the same whichever way a query ran.
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import numpy as np
import orjson
import pytest

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.server.app import Server
from chronosdb.server.config import ServerConfig
from chronosdb.server.handlers import query as query_handler
from chronosdb.server.http.messages import Request

HOSTS = 30
POINTS = 2000  # per host, 1 s apart


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setattr(query_handler, "fast_shapes", query_handler._FastShapes())
    s = Server(ServerConfig(data_dir=str(tmp_path / "d"), auth=False))
    s.engine.create_database("db")
    keys = [f"m,host=h{h}".encode() for h in range(HOSTS)]
    series = np.repeat(np.arange(HOSTS, dtype=np.int32), POINTS)
    times = np.tile(np.arange(POINTS, dtype=np.int64) * 10**9, HOSTS)
    vals = (series.astype(np.int64) * 7 + times // 10**9) % 101
    s.engine.write("db", WriteBatch(keys, [FieldColumn(b"v", FieldType.INTEGER, series, times, vals)]))
    yield s
    s.pool.shutdown(wait=True)
    s.engine.close()


def _query(server, q: str):
    req = Request("GET", "/query", urlencode({"q": q, "db": "db"}), {"host": "test"})
    resp = asyncio.run(server.router(req))
    return resp.status, orjson.loads(resp.body)


def _metric(server, name: str) -> float:
    for line in server.metrics.render().decode().splitlines():
        if line.startswith(f"chronosdb_{name} "):
            return float(line.split()[-1])
    return 0.0


def test_a_fast_shape_runs_inline_with_the_same_answer(server, monkeypatch):
    monkeypatch.setattr(query_handler, "INLINE_BUDGET", 60.0)
    q = "SELECT sum(v) FROM m WHERE host = 'h3' AND time >= {a}s AND time < {b}s GROUP BY time(10s)"
    first = _query(server, q.format(a=0, b=60))  # the shape's first run: in the pool
    assert _metric(server, "queries_inline_total") == 0
    again = [_query(server, q.format(a=a, b=a + 60)) for a in (0, 100, 200)]
    assert _metric(server, "queries_inline_total") == 3
    assert again[0] == first
    for (status, doc), a in zip(again, (0, 100, 200)):
        assert status == 200
        vals = doc["results"][0]["series"][0]["values"]
        want = [sum((3 * 7 + i) % 101 for i in range(w, w + 10)) for w in range(a, a + 60, 10)]
        assert [v[1] for v in vals] == want


def test_a_query_over_budget_starts_over_in_the_pool(server, monkeypatch):
    monkeypatch.setattr(query_handler, "INLINE_BUDGET", 60.0)
    q = "SELECT v FROM m WHERE time >= {a}s AND time < {b}s GROUP BY host"
    _query(server, q.format(a=0, b=1))  # the shape is now known fast
    monkeypatch.setattr(query_handler, "INLINE_BUDGET", 0.0)  # any inline run is over budget
    status, doc = _query(server, q.format(a=0, b=POINTS))
    assert status == 200
    assert _metric(server, "queries_inline_over_budget_total") == 1
    assert _metric(server, "queries_inline_total") == 0
    series = doc["results"][0]["series"]
    assert len(series) == HOSTS
    for s in series:
        h = int(s["tags"]["host"][1:])
        assert [v[1] for v in s["values"]] == [(h * 7 + i) % 101 for i in range(POINTS)]
    # the shape lost its privilege: the next one goes straight to the pool
    _query(server, q.format(a=0, b=POINTS))
    assert _metric(server, "queries_inline_over_budget_total") == 1


def test_writes_and_into_never_run_inline(server, monkeypatch):
    monkeypatch.setattr(query_handler, "INLINE_BUDGET", 60.0)
    q = ("SELECT sum(v) INTO db.autogen.m_sum FROM m WHERE host = 'h1' AND time >= {a}s "
         "AND time < {b}s GROUP BY time(10s)")
    for a in (0, 10, 20, 30):
        assert _query(server, q.format(a=a, b=a + 10))[0] == 200
    assert _metric(server, "queries_inline_total") == 0
    status, doc = _query(server, "SELECT sum FROM m_sum")
    assert [v[1] for v in doc["results"][0]["series"][0]["values"]] == \
        [sum((7 + i) % 101 for i in range(w, w + 10)) for w in (0, 10, 20, 30)]


def test_a_shape_earns_inline_under_half_the_budget_and_keeps_it_under_the_budget():
    shapes = query_handler._FastShapes()
    b = query_handler.INLINE_BUDGET
    shapes.record("s", 0.7 * b)     # close to the budget: it would overrun now and then
    assert "s" not in shapes
    shapes.record("s", 0.3 * b)     # earned
    assert "s" in shapes
    shapes.record("s", 0.9 * b)     # kept while under the budget
    assert "s" in shapes
    shapes.record("s", 1.2 * b)     # lost
    assert "s" not in shapes
