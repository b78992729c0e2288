"""The series index snapshot (``series-<seq>.snap``): the whole index as a few big arrays.

A snapshot is written by a compaction (atomically: temp file, fsync, rename, directory fsync) and
read whole on open. It is laid out so that opening builds no Python object per series: the
series are three arrays (ids, key offsets, one key blob) and every tag column is a sorted value
blob with offsets plus one int64 posting word per value. Layout (little endian; the byte diagram
is in docs/format/index.md)::

    magic "CDBISNP1" | n u64 | key_blob_len u64
    sids[n] u64 | key_offsets[n+1] u64 | key_blob
    n_probed u64 | probed[n_probed] u32             local ids whose id is not key_hash(key)
    n_measurements u32 | measurement*
    checksum u64                                      xxh3-64 of every byte before it

    measurement := name | all_posting | n_fields u32 | field* | n_tag_keys u32 | column*
    field       := name | n_types u8 | type u8 * n_types
    column      := tag_key | n_values u64 | value_offsets[n_values+1] u64 | value_blob
                   | post[n_values] i64 | n_multi u64 | multi_offsets[n_multi+1] u64 | multi_blob
    name, tag_key := len u32 | bytes;   all_posting := len u32 | 32-bit roaring (portable)

Series are numbered by *local id* 0..n-1 (their position in ``sids``); postings hold local ids
(dense, so 32-bit roaring bitmaps compress them well). A value's posting word is its only local
id when ``>= 0`` (the common case for high-cardinality tags such as a host name: no bitmap at
all), else ``-(j + 1)`` naming the j-th serialized bitmap in ``multi_blob``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import xxhash
from pyroaring import BitMap

from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType

MAGIC = b"CDBISNP1"
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class FrozenColumn:
    """The values of one (measurement, tag key), sorted, with their postings; immutable.

    ``values_off``/``values_blob`` hold the sorted values; ``post`` one posting word per value;
    ``multi_off``/``multi_blob`` the serialized bitmaps of values with more than one series.
    """

    __slots__ = ("values_off", "values_blob", "post", "multi_off", "multi_blob", "_off_view")

    def __init__(self, values_off, values_blob, post, multi_off, multi_blob):
        self.values_off = np.ascontiguousarray(values_off, dtype=np.int64)
        self._off_view = memoryview(self.values_off)  # indexes to plain ints, ~5x faster than numpy
        self.values_blob = values_blob
        self.post = post
        self.multi_off = multi_off
        self.multi_blob = multi_blob

    EMPTY: "FrozenColumn"

    def __len__(self) -> int:
        return len(self.post)

    def value(self, i: int) -> bytes:
        o = self.values_off
        return self.values_blob[int(o[i]):int(o[i + 1])]

    def find(self, value: bytes) -> int:
        """Index of ``value`` (binary search over the blob), or -1."""
        lo, hi = 0, len(self.post)
        o, blob = self._off_view, self.values_blob
        while lo < hi:
            mid = (lo + hi) >> 1
            v = blob[o[mid]:o[mid + 1]]
            if v < value:
                lo = mid + 1
            elif v > value:
                hi = mid
            else:
                return mid
        return -1

    def posting(self, i: int):
        """The posting of value i: an int (its only local id) or a BitMap."""
        w = int(self.post[i])
        if w >= 0:
            return w
        j = -w - 1
        return BitMap.deserialize(self.multi_blob[int(self.multi_off[j]):int(self.multi_off[j + 1])])

    def values(self) -> list[bytes]:
        o = self.values_off.tolist()
        blob = self.values_blob
        return [blob[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def items(self):
        """(value, posting) pairs in value order."""
        vals = self.values()
        for i, v in enumerate(vals):
            yield v, self.posting(i)

    @classmethod
    def from_items(cls, items) -> "FrozenColumn":
        """Build from (value, posting) pairs sorted by value; empty postings are skipped."""
        values, words, multis = [], [], []
        for v, p in items:
            if isinstance(p, int):
                words.append(p)
            else:
                if len(p) == 0:
                    continue
                if len(p) == 1:
                    words.append(p.min())
                else:
                    words.append(-len(multis) - 1)
                    multis.append(p.serialize())
            values.append(v)
        values_off = np.zeros(len(values) + 1, dtype=np.int64)
        if values:
            np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=values_off[1:])
        multi_off = np.zeros(len(multis) + 1, dtype=np.int64)
        if multis:
            np.cumsum(np.fromiter(map(len, multis), dtype=np.int64, count=len(multis)), out=multi_off[1:])
        return cls(values_off, b"".join(values), np.array(words, dtype=np.int64), multi_off, b"".join(multis))

    def remapped(self, new_local: np.ndarray) -> "FrozenColumn":
        """The same column with local ids renumbered through ``new_local`` (-1 = dropped)."""
        post = self.post
        if not (post < 0).any():
            mapped = new_local[post]
            if (mapped >= 0).all():  # the common case: only single postings, none dropped
                return FrozenColumn(self.values_off, self.values_blob, mapped.astype(np.int64),
                                    self.multi_off, self.multi_blob)

        def remap_items():
            for v, p in self.items():
                if isinstance(p, int):
                    n = int(new_local[p])
                    if n >= 0:
                        yield v, n
                else:
                    arr = new_local[np.frombuffer(p.to_array(), dtype=np.uint32)]
                    yield v, BitMap(arr[arr >= 0].astype(np.uint32))
        return FrozenColumn.from_items(remap_items())


FrozenColumn.EMPTY = FrozenColumn(np.zeros(1, np.int64), b"", np.zeros(0, np.int64), np.zeros(1, np.int64), b"")


@dataclass
class MeasurementSnapshot:
    name: bytes
    all: BitMap                                   # local ids of every series
    fields: dict                                  # field name -> set[FieldType]
    columns: list                                 # [(tag key, FrozenColumn)], sorted by key


@dataclass
class Snapshot:
    sids: np.ndarray           # uint64[n]: local id -> series id
    key_offsets: np.ndarray    # int64[n+1]
    key_blob: bytes
    probed: np.ndarray         # uint32: local ids whose id is not key_hash(key)
    measurements: list         # [MeasurementSnapshot]


def _name(b: bytes) -> bytes:
    return _U32.pack(len(b)) + b


def encode(snap: Snapshot) -> bytes:
    """The bytes of a snapshot file."""
    n = len(snap.sids)
    parts = [MAGIC, _U64.pack(n), _U64.pack(len(snap.key_blob)),
             np.ascontiguousarray(snap.sids, dtype="<u8").tobytes(),
             np.ascontiguousarray(snap.key_offsets, dtype="<u8").tobytes(),
             bytes(snap.key_blob),
             _U64.pack(len(snap.probed)),
             np.ascontiguousarray(snap.probed, dtype="<u4").tobytes(),
             _U32.pack(len(snap.measurements))]
    for m in snap.measurements:
        parts += [_name(m.name), _name(m.all.serialize()), _U32.pack(len(m.fields))]
        for fname in sorted(m.fields):
            types = sorted(int(t) for t in m.fields[fname])
            parts += [_name(fname), bytes([len(types)] + types)]
        parts.append(_U32.pack(len(m.columns)))
        for tkey, col in m.columns:
            parts += [_name(tkey), _U64.pack(len(col)),
                      np.ascontiguousarray(col.values_off, dtype="<u8").tobytes(), bytes(col.values_blob),
                      np.ascontiguousarray(col.post, dtype="<i8").tobytes(),
                      _U64.pack(len(col.multi_off) - 1),
                      np.ascontiguousarray(col.multi_off, dtype="<u8").tobytes(), bytes(col.multi_blob)]
    body = b"".join(parts)
    return body + _U64.pack(xxhash.xxh3_64_intdigest(body))


class _Reader:
    """Bounds-checked reads over the snapshot bytes; every failure names file and offset."""

    def __init__(self, path: str, data: bytes, end: int):
        self.path, self.data, self.end, self.off = path, data, end, 0

    def fail(self, what: str, at: int | None = None):
        raise CorruptionError(self.path, self.off if at is None else at, what)

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.off + n > self.end:
            self.fail(f"{what} runs past the end of the snapshot")
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.take(8, what))[0]

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        if count > self.end:  # cheap guard before multiplying a damaged count
            self.fail(f"{what} count {count} is impossible")
        return np.frombuffer(self.take(count * size, what), dtype=dtype).copy()

    def offsets(self, count: int, blob_len_limit: int, what: str) -> np.ndarray:
        at = self.off
        o = self.array("<u8", count + 1, what)
        if o[0] != 0 or (count and (np.diff(o.astype(np.int64)) < 0).any()) or int(o[-1]) > blob_len_limit:
            self.fail(f"{what} are not increasing from 0", at)
        return o.astype(np.int64)


def decode(path: str, data: bytes) -> Snapshot:
    """Parse a snapshot file's bytes; raises CorruptionError naming the offset of any damage."""
    if len(data) < len(MAGIC) + 8 or data[:len(MAGIC)] != MAGIC:
        raise CorruptionError(path, 0, "bad magic (not a series index snapshot)")
    end = len(data) - 8
    if xxhash.xxh3_64_intdigest(memoryview(data)[:end]) != _U64.unpack_from(data, end)[0]:
        raise CorruptionError(path, end, "snapshot checksum mismatch")
    r = _Reader(path, data, end)
    r.off = len(MAGIC)
    n = r.u64("series count")
    blob_len = r.u64("key blob length")
    sids = r.array("<u8", n, "series ids").astype(np.uint64)
    key_offsets = r.offsets(n, blob_len, "key offsets")
    key_blob = r.take(blob_len, "key blob")
    probed = r.array("<u4", r.u64("probed count"), "probed ids").astype(np.uint32)
    if len(probed) and int(probed.max()) >= n:
        r.fail("probed local id out of range")
    measurements = []
    for _ in range(r.u32("measurement count")):
        name = r.take(r.u32("name length"), "measurement name")
        at = r.off
        try:
            all_ids = BitMap.deserialize(r.take(r.u32("posting length"), "measurement posting"))
        except (ValueError, OSError) as e:
            r.fail(f"measurement posting does not decode: {e}", at)
        if len(all_ids) and all_ids.max() >= n:
            r.fail("measurement posting holds a local id out of range", at)
        fields = {}
        for _ in range(r.u32("field count")):
            fname = r.take(r.u32("field name length"), "field name")
            types = set()
            for _ in range(r.u8("type count")):
                at = r.off
                code = r.u8("field type")
                try:
                    types.add(FieldType(code))
                except ValueError:
                    r.fail(f"unknown field type code {code}", at)
            fields[fname] = types
        columns = []
        for _ in range(r.u32("tag key count")):
            tkey = r.take(r.u32("tag key length"), "tag key")
            nvals = r.u64("value count")
            at = r.off
            values_off = r.array("<u8", nvals + 1, "value offsets")
            vblob_len = int(values_off[-1])
            r.off = at
            values_off = r.offsets(nvals, vblob_len, "value offsets")
            values_blob = r.take(vblob_len, "value blob")
            at = r.off
            post = r.array("<i8", nvals, "posting words")
            nmulti = r.u64("multi count")
            if len(post) and (int(post.max()) >= n or int(post.min()) < -int(nmulti)):
                r.fail("posting word out of range", at)
            at = r.off
            multi_off = r.array("<u8", nmulti + 1, "multi offsets")
            r.off = at
            multi_off = r.offsets(nmulti, int(multi_off[-1]), "multi offsets")
            multi_blob = r.take(int(multi_off[-1]), "multi blob")
            columns.append((tkey, FrozenColumn(values_off, values_blob, post, multi_off, multi_blob)))
        measurements.append(MeasurementSnapshot(name, all_ids, fields, columns))
    if r.off != end:
        r.fail("trailing bytes after the last measurement")
    return Snapshot(sids, key_offsets, key_blob, probed, measurements)
