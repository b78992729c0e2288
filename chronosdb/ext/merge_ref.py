"""Plain-Python reference twins of the kernels in chronosdb.ext.merge.

These are the slow, obviously-correct statements of what each kernel must answer; the seeded
differential tests (tests/test_merge.py) run both on the same inputs and require equal output.
They loop per point on purpose and must never be used on a real read or write path. Each twin
takes and returns the same types as its kernel and raises ValueError on the same bad inputs.
"""
from __future__ import annotations

import numpy as np


def _ints(arr) -> list[int]:
    a = np.asarray(arr, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D int64 array, got shape {a.shape}")
    return [int(x) for x in a]


def merge_runs(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every distinct time, the entry of the newest run holding it; in time order."""
    winner: dict[int, tuple[int, int]] = {}
    for r, run in enumerate(runs):  # oldest first, so a later run overwrites an earlier one
        values = _ints(run)
        for p, t in enumerate(values):
            if p and t <= values[p - 1]:
                raise ValueError(f"merge_runs: runs[{r}] is not strictly increasing at position {p}")
            winner[t] = (r, p)
    times = sorted(winner)
    return (
        np.array(times, dtype=np.int64),
        np.array([winner[t][0] for t in times], dtype=np.int32),
        np.array([winner[t][1] for t in times], dtype=np.int64),
    )


def gather_index(runs_lengths, src, pos) -> np.ndarray:
    lengths = _ints(runs_lengths)
    src_l, pos_l = _ints(src), _ints(pos)
    if len(src_l) != len(pos_l):
        raise ValueError("gather_index: src and pos differ in shape")
    out = []
    for s, p in zip(src_l, pos_l):
        if not (0 <= s < len(lengths)) or not (0 <= p < lengths[s]):
            raise ValueError(f"gather_index: (src={s}, pos={p}) is outside the runs")
        out.append(sum(lengths[:s]) + p)
    return np.array(out, dtype=np.int64)


def sort_dedup_last(times) -> np.ndarray:
    last_at: dict[int, int] = {}
    for i, t in enumerate(_ints(times)):
        last_at[t] = i  # a later arrival replaces an earlier one
    return np.array([last_at[t] for t in sorted(last_at)], dtype=np.int64)


def tombstone_keep(times, ranges) -> np.ndarray:
    values = _ints(times)
    if any(values[i] < values[i - 1] for i in range(1, len(values))):
        raise ValueError("tombstone_keep: times not sorted")
    rows = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    pairs = [(int(lo), int(hi)) for lo, hi in rows]
    for r, (lo, hi) in enumerate(pairs):
        if lo > hi:
            raise ValueError(f"tombstone_keep: ranges[{r}] has min {lo} > max {hi}")
    keep = [i for i, t in enumerate(values) if not any(lo <= t <= hi for lo, hi in pairs)]
    return np.array(keep, dtype=np.int64)


def string_take(offsets, data, idx) -> tuple[np.ndarray, bytes]:
    offs = _ints(offsets)
    if not offs:
        raise ValueError("string_take: offsets must hold at least one entry")
    raw = bytes(data)
    n = len(offs) - 1
    pieces = []
    for j, i in enumerate(_ints(idx)):
        if not 0 <= i < n:
            raise ValueError(f"string_take: idx[{j}] = {i} is outside 0..{n - 1}")
        a, b = offs[i], offs[i + 1]
        if a < 0 or b < a or b > len(raw):
            raise ValueError(f"string_take: offsets[{i}:{i + 2}] is not a slice of data")
        pieces.append(raw[a:b])
    new_offsets = [0]
    for p in pieces:
        new_offsets.append(new_offsets[-1] + len(p))
    return np.array(new_offsets, dtype=np.int64), b"".join(pieces)


def window_bounds(times, start: int, every: int, nwin: int) -> np.ndarray:
    values = _ints(times)
    if every <= 0:
        raise ValueError(f"window_bounds: every must be > 0, got {every}")
    if nwin < 0:
        raise ValueError(f"window_bounds: nwin must be >= 0, got {nwin}")
    if any(values[i] < values[i - 1] for i in range(1, len(values))):
        raise ValueError("window_bounds: times not sorted")
    # Python ints do not overflow: an edge past INT64_MAX is simply above every time.
    out = []
    for i in range(nwin + 1):
        edge = start + i * every
        out.append(sum(1 for t in values if t < edge))
    return np.array(out, dtype=np.int64)
