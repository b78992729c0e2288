"""Merge kernels (chronosdb.ext.merge) against their plain-Python twins (chronosdb.ext.merge_ref).

Seeded differential tests: random inputs with heavy duplication, empty runs, single elements and
int64 extremes go through both implementations, which must agree exactly. Hand-written cases pin
the semantics the engine relies on (last write wins, last arrival wins, inclusive tombstones).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronosdb.ext import merge, merge_ref
from chronosdb.model.strings import StringArray

I64_MIN = np.iinfo(np.int64).min
I64_MAX = np.iinfo(np.int64).max


def strictly_increasing(rng, n, pool):
    """A strictly increasing run of up to n distinct times drawn from pool."""
    n = min(n, len(pool))
    return np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)


def random_pool(rng):
    """Times to draw runs from: small pools give heavy duplication across runs; some pools
    include the int64 extremes."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.arange(rng.integers(1, 40), dtype=np.int64)
    if kind == 1:
        base = rng.integers(-(10**12), 10**12, size=rng.integers(1, 300))
        return np.unique(base.astype(np.int64))
    extremes = np.array([I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 1, I64_MAX], dtype=np.int64)
    return np.unique(np.concatenate([extremes, rng.integers(-50, 50, size=20)]).astype(np.int64))


def random_runs(rng):
    k = int(rng.choice([0, 1, 2, 3, 4, 7, 16, 17]))
    pool = random_pool(rng)
    runs = []
    for _ in range(k):
        n = int(rng.choice([0, 1, rng.integers(0, 60)]))
        runs.append(strictly_increasing(rng, n, pool))
    return runs


def assert_same(got, want):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
        return
    if isinstance(want, bytes):
        assert got == want
        return
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want)


# --- merge_runs -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(300))
def test_merge_runs_matches_reference(seed):
    rng = np.random.default_rng(seed)
    runs = random_runs(rng)
    got = merge.merge_runs(runs)
    assert_same(got, merge_ref.merge_runs(runs))
    times, src, pos = got
    assert np.all(times[1:] > times[:-1])
    # The provenance really points at the emitted time.
    if len(times):
        cat = np.concatenate(runs)
        idx = merge.gather_index([len(r) for r in runs], src, pos)
        assert_same(idx, merge_ref.gather_index([len(r) for r in runs], src, pos))
        np.testing.assert_array_equal(cat[idx], times)


@pytest.mark.parametrize("seed", range(100))
def test_merge_runs_successive_spans_match_reference(seed):
    """Runs covering successive, slightly overlapping time spans (segments written one after
    another): exercises the stretch copy of the k-way merge, including ties at stretch ends."""
    rng = np.random.default_rng(500 + seed)
    k = int(rng.integers(3, 12))
    runs = []
    for r in range(k):
        lo = r * 50 - int(rng.integers(0, 20))
        n = int(rng.integers(0, 60))
        runs.append(np.sort(rng.choice(np.arange(lo, lo + 70), size=n, replace=False)).astype(np.int64))
    assert_same(merge.merge_runs(runs), merge_ref.merge_runs(runs))


def test_merge_runs_newest_run_wins_on_equal_times():
    old = np.array([1, 2, 3, 5], dtype=np.int64)
    mid = np.array([2, 4], dtype=np.int64)
    new = np.array([3, 4, 5, 6], dtype=np.int64)
    times, src, pos = merge.merge_runs([old, mid, new])
    assert times.tolist() == [1, 2, 3, 4, 5, 6]
    assert src.tolist() == [0, 1, 2, 2, 2, 2]
    assert pos.tolist() == [0, 0, 0, 1, 2, 3]
    # Two runs (the two-pointer path): newer wins too.
    times, src, pos = merge.merge_runs([old, new])
    assert times.tolist() == [1, 2, 3, 4, 5, 6]
    assert src.tolist() == [0, 0, 1, 1, 1, 1]


def test_merge_runs_gathers_values_last_write_wins():
    runs = [np.array([10, 20, 30]), np.array([20, 40])]
    values = [np.array([1.0, 2.0, 3.0]), np.array([-2.0, -4.0])]
    times, src, pos = merge.merge_runs(runs)
    idx = merge.gather_index([3, 2], src, pos)
    merged = np.concatenate(values)[idx]
    assert times.tolist() == [10, 20, 30, 40]
    assert merged.tolist() == [1.0, -2.0, 3.0, -4.0]


def test_merge_runs_edge_shapes():
    t, s, p = merge.merge_runs([])
    assert (len(t), t.dtype, s.dtype, p.dtype) == (0, np.int64, np.int32, np.int64)
    t, s, p = merge.merge_runs([np.array([], dtype=np.int64)] * 3)
    assert len(t) == 0
    t, s, p = merge.merge_runs([[], [7], []])
    assert (t.tolist(), s.tolist(), p.tolist()) == ([7], [1], [0])
    t, s, p = merge.merge_runs([[I64_MIN, I64_MAX], [I64_MAX]])
    assert (t.tolist(), s.tolist(), p.tolist()) == ([I64_MIN, I64_MAX], [0, 1], [0, 0])


