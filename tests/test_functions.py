"""InfluxQL functions: InfluxDB 1.6.7 semantics, merge properties, block stats, serialization.

Expected values in the TestInflux* classes were taken from a real InfluxDB 1.6.7 (bench.peers
.InfluxDB) loaded with the data set below and queried with epoch=s; InfluxDB is not needed to
run these tests.
"""
import math

import numpy as np
import pytest

from chronosdb.ext.merge import window_bounds
from chronosdb.model.errors import BadRequest
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.query.functions import FinalizedMulti, apply_fill, make_partial
from chronosdb.query.functions import math as M
from chronosdb.query.functions import transforms as T
from chronosdb.query.functions.partials import Partial
from chronosdb.storage.shard_read import BlockStats

F, I, B, S = FieldType.FLOAT, FieldType.INTEGER, FieldType.BOOLEAN, FieldType.STRING
SEC = 1_000_000_000

# measurement m: time(s) f i b s
TIMES = np.array([0, 1, 3, 4, 10, 17, 18], dtype=np.int64) * SEC
COLS = {
    F: np.array([1.5, 2.5, 2.5, -4.0, 10.0, 3.0, 3.0]),
    I: np.array([3, -1, 7, 7, 100, 2, 2], dtype=np.int64),
    B: np.array([1, 0, 1, 1, 0, 1, 0], dtype=np.uint8),
    S: StringArray.from_list(["a", "b", "a", "c", "b", "c", "c"]),
}
# measurement t (mode ties): 5 1 5 1 3 3 at 0..5 s
T_TIMES = np.arange(6, dtype=np.int64) * SEC
T_COLS = {F: np.array([5.0, 1, 5, 1, 3, 3]), I: np.array([5, 1, 5, 1, 3, 3], dtype=np.int64),
          S: StringArray.from_list(["y", "x", "y", "x", "z", "z"]), B: np.array([1, 0, 0, 1, 1, 0], dtype=np.uint8)}


def run(name, ft, times, vals, args=(), start=0, every=0, nwin=1, grid=False):
    p = make_partial(name, nwin, ft, args)
    if every:
        b = window_bounds(times, start, every, nwin)
    else:
        b = np.array([0, len(times)], dtype=np.int64)
    p.add_points(times, vals, b)
    return p.finalize(grid=(start, every)) if grid else p.finalize()


def rows(fin):
    """[(value or None), ...] per window, values as Python scalars."""
    vals = fin.values.to_list() if isinstance(fin.values, StringArray) else fin.values.tolist()
    out = []
    for v, ok in zip(vals, fin.valid):
        if isinstance(v, bytes):
            v = v.decode()
        if fin.ftype == B and ok:
            v = bool(v)
        out.append(v if ok else (fin.null_value if fin.null_value is not None else None))
    return out


def grouped(name, ft, args=()):
    return rows(run(name, ft, TIMES, COLS[ft], args, start=0, every=5 * SEC, nwin=4))


def whole(name, ft, args=(), times=TIMES, cols=COLS):
    fin = run(name, ft, times, cols[ft], args)
    t = None if fin.point_time is None else int(fin.point_time[0]) // SEC
    return t, rows(fin)[0]


