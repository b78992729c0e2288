"""Tombstones: deletes that segment files have not been rewritten without yet.

``<shard>/tombstones.log`` is a sequence of records::

    +-----------+-----------+----------------------------------------------+
    | len u32le | xxh32 u32 | payload (len bytes, CBOR map)                 |
    +-----------+-----------+----------------------------------------------+
    payload = {"s": serialized roaring BitMap64 of series ids,
               "a": min time (ns, inclusive), "b": max time (ns, inclusive),
               "g": max generation}

A tombstone hides the points of its series inside [a, b] in every segment file whose generation
is <= g: the files that existed (or were being written) when the delete ran. Files written later
hold only data the delete had already been applied to, or data written after it, which it must
not touch. The checksum is the low 32 bits of xxh3-64 over the payload. A torn last record is
truncated on open; a bad record anywhere else raises CorruptionError naming file and offset.

Compaction applies the tombstones to the files it rewrites; once a full compaction has rewritten
every file, the tombstones it applied are dropped by rewriting the log without them.
"""
from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass

import cbor2
import numpy as np
import xxhash
from pyroaring import BitMap64

from chronosdb.model.errors import CorruptionError
from chronosdb.storage import filenames

_HDR = struct.Struct("<II")


def _checksum(payload: bytes) -> int:
    return xxhash.xxh3_64_intdigest(payload) & 0xFFFFFFFF


@dataclass
class Tombstone:
    series: BitMap64
    min_time: int
    max_time: int
    max_generation: int

    def encode(self) -> bytes:
        payload = cbor2.dumps({"s": self.series.serialize(), "a": self.min_time,
                               "b": self.max_time, "g": self.max_generation})
        return _HDR.pack(len(payload), _checksum(payload)) + payload


class Tombstones:
    def __init__(self, shard_dir: str):
        self.path = os.path.join(shard_dir, filenames.TOMBSTONES)
        self._lock = threading.Lock()
        self.items: list[Tombstone] = []
        if os.path.exists(self.path):
            self._load()

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        off, n = 0, len(data)
        while off < n:
            if off + _HDR.size > n:
                break  # torn header at the tail
            length, crc = _HDR.unpack_from(data, off)
            end = off + _HDR.size + length
            if end > n:
                break  # torn payload at the tail
            payload = data[off + _HDR.size:end]
            if _checksum(payload) != crc:
                if end == n:
                    break  # the last record was torn mid-write
                raise CorruptionError(self.path, off, "tombstone record checksum mismatch")
            try:
                d = cbor2.loads(payload)
                self.items.append(Tombstone(BitMap64.deserialize(d["s"]), d["a"], d["b"], d["g"]))
            except Exception as e:  # checksum matched but content is not ours: corruption
                raise CorruptionError(self.path, off, f"undecodable tombstone record: {e}") from e
            off = end
        if off < n:
            with open(self.path, "r+b") as f:
                f.truncate(off)
                os.fsync(f.fileno())

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, t: Tombstone) -> None:
        """Append durably (fsync) before the delete is acknowledged."""
        rec = t.encode()
        with self._lock:
            with open(self.path, "ab") as f:
                f.write(rec)
                f.flush()
                os.fsync(f.fileno())
            self.items.append(t)

    def ranges_for(self, sid: int, generation: int) -> np.ndarray | None:
        """Inclusive (k, 2) time ranges hiding points of ``sid`` in a file of ``generation``."""
        rs = [(t.min_time, t.max_time) for t in self.items
              if generation <= t.max_generation and sid in t.series]
        return np.array(rs, dtype=np.int64) if rs else None

    def touches(self, sid: int, generation: int, lo: int, hi: int) -> bool:
        return any(generation <= t.max_generation and t.min_time <= hi and lo <= t.max_time
                   and sid in t.series for t in self.items)

    def series(self) -> BitMap64:
        out = BitMap64()
        for t in self.items:
            out |= t.series
        return out

    def drop_applied(self, applied: list[Tombstone]) -> None:
        """Forget tombstones a full compaction applied; rewrite the log atomically."""
        with self._lock:
            ids = {id(t) for t in applied}
            self.items = [t for t in self.items if id(t) not in ids]
            if self.items:
                filenames.atomic_write(self.path, b"".join(t.encode() for t in self.items))
            elif os.path.exists(self.path):
                os.unlink(self.path)
                filenames.fsync_dir(os.path.dirname(self.path))

    def snapshot(self) -> list[Tombstone]:
        with self._lock:
            return list(self.items)
