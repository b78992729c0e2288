"""Fused scan + window aggregate over segment blocks (chronosdb/ext/scanagg.pyx).

One call per (segment, field): decodes every chosen block of every entry (checksums verified) and
folds its points into (ngroups, nwin) cells. Semantics are those of the engine's count/sum/min/max/
first/last partials; see the module docstring for sums, NaN and ties.
"""
from collections.abc import Buffer

import numpy as np
import numpy.typing as npt

class WindowAggregates:
    """Each attribute is a C-contiguous (ngroups, nwin) array; cells with count 0 hold zeros."""
    count: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64] | npt.NDArray[np.int64]    # int64 wraps around for integer fields
    min: npt.NDArray[np.float64] | npt.NDArray[np.int64]    # NaN only when every point is NaN
    max: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    first: npt.NDArray[np.float64] | npt.NDArray[np.int64]  # equal times: lower entry index wins
    last: npt.NDArray[np.float64] | npt.NDArray[np.int64]   # equal times: higher entry index wins
    first_time: npt.NDArray[np.int64]
    last_time: npt.NDArray[np.int64]

def xxh3_64(data: Buffer) -> int:
    """XXH3-64 (seed 0) by the module's C port, the one its nogil checksum pass uses."""

def effective_range(lo: int, hi: int, start: int, every: int, nwin: int) -> tuple[int, int, int]:
    """(lo, hi, reachable windows) actually aggregated: [lo, hi] cut to the windows; windows that
    would start past INT64_MAX are dropped. Raises ValueError for every < 0, nwin < 0, or
    every == 0 with nwin != 1."""

def window_aggregate(
    buf: Buffer,
    path: str,
    ftype: int,                       # 1 float, 2 integer (anything else: ValueError)
    offsets: npt.ArrayLike,           # int64 block index columns of all chosen blocks,
    sizes: npt.ArrayLike,             #   entry after entry, each entry's blocks in time order
    counts: npt.ArrayLike,
    min_times: npt.ArrayLike,
    max_times: npt.ArrayLike,
    entry_starts: npt.ArrayLike,      # int64 [E+1], 0 .. len(offsets)
    entry_group: npt.ArrayLike,       # int32 [E], each in 0 .. ngroups-1
    lo: int,                          # inclusive time range
    hi: int,
    start: int,                       # windows [start + i*every, start + (i+1)*every)
    every: int,                       # 0: one window [lo, hi] (nwin must be 1)
    nwin: int,
    ngroups: int,
) -> WindowAggregates:
    """Corruption raises CorruptionError(path, block offset, what); bad arguments ValueError."""
