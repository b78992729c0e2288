"""The fused scan + window-aggregate path gives the per-series path's answers.

Many series in few groups, windows shorter than a stored block: the executor answers those from
one Cython scan per field (``SelectExecutor._fused_groups``) and finalizes every group in whole
arrays. Here the same queries run with the fused path forbidden, and the answers must agree
(floats to 1e-9 relative: sums may add in another order) — over float and integer fields,
several segment files per shard (time-disjoint, as snapshots of time-ordered writes leave
them), several shards, NaN-free random walks with repeated values (ties for min/max).
"""
from __future__ import annotations


import numpy as np
import pytest
from queryhelp import AllowAll, answer, assert_series_close

from chronosdb.ext import resultenc
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.query import direct
from chronosdb.query.executor import SelectExecutor
from chronosdb.query.influxql import parse
from chronosdb.query.statements import QueryContext, execute
from chronosdb.storage import shard_read
from chronosdb.storage.engine import Engine, EngineOptions

import orjson

T0 = 1_451_606_400 * 10**9  # 2016-01-01, a Friday: the data crosses a shard-group boundary
S = 10**9
HOSTS = 12
POINTS = 5000  # per series, every 10 s: ~14 h


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    rng = np.random.default_rng(7)
    e = Engine(str(tmp_path_factory.mktemp("fused") / "d"), EngineOptions(background=False))
    e.create_database("db")
    keys = [f"m,host=h{h},rack=r{h % 3}".encode() for h in range(HOSTS)]
    # Start 6 days in, so the 14 hours cross into the next (7-day) shard group.
    times = T0 + 6 * 86400 * S + np.arange(POINTS, dtype=np.int64) * 10 * S
    fv = np.round(np.cumsum(rng.normal(0, 1, (HOSTS, POINTS)), axis=1), 1)  # repeats: ties
    iv = rng.integers(-50, 50, (HOSTS, POINTS)).astype(np.int64)
    # Three time-ordered slices, each snapshotted: time-disjoint segment files per shard.
    for a, b in ((0, 1700), (1700, 3300), (3300, POINTS)):
        n = b - a
        series = np.repeat(np.arange(HOSTS, dtype=np.int32), n)
        t = np.tile(times[a:b], HOSTS)
        e.write("db", WriteBatch(keys, [
            FieldColumn(b"f", FieldType.FLOAT, series, t, fv[:, a:b].reshape(-1)),
            FieldColumn(b"i", FieldType.INTEGER, series, t, iv[:, a:b].reshape(-1)),
        ]))
        e.snapshot_all()
    yield e
    e.close()


def _assert_same(fused: dict, plain: dict) -> None:
    assert fused.keys() == plain.keys()
    for ra, rb in zip(fused["results"], plain["results"]):
        assert ra.get("error") == rb.get("error")
        assert_series_close(ra.get("series", []), rb.get("series", []))


START = "'2016-01-07T00:00:00Z'"
QUERIES = [
    # every function the fused path takes, float and integer, grouped by series and by a tag
    "SELECT count(f), sum(f), mean(f), min(f), max(f), first(f), last(f), spread(f) FROM m "
    f"WHERE time >= {START} AND time < '2016-01-07T14:00:00Z' GROUP BY time(1m), host",
    "SELECT count(i), sum(i), mean(i), min(i), max(i), first(i), last(i), spread(i) FROM m "
    f"WHERE time >= {START} AND time < '2016-01-07T14:00:00Z' GROUP BY time(5m), rack",
    # both fields at once, math between aggregates, fill modes, a window grid offset
    "SELECT mean(f) + max(i) AS x, min(f) FROM m WHERE time >= '2016-01-07T01:03:00Z' AND "
    "time < '2016-01-07T09:00:00Z' GROUP BY time(2m, 30s), host fill(0)",
    "SELECT max(f) FROM m WHERE time >= '2016-01-06T23:00:00Z' AND time < '2016-01-07T02:00:00Z' "
    "GROUP BY time(3m), rack fill(previous)",
    "SELECT mean(f) FROM m WHERE time >= '2016-01-06T23:00:00Z' AND time < '2016-01-07T16:00:00Z' "
    "GROUP BY time(7m) fill(null)",
    # a range crossing the shard-group boundary (Thursday 2016-01-07 00:00 UTC), ORDER BY/LIMIT
    "SELECT last(f), first(i) FROM m WHERE time >= '2016-01-06T22:00:00Z' AND "
    "time <= '2016-01-07T03:00:00Z' GROUP BY time(4m), host ORDER BY time DESC LIMIT 20",
    # one series over a range longer than a block: fused too
    f"SELECT max(f), min(i), count(f), last(i) FROM m WHERE host = 'h2' AND time >= {START} AND "
    "time < '2016-01-07T14:00:00Z' GROUP BY time(1m)",
    # tag conditions select a subset of series
    "SELECT sum(i), count(f) FROM m WHERE rack = 'r1' AND time >= '2016-01-07T02:00:00Z' AND "
    "time < '2016-01-07T05:00:00Z' GROUP BY time(90s), host",
]


@pytest.fixture(autouse=True)
def _general_executor_only(monkeypatch):
    """These tests hold the executor's fused path to its per-series path: keep the direct path
    (query.direct, tested against the executor in test_query_direct.py) out of the way."""
    monkeypatch.setattr(direct, "answer", lambda *a, **kw: None)


def _spy_fused(monkeypatch) -> list:
    """A list that gets an entry each time a query takes the fused path."""
    calls = []
    real = SelectExecutor._fused_groups

    def spy(self, *a, **kw):
        calls.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(SelectExecutor, "_fused_groups", spy)
    return calls


@pytest.mark.parametrize("split", [False, True], ids=["one-thread", "split-in-two"])
@pytest.mark.parametrize("q", QUERIES)
def test_fused_path_answers_like_the_per_series_path(engine, q, split, monkeypatch):
    # split: every scan, however small, is cut in two by group and run on two threads
    monkeypatch.setattr(shard_read, "PARALLEL_MIN_BLOCKS", 1 if split else 10**9)
    calls = _spy_fused(monkeypatch)
    fused = answer(engine, q)
    assert calls, "the fused path was not taken: the test would compare a path with itself"
    monkeypatch.setattr(SelectExecutor, "_fused_ok", lambda self, *a, **kw: False)
    plain = answer(engine, q)
    assert plain["results"][0].get("series"), plain
    _assert_same(fused, plain)



def test_a_range_without_stored_points_answers_nothing(engine, monkeypatch):
    # the second shard group holds data, but not in these hours: no segment answers for any field
    calls = _spy_fused(monkeypatch)
    q = ("SELECT max(f), count(i) FROM m WHERE time >= '2016-01-07T20:00:00Z' AND "
         "time < '2016-01-08T02:00:00Z' GROUP BY time(1m), host")
    fused = answer(engine, q)
    assert calls
    assert fused == {"results": [{"statement_id": 0}]}
    monkeypatch.setattr(SelectExecutor, "_fused_ok", lambda self, *a, **kw: False)
    assert answer(engine, q) == fused
