"""StringArray: a column of byte strings without a Python object per value.

Value i is ``data[offsets[i]:offsets[i + 1]]``. Offsets are int64 and start at 0.
"""
from __future__ import annotations

import numpy as np


class StringArray:
    __slots__ = ("offsets", "data")

    def __init__(self, offsets: np.ndarray, data: bytes):
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(data):
            raise ValueError("StringArray offsets must start at 0 and end at len(data)")
        self.offsets = offsets
        self.data = bytes(data)

    @classmethod
    def from_list(cls, values) -> "StringArray":
        """Build from Python strings/bytes (tests and small inputs only, never a hot path)."""
        raw = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
        offsets = np.zeros(len(raw) + 1, dtype=np.int64)
        if raw:
            offsets[1:] = np.cumsum([len(r) for r in raw])
        return cls(offsets, b"".join(raw))

    def to_list(self) -> list[bytes]:
        o = self.offsets
        return [self.data[o[i]:o[i + 1]] for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, idx: np.ndarray) -> "StringArray":
        """Gather values by index (vectorized: one numpy pass plus one join of slices)."""
        from chronosdb.ext.merge import string_take  # Cython gather, no per-value objects

        offsets, data = string_take(self.offsets, self.data, np.ascontiguousarray(idx, dtype=np.int64))
        return StringArray(offsets, data)

    @classmethod
    def concat(cls, parts: list["StringArray"]) -> "StringArray":
        if not parts:
            return cls(np.zeros(1, dtype=np.int64), b"")
        offs = [parts[0].offsets]
        base = parts[0].offsets[-1]
        for p in parts[1:]:
            offs.append(p.offsets[1:] + base)
            base += p.offsets[-1]
        return cls(np.concatenate(offs), b"".join(p.data for p in parts))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, StringArray)
            and np.array_equal(self.offsets, other.offsets)
            and self.data == other.data
        )

    def __repr__(self) -> str:
        return f"StringArray({self.to_list()!r})"
