"""LIMIT 1 raw SELECTs with one series per group ("the last point of every host") answer like
the general raw path.

``SelectExecutor._edge_rows`` builds each group's single row from the fields' edge points; here
every query runs with it and with it forbidden, and the answers must be equal — over every field
type, fields missing at the series' last time, points spread over two shards, points still in
the cache, overwrites, and a deleted range (edge reads then fall back to decoding).
"""
from __future__ import annotations

import numpy as np
import orjson
import pytest
from queryhelp import AllowAll, answer

from chronosdb.ext import resultenc
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.query.executor import SelectExecutor
from chronosdb.query.influxql import parse
from chronosdb.query.statements import QueryContext, execute
from chronosdb.storage.engine import Engine, EngineOptions

S = 10**9
T0 = 1_452_124_800 * S - 6 * 3600 * S  # 2016-01-06T18:00Z: six hours before a shard boundary
HOSTS = 9


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    rng = np.random.default_rng(3)
    e = Engine(str(tmp_path_factory.mktemp("edge") / "d"), EngineOptions(background=False))
    e.create_database("db")
    keys = [f"m,dc=d{h % 2},host=h{h}".encode() for h in range(HOSTS)]
    n = 2000
    times = T0 + np.arange(n, dtype=np.int64) * 20 * S  # ~11 h: across the boundary
    cols = []
    for fname, ftype, make in (
        (b"f", FieldType.FLOAT, lambda k: np.round(rng.normal(0, 10, k), 2)),
        (b"i", FieldType.INTEGER, lambda k: rng.integers(-99, 99, k)),
        (b"b", FieldType.BOOLEAN, lambda k: rng.integers(0, 2, k).astype(np.uint8)),
        (b"s", FieldType.STRING, lambda k: StringArray.from_list([f"v{x}".encode() for x in rng.integers(0, 50, k)])),
    ):
        ser, ts = [], []
        for h in range(HOSTS):
            # each field stops at its own time on some hosts: the last row lacks some fields
            stop = n - (h * 37 % 5) * (1 if fname in (b"f", b"s") else 3)
            ser.append(np.full(stop, h, dtype=np.int32))
            ts.append(times[:stop])
        ser, ts = np.concatenate(ser), np.concatenate(ts)
        cols.append(FieldColumn(fname, ftype, ser, ts, make(len(ts))))
    e.write("db", WriteBatch(keys, cols))
    e.compact_all(full=True)
    # newer points still in the cache for a few hosts, one overwriting a stored point
    late = WriteBatch(keys[:3], [FieldColumn(b"f", FieldType.FLOAT, np.array([0, 1, 2], np.int32),
                                             np.array([times[-1] + 5 * S, times[-1] + 7 * S, times[-1]]),
                                             np.array([1.5, 2.5, 3.5]))])
    e.write("db", late)
    # a deleted range at the end of host h4 (its edge blocks are touched by a tombstone)
    from chronosdb.model.tagexpr import TagEquals
    e.delete("db", [b"m"], TagEquals(b"host", b"h4"), int(times[-300]), int(times[-1]))
    yield e
    e.close()


QUERIES = [
    "SELECT * FROM m GROUP BY host ORDER BY time DESC LIMIT 1",
    "SELECT * FROM m GROUP BY * ORDER BY time DESC LIMIT 1",
    "SELECT * FROM m GROUP BY host LIMIT 1",
    "SELECT f, s, dc, b FROM m GROUP BY host ORDER BY time DESC LIMIT 1",
    "SELECT i FROM m WHERE time < '2016-01-07T00:00:00Z' GROUP BY host ORDER BY time DESC LIMIT 1",
    "SELECT f, i FROM m WHERE dc = 'd1' AND time >= '2016-01-07T01:00:00Z' GROUP BY host LIMIT 1",
    "SELECT * FROM m GROUP BY host ORDER BY time DESC LIMIT 1 tz('America/New_York')",
    "SELECT s, nosuch FROM m GROUP BY host ORDER BY time DESC LIMIT 1 SLIMIT 4 SOFFSET 2",
]


@pytest.mark.parametrize("q", QUERIES)
def test_edge_rows_answer_like_the_raw_path(engine, q, monkeypatch):
    calls = []
    real = SelectExecutor._edge_rows

    def spy(self, *a, **kw):
        calls.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(SelectExecutor, "_edge_rows", spy)
    fast = answer(engine, q)
    assert calls, "the edge-row path was not taken: the test would compare a path with itself"
    monkeypatch.setattr(SelectExecutor, "_edge_row_ok", lambda self, *a, **kw: False)
    plain = answer(engine, q)
    assert plain["results"][0].get("series"), plain
    assert fast == plain


def test_groups_of_several_series_take_the_raw_path(engine, monkeypatch):
    monkeypatch.setattr(SelectExecutor, "_edge_rows", lambda *a, **kw: pytest.fail("edge path taken"))
    doc = answer(engine, "SELECT f FROM m GROUP BY dc ORDER BY time DESC LIMIT 1")
    assert len(doc["results"][0]["series"]) == 2


@pytest.mark.parametrize("last", [True, False], ids=["last", "first"])
def test_scan_edges_agrees_with_scan_edge(engine, last):
    """The batched edge read: every series it answers (state 1) has scan_edge's point, every
    series it says has none (state 0) has none by scan_edge either; the rest (-1: cache,
    tombstone, straddling blocks) is left to scan_edge. Random ranges, both numeric fields."""
    from chronosdb.storage.api import StorageReader

    reader = StorageReader(engine)
    sids = reader.series_ids("db", b"m").tolist()
    rng = np.random.default_rng(5)
    ranges = [(np.iinfo(np.int64).min, np.iinfo(np.int64).max)] + [
        tuple(sorted(int(x) for x in T0 + rng.integers(-3600, 13 * 3600, 2) * S)) for _ in range(30)]
    states = set()
    for lo, hi in ranges:
        with reader.views("db", None, lo, hi) as views:
            for v in views:
                for field in (b"f", b"i"):
                    st, t, vals = v.scan_edges(sids, field, lo, hi, last)
                    for j, sid in enumerate(sids):
                        states.add(int(st[j]))
                        if st[j] < 0:
                            continue
                        col = v.scan_edge(sid, field, lo, hi, 1, last)
                        if st[j] == 0:
                            assert col is None or not len(col[0])
                        else:
                            assert col is not None and len(col[0]) == 1
                            assert (int(col[0][0]), col[1][0]) == (int(t[j]), vals[j])
                            assert col[1].dtype == vals.dtype
    assert states == {-1, 0, 1}
