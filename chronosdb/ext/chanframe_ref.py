"""Plain-Python reference twin of ``chanframe.encode_batch_frame``.

The slow, obviously-correct statement of the ``N`` frame (layout in
``chronosdb.server.streamproc``): the differential test in tests/test_streamproc.py requires
the kernel's pieces, joined, to equal these byte for byte. Never used on a real path.
"""
from __future__ import annotations

import struct

_HEAD = struct.Struct("<IB")
_U32 = struct.Struct("<I")
_BATCH_HEAD = struct.Struct("<IIII")
_COLUMN_HEAD = struct.Struct("<IBQ")


def encode_batch_frame(db: bytes, rp: bytes, keys: list, columns: list, string_type: int) -> bytes | None:
    """The whole ``N`` frame of a batch as one bytes object; None when a column has
    ``string_type``."""
    if any(int(c.ftype) == string_type for c in columns):
        return None
    meta = _BATCH_HEAD.pack(len(db), len(rp), len(keys), len(columns)) + db + rp
    meta += b"".join(_U32.pack(len(k)) for k in keys) + b"".join(keys)
    for c in columns:
        meta += _COLUMN_HEAD.pack(len(c.name), int(c.ftype), len(c.times)) + c.name
    body = _U32.pack(len(meta)) + meta
    for c in columns:
        for a in (c.series, c.times, c.values):
            body += bytes(-len(body) % 8) + a.tobytes()
    return _HEAD.pack(len(body), ord("N")) + body
