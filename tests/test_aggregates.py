"""Differential tests: every kernel in chronosdb.ext.aggregates against its twin in aggregates_ref.

Inputs are seeded random windows (including empty windows, single points, NaN, int64 extremes and
many ties) plus hypothesis-generated columns.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from chronosdb.ext import aggregates as K
from chronosdb.ext import aggregates_ref as R
from chronosdb.model.strings import StringArray

I64 = np.iinfo(np.int64)


def _bounds(rng, n, nwin):
    cuts = np.sort(rng.integers(0, n + 1, size=nwin - 1)) if nwin > 1 else np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


def _values(rng, kind, n):
    if kind == "float":
        v = rng.choice([-2.5, 0.0, 1.0, 3.25, 1e300, -1e-300], size=n) if rng.random() < 0.5 else rng.normal(size=n)
        if n and rng.random() < 0.3:
            v[rng.integers(0, n, size=max(1, n // 5))] = np.nan
        return np.ascontiguousarray(v, dtype=np.float64)
    if kind == "int":
        if rng.random() < 0.3:
            return rng.choice([I64.min, I64.max, -1, 0, 1, 7], size=n).astype(np.int64)
        return rng.integers(-5, 6, size=n).astype(np.int64)
    return rng.integers(0, 2, size=n).astype(np.uint8)


def _times(rng, n):
    return np.cumsum(rng.integers(1, 1000, size=n)).astype(np.int64)


def _cases(count=150):
    rng = np.random.default_rng(20261124)
    for _ in range(count):
        n = int(rng.choice([0, 1, 2, 5, 40]))
        nwin = int(rng.integers(1, 7))
        for kind in ("float", "int", "bool"):
            yield kind, _times(rng, n), _values(rng, kind, n), _bounds(rng, n, nwin)


def _eq(a, b):
    np.testing.assert_array_equal(a, b)


def test_window_kernels_match_twins():
    for kind, t, v, b in _cases():
        if kind != "bool":
            _eq(K.window_sum(v, b), R.window_sum(v, b))
        for want_max in (False, True):
            _eq(K.window_select(v, b, want_max), R.window_select(v, b, want_max))
        m1, s1 = K.window_moments(v, b)
        m2, s2 = R.window_moments(v, b)
        np.testing.assert_allclose(m1, m2, equal_nan=True)
        np.testing.assert_allclose(s1, s2, equal_nan=True)
        np.testing.assert_allclose(K.window_integral(t, v, b, 1000), R.window_integral(t, v, b, 1000), equal_nan=True)


def test_window_cells_match_twin_and_the_single_kernels():
    for kind, _t, v, b in _cases():
        got = K.window_cells(v, b)
        want = R.window_cells(v, b)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            _eq(g, w)
        count, total, mn, mx, first, last = got
        _eq(count, np.diff(b))
        if kind != "bool":
            _eq(total, K.window_sum(v, b))
        for want_max, col in ((False, mn), (True, mx)):
            rows = K.window_select(v, b, want_max)
            _eq(col[rows >= 0], v[rows[rows >= 0]])


def test_window_calls_match_twin_and_the_cells():
    """window_calls gives the windows window_bounds splits and, per call code, what
    window_cells' cells finalize to (call_cells)."""
    from chronosdb.ext.merge import window_bounds
    from chronosdb.model.fieldtype import FieldType
    from chronosdb.query.windowcells import CALL_CODES, MergedCells, call_cells
    rng = np.random.default_rng(5)
    for kind, t, v, _b in _cases():
        start = int(rng.integers(-50, 60)) * 10**6 + (int(t[0]) if len(t) else 0)
        every = int(rng.choice([1, 7, 1000, 10**9]))
        nwin = int(rng.integers(0, 9))
        if kind == "bool":
            with pytest.raises(TypeError):
                K.window_calls(t, v, start, every, nwin, [0])
            continue
        names = list(rng.choice(list(CALL_CODES), size=int(rng.integers(1, 9))))
        codes = [CALL_CODES[n] for n in names]
        starts, count, n_valid, outs = K.window_calls(t, v, start, every, nwin, codes)
        rstarts, rcount, rn_valid, routs = R.window_calls(t, v, start, every, nwin, codes)
        b = window_bounds(t, start, every, nwin)
        _eq(starts, rstarts)
        _eq(starts, start + np.arange(nwin, dtype=np.int64) * every)
        _eq(count, rcount)
        _eq(count, np.diff(b))
        assert n_valid == rn_valid == int(np.count_nonzero(np.diff(b)))
        cells = MergedCells(*K.window_cells(v, b))
        ftype = FieldType.FLOAT if kind == "float" else FieldType.INTEGER
        for name, got, want in zip(names, outs, routs):
            assert got.dtype == want.dtype, name
            _eq(got, want)
            vals, valid, _ft, _null = call_cells(name, cells, ftype)
            assert got.dtype == vals.dtype, name
            _eq(got[valid], vals[valid])
            _eq(got[~valid], np.zeros(int((~valid).sum()), dtype=got.dtype))


