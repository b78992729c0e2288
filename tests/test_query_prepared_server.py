"""Prepared direct-path shapes through a real server: the answers, the statement cache's
fallbacks, and authorization.

The first text of a shape is parsed (and teaches the statement cache its shape); later texts of
that shape are answered from their literal values alone. Each such answer is compared with the
same query made ineligible for the direct path by a ``LIMIT`` larger than its window count (the
answer cannot change; the general executor computes it), in every epoch form the clients use.
"""
from __future__ import annotations

import json

import pytest
from serverproc import ServerProcess

S = 10**9
T0 = 1_451_606_400 * S   # 2016-01-01T00:00:00Z


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("prepared") / "data"), auth=True).start()
    try:
        assert s.query("CREATE DATABASE db")[0] == 200
        assert s.query("CREATE DATABASE other")[0] == 200
        lines = []
        for h in range(4):
            for i in range(2000):     # every 10 s, ~5.5 h
                v = (i * 7 + h * 13) % 101 - 50 + 0.25 * h
                lines.append(f"cpu,host=h{h},dc=d{h % 2} usage={v},n={i % 17 - 8}i {T0 + i * 10 * S}")
        st, _h, body = s.write("\n".join(lines).encode())
        assert st == 204, body
        assert s.request("POST", "/api/compact")[0] == 204   # segment files, as dashboards read
        keys = {}
        for db in ("db", "other"):
            st, doc = s.json("POST", "/api/keys", json.dumps({"database": db, "scope": "read"}).encode())
            assert st == 201, doc
            keys[db] = doc["key"]
        s.read_keys = keys
        yield s
    finally:
        s.kill()


def _q(server, q: str, key="admin", **params):
    from urllib.parse import urlencode

    st, doc = server.json("GET", "/query?" + urlencode({"q": q, "db": "db", **params}), key=key)
    return st, doc


QUERIES = [
    "SELECT max(usage) FROM cpu WHERE (host = '{h}') AND time >= '{a}' AND time < '{b}' GROUP BY time({e})",
    "SELECT mean(usage), count(n), last(n) FROM cpu WHERE host = '{h}' AND time >= {ai} AND time <= {bi} "
    "GROUP BY time({e}) fill(none)",
    "SELECT min(usage), spread(n) FROM cpu WHERE (host = '{h}' OR host = 'h3') AND time > '{a}' "
    "AND time < '{b}' GROUP BY time({e}, 30s)",
    "SELECT sum(n) AS total FROM cpu WHERE dc = 'd0' AND time >= {ai} AND time < {bi} GROUP BY time({e}) fill(null)",
]


def _texts(q: str):
    for k, (h, a, b, e) in enumerate([("h0", 600, 4 * 3600, "1m"), ("h1", 3600, 5 * 3600, "5m"),
                                      ("h2", 17, 3 * 3600 + 11, "10m"), ("h0", 0, 20000, "7m")]):
        ai, bi = T0 + a * S, T0 + b * S
        yield q.format(h=h, e=e, ai=ai, bi=bi,
                       a=f"2016-01-01T{a // 3600:02d}:{a % 3600 // 60:02d}:{a % 60:02d}Z",
                       b=f"2016-01-01T{b // 3600:02d}:{b % 3600 // 60:02d}:{b % 60:02d}Z")


@pytest.mark.parametrize("q", QUERIES)
@pytest.mark.parametrize("epoch", [None, "ms", "ns"])
def test_prepared_answers_equal_the_general_executors(server, q, epoch):
    params = {"epoch": epoch} if epoch else {}
    for text in _texts(q):
        st, got = _q(server, text, **params)
        assert st == 200, got
        st, want = _q(server, text + " LIMIT 100000", **params)
        assert st == 200, want
        assert got == want, text
        assert got["results"][0].get("series"), got


def _prepared_count(server) -> float:
    st, _h, body = server.request("GET", "/metrics")
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith("chronosdb_queries_prepared_total"):
            return float(line.split()[-1])
    return 0.0


def test_the_shape_is_served_prepared(server):
    """Texts after the first of a shape are answered prepared; one the direct path cannot take
    (LIMIT) is not."""
    texts = [t.replace("cpu", "cpu ") for t in _texts(QUERIES[0])]   # a shape of its own
    before = _prepared_count(server)
    for t in texts:
        assert _q(server, t)[0] == 200
    assert _prepared_count(server) - before == len(texts) - 1
    for t in texts:
        assert _q(server, t + " LIMIT 5")[0] == 200
    assert _prepared_count(server) - before == len(texts) - 1


def test_authorization_holds_on_the_prepared_path(server):
    q = QUERIES[0]
    text = next(_texts(q))
    assert _q(server, text)[0] == 200                          # the shape is cached now
    st, doc = _q(server, text, key=server.read_keys["db"])
    assert st == 200 and doc["results"][0].get("series")
    st, doc = _q(server, text, key=server.read_keys["other"])  # a key of another database
    assert st == 403, doc
    assert "error" in doc
    st, doc = _q(server, text, key=None)
    assert st == 401, doc


def test_errors_of_a_cached_shape_come_from_the_parser_and_the_executor(server):
    q = QUERIES[0]
    good = next(_texts(q))
    assert _q(server, good)[0] == 200
    st, doc = _q(server, good.replace("2016-01-01T00:10:00Z", "2016-13-01T00:10:00Z"))
    assert st == 400 and doc["error"].startswith("error parsing query"), doc
    st, doc = _q(server, good.replace("FROM cpu", "FROM cpu"), db="nosuch")
    assert st == 200 and doc["results"][0]["error"] == "database not found: nosuch", doc
    st, doc = _q(server, good.replace("time(1m)", "time(1ns)"))
    assert st == 200 and "max-select-buckets limit exceeded" in doc["results"][0]["error"], doc
