"""chronosdb.ext.scanagg.window_aggregate: differential against its Python twin, against the
per-series path (SegmentReader.read + merge.window_bounds + partials), corruption, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from chronosdb.ext import merge, scanagg, scanagg_ref
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.query.functions import make_partial
from chronosdb.storage.segment.reader import SegmentReader
from chronosdb.storage.segment.writer import SegmentWriter

I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1
STATS = ("count", "sum", "min", "max", "first", "last", "first_time", "last_time")


def _series_times(rng, n, base):
    """Strictly increasing, irregular: mostly small steps, some big gaps."""
    steps = rng.integers(1, 20, size=n).astype(np.int64)
    gaps = rng.random(n) < 0.02
    steps[gaps] += rng.integers(100, 5000, size=int(gaps.sum()))
    return base + np.cumsum(steps)


def _float_values(rng, n):
    v = np.round(rng.normal(50, 30, size=n), int(rng.integers(0, 4)))
    kind = rng.integers(0, 4)
    if kind == 1:
        v[rng.random(n) < 0.1] = np.nan
    elif kind == 2:
        v[:] = np.nan if rng.random() < 0.5 else v
        v[rng.random(n) < 0.5] = np.nan
    elif kind == 3:
        v = rng.normal(0, 1e300, size=n)
        v[rng.random(n) < 0.05] = np.inf
        v[rng.random(n) < 0.05] = -0.0
    return v


def _int_values(rng, n):
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.integers(-1000, 1000, size=n, dtype=np.int64)
    if kind == 1:  # extremes: sums wrap
        return rng.choice(np.array([I64_MIN, I64_MAX, I64_MAX - 1, I64_MIN + 1, 0, -1], dtype=np.int64), size=n)
    return rng.integers(I64_MIN, I64_MAX, size=n, dtype=np.int64, endpoint=True)


def _write_segment(path, rng, nseries, base, distinct_times=False):
    """Write series 1..nseries with a float field b"f" and an integer field b"i"; returns data."""
    data = {}
    with SegmentWriter(str(path), 1, 0) as w:
        for sid in range(1, nseries + 1):
            for field, ftype in ((b"f", FieldType.FLOAT), (b"i", FieldType.INTEGER)):
                n = int(rng.integers(1, 2600))
                t = _series_times(rng, n, base + int(rng.integers(0, 300)))
                if distinct_times:  # no two series share a time (first/last ties are out of play)
                    t = t * 64 + sid
                v = _float_values(rng, n) if ftype == FieldType.FLOAT else _int_values(rng, n)
                w.add(sid, field, ftype, t, v)
                data[(sid, field)] = (t, v)
        w.finish()
    return data


def _columns(reader, entries, field):
    """Block index columns of the entries (series ids, in the given order) for one field."""
    tabs = [reader.blocks(sid, field) for sid in entries]
    starts = np.concatenate([[0], np.cumsum([len(t) for t in tabs])]).astype(np.int64)
    cols = [np.concatenate([getattr(t, c) for t in tabs]) for c in ("offset", "size", "count", "min_time", "max_time")]
    return cols, starts


def _call(mod, reader, ftype, cols, starts, groups, lo, hi, start, every, nwin, ngroups):
    return mod.window_aggregate(reader._mm, reader.path, int(ftype), *cols, starts, groups,
                                lo, hi, start, every, nwin, ngroups)


def _assert_same(got, want):
    mask = want.count > 0
    np.testing.assert_array_equal(got.count, want.count)
    for name in STATS[1:]:
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if a.dtype == np.float64 and name == "sum":
            # bit for bit: same additions in the same order
            np.testing.assert_array_equal(a[mask].view(np.int64), b[mask].view(np.int64), err_msg=name)
        else:
            np.testing.assert_array_equal(a[mask], b[mask], err_msg=name)


def _random_query(rng, tmin, tmax):
    span = max(tmax - tmin, 1)
    lo = int(rng.integers(tmin - span // 10, tmin + span // 2))
    hi = int(rng.integers(lo, tmax + span // 10 + 1))
    if rng.random() < 0.2:
        lo, hi = I64_MIN, I64_MAX
    if rng.random() < 0.15:
        return lo, hi, 0, 0, 1
    every = int(rng.integers(1, span // 3 + 2))
    start = int(rng.integers(tmin - span // 5, tmin + span // 5 + 1))
    nwin = int(rng.integers(1, 12))
    return lo, hi, start, every, nwin


@pytest.mark.parametrize("seed", range(24))
def test_matches_python_twin(tmp_path, seed):
    rng = np.random.default_rng(seed)
    nseries = int(rng.integers(1, 7))
    base = int(rng.integers(-10 ** 12, 10 ** 12)) if seed % 5 else I64_MAX - 200_000_000
    _write_segment(tmp_path / "s.seg", rng, nseries, base)
    with SegmentReader(str(tmp_path / "s.seg")) as r:
        for _ in range(4):
            field, ftype = (b"f", FieldType.FLOAT) if rng.random() < 0.5 else (b"i", FieldType.INTEGER)
            entries = rng.permutation(np.arange(1, nseries + 1))[: int(rng.integers(1, nseries + 1))].tolist()
            ngroups = int(rng.integers(1, 4))
            groups = rng.integers(0, ngroups, size=len(entries)).astype(np.int32)
            cols, starts = _columns(r, entries, field)
            lo, hi, start, every, nwin = _random_query(rng, r.min_time, r.max_time)
            args = (r, ftype, cols, starts, groups, lo, hi, start, every, nwin, ngroups)
            got = _call(scanagg, *args)
            want = _call(scanagg_ref, *args)
            _assert_same(got, want)
            assert got.count.shape == (ngroups, nwin)


def test_windows_past_int64_max(tmp_path):
    """Windows that would start beyond INT64_MAX are unreachable, not a wrap-around."""
    rng = np.random.default_rng(99)
    with SegmentWriter(str(tmp_path / "s.seg"), 1, 0) as w:
        for sid in (1, 2, 3):
            # series 3 ends exactly at INT64_MAX, inside the last window (which runs past it)
            t = I64_MAX - 50 * np.arange(3000, dtype=np.int64)[::-1] - (3 - sid) * 7
            w.add(sid, b"i", FieldType.INTEGER, t, _int_values(rng, 3000))
        w.finish()
    start = I64_MAX - 100_000
    with SegmentReader(str(tmp_path / "s.seg")) as r:
        cols, starts = _columns(r, [1, 2, 3], b"i")
        groups = np.array([0, 1, 0], dtype=np.int32)
        args = (r, FieldType.INTEGER, cols, starts, groups, I64_MIN, I64_MAX, start, 7_000, 1000, 2)
        got = _call(scanagg, *args)
        _assert_same(got, _call(scanagg_ref, *args))
        total = sum(len(r.read(s, b"i", start)[0]) for s in (1, 2, 3))
        assert got.count.sum() == total > 0
        assert got.count[:, 15:].sum() == 0  # (I64_MAX - start) // every + 1 = 15 windows reachable
        assert got.count[0, 14] > 0 and got.last_time[0, 14] == I64_MAX


@pytest.mark.parametrize("seed", range(6))
def test_matches_per_series_partials(tmp_path, seed):
    """The same answers as the executor's per-series path: read, window_bounds, add_points."""
    rng = np.random.default_rng(1000 + seed)
    nseries = 5
    _write_segment(tmp_path / "s.seg", rng, nseries, 10 ** 9, distinct_times=True)
    with SegmentReader(str(tmp_path / "s.seg")) as r:
        for field, ftype in ((b"f", FieldType.FLOAT), (b"i", FieldType.INTEGER)):
            entries = [3, 1, 5, 2, 4]
            groups = np.array([0, 1, 0, 2, 1], dtype=np.int32)
            lo, hi = r.min_time + 1000, r.max_time - 1000
            start, every, nwin = r.min_time, (r.max_time - r.min_time) // 7 + 1, 8
            cols, starts = _columns(r, entries, field)
            got = _call(scanagg, r, ftype, cols, starts, groups, lo, hi, start, every, nwin, 3)
            for g in range(3):
                parts = {name: make_partial(name, nwin, ftype) for name in ("count", "sum", "min", "max", "first", "last")}
                for sid, grp in zip(entries, groups.tolist()):
                    if grp != g:
                        continue
                    t, v = r.read(sid, field, lo, hi)
                    bounds = merge.window_bounds(t, start, every, nwin)
                    for p in parts.values():
                        p.add_points(t, v, bounds)
                fin = {name: p.finalize() for name, p in parts.items()}
                np.testing.assert_array_equal(got.count[g], fin["count"].values)
                has = fin["count"].values > 0
                sums = fin["sum"].values[has]
                assert got.sum[g][has].tobytes() == sums.tobytes()
                for name in ("min", "max", "first", "last"):
                    np.testing.assert_array_equal(got.__getattribute__(name)[g][has], fin[name].values[has], err_msg=name)
                    np.testing.assert_array_equal(fin[name].valid, has)
                np.testing.assert_array_equal(got.first_time[g][has], fin["first"].point_time[has])
                np.testing.assert_array_equal(got.last_time[g][has], fin["last"].point_time[has])


