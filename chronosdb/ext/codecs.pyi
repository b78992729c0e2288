"""Column codecs (chronosdb/ext/codecs.pyx): one encoded column <-> one numpy array.

Every encoded column is ``type:u8 | count:uvarint | body`` (docs/format/codecs.md). Decoders take
any C-contiguous byte buffer holding exactly one column and raise ValueError on malformed input.
"""
from typing import Final

import numpy as np
import numpy.typing as npt
from collections.abc import Buffer

ENCODING_NAMES: Final[dict[int, str]]
MAX_VALUES: Final[int]  # most values one column may hold (decoders reject larger counts)

TYPE_TIMES_PLAIN: Final[int]
TYPE_TIMES_RLE: Final[int]
TYPE_TIMES_DOD_RICE: Final[int]
TYPE_TIMES_DOD_PACKED: Final[int]
TYPE_FLOAT_PLAIN: Final[int]
TYPE_FLOAT_GORILLA: Final[int]
TYPE_FLOAT_DECIMAL_RICE: Final[int]
TYPE_FLOAT_DECIMAL_PACKED: Final[int]
TYPE_INT_PLAIN: Final[int]
TYPE_INT_RLE: Final[int]
TYPE_INT_PACKED: Final[int]
TYPE_INT_SIMPLE8B: Final[int]
TYPE_BOOL_PACKED: Final[int]
TYPE_STRING_PLAIN: Final[int]
TYPE_STRING_LZ4: Final[int]

def encode_times(times: npt.ArrayLike) -> bytes:
    """Strictly increasing int64 times; ValueError names the first index that is not."""
def decode_times(buf: Buffer) -> npt.NDArray[np.int64]: ...
def encode_floats(values: npt.ArrayLike) -> bytes:
    """float64 values, bit-exact (NaN payloads, -0.0, inf, denormals included)."""
def decode_floats(buf: Buffer) -> npt.NDArray[np.float64]: ...
def encode_ints(values: npt.ArrayLike) -> bytes: ...
def decode_ints(buf: Buffer) -> npt.NDArray[np.int64]: ...
def encode_bools(values: npt.ArrayLike) -> bytes:
    """uint8 (or bool) values of 0/1; ValueError names the first other value."""
def decode_bools(buf: Buffer) -> npt.NDArray[np.uint8]: ...
def encode_strings(offsets: npt.ArrayLike, data: bytes) -> bytes:
    """n strings as n+1 int64 offsets (from 0 to len(data)) into data."""
def decode_strings(buf: Buffer) -> tuple[npt.NDArray[np.int64], bytes]: ...
def encoded_count(buf: Buffer) -> int:
    """Number of values, from the header alone."""
def encoding_of(buf: Buffer) -> int:
    """The type byte (a key of ENCODING_NAMES)."""
