"""The direct path (``query.direct``) answers what the general executor answers, or declines.

Random dashboard-shaped window aggregates run twice on the same engine: through
``statements.execute`` (which tries the direct path first) and through ``SelectExecutor`` alone
(the slow twin). The answers must agree (floats to 1e-9 relative: a sum may add across segment
files in another order). The data has float fields with NaN and repeated values (ties), an
integer field, several time-disjoint segment files per shard, two shards, series with points
still in the cache, and a deleted range (a tombstone); so the direct path both answers and
declines (cache and tombstones send a view back to the general path) in the run, and the test
checks that it did each.
"""
from __future__ import annotations


import numpy as np
import orjson
import pytest
from queryhelp import AllowAll, assert_series_close

from chronosdb.ext import resultenc
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model import tagexpr as tx
from chronosdb.model.fieldtype import FieldType
from chronosdb.query import direct
from chronosdb.query.compile import compile_select
from chronosdb.query.executor import Limits, SelectExecutor
from chronosdb.query.influxql import parse
from chronosdb.query.results import Series, StatementResult
from chronosdb.query.statements import QueryContext, execute
from chronosdb.storage.engine import Engine, EngineOptions

T0 = 1_451_606_400 * 10**9  # 2016-01-01; shard groups are 7 days: the data crosses one boundary
S = 10**9
HOSTS = 8
POINTS = 3000               # per series, every 10 s: ~8.3 h
BASE = T0 + 6 * 86400 * S + 20 * 3600 * S


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    rng = np.random.default_rng(11)
    e = Engine(str(tmp_path_factory.mktemp("direct") / "d"), EngineOptions(background=False))
    e.create_database("db")
    keys = [f"cpu,host=h{h},rack=r{h % 3}".encode() for h in range(HOSTS)]
    times = BASE + np.arange(POINTS, dtype=np.int64) * 10 * S
    fv = np.round(np.cumsum(rng.normal(0, 1, (HOSTS, POINTS)), axis=1), 1)
    fv[rng.random((HOSTS, POINTS)) < 0.02] = np.nan
    gv = np.round(rng.normal(50, 20, (HOSTS, POINTS)), 0)
    iv = rng.integers(-50, 50, (HOSTS, POINTS)).astype(np.int64)
    slices = ((0, 1100), (1100, 2200), (2200, POINTS))
    for k, (a, b) in enumerate(slices):
        n = b - a
        series = np.repeat(np.arange(HOSTS, dtype=np.int32), n)
        t = np.tile(times[a:b], HOSTS)
        e.write("db", WriteBatch(keys, [
            FieldColumn(b"usage", FieldType.FLOAT, series, t, fv[:, a:b].reshape(-1)),
            FieldColumn(b"load", FieldType.FLOAT, series, t, gv[:, a:b].reshape(-1)),
            FieldColumn(b"n", FieldType.INTEGER, series, t, iv[:, a:b].reshape(-1)),
        ]))
        if k < len(slices) - 1:
            e.snapshot_all()   # the last slice stays in the cache
    # A deleted range in one host's data: a tombstone the direct path must not read past.
    e.delete("db", [b"cpu"], tx.TagEquals("host", "h7"), BASE + 1000 * 10 * S, BASE + 1100 * 10 * S)
    yield e
    e.close()


def _assert_same(got: dict, want: dict) -> None:
    assert_series_close(got.get("series", []), want.get("series", []))


def _both(engine, q: str, now: int = 0):
    """(answer through execute, answer of the general executor alone, direct's own answer)."""
    (stmt,) = parse(q)
    ctx = QueryContext(engine, "db", None, AllowAll(), now=now or 0)
    got = orjson.loads(resultenc.encode_results(execute([stmt], ctx), "ns", False))
    plan = compile_select(stmt, Limits().max_buckets)
    ex = SelectExecutor(ctx.reader, "db", None, ctx.now, Limits())
    want = orjson.loads(resultenc.encode_results([StatementResult(0, ex.run(plan))], "ns", False))
    mine = direct.answer(plan, ctx.reader, "db", None, ctx.now, Limits(), lambda: None)
    return got["results"][0], want["results"][0], mine


FUNCS = ["count", "sum", "mean", "min", "max", "first", "last", "spread"]
FIELDS = ["usage", "load", "n"]


def _random_shape(rng) -> dict:
    k = int(rng.integers(1, 4))
    return {"cols": ", ".join(f"{rng.choice(FUNCS)}({rng.choice(FIELDS)})" for _ in range(k)),
            "nhosts": int(rng.integers(1, 4)), "lop": rng.choice([">=", ">"]),
            "hop": rng.choice(["<", "<="]), "fill": rng.choice(["", " fill(null)", " fill(none)"])}