def _two_entry_segment(tmp_path):
    """Series 1 and 2, fields f and i, 2500 points each (three blocks per entry)."""
    rng = np.random.default_rng(7)
    path = tmp_path / "s.seg"
    with SegmentWriter(str(path), 1, 0) as w:
        for sid in (1, 2):
            t = _series_times(rng, 2500, 0)
            w.add(sid, b"f", FieldType.FLOAT, t, _float_values(rng, 2500))
            w.add(sid, b"i", FieldType.INTEGER, t, _int_values(rng, 2500))
        w.finish()
    return path


def test_ties_at_equal_time_across_entries(tmp_path):
    t = np.array([10, 20, 30], dtype=np.int64)
    with SegmentWriter(str(tmp_path / "s.seg"), 1, 0) as w:
        w.add(1, b"f", FieldType.FLOAT, t, np.array([1.0, 2.0, 3.0]))
        w.add(2, b"f", FieldType.FLOAT, t, np.array([7.0, 8.0, 9.0]))
        w.finish()
    with SegmentReader(str(tmp_path / "s.seg")) as r:
        cols, starts = _columns(r, [2, 1], b"f")
        got = _call(scanagg, r, FieldType.FLOAT, cols, starts, np.zeros(2, np.int32), 0, 100, 0, 0, 1, 1)
        # equal times across series: the greater value wins first and last (InfluxDB's rule),
        # whatever the entries' order
        assert got.first[0, 0] == 7.0 and got.last[0, 0] == 9.0
        assert got.count[0, 0] == 6 and got.sum[0, 0] == 30.0
        assert got.min[0, 0] == 1.0 and got.max[0, 0] == 9.0
        _assert_same(got, _call(scanagg_ref, r, FieldType.FLOAT, cols, starts, np.zeros(2, np.int32), 0, 100, 0, 0, 1, 1))