@pytest.mark.parametrize("bad", [[3, 3], [3, 2], [1, 5, 4]])
def test_merge_runs_rejects_unsorted_run(bad):
    with pytest.raises(ValueError, match=r"runs\[1\] is not strictly increasing"):
        merge.merge_runs([[1, 2], bad])
    with pytest.raises(ValueError, match=r"runs\[1\]"):
        merge_ref.merge_runs([[1, 2], bad])


def test_merge_runs_rejects_2d_run():
    with pytest.raises(ValueError, match="1-D"):
        merge.merge_runs([np.zeros((2, 2), dtype=np.int64)])


def test_gather_index_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside the runs"):
        merge.gather_index([2, 3], np.array([1], dtype=np.int32), np.array([3]))
    with pytest.raises(ValueError, match="outside the runs"):
        merge.gather_index([2, 3], np.array([2], dtype=np.int32), np.array([0]))
    with pytest.raises(ValueError, match="differ in shape"):
        merge.gather_index([2], np.array([0, 0], dtype=np.int32), np.array([0]))


# --- sort_dedup_last --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(200))
def test_sort_dedup_last_matches_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    pool = random_pool(rng)
    n = int(rng.choice([0, 1, 2, rng.integers(0, 200)]))
    times = rng.choice(pool, size=n).astype(np.int64)
    if rng.integers(0, 2):
        times = np.sort(times)  # the common, already-sorted fast path (with duplicates)
    assert_same(merge.sort_dedup_last(times), merge_ref.sort_dedup_last(times))


def test_sort_dedup_last_keeps_last_arrival():
    times = np.array([5, 1, 5, 3, 1, 5])
    assert merge.sort_dedup_last(times).tolist() == [4, 3, 5]
    assert merge.sort_dedup_last(np.array([1, 1, 2, 2, 2, 3])).tolist() == [1, 4, 5]
    assert merge.sort_dedup_last(np.array([], dtype=np.int64)).tolist() == []


@given(st.lists(st.integers(I64_MIN, I64_MAX) | st.integers(-3, 3), max_size=60))
@settings(max_examples=200, deadline=None)
def test_sort_dedup_last_property(values):
    times = np.array(values, dtype=np.int64)
    assert_same(merge.sort_dedup_last(times), merge_ref.sort_dedup_last(times))


# --- tombstone_keep ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(200))
def test_tombstone_keep_matches_reference(seed):
    rng = np.random.default_rng(2000 + seed)
    pool = random_pool(rng)
    times = np.sort(rng.choice(pool, size=int(rng.integers(0, 150)))).astype(np.int64)
    k = int(rng.choice([0, 1, 2, rng.integers(0, 12)]))
    ends = rng.choice(pool, size=(k, 2)).astype(np.int64)
    ranges = np.sort(ends, axis=1)  # overlapping, unsorted rows, some single points
    assert_same(merge.tombstone_keep(times, ranges), merge_ref.tombstone_keep(times, ranges))


def test_tombstone_keep_inclusive_overlapping_unsorted():
    times = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    ranges = np.array([[8, 8], [2, 3], [3, 5], [I64_MIN, 0]])
    assert merge.tombstone_keep(times, ranges).tolist() == [0, 5, 6, 8, 9]
    everything = np.array([[I64_MIN, I64_MAX]])
    assert merge.tombstone_keep(times, everything).tolist() == []
    assert merge.tombstone_keep(times, np.empty((0, 2), dtype=np.int64)).tolist() == list(range(10))