def _random_query(rng, shape: dict | None = None) -> str:
    """A random dashboard-shaped query; with ``shape``, one of that shape (new literals)."""
    sh = shape or _random_shape(rng)
    hosts = rng.choice(HOSTS, size=sh["nhosts"], replace=False)
    where = " OR ".join(f"host = 'h{h}'" for h in hosts)
    span = int(rng.choice([600, 3600, 4 * 3600, 9 * 3600]))
    lo = BASE + int(rng.integers(-600, POINTS * 10)) * S
    hi = lo + span * S
    every = rng.choice(["10s", "30s", "1m", "7m", "1h"])
    return (f"SELECT {sh['cols']} FROM cpu WHERE ({where}) AND time {sh['lop']} {lo} AND time "
            f"{sh['hop']} {hi} GROUP BY time({every}){sh['fill']}")


def test_random_window_aggregates_equal_the_general_executor(engine):
    rng = np.random.default_rng(3)
    answered = declined = 0
    for _ in range(400):
        q = _random_query(rng)
        got, want, mine = _both(engine, q)
        assert "error" not in want, q
        _assert_same(got, want)
        if mine is None:
            declined += 1
        else:
            answered += 1
            _assert_same(orjson.loads(resultenc.encode_results([StatementResult(0, mine)], "ns",
                                                               False))["results"][0], want)
    # Both routes ran: the direct path answered (segment-only ranges) and declined (the cache,
    # the tombstone, a field with no point in the range).
    assert answered > 100 and declined > 20, (answered, declined)


@pytest.mark.parametrize("q", [
    # one series, windows shorter than a block, from segment files only
    "SELECT max(usage) FROM cpu WHERE host = 'h3' AND time >= {a} AND time < {b} GROUP BY time(1m)",
    # several series in one group: the fused kernel, one group
    "SELECT max(usage), min(n), mean(load) FROM cpu WHERE (host = 'h1' OR host = 'h2') "
    "AND time >= {a} AND time < {b} GROUP BY time(5m)",
    # every series but the one with a tombstone, aliases, fill(none)
    "SELECT count(n) AS c, spread(usage) AS s FROM cpu WHERE host != 'h7' AND time >= {a} AND time <= {b} "
    "GROUP BY time(2m) fill(none)",
    # a GROUP BY offset
    "SELECT first(usage), last(usage) FROM cpu WHERE host = 'h5' AND time >= {a} AND time < {b} "
    "GROUP BY time(10m, 3m)",
])
def test_answered_directly(engine, q):
    a, b = BASE + 1800 * S, BASE + 9000 * S   # segment files only, before the deleted range
    got, want, mine = _both(engine, q.format(a=a, b=b))
    assert mine is not None
    _assert_same(got, want)
    assert want["series"]


@pytest.mark.parametrize("q", [
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m), host",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m) fill(0)",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m) fill(previous)",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m) LIMIT 3",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m) ORDER BY time DESC",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m) tz('Europe/Paris')",
    "SELECT max(usage) * 2 FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT derivative(max(usage)) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT percentile(usage, 90) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT max(usage) FROM cpu WHERE usage > 3 AND time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT max(usage) FROM cpu WHERE time >= {a} GROUP BY time(1m)",
    "SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b}",
    "SELECT max(host) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT max(nosuch) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT max(usage) FROM /c.u/ WHERE time >= {a} AND time < {b} GROUP BY time(1m)",
    "SELECT max(usage) FROM cpu WHERE host = 'nosuch' AND time >= {a} AND time < {b} GROUP BY time(1m)",
    # the tombstone in h7's data (the fused kernel declines series with tombstones)
    "SELECT max(usage) FROM cpu WHERE (host = 'h7' OR host = 'h6') AND time >= {a} AND time < {b} "
    "GROUP BY time(1m)",
    # the last slice is in the cache: the fused kernel declines several series there
    "SELECT max(usage) FROM cpu WHERE time >= {c} AND time < {d} GROUP BY time(1m)",
])
def test_declined_shapes_and_data(engine, q):
    a, b = BASE + 3600 * S, BASE + 3 * 3600 * S
    c, d = BASE + 2500 * 10 * S, BASE + 2900 * 10 * S
    got, want, mine = _both(engine, q.format(a=a, b=b, c=c, d=d), now=BASE + POINTS * 10 * S)
    assert mine is None
    _assert_same(got, want)