def test_nan_counts_but_never_wins_min_max(tmp_path):
    t = np.arange(1, 7, dtype=np.int64)
    with SegmentWriter(str(tmp_path / "s.seg"), 1, 0) as w:
        w.add(1, b"f", FieldType.FLOAT, t, np.array([np.nan, 2.0, np.nan, 5.0, np.nan, np.nan]))
        w.finish()
    with SegmentReader(str(tmp_path / "s.seg")) as r:
        cols, starts = _columns(r, [1], b"f")
        got = _call(scanagg, r, FieldType.FLOAT, cols, starts, np.zeros(1, np.int32), 0, 100, 0, 2, 3, 1)
        # windows [0,2) [2,4) [4,6): {nan}, {2, nan}, {5, nan}; t=6 is outside
        np.testing.assert_array_equal(got.count[0], [1, 2, 2])
        assert np.isnan(got.min[0, 0]) and np.isnan(got.max[0, 0]) and np.isnan(got.sum[0, 1])
        assert got.min[0, 1] == got.max[0, 1] == 2.0
        assert got.min[0, 2] == got.max[0, 2] == 5.0


def test_corrupt_block_names_file_and_offset(tmp_path):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1, 2], b"f")
        offs, sizes = cols[0], cols[1]
    k = len(offs) - 1  # the last block of series 2
    raw = bytearray(path.read_bytes())
    raw[int(offs[k]) + int(sizes[k]) // 2] ^= 0x40
    groups = np.array([0, 1], dtype=np.int32)
    for mod in (scanagg, scanagg_ref):
        with pytest.raises(CorruptionError) as ei:
            mod.window_aggregate(bytes(raw), "x.seg", 1, *cols, starts, groups, I64_MIN, I64_MAX, 0, 0, 1, 2)
        assert ei.value.offset == int(offs[k]) and ei.value.path == "x.seg"
        assert "checksum" in ei.value.what
    # A range that ends before the bad block never reads it (nor checks its checksum).
    hi = int(cols[3][k]) - 1
    got = scanagg.window_aggregate(bytes(raw), "x.seg", 1, *cols, starts, groups, I64_MIN, hi, 0, 0, 1, 2)
    with SegmentReader(str(path)) as r:
        assert got.count[1, 0] == len(r.read(2, b"f", None, hi)[0]) > 0


def test_block_outside_buffer(tmp_path):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1, 2], b"i")
    raw = path.read_bytes()
    cols[0] = cols[0].copy()
    cols[0][1] = len(raw) - 3
    with pytest.raises(CorruptionError) as ei:
        scanagg.window_aggregate(raw, "y.seg", 2, *cols, starts, np.zeros(2, np.int32), I64_MIN, I64_MAX, 0, 0, 1, 1)
    assert ei.value.offset == len(raw) - 3


