"""Type stubs for chronosdb.ext.blockscan (see blockscan.pyx for the block layout and checks)."""
from typing import Union

import numpy as np
import numpy.typing as npt

from chronosdb.model.strings import StringArray

Values = Union[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.uint8], StringArray]

def decode_blocks(
    buf: object,
    offsets: npt.ArrayLike,
    sizes: npt.ArrayLike,
    counts: npt.ArrayLike,
    min_times: npt.ArrayLike,
    max_times: npt.ArrayLike,
    ftype: int,
    lo: int,
    hi: int,
    path: object = "<segment>",
) -> tuple[npt.NDArray[np.int64], Values]:
    """Decode the given blocks (index columns of the chosen blocks, time order) of the mapped
    file ``buf`` into one (times, values) pair, trimmed to lo <= t <= hi (views, no copy).

    Every block's bounds, checksum, type byte, times length, counts and first/last time are
    checked; a failure raises CorruptionError(path, block offset, what). ValueError for an
    unknown ftype or columns of different lengths.
    """

class BlockScanner:
    """A segment index's block columns, held once; reads cost no per-call array set-up."""

    path: object

    def __init__(
        self,
        path: object,
        offsets: npt.ArrayLike,
        sizes: npt.ArrayLike,
        counts: npt.ArrayLike,
        min_times: npt.ArrayLike,
        max_times: npt.ArrayLike,
    ) -> None: ...
    def scan(
        self, buf: object, first: int, last: int, ftype: int, lo: int, hi: int
    ) -> tuple[npt.NDArray[np.int64], Values]:
        """Blocks [first, last) of one entry that overlap [lo, hi], decoded and trimmed."""
    def scan_rows(
        self, buf: object, rows: npt.ArrayLike, ftype: int, lo: int, hi: int
    ) -> tuple[npt.NDArray[np.int64], Values]:
        """The given block rows (strictly ascending, one entry), decoded and trimmed to [lo, hi]."""
