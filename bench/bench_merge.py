"""Throughput of the merge kernels (chronosdb.ext.merge). Prints figures; asserts nothing.

    python bench/bench_merge.py            # ~10-20 s on one core

merge_runs is timed against two numpy baselines doing the same job (last write wins):
  - "numpy concat+stable argsort": concatenate, stable argsort, keep the last of equal times;
  - "pairwise": fold the runs with the 2-run kernel (oldest into newest), gathering provenance.
The figures decide the k > 2 strategy documented in merge.pyx.
"""
from __future__ import annotations

import time

import numpy as np

from chronosdb.ext import merge

RNG = np.random.default_rng(42)


def best_of(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_runs(k, n_each, overlap):
    """k runs of n_each points over a shared span; overlap in [0, 1] = fraction of shared times."""
    span = int(n_each * k * (1 - overlap)) + n_each
    runs = []
    for _ in range(k):
        runs.append(np.sort(RNG.choice(span, size=n_each, replace=False)).astype(np.int64) * 1000)
    return runs


def numpy_baseline(runs):
    cat = np.concatenate(runs)
    order = np.argsort(cat, kind="stable")
    t = cat[order]
    keep = np.ones(len(t), dtype=bool)
    keep[:-1] = t[:-1] != t[1:]
    return t[keep], order[keep]


def pairwise(runs):
    """Fold with the two-run path: merged(0..i) with run i+1 (newer wins), tracking global index."""
    lengths = [len(r) for r in runs]
    acc_t, src, pos = merge.merge_runs(runs[:1])
    acc_g = merge.gather_index(lengths[:1], src, pos)
    offset = lengths[0]
    for r in runs[1:]:
        t, s, p = merge.merge_runs([acc_t, r])
        g = np.where(s == 0, acc_g[np.minimum(p, len(acc_g) - 1)], offset + p)
        acc_t, acc_g = t, g
        offset += len(r)
    return acc_t, acc_g


def report(label, n_points, seconds):
    print(f"  {label:<34} {seconds * 1e3:8.2f} ms  {n_points / seconds / 1e6:8.1f} M points/s")


def bench_merge_runs():
    print("merge_runs (1M input points in total)")
    total = 1_000_000
    for k in (1, 2, 4, 8, 16):
        for overlap in (0.0, 0.5):
            runs = make_runs(k, total // k, overlap)
            n = sum(len(r) for r in runs)
            print(f" k={k} overlap={overlap}")
            report("merge_runs", n, best_of(lambda: merge.merge_runs(runs)))
            report("numpy concat+stable argsort", n, best_of(lambda: numpy_baseline(runs), 3))
            if k > 2:
                report("pairwise fold of 2-run merges", n, best_of(lambda: pairwise(runs), 3))


def bench_merge_successive():
    print("merge_runs, runs over successive time spans with 5% overlap (1M points; compaction)")
    total = 1_000_000
    for k in (2, 4, 16):
        n_each = total // k
        runs = [np.arange(i * n_each * 95 // 100, i * n_each * 95 // 100 + n_each, dtype=np.int64)
                for i in range(k)]
        n = sum(len(r) for r in runs)
        report(f"k={k} merge_runs", n, best_of(lambda: merge.merge_runs(runs)))
        report(f"k={k} numpy concat+stable argsort", n, best_of(lambda: numpy_baseline(runs), 3))


def bench_sort_dedup_last():
    print("sort_dedup_last (1M points)")
    n = 1_000_000
    sorted_times = np.sort(RNG.integers(0, n // 2, size=n)).astype(np.int64)
    report("already sorted (fast path)", n, best_of(lambda: merge.sort_dedup_last(sorted_times)))
    nearly = sorted_times.copy()
    swap = RNG.integers(0, n - 1, size=n // 1000)
    nearly[swap], nearly[swap + 1] = nearly[swap + 1], nearly[swap]
    report("nearly sorted (0.1% swaps)", n, best_of(lambda: merge.sort_dedup_last(nearly)))
    shuffled = RNG.permutation(sorted_times)
    report("shuffled", n, best_of(lambda: merge.sort_dedup_last(shuffled), 3))


def bench_tombstone_keep():
    print("tombstone_keep (1M points)")
    n = 1_000_000
    times = np.arange(n, dtype=np.int64) * 10
    for k in (1, 100, 10_000):
        lo = RNG.integers(0, n * 10, size=k)
        ranges = np.stack([lo, lo + RNG.integers(0, 2000, size=k)], axis=1).astype(np.int64)
        report(f"{k} ranges", n, best_of(lambda: merge.tombstone_keep(times, ranges)))


def bench_string_take():
    print("string_take (200k strings of ~12 bytes)")
    n = 200_000
    lengths = RNG.integers(4, 20, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    data = RNG.integers(97, 123, size=int(offsets[-1])).astype(np.uint8).tobytes()
    idx = RNG.integers(0, n, size=n).astype(np.int64)
    report("random gather", n, best_of(lambda: merge.string_take(offsets, data, idx)))


def bench_window_bounds():
    print("window_bounds (1M sorted points)")
    n = 1_000_000
    times = np.arange(n, dtype=np.int64) * 1_000_000_000
    for nwin in (10, 10_000, 1_000_000):
        every = n * 1_000_000_000 // nwin
        report(f"{nwin} windows", n, best_of(lambda: merge.window_bounds(times, 0, every, nwin)))
        report("  numpy searchsorted", n, best_of(
            lambda: np.searchsorted(times, np.arange(nwin + 1, dtype=np.int64) * every)))


if __name__ == "__main__":
    bench_merge_runs()
    bench_merge_successive()
    bench_sort_dedup_last()
    bench_tombstone_keep()
    bench_string_take()
    bench_window_bounds()
