"""Type stubs for chronosdb.ext.merge (see merge.pyx for the semantics of each kernel)."""
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def merge_runs(
    runs: Sequence[npt.ArrayLike],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """k-way merge of strictly increasing runs (oldest first); newest run wins on equal times.

    Returns (times, src, pos): output i is runs[src[i]][pos[i]].
    """

def gather_index(
    runs_lengths: npt.ArrayLike, src: npt.ArrayLike, pos: npt.ArrayLike
) -> npt.NDArray[np.int64]:
    """Index into the concatenation of the runs for each (src, pos) pair."""

def sort_dedup_last(times: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Positions to keep, in time order, keeping the last arrival of each duplicated time."""

def tombstone_keep(times: npt.ArrayLike, ranges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Positions of sorted times outside every inclusive [min, max] row of ranges (shape (k, 2))."""

def string_take(
    offsets: npt.ArrayLike, data: bytes, idx: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], bytes]:
    """Gather of a string column (offsets n+1, data blob) by idx; returns (offsets, data)."""

def window_bounds(times: npt.ArrayLike, start: int, every: int, nwin: int) -> npt.NDArray[np.int64]:
    """nwin+1 split positions of sorted times at start + i*every, i = 0..nwin."""