def test_wrong_type_byte_is_corruption(tmp_path):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1], b"i")
        with pytest.raises(CorruptionError, match="type byte"):
            scanagg.window_aggregate(r._mm, r.path, 1, *cols, starts, np.zeros(1, np.int32), I64_MIN, I64_MAX, 0, 0, 1, 1)


def test_bad_arguments(tmp_path):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1, 2], b"f")
        g = np.zeros(2, np.int32)
        for mod in (scanagg, scanagg_ref):
            with pytest.raises(ValueError, match="float"):
                mod.window_aggregate(r._mm, r.path, 3, *cols, starts, g, 0, 10, 0, 0, 1, 1)
            with pytest.raises(ValueError, match="entry_group"):
                mod.window_aggregate(r._mm, r.path, 1, *cols, starts, np.array([0, 5], np.int32), 0, 10, 0, 0, 1, 1)
            with pytest.raises(ValueError, match="entry_group"):  # would wrap to 0 as int32
                mod.window_aggregate(r._mm, r.path, 1, *cols, starts, np.array([0, 2 ** 32], np.int64), 0, 10, 0, 0, 1, 1)
            with pytest.raises(ValueError, match="nwin must be 1"):
                mod.window_aggregate(r._mm, r.path, 1, *cols, starts, g, 0, 10, 0, 0, 3, 1)
            with pytest.raises(ValueError, match="entry_starts"):
                mod.window_aggregate(r._mm, r.path, 1, *cols, starts[:-1], g, 0, 10, 0, 0, 1, 1)
            with pytest.raises(ValueError, match="differ in length"):
                mod.window_aggregate(r._mm, r.path, 1, cols[0][:-1], *cols[1:], starts, g, 0, 10, 0, 0, 1, 1)
            swapped = [c.copy() for c in cols]
            for c in swapped:
                c[[0, 1]] = c[[1, 0]]  # series 1's first two blocks out of order
            with pytest.raises(ValueError, match="time order"):
                mod.window_aggregate(r._mm, r.path, 1, *swapped, starts, g, 0, 10, 0, 0, 1, 1)


def test_empty_inputs(tmp_path):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1, 2], b"f")
        g = np.zeros(2, np.int32)
        got = scanagg.window_aggregate(r._mm, r.path, 1, *cols, starts, g, 10, 5, 0, 0, 1, 1)  # lo > hi
        assert got.count.sum() == 0
        e = np.zeros(0, np.int64)
        got = scanagg.window_aggregate(r._mm, r.path, 2, e, e, e, e, e, np.zeros(1, np.int64), np.zeros(0, np.int32),
                                       I64_MIN, I64_MAX, 0, 10, 4, 3)
        assert got.count.shape == (3, 4) and got.sum.dtype == np.int64 and got.count.sum() == 0


def test_xxh3_port_matches_xxhash_library():
    """The kernel's own C XXH3-64 (the nogil checksum pass) against the library, every length
    class: 0, 1..3, 4..8, 9..16, 17..128, 129..240, striped (with and without full 1 KB rounds)."""
    import xxhash
    rng = np.random.default_rng(5)
    for n in list(range(0, 300)) + [511, 512, 1023, 1024, 1025, 1088, 2047, 2048, 2049, 4000, 10_000]:
        b = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert scanagg.xxh3_64(b) == xxhash.xxh3_64_intdigest(b), n


@pytest.mark.parametrize("column,change,what", [(2, 1, "values in a column"), (3, -1, "disagree with the index"),
                                                (2, -10 ** 9, "points")])
def test_index_disagreeing_with_block_is_corruption(tmp_path, column, change, what):
    path = _two_entry_segment(tmp_path)
    with SegmentReader(str(path)) as r:
        cols, starts = _columns(r, [1, 2], b"f")
        cols = [c.copy() for c in cols]
        cols[column][4] += change
        for mod in (scanagg, scanagg_ref):
            # a bytes copy: the twin's traceback would otherwise pin the reader's mapping
            with pytest.raises(CorruptionError, match=what) as ei:
                mod.window_aggregate(path.read_bytes(), r.path, 1, *cols, starts, np.zeros(2, np.int32), I64_MIN, I64_MAX, 0, 0, 1, 1)
            assert ei.value.offset == int(cols[0][4])