class TestInfluxAggregates:
    # (function, args, type) -> GROUP BY time(5s) over [0s, 20s) rows as InfluxDB 1.6.7 printed them
    GROUPED = [
        ("count", (), F, [4, 0, 1, 2]), ("count_distinct", (), F, [3, 0, 1, 1]),
        ("count_distinct", (), B, [2, 0, 1, 2]), ("count_distinct", (), S, [3, 0, 1, 1]),
        ("mean", (), F, [0.625, None, 10, 3]), ("mean", (), I, [4, None, 100, 2]),
        ("median", (), F, [2, None, 10, 3]), ("median", (), I, [5, None, 100, 2]),
        ("mode", (), F, [2.5, None, 10, 3]), ("mode", (), I, [7, None, 100, 2]),
        ("mode", (), B, [True, None, False, True]), ("mode", (), S, ["a", None, "b", "c"]),
        ("spread", (), F, [6.5, None, 0, 0]), ("spread", (), I, [8, None, 0, 0]),
        ("stddev", (), F, [3.1191612120354835, None, None, 0]), ("stddev", (), I, [3.8297084310253524, None, None, 0]),
        ("sum", (), F, [2.5, None, 10, 6]), ("sum", (), I, [16, None, 100, 4]),
        ("first", (), F, [1.5, None, 10, 3]), ("first", (), B, [True, None, False, True]),
        ("first", (), S, ["a", None, "b", "c"]), ("last", (), I, [7, None, 100, 2]),
        ("last", (), S, ["c", None, "b", "c"]), ("last", (), B, [True, None, False, False]),
        ("min", (), F, [-4, None, 10, 3]), ("max", (), I, [7, None, 100, 2]),
        ("min", (), B, [False, None, False, False]), ("max", (), B, [True, None, False, True]),
        ("percentile", (50,), F, [1.5, None, 10, 3]), ("percentile", (90,), I, [7, None, 100, 2]),
        ("percentile", (33.3,), F, [-4, None, None, 3]), ("percentile", (0,), F, [None, None, None, None]),
        ("integral", (SEC,), F, None), ("integral", (1_000_000,), F, None),
    ]

    @pytest.mark.parametrize("name,args,ft,expected", GROUPED)
    def test_grouped(self, name, args, ft, expected):
        if name == "integral":
            fin = run(name, ft, TIMES, COLS[ft], args, start=0, every=5 * SEC, nwin=4, grid=True)
            scale = SEC // args[0]
            got = rows(fin)
            exp = [3.4166666666666665 * scale, None, 58.33333333333333 * scale, 11 * scale]
            assert got[1] is None and got[0] == pytest.approx(exp[0]) and got[2] == pytest.approx(exp[2])
            assert got[3] == pytest.approx(exp[3])
            return
        got = grouped(name, ft, args)
        assert got == pytest.approx(expected) if ft in (F, I) else got == expected

    WHOLE = [
        ("min", F, (), 4, -4), ("max", F, (), 10, 10), ("min", I, (), 1, -1), ("last", F, (), 18, 3),
        ("min", B, (), 1, False), ("max", B, (), 0, True), ("first", S, (), 0, "a"), ("last", S, (), 18, "c"),
        ("percentile", F, (50,), 3, 2.5), ("percentile", F, (90,), 18, 3), ("percentile", I, (50,), 0, 3),
        ("percentile", I, (90,), 4, 7), ("percentile", I, (33.3,), 17, 2), ("percentile", F, (100,), 10, 10),
        ("percentile", F, (101,), 10, 10), ("percentile", F, (-1,), 0, None),
        ("mean", F, (), None, 2.642857142857143), ("mean", I, (), None, 17.142857142857142),
        ("median", F, (), None, 2.5), ("mode", S, (), None, "c"), ("mode", B, (), None, True),
        ("spread", I, (), None, 101), ("stddev", F, (), None, 4.079565803226753),
        ("stddev", I, (), None, 36.64891345105414), ("sum", I, (), None, 120), ("count", S, (), None, 7),
        ("count_distinct", S, (), None, 3), ("integral", F, (SEC,), None, 72.75), ("integral", I, (SEC,), None, 694),
    ]

    @pytest.mark.parametrize("name,ft,args,t,expected", WHOLE)
    def test_whole_range(self, name, ft, args, t, expected):
        got_t, got = whole(name, ft, args)
        if expected is None:
            assert got is None
            return
        assert got == pytest.approx(expected) if ft in (F, I) else got == expected
        if t is not None:
            assert got_t == t

    @pytest.mark.parametrize("ft,expected", [(F, 5), (I, 5), (S, "y"), (B, True)])
    def test_mode_ties_follow_influx(self, ft, expected):
        assert whole("mode", ft, times=T_TIMES, cols=T_COLS)[1] == expected

    def test_mode_tie_quirks(self):
        # u: 2 at 0s, 1 at 1s -> 1 (not the earliest); t from 1s: 1; t from 2s: 3.
        assert whole("mode", F, times=np.array([0, SEC]), cols={F: np.array([2.0, 1.0])})[1] == 1
        assert whole("mode", F, times=T_TIMES[1:], cols={F: T_COLS[F][1:]})[1] == 1
        assert whole("mode", F, times=T_TIMES[2:], cols={F: T_COLS[F][2:]})[1] == 3

    def test_median_and_stddev_edges(self):
        assert whole("median", F, times=T_TIMES, cols=T_COLS)[1] == 3
        assert whole("stddev", F, times=np.array([0]), cols={F: np.array([2.0])})[1] is None
        assert whole("spread", F, times=np.array([0]), cols={F: np.array([2.0])})[1] == 0

    def test_int64_overflow(self):
        big = {I: np.array([2**63 - 1, 1, 5], dtype=np.int64)}
        t = np.array([0, SEC, 2 * SEC])
        assert whole("sum", I, times=t, cols=big)[1] == -9223372036854775803
        assert whole("mean", I, times=t, cols=big)[1] == pytest.approx(-3074457345618258400)
        assert whole("spread", I, times=t, cols=big)[1] == 9223372036854775806
        assert whole("stddev", I, times=t, cols=big)[1] == pytest.approx(5325116328314172000, rel=1e-12)

    def test_multi_row(self):
        def multi(name, ft, args):
            fin = make_partial(name, 4, ft, args)
            fin.add_points(TIMES, COLS[ft], window_bounds(TIMES, 0, 5 * SEC, 4))
            fin = fin.finalize()
            assert isinstance(fin, FinalizedMulti)
            vals = fin.values.to_list() if isinstance(fin.values, StringArray) else fin.values.tolist()
            t = None if fin.times is None else (fin.times // SEC).tolist()
            return fin.win.tolist(), t, vals
        assert multi("distinct", F, ()) == ([0, 0, 0, 2, 3], None, [1.5, 2.5, -4, 10, 3])
        assert multi("distinct", B, ())[2] == [1, 0, 0, 1, 0]
        assert multi("distinct", S, ())[2] == [b"a", b"b", b"c", b"b", b"c"]
        assert multi("top", F, (2,)) == ([0, 0, 2, 3, 3], [1, 3, 10, 17, 18], [2.5, 2.5, 10, 3, 3])
        assert multi("top", I, (3,))[1:] == ([0, 3, 4, 10, 17, 18], [3, 7, 7, 100, 2, 2])
        assert multi("bottom", I, (2,))[1:] == ([0, 1, 10, 17, 18], [3, -1, 100, 2, 2])
        p = make_partial("top", 1, I, (2,))
        p.add_points(TIMES, COLS[I], np.array([0, 7]))
        assert (p.finalize().times // SEC).tolist() == [3, 10]
        p = make_partial("bottom", 1, I, (2,))
        p.add_points(TIMES, COLS[I], np.array([0, 7]))
        assert (p.finalize().times // SEC).tolist() == [1, 17]

    def test_sample_is_deterministic_and_bounded(self):
        a = run("sample", S, TIMES, COLS[S], (2,), every=5 * SEC, nwin=4)
        b = run("sample", S, TIMES, COLS[S], (2,), every=5 * SEC, nwin=4)
        assert a.win.tolist() == b.win.tolist() and a.values == b.values
        assert np.bincount(a.win, minlength=4).tolist() == [2, 0, 1, 2]


class TestErrors:
    @pytest.mark.parametrize("name,ft,msg", [
        ("mean", S, "unsupported mean iterator type: *query.stringInterruptIterator"),
        ("sum", B, "unsupported sum iterator type: *query.booleanInterruptIterator"),
        ("min", S, "unsupported min iterator type: *query.stringInterruptIterator"),
        ("percentile", B, "unsupported percentile iterator type: *query.booleanInterruptIterator"),
        ("top", S, "unsupported top iterator type: *query.stringInterruptIterator"),
        ("integral", B, "unsupported integral iterator type: *query.booleanInterruptIterator"),
    ])
    def test_type_errors(self, name, ft, msg):
        args = {"percentile": (50,), "top": (2,)}.get(name, ())
        with pytest.raises(BadRequest) as e:
            make_partial(name, 1, ft, args)
        assert e.value.message == msg

    def test_argument_errors(self):
        with pytest.raises(BadRequest, match=r"undefined function foo\(\)"):
            make_partial("foo", 1, F, ())
        with pytest.raises(BadRequest, match="invalid number of arguments for percentile, expected 2, got 1"):
            make_partial("percentile", 1, F, ())
        with pytest.raises(BadRequest, match="invalid number of arguments for top, expected at least 2, got 1"):
            make_partial("top", 1, F, ())
        with pytest.raises(BadRequest, match=r"sample window must be greater than 1, got 0"):
            make_partial("sample", 1, F, (0,))
        with pytest.raises(BadRequest, match=r"limit \(0\) in top function must be at least 1"):
            make_partial("top", 1, F, (0,))

    def test_exact_cap(self, monkeypatch):
        p = make_partial("median", 1, F, ())
        monkeypatch.setattr(type(p), "cap", 5)
        p.add_points(TIMES[:5], COLS[F][:5], np.array([0, 5]))
        with pytest.raises(BadRequest, match="more than 5 values"):
            p.add_points(TIMES[5:], COLS[F][5:], np.array([0, 2]))


# ---------------------------------------------------------------------------------------------
# Merge and block-stats properties
# ---------------------------------------------------------------------------------------------

ALL = [("count", ()), ("sum", ()), ("mean", ()), ("spread", ()), ("stddev", ()), ("min", ()),
       ("max", ()), ("first", ()), ("last", ()), ("integral", (7,)), ("median", ()), ("percentile", (40,)),
       ("mode", ()), ("distinct", ()), ("count_distinct", ()), ("top", (3,)), ("bottom", (2,)), ("sample", (2,))]
TYPES = {"count": (F, I, B, S), "first": (F, I, B, S), "last": (F, I, B, S), "mode": (F, I, B, S),
         "distinct": (F, I, B, S), "count_distinct": (F, I, B, S), "sample": (F, I, B, S),
         "min": (F, I, B), "max": (F, I, B)}


def _rand_col(rng, ft, n):
    if ft == F:
        return rng.choice([-1.5, 0.0, 2.0, 3.25, 7.0], size=n) if rng.random() < 0.5 else rng.normal(size=n)
    if ft == I:
        return rng.choice([-3, 0, 5, 2**62, -(2**62)], size=n).astype(np.int64)
    if ft == B:
        return rng.integers(0, 2, size=n).astype(np.uint8)
    return StringArray.from_list([rng.choice(["", "a", "bb", "ab", "zz"]) for _ in range(n)])


def _cut(v, lo, hi):
    if isinstance(v, StringArray):
        return v.take(np.arange(lo, hi))
    return v[lo:hi]


def _same(a, b, ft):
    assert type(a) is type(b)
    if isinstance(a, FinalizedMulti):
        assert a.win.tolist() == b.win.tolist()
        assert (a.times is None) == (b.times is None)
        if a.times is not None:
            assert a.times.tolist() == b.times.tolist()
        assert (a.values == b.values) if ft == S else np.allclose(a.values, b.values, equal_nan=True)
        return
    assert a.valid.tolist() == b.valid.tolist()
    if a.point_time is not None:
        assert a.point_time[a.valid].tolist() == b.point_time[b.valid].tolist()
    if isinstance(a.values, StringArray):
        av, bv = a.values.to_list(), b.values.to_list()
        assert [x for x, ok in zip(av, a.valid) if ok] == [x for x, ok in zip(bv, b.valid) if ok]
    else:
        x, y = a.values[a.valid], b.values[b.valid]
        if x.dtype == np.float64:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
        else:
            assert x.tolist() == y.tolist()


@pytest.mark.parametrize("name,args", ALL)
def test_merge_of_pieces_equals_whole(name, args):
    rng = np.random.default_rng(hash(name) % 2**32)
    for trial in range(12):
        for ft in TYPES.get(name, (F, I)):
            n = int(rng.integers(0, 60))
            times = np.cumsum(rng.integers(1, 50, size=n)).astype(np.int64)
            vals = _rand_col(rng, ft, n)
            nwin, every = int(rng.integers(1, 6)), 200
            whole_p = make_partial(name, nwin, ft, args)
            whole_p.add_points(times, vals, window_bounds(times, 0, every, nwin))
            cuts = np.sort(rng.integers(0, n + 1, size=int(rng.integers(0, 4))))
            edges = [0, *cuts.tolist(), n]
            pieces = []
            for lo, hi in zip(edges[:-1], edges[1:]):
                p = make_partial(name, nwin, ft, args)
                t = times[lo:hi]
                p.add_points(t, _cut(vals, lo, hi), window_bounds(t, 0, every, nwin))
                pieces.append(Partial.from_bytes(p.to_bytes()))  # every piece crosses the wire
            rng.shuffle(pieces)
            acc = pieces[0]
            for p in pieces[1:]:
                acc.merge(p)
            fin_a = whole_p.finalize(grid=(0, every)) if name == "integral" else whole_p.finalize()
            fin_b = acc.finalize(grid=(0, every)) if name == "integral" else acc.finalize()
            _same(fin_a, fin_b, ft)


@pytest.mark.parametrize("name", ["count", "sum", "mean", "spread", "min", "max", "first", "last"])
def test_block_stats_equal_points(name):
    rng = np.random.default_rng(7)
    for trial in range(20):
        for ft in (F, I):
            nwin, every = 4, 1000
            nblocks = int(rng.integers(1, 8))
            # blocks of consecutive points, each inside one window
            starts = np.sort(rng.choice(np.arange(nwin * 10), size=nblocks, replace=False)) * 100
            bt, bv = [], []
            for s0 in starts:
                k = int(rng.integers(1, 5))
                t = s0 + np.sort(rng.choice(np.arange(100), size=k, replace=False))
                bt.append(t.astype(np.int64))
                bv.append(_rand_col(rng, ft, k))
            times, vals = np.concatenate(bt), np.concatenate(bv)
            pts = make_partial(name, nwin, ft, ())
            pts.add_points(times, vals, window_bounds(times, 0, every, nwin))
            blk = make_partial(name, nwin, ft, ())
            stats = BlockStats(
                min_time=np.array([t[0] for t in bt]), max_time=np.array([t[-1] for t in bt]),
                count=np.array([len(t) for t in bt]), sum=np.array([v.sum() for v in bv]),
                min=np.array([v.min() for v in bv]), max=np.array([v.max() for v in bv]),
                first=np.array([v[0] for v in bv]), last=np.array([v[-1] for v in bv]))
            win = np.array([t[0] // every for t in bt], dtype=np.int64)
            assert blk.supports_block_stats
            blk.add_block_stats(win, stats)
            a, b = pts.finalize(), blk.finalize()
            if name in ("min", "max") and not blk.block_stats_exact_time:
                a.point_time = b.point_time = None  # block index holds no time of its min/max
            _same(a, b, ft)


# ---------------------------------------------------------------------------------------------
# Transforms, fill, math (expectations from InfluxDB 1.6.7)
# ---------------------------------------------------------------------------------------------

def _mean_3s():
    fin = run("mean", F, TIMES, COLS[F], start=0, every=3 * SEC, nwin=7)
    return np.arange(7, dtype=np.int64) * 3 * SEC, fin.values, fin.valid


def _rows(out):
    t, v, ok = out
    return list(zip((t // SEC).tolist(), np.asarray(v).tolist()))


def _close(rows, expected) -> bool:
    """Rows equal: times exactly, values to pytest.approx (which takes no nested tuples)."""
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert [r[1] for r in rows] == pytest.approx([e[1] for e in expected])
    return True


class TestTransforms:
    def test_raw(self):
        f, t = COLS[F], TIMES
        assert _close(_rows(T.derivative(t, f, None, SEC)), [(1, 1), (3, 0), (4, -6.5), (10, 2.3333333333333335), (17, -1), (18, 0)])
        assert _rows(T.derivative(t, f, None, 2 * SEC))[3][1] == pytest.approx(4.666666666666667)
        assert [r[0] for r in _rows(T.non_negative_derivative(t, COLS[I], None, SEC))] == [3, 4, 10, 18]
        assert _rows(T.difference(t, COLS[I], None)) == [(1, -4), (3, 8), (4, 0), (10, 93), (17, -98), (18, 0)]
        assert _rows(T.non_negative_difference(t, f, None)) == [(1, 1), (3, 0), (10, 14), (18, 0)]
        assert _close(_rows(T.moving_average(t, f, None, 3)), [(3, 2.1666666666666665), (4, 0.3333333333333333), (10, 2.8333333333333335), (17, 3), (18, 5.333333333333333)])
        assert _rows(T.cumulative_sum(t, COLS[I], None)) == [(0, 3), (1, 2), (3, 9), (4, 16), (10, 116), (17, 118), (18, 120)]
        assert _rows(T.elapsed(t, COLS[S], None, 1_000_000)) == [(1, 1000), (3, 2000), (4, 1000), (10, 6000), (17, 7000), (18, 1000)]
        assert T.difference(t, COLS[I], None)[1].dtype == np.int64

    def test_over_windows_skip_nulls(self):
        t, v, ok = _mean_3s()
        assert _close(_rows(T.derivative(t, v, ok, 3 * SEC)), [(3, -2.75), (9, 5.375), (15, -3.5), (18, 0)])
        assert _close(_rows(T.non_negative_derivative(t, v, ok, 3 * SEC)), [(9, 5.375), (18, 0)])
        assert _close(_rows(T.moving_average(t, v, ok, 2)), [(3, 0.625), (9, 4.625), (15, 6.5), (18, 3)])
        assert _close(_rows(T.cumulative_sum(t, v, ok)), [(0, 2), (3, 1.25), (9, 11.25), (15, 14.25), (18, 17.25)])
        assert _rows(T.elapsed(t, v, ok, 1_000_000)) == [(3, 3000), (9, 6000), (15, 6000), (18, 3000)]
        fv, fok = apply_fill("number", v, ok, t, 0)
        assert _close(_rows(T.difference(t, fv, fok)), [(3, -2.75), (6, 0.75), (9, 10), (12, -10), (15, 3), (18, 0)])

    def test_errors(self):
        with pytest.raises(BadRequest, match=r"unsupported derivative iterator type: \*query.stringInterruptIterator"):
            T.derivative(TIMES, COLS[S], None, SEC)
        with pytest.raises(BadRequest, match=r"unsupported cumulative sum iterator type"):
            T.cumulative_sum(TIMES, COLS[S], None)
        with pytest.raises(BadRequest, match="moving_average window must be greater than 1, got 1"):
            T.moving_average(TIMES, COLS[F], None, 1)
        with pytest.raises(BadRequest, match="duration argument must be positive"):
            T.derivative(TIMES, COLS[F], None, -SEC)


class TestFill:
    def _max_i(self):
        fin = run("max", I, TIMES, COLS[I], start=0, every=3 * SEC, nwin=10)
        return fin.values, fin.valid, np.arange(10) * 3 * SEC

    def _show(self, v, ok):
        return [x if o else None for x, o in zip(v.tolist(), ok)]

    def test_modes(self):
        v, ok, t = self._max_i()
        assert self._show(*apply_fill("null", v, ok, t)) == [3, 7, None, 100, None, 2, 2, None, None, None]
        assert self._show(*apply_fill("previous", v, ok, t)) == [3, 7, 7, 100, 100, 2, 2, 2, 2, 2]
        assert self._show(*apply_fill("linear", v, ok, t)) == [3, 7, 53, 100, 51, 2, 2, None, None, None]
        assert self._show(*apply_fill("number", v, ok, t, -1.5)) == [3, 7, -1, 100, -1, 2, 2, -1, -1, -1]
        vv, keep = apply_fill("none", v, ok, t)
        assert vv[keep].tolist() == [3, 7, 100, 2, 2]

    def test_count_fills(self):
        fin = run("count", F, TIMES, COLS[F], every=5 * SEC, nwin=4)
        t = np.arange(4) * 5 * SEC
        assert self._show(*apply_fill("null", fin.values, fin.valid, t, null_value=fin.null_value)) == [4, 0, 1, 2]
        assert self._show(*apply_fill("previous", fin.values, fin.valid, t)) == [4, 4, 1, 2]
        assert self._show(*apply_fill("linear", fin.values, fin.valid, t)) == [4, 2, 1, 2]
        assert self._show(*apply_fill(7, fin.values, fin.valid, t)) == [4, 7, 1, 2]

    def test_strings(self):
        fin = run("first", S, TIMES, COLS[S], every=5 * SEC, nwin=4)
        t = np.arange(4) * 5 * SEC
        v, ok = apply_fill("number", fin.values, fin.valid, t, 0)
        assert v.to_list() == [b"a", b"", b"b", b"c"] and ok.all()
        v, ok = apply_fill("previous", fin.values, fin.valid, t)
        assert v.to_list()[1] == b"a" and ok.all()
        assert not apply_fill("linear", fin.values, fin.valid, t)[1][1]


class TestMath:
    def _u(self, name, ft):
        v, ok = M.unary(name, COLS[ft], np.ones(7, dtype=bool))
        return [x if o else None for x, o in zip(v.tolist(), ok)]

    def test_unary(self):
        assert self._u("sqrt", F)[3] is None and self._u("sqrt", I)[4] == 10
        assert self._u("ln", I)[1] is None
        assert self._u("asin", I) == [None, -1.5707963267948966, None, None, None, None, None]
        assert self._u("round", F) == [2, 3, 3, -4, 10, 3, 3]      # half away from zero
        assert self._u("floor", F) == [1, 2, 2, -4, 10, 3, 3]
        assert M.unary("floor", COLS[I], np.ones(7, bool))[0].dtype == np.int64
        assert self._u("sin", F)[0] == pytest.approx(0.9974949866040544)
        assert self._u("abs", I)[1] == 1  # deviation: InfluxDB 1.6.7 answered -1

    def test_binary_fns(self):
        ok = np.ones(7, dtype=bool)
        v, vok = M.binary_fn("log", COLS[I], ok, 2, True)
        assert v[6] == pytest.approx(1) and not vok[1]
        v, vok = M.binary_fn("pow", COLS[F], ok, 0.5, True)
        assert not vok[3] and v[4] == pytest.approx(3.1622776601683795)
        v, _ = M.binary_fn("atan2", COLS[I], ok, 2, True)
        assert v[1] == pytest.approx(-0.4636476090008061)

    def test_operators(self):
        ok = np.ones(7, dtype=bool)
        i, f = COLS[I], COLS[F]
        assert M.binary_op("/", i, ok, 2, True)[0].tolist() == [1.5, -0.5, 3.5, 3.5, 50, 1, 1]
        assert M.binary_op("%", i, ok, 2, True)[0].tolist() == [1, -1, 1, 1, 0, 0, 0]
        assert M.binary_op("%", f, ok, 2, True)[0].tolist() == [1.5, 0.5, 0.5, 0, 0, 1, 1]
        assert M.binary_op("/", i, ok, 0, True)[0].tolist() == [0] * 7
        assert M.binary_op("/", f, ok, 0, True)[0].tolist() == [0] * 7
        assert M.binary_op("%", i, ok, 0, True)[0].tolist() == [0] * 7
        assert not M.binary_op("%", f, ok, 0, True)[1].any()
        assert M.binary_op("*", i, ok, 2, True)[0].dtype == np.int64
        assert M.binary_op("+", i, ok, f, ok)[0].tolist() == [4.5, 1.5, 9.5, 3, 110, 5, 5]
        assert M.binary_op("&", i, ok, 6, True)[0].tolist() == [2, 6, 6, 6, 4, 2, 2]
        assert M.binary_op("^", i, ok, 1, True)[0].tolist() == [2, -2, 6, 6, 101, 3, 3]
        z = np.zeros(1)
        assert M.binary_op("/", z, [True], z, [True])[0].tolist() == [0]