def test_one_series_reads_the_cache_and_tombstones(engine):
    """One series goes through the shard views' merged reads: points still in the cache and
    deleted ranges are answered directly, as the general path's per-series route reads them."""
    for host, (a, b) in (("h1", (2500, 2900)), ("h7", (900, 1300)), ("h2", (2000, 2400))):
        q = (f"SELECT max(usage), count(n), last(load) FROM cpu WHERE host = '{host}' "
             f"AND time >= {BASE + a * 10 * S} AND time < {BASE + b * 10 * S} GROUP BY time(1m)")
        got, want, mine = _both(engine, q)
        assert mine is not None
        _assert_same(got, want)
        assert want["series"]


def test_limits_are_left_to_the_general_path(engine):
    """Over a limit the direct path declines, so the error is the general executor's."""
    q = ("SELECT max(usage) FROM cpu WHERE time >= {a} AND time < {b} GROUP BY time(1m)"
         .format(a=BASE + 3600 * S, b=BASE + 3 * 3600 * S))
    (stmt,) = parse(q)
    plan = compile_select(stmt, Limits().max_buckets)
    ctx = QueryContext(engine, "db", None, AllowAll())
    for limits in (Limits(max_series=2), Limits(max_points=10), Limits(max_buckets=5)):
        assert direct.answer(plan, ctx.reader, "db", None, ctx.now, limits, lambda: None) is None
        ctx = QueryContext(engine, "db", None, AllowAll(), limits=limits)
        (res,) = execute([stmt], ctx)
        assert res.error and "limit exce" in res.error   # InfluxDB spells one "exceeeded"


def test_cancellation_is_checked(engine):
    """A killed or timed-out query stops in the direct path too."""
    q = ("SELECT max(usage) FROM cpu WHERE host = 'h3' AND time >= {a} AND time < {b} "
         "GROUP BY time(1m)").format(a=BASE + 3600 * S, b=BASE + 3 * 3600 * S)
    (stmt,) = parse(q)
    plan = compile_select(stmt, Limits().max_buckets)
    ctx = QueryContext(engine, "db", None, AllowAll())

    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        direct.answer(plan, ctx.reader, "db", None, ctx.now, Limits(), cancel)


def _general(engine, stmt, now: int):
    ctx = QueryContext(engine, "db", None, AllowAll(), now=now)
    plan = compile_select(stmt, Limits().max_buckets)
    ex = SelectExecutor(ctx.reader, "db", None, ctx.now, Limits())
    return orjson.loads(resultenc.encode_results([StatementResult(0, ex.run(plan))], "ns", False))["results"][0]


def test_prepared_shapes_answer_like_the_general_executor(engine):
    """A shape's second text runs from its literal values alone (no statement built): same
    answers as the general executor on the parsed text, for texts differing in every literal."""
    from chronosdb.query.direct import PreparedWindowQuery
    from chronosdb.query.influxql import StatementCache

    rng = np.random.default_rng(8)
    cache = StatementCache()
    now = BASE + POINTS * 10 * S
    prepared = 0
    for _ in range(200):
        shape = _random_shape(rng)
        q1, q2 = _random_query(rng, shape), _random_query(rng, shape)
        cache.parse_keyed(q1)
        hit = cache.prepared(q2, PreparedWindowQuery.prepare)
        if hit is None:
            continue   # another shape, or one the direct path does not take
        form, values, shape = hit
        assert shape == cache.parse_keyed(q2)[1]
        (stmt,) = cache.parse(q2)
        ctx = QueryContext(engine, "db", None, AllowAll(), now=now)
        mine = form.answer(values, ctx.reader, "db", None, now, Limits(), lambda: None)
        if mine is None:
            continue
        prepared += 1
        got = orjson.loads(resultenc.encode_results([StatementResult(0, mine)], "ns", False))["results"][0]
        _assert_same(got, _general(engine, stmt, now))
    assert prepared > 80, prepared   # the rest: the cache, the tombstone, a field without points


@pytest.mark.parametrize("q1, q2", [
    # an aggregate argument is a literal: the shape is not prepared
    ("SELECT percentile(usage, 90) FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m)",
     "SELECT percentile(usage, 95) FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m)"),
    # GROUP BY a tag, fill(0), math, two statements
    ("SELECT max(usage) FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m), host",
     "SELECT max(usage) FROM cpu WHERE time >= 3 AND time < 4 GROUP BY time(1m), host"),
    ("SELECT max(usage) FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m) fill(0)",
     "SELECT max(usage) FROM cpu WHERE time >= 3 AND time < 4 GROUP BY time(1m) fill(0)"),
    ("SELECT max(usage) + 1 FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m)",
     "SELECT max(usage) + 2 FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m)"),
    ("SELECT max(usage) FROM cpu WHERE time >= 1 AND time < 2 GROUP BY time(1m); SHOW DATABASES",
     "SELECT max(usage) FROM cpu WHERE time >= 3 AND time < 4 GROUP BY time(1m); SHOW DATABASES"),
])
def test_shapes_that_are_not_prepared(q1, q2):
    from chronosdb.query.direct import PreparedWindowQuery
    from chronosdb.query.influxql import ParseError, StatementCache

    cache = StatementCache()
    try:
        cache.parse_keyed(q1)
    except ParseError:
        pytest.skip("not a statement this grammar takes")
    assert cache.prepared(q2, PreparedWindowQuery.prepare) is None