def test_window_calls_refuses_bad_input():
    t = np.array([3, 1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="not sorted"):
        K.window_calls(t, np.zeros(3), 0, 1, 3, [0])
    with pytest.raises(ValueError, match="unknown call code"):
        K.window_calls(np.sort(t), np.zeros(3), 0, 1, 3, [9])
    with pytest.raises(ValueError, match="every must be > 0"):
        K.window_calls(np.sort(t), np.zeros(3), 0, 0, 3, [0])
    with pytest.raises(ValueError, match="3 times but 2 values"):
        K.window_calls(np.sort(t), np.zeros(2), 0, 1, 3, [0])
    with pytest.raises(TypeError):
        K.window_calls(np.sort(t).astype(np.int32), np.zeros(3), 0, 1, 3, [0])


def test_window_calls_edges_past_int64():
    """Windows whose later edges pass INT64_MAX: every remaining point falls in the last ones."""
    top = 2**63 - 1
    t = np.array([top - 5, top - 1, top], dtype=np.int64)
    starts, count, n_valid, outs = K.window_calls(t, np.array([1.0, 2.0, 3.0]), top - 6, 4, 2, [0, 6])
    _eq(starts, [top - 6, top - 2])
    _eq(count, [1, 2])
    _eq(outs[1], [1.0, 3.0])
    with pytest.raises(ValueError, match="pass INT64_MAX"):
        K.window_calls(t, np.array([1.0, 2.0, 3.0]), top - 6, 4, 3, [0])


def test_window_cells_signed_zero_and_nan_edges():
    v = np.array([-0.0, -0.0, np.nan, 2.0, np.nan, -0.0, 0.0], dtype=np.float64)
    b = np.array([0, 2, 3, 5, 7], dtype=np.int64)
    count, total, mn, mx, first, last = K.window_cells(v, b)
    np.testing.assert_array_equal(np.signbit(total), np.signbit(K.window_sum(v, b)))
    for want_max, col in ((False, mn), (True, mx)):
        rows = K.window_select(v, b, want_max)
        np.testing.assert_array_equal(np.signbit(col), np.signbit(v[rows]))
        np.testing.assert_array_equal(np.isnan(col), np.isnan(v[rows]))


def test_group_mode_matches_twin():
    for kind, t, v, b in _cases():
        if kind == "float":
            v = np.where(np.isnan(v), 0.0, v)
        win = np.repeat(np.arange(len(b) - 1), np.diff(b))
        order = np.lexsort((t, v, win))
        vs, ts = np.ascontiguousarray(v[order]), np.ascontiguousarray(t[order])
        _eq(K.group_mode(vs, ts, b), R.group_mode(vs, ts, b))


def test_transform_kernels_match_twins():
    for kind, t, v, b in _cases():
        if kind == "bool":
            continue
        np.testing.assert_allclose(K.derivative(t, v, 1000), R.derivative(t, v, 1000), equal_nan=True)
        _eq(K.difference(v), R.difference(v))
        for w in (2, 3):
            np.testing.assert_allclose(K.moving_average(v, w), R.moving_average(v, w), equal_nan=True)
        _eq(K.cumulative_sum(v), R.cumulative_sum(v))
        _eq(K.elapsed(t, 7), R.elapsed(t, 7))
        _eq(K.sample_keys(t, 12345), R.sample_keys(t, 12345))


def test_int_sum_wraps_like_go():
    # InfluxDB 1.6.7: sum(v) over [MaxInt64, 1, 5] answered -9223372036854775803.
    v = np.array([I64.max, 1, 5], dtype=np.int64)
    b = np.array([0, 3], dtype=np.int64)
    assert K.window_sum(v, b)[0] == -9223372036854775803 == R.window_sum(v, b)[0]
    assert K.cumulative_sum(v)[-1] == -9223372036854775803


def test_select_nan_loses_and_ties_keep_earliest():
    v = np.array([np.nan, 2.0, 1.0, 1.0, np.nan], dtype=np.float64)
    b = np.array([0, 5, 5], dtype=np.int64)
    assert list(K.window_select(v, b, False)) == [2, -1]
    assert list(K.window_select(v, b, True)) == [1, -1]
    allnan = np.array([np.nan, np.nan])
    assert list(K.window_select(allnan, np.array([0, 2]), True)) == [0]


def test_strings_to_fixed_matches_twin():
    sa = StringArray.from_list([b"", b"abc", b"z", b"ab", b"\xff\x00x"])
    data = np.frombuffer(sa.data, dtype=np.uint8)
    _eq(K.strings_to_fixed(sa.offsets, data), R.strings_to_fixed(sa.offsets, sa.data))


def test_bad_input_raises():
    v = np.zeros(3)
    with pytest.raises(ValueError, match="bounds"):
        K.window_sum(v, np.array([0, 5], dtype=np.int64))
    with pytest.raises(ValueError, match="bounds"):
        K.window_sum(v, np.array([2, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="unit"):
        K.window_integral(np.arange(3, dtype=np.int64), v, np.array([0, 3], dtype=np.int64), 0)
    with pytest.raises(ValueError, match="greater than 1"):
        K.moving_average(v, 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(I64.min, I64.max), max_size=30), st.integers(1, 5), st.randoms(use_true_random=False))
def test_hypothesis_int_kernels(vals, nwin, rnd):
    v = np.array(vals, dtype=np.int64)
    rng = np.random.default_rng(rnd.randint(0, 2**32))
    b = _bounds(rng, len(v), nwin)
    _eq(K.window_sum(v, b), R.window_sum(v, b))
    _eq(K.window_select(v, b, True), R.window_select(v, b, True))
    _eq(K.window_select(v, b, False), R.window_select(v, b, False))
    for g, w in zip(K.window_cells(v, b), R.window_cells(v, b)):
        _eq(g, w)
    _eq(K.difference(v), R.difference(v))
    _eq(K.cumulative_sum(v), R.cumulative_sum(v))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.just(float('nan'))), max_size=30),
       st.integers(1, 5), st.randoms(use_true_random=False))
def test_hypothesis_float_kernels(vals, nwin, rnd):
    v = np.array(vals, dtype=np.float64)
    rng = np.random.default_rng(rnd.randint(0, 2**32))
    b = _bounds(rng, len(v), nwin)
    t = _times(rng, len(v))
    np.testing.assert_allclose(K.window_sum(v, b), R.window_sum(v, b), equal_nan=True)
    _eq(K.window_select(v, b, True), R.window_select(v, b, True))
    for g, w in zip(K.window_cells(v, b), R.window_cells(v, b)):
        _eq(g, w)
    np.testing.assert_allclose(K.window_integral(t, v, b, 3), R.window_integral(t, v, b, 3), equal_nan=True)
