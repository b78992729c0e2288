"""Plain-Python twin of chronosdb.ext.scanagg.window_aggregate (tests and benchmarks only).

Same inputs, same cells, same answers; built the slow, obvious way: each entry's wanted blocks are
decoded (and checked) by ``blockscan_ref.decode_blocks`` -- the codecs' Python decoders, one block
at a time -- then cut into windows with numpy and folded into the cells entry by entry, in entry
order. Float sums use ``np.add.accumulate`` (a strictly left-to-right sum) per (entry, window), so
they are bit-identical to the kernel's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronosdb.ext import blockscan_ref

_I64_MAX = 2 ** 63 - 1


@dataclass
class WindowAggregates:
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray
    first_time: np.ndarray
    last_time: np.ndarray


def effective_range(lo: int, hi: int, start: int, every: int, nwin: int) -> tuple[int, int, int]:
    if every < 0:
        raise ValueError(f"every must be >= 0, got {every}")
    if nwin < 0:
        raise ValueError(f"nwin must be >= 0, got {nwin}")
    if every == 0:
        if nwin != 1:
            raise ValueError(f"every == 0 means one window [lo, hi]; nwin must be 1, got {nwin}")
        return lo, hi, 1
    reach = min(nwin, (_I64_MAX - start) // every + 1)
    if reach <= 0:
        return 1, 0, 0
    return max(lo, start), min(hi, start + reach * every - 1), reach


def window_aggregate(buf, path, ftype, offsets, sizes, counts, min_times, max_times, entry_starts,
                     entry_group, lo, hi, start, every, nwin, ngroups) -> WindowAggregates:
    ftype = int(ftype)
    if ftype not in (1, 2):
        raise ValueError(f"window_aggregate handles float (1) and integer (2) fields, not type {ftype}")
    if ngroups < 0:
        raise ValueError(f"ngroups must be >= 0, got {ngroups}")
    lo, hi, reach = effective_range(int(lo), int(hi), int(start), int(every), int(nwin))
    cols = [np.asarray(a, dtype=np.int64) for a in (offsets, sizes, counts, min_times, max_times)]
    starts = np.asarray(entry_starts, dtype=np.int64).tolist()
    groups = np.asarray(entry_group, dtype=np.int64).tolist()
    nb = len(cols[0])
    if any(len(c) != nb for c in cols):
        raise ValueError("offsets, sizes, counts, min_times and max_times differ in length")
    if len(starts) != len(groups) + 1:
        raise ValueError(f"entry_starts must hold len(entry_group) + 1 = {len(groups) + 1} rows")
    if starts[0] != 0 or starts[-1] != nb:
        raise ValueError(f"entry_starts must run from 0 to the block count {nb}")
    for e, g in enumerate(groups):
        if starts[e + 1] < starts[e]:
            raise ValueError(f"entry_starts decreases at entry {e}")
        if not 0 <= g < ngroups:
            raise ValueError(f"entry_group[{e}] = {g} outside 0..{ngroups - 1}")
    tmin, tmax = cols[3], cols[4]
    for e in range(len(groups)):
        a, b = starts[e], starts[e + 1]
        if b - a > 1 and np.any(tmin[a + 1:b] < tmax[a:b - 1]):
            raise ValueError(f"blocks of entry {e} are not in time order")

    dtype = np.float64 if ftype == 1 else np.int64
    shape = (ngroups, nwin)
    out = WindowAggregates(np.zeros(shape, np.int64), *(np.zeros(shape, dtype) for _ in range(5)),
                           np.zeros(shape, np.int64), np.zeros(shape, np.int64))
    if lo > hi or reach == 0 or nwin == 0 or ngroups == 0:
        return out
    for e, g in enumerate(groups):
        rows = np.arange(starts[e], starts[e + 1])
        rows = rows[(tmax[rows] >= lo) & (tmin[rows] <= hi)]
        if len(rows) == 0:
            continue
        times, values = blockscan_ref.decode_blocks(
            buf, *(c[rows] for c in cols), ftype, lo, hi, path=path)
        if every == 0:
            win = np.zeros(len(times), dtype=np.int64)
        else:
            win = ((times.astype(np.uint64) - np.uint64(start & 0xFFFFFFFFFFFFFFFF))
                   // np.uint64(every)).astype(np.int64)
        for w in np.unique(win).tolist():
            sel = np.flatnonzero(win == w)
            t, v = times[sel], values[sel]
            _fold(out, g, w, t, v, ftype)
    return out


def _fold(out: WindowAggregates, g: int, w: int, t, v, ftype: int) -> None:
    """Fold one entry's points of window w into cell (g, w)."""
    if ftype == 1:
        part_sum = 0.0 + np.add.accumulate(v)[-1]
        vmin, vmax = np.fmin.reduce(v), np.fmax.reduce(v)
    else:
        part_sum = v.sum(dtype=np.int64)  # numpy int64 sums wrap around
        vmin, vmax = v.min(), v.max()
    if out.count[g, w] == 0:
        out.min[g, w], out.max[g, w] = vmin, vmax
        out.first[g, w], out.first_time[g, w] = v[0], t[0]
        out.last[g, w], out.last_time[g, w] = v[-1], t[-1]
    else:
        out.min[g, w] = np.fmin(out.min[g, w], vmin)
        out.max[g, w] = np.fmax(out.max[g, w], vmax)
        # Points of different series at the same time: the greater value wins (a NaN never).
        ft, lt = out.first_time[g, w], out.last_time[g, w]
        if t[0] < ft or (t[0] == ft and v[0] > out.first[g, w]):
            out.first[g, w], out.first_time[g, w] = v[0], t[0]
        if t[-1] > lt or (t[-1] == lt and v[-1] > out.last[g, w]):
            out.last[g, w], out.last_time[g, w] = v[-1], t[-1]
    out.count[g, w] += len(t)
    with np.errstate(over="ignore"):
        out.sum[g, w] = out.sum[g, w] + part_sum