def test_prepared_values_follow_the_text():
    """An unseen shape is not prepared; a text whose literal cannot be built (a bad time) is
    not either (the parser then reports the error)."""
    from chronosdb.query.direct import PreparedWindowQuery
    from chronosdb.query.influxql import StatementCache

    cache = StatementCache()
    q = ("SELECT max(usage) FROM cpu WHERE host = 'h1' AND time >= '2016-01-01T00:00:00Z' "
         "AND time < '2016-01-01T01:00:00Z' GROUP BY time(1m)")
    assert cache.prepared(q, PreparedWindowQuery.prepare) is None
    cache.parse_keyed(q)
    form, values, _shape = cache.prepared(q.replace("h1", "h2").replace("1m", "5m"),
                                          PreparedWindowQuery.prepare)
    assert "h2" in [getattr(v, "value", None) for v in values]
    assert cache.prepared(q.replace("2016-01-01T01", "2016-13-01T01"), PreparedWindowQuery.prepare) is None


def _encoded(out, name="cpu") -> list:
    series = [Series(name, None, times, cols) for _g, times, cols in out]
    return orjson.loads(resultenc.encode_results([StatementResult(0, series)], "ns", False))["results"]


def point_cells(times, values, start, every, nwin):
    """The cells (one group) of one series' points: ``window_cells`` over ``window_bounds``."""
    from chronosdb.ext import aggregates as K
    from chronosdb.ext.merge import window_bounds
    from chronosdb.query.windowcells import MergedCells
    cells = K.window_cells(values, window_bounds(times, start, every, nwin))
    return MergedCells(*(a.reshape(1, nwin) for a in cells))


def _random_points(rng, ftype):
    n = int(rng.choice([0, 1, 7, 50, 400]))
    times = np.sort(rng.choice(10_000, size=n, replace=False)).astype(np.int64) * S
    if ftype is FieldType.FLOAT:
        values = rng.choice([-1.5, 0.0, -0.0, 2.0, 3.25, np.nan, 1e300], size=n)
    else:
        values = rng.integers(-2**62, 2**62, size=n) if rng.random() < 0.3 else rng.integers(-5, 5, size=n)
        values = values.astype(np.int64)
    return times, values


@pytest.mark.parametrize("seed", range(6))
def test_point_columns_equal_window_columns_over_point_cells(seed):
    """The one-series shaping (one window_calls pass per field) writes byte for byte what the
    cells path writes, for every call, one or several fields (each with its own points), both
    fills, float (NaN, ties, -0.0) and integer points, empty windows, windows outside the
    points and fields with no point at all in the windows."""
    from chronosdb.query.compile import call_key
    from chronosdb.query.windowcells import point_columns, window_columns
    rng = np.random.default_rng(seed)
    for _ in range(60):
        nfields = int(rng.integers(1, 4))
        fields = [f"f{k}" for k in range(nfields)]
        ftypes = {f: FieldType.FLOAT if rng.random() < 0.6 else FieldType.INTEGER for f in fields}
        points_of = {f: _random_points(rng, ftypes[f]) for f in fields}
        cols = [f"{rng.choice(FUNCS)}({rng.choice(fields)})" for _ in range(int(rng.integers(1, 6)))]
        fill = rng.choice(["", " fill(null)", " fill(none)"])
        every = int(rng.choice([7, 60, 600, 4000])) * S
        start = int(rng.integers(-100, 9000)) * S
        nwin = int(rng.integers(1, 40))
        q = (f"SELECT {', '.join(cols)} FROM cpu WHERE time >= 0 AND time < 1 GROUP BY time(1s){fill}")
        plan = compile_select(parse(q)[0])
        calls = [(c.name, call_key(c.expr)) for c in plan.columns]
        used = {key.field for _n, key in calls}
        got, points = point_columns(plan.fill == "none", calls, {f: points_of[f] for f in used}, ftypes,
                                    start, every, nwin)
        cells = {f: point_cells(*points_of[f], start, every, nwin) for f in used}
        want = window_columns(plan, cells, ftypes, start, every, nwin, calls)
        assert points == sum(int(c.count.sum()) for c in cells.values())
        assert orjson.dumps(_encoded(got)) == orjson.dumps(_encoded(want)), q
