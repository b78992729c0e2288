"""Type stubs for chronosdb.ext.chanframe (see chanframe.pyx)."""
from collections.abc import Sequence
from typing import Any

def send_nowait(fd: int, parts: Sequence[Any]) -> int:
    """Send the buffers in order as one gathered write, without blocking and holding the GIL;
    the bytes sent (0 when the socket buffer is full). OSError for anything else."""

def encode_batch_frame(db: bytes, rp: bytes, keys: list[bytes], columns: list[Any],
                       string_type: int) -> list[Any] | None:
    """The pieces of a batch's ``N`` frame (arrays not copied); None for a string column."""