def test_tombstone_keep_rejects_bad_input():
    with pytest.raises(ValueError, match=r"ranges\[1\] has min 5 > max 4"):
        merge.tombstone_keep(np.array([1, 2]), np.array([[0, 0], [5, 4]]))
    with pytest.raises(ValueError, match="shape"):
        merge.tombstone_keep(np.array([1, 2]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="not sorted at position 1"):
        merge.tombstone_keep(np.array([2, 1]), np.array([[0, 0]]))


# --- string_take ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(150))
def test_string_take_matches_reference(seed):
    rng = np.random.default_rng(3000 + seed)
    n = int(rng.integers(0, 40))
    words = [bytes(rng.integers(0, 256, size=int(rng.integers(0, 6))).astype(np.uint8)) for _ in range(n)]
    col = StringArray.from_list(words)
    idx = rng.integers(0, n, size=int(rng.integers(0, 60))) if n else np.empty(0, dtype=np.int64)
    got = merge.string_take(col.offsets, col.data, idx)
    assert_same(got, merge_ref.string_take(col.offsets, col.data, idx))
    assert StringArray(*got).to_list() == [words[i] for i in idx]


def test_string_take_through_string_array():
    col = StringArray.from_list(["a", "", "ccc", "dd"])
    assert col.take(np.array([3, 0, 0, 1, 2])).to_list() == [b"dd", b"a", b"a", b"", b"ccc"]
    assert col.take(np.array([], dtype=np.int64)).to_list() == []


def test_string_take_rejects_bad_input():
    col = StringArray.from_list(["a", "bb"])
    with pytest.raises(ValueError, match=r"idx\[1\] = 2 is outside 0..1"):
        merge.string_take(col.offsets, col.data, np.array([0, 2]))
    with pytest.raises(ValueError, match="outside"):
        merge.string_take(col.offsets, col.data, np.array([-1]))
    with pytest.raises(ValueError, match="not a slice of data"):
        merge.string_take(np.array([0, 2, 9]), b"abc", np.array([1]))
    with pytest.raises(ValueError, match="at least one entry"):
        merge.string_take(np.array([], dtype=np.int64), b"", np.array([], dtype=np.int64))


# --- window_bounds ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(200))
def test_window_bounds_matches_reference(seed):
    rng = np.random.default_rng(4000 + seed)
    pool = random_pool(rng)
    times = np.sort(rng.choice(pool, size=int(rng.integers(0, 120)))).astype(np.int64)
    start = int(rng.choice(pool)) - int(rng.integers(0, 5))
    start = max(start, int(I64_MIN))
    every = int(rng.choice([1, 2, 3, 7, 1000, 2**40, 2**62]))
    nwin = int(rng.integers(0, 25))
    assert_same(
        merge.window_bounds(times, start, every, nwin),
        merge_ref.window_bounds(times, start, every, nwin),
    )


def test_window_bounds_splits_half_open_windows():
    times = np.array([0, 9, 10, 10, 25, 30, 31])
    b = merge.window_bounds(times, 0, 10, 4)
    assert b.tolist() == [0, 2, 4, 5, 7]  # [0,10) [10,20) [20,30) [30,40)
    # Edges past INT64_MAX do not wrap around.
    b = merge.window_bounds(np.array([I64_MAX - 1, I64_MAX]), I64_MAX - 1, 2**62, 3)
    assert b.tolist() == [0, 2, 2, 2]
    # i*every alone passes INT64_MAX here but start + i*every does not: no false overflow.
    b = merge.window_bounds(np.array([I64_MAX]), -10, 2**62, 2)
    assert b.tolist() == [0, 0, 0]


def test_window_bounds_rejects_bad_input():
    with pytest.raises(ValueError, match="every must be > 0"):
        merge.window_bounds(np.array([1]), 0, 0, 1)
    with pytest.raises(ValueError, match="nwin must be >= 0"):
        merge.window_bounds(np.array([1]), 0, 1, -1)
    with pytest.raises(ValueError, match="not sorted"):
        merge.window_bounds(np.array([3, 1]), 0, 1, 1)


@pytest.mark.parametrize("seed", range(30))
def test_group_points_equals_a_stable_lexsort(seed):
    """group_points == np.lexsort((times, gid)) (stable: equal times keep input order), with
    each group's [start, end); ``clean`` is False exactly when a group has one time twice
    within one batch."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    k = int(rng.integers(1, 12))
    gid = rng.integers(0, k, n)
    times = np.sort(rng.integers(0, 50, n)) if seed % 2 else rng.integers(0, 50, n)
    batch = np.sort(rng.integers(0, 4, n)).astype(np.int32)
    order, start, end, clean = merge.group_points(gid, times, batch, k)
    want = np.lexsort((times, gid))
    assert order.tolist() == want.tolist()
    assert start.tolist() == np.searchsorted(gid[want], np.arange(k), "left").tolist()
    assert end.tolist() == np.searchsorted(gid[want], np.arange(k), "right").tolist()
    triples = list(zip(gid.tolist(), times.tolist(), batch.tolist()))
    assert clean == (len(set(triples)) == len(triples))


@pytest.mark.parametrize("seed", range(30))
def test_group_points_sorts_runs_of_several_writers_stably(seed):
    """Each group's points as several runs already in time order (batches of several writers:
    runs that overlap, tie, or lie wholly before or after each other): the same order as a
    stable lexsort."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    gid, times = [], []
    for _ in range(int(rng.integers(1, 25))):
        m = int(rng.integers(0, 40))
        base = int(rng.choice([0, 10**15, int(rng.integers(0, 100))]))
        gid.append(rng.integers(0, k, m))
        times.append(base + np.sort(rng.integers(0, 30 if seed % 3 else 3, m)))
    gid, times = np.concatenate(gid).astype(np.int64), np.concatenate(times).astype(np.int64)
    order, start, end, _clean = merge.group_points(gid, times, np.zeros(len(gid), np.int32), k)
    assert order.tolist() == np.lexsort((times, gid)).tolist()


def test_group_points_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        merge.group_points(np.array([0, 3]), np.array([1, 2]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="differ in length"):
        merge.group_points(np.array([0]), np.array([1, 2]), np.array([0]), 1)
