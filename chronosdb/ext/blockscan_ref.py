"""Plain-Python twin of chronosdb.ext.blockscan.decode_blocks (tests and benchmarks only).

Same block layout, same checks in the same order (every block's bounds and count, then every
block's checksum, then block by block: type byte, times length, times, the index's first/last
time, values), same errors; one block at a time with the codecs' Python decoders and a final
concatenation, as SegmentReader did before the bulk decoder existed.
"""
from __future__ import annotations

import numpy as np

from chronosdb.ext import codecs
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage.segment import layout as L


def _empty(ftype: int):
    if ftype == FieldType.STRING:
        return np.zeros(0, dtype=np.int64), StringArray(np.zeros(1, dtype=np.int64), b"")
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=FieldType(ftype).dtype)


def _read_uvarint(body: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(body) or shift >= 70:
            raise ValueError("truncated or overlong times length")
        b = body[pos]
        if shift == 63 and b > 1:
            raise ValueError("truncated or overlong times length")
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7


def decode_blocks(buf, offsets, sizes, counts, min_times, max_times, ftype: int, lo: int, hi: int,
                  path="<segment>"):
    if not 1 <= int(ftype) <= 4:
        raise ValueError(f"unknown field type code {ftype}")
    ftype = FieldType(int(ftype))
    offsets, sizes, counts = (np.asarray(a, dtype=np.int64).tolist() for a in (offsets, sizes, counts))
    min_times, max_times = (np.asarray(a, dtype=np.int64).tolist() for a in (min_times, max_times))
    if not offsets or lo > hi:
        return _empty(ftype)
    data = memoryview(buf).cast("B")
    for off, size, count in zip(offsets, sizes, counts):
        if size < L.MIN_BLOCK_SIZE or off < 0 or off + size > len(data):
            raise CorruptionError(path, off, f"{size}-byte block lies outside the file or is too small")
        if count < 1:
            raise CorruptionError(path, off, f"index gives the block {count} points")
    blocks = [bytes(data[off:off + size]) for off, size in zip(offsets, sizes)]
    for off, raw in zip(offsets, blocks):
        (stored,) = L.BLOCK_CHECKSUM.unpack(raw[-L.BLOCK_CHECKSUM_SIZE:])
        if L.checksum32(raw[:-L.BLOCK_CHECKSUM_SIZE]) != stored:
            raise CorruptionError(path, off, f"block checksum mismatch ({len(raw)}-byte block)")
    parts_t, parts_v = [], []
    for off, raw, count, t0, t1 in zip(offsets, blocks, counts, min_times, max_times):
        body = raw[:-L.BLOCK_CHECKSUM_SIZE]
        if body[0] != ftype:
            raise CorruptionError(path, off, f"block type byte {body[0]}, index says {int(ftype)}")
        try:
            tlen, pos = _read_uvarint(body, 1)
            if pos + tlen > len(body):
                raise ValueError("times column runs past the block")
            times = codecs.decode_times(body[pos:pos + tlen])
            if len(times) != count:
                raise CorruptionError(path, off, f"block holds {len(times)} values in a column; index says {count}")
            if times[0] != t0 or times[-1] != t1:
                raise CorruptionError(path, off, "block times disagree with the index")
            vbuf = body[pos + tlen:]
            if ftype == FieldType.FLOAT:
                values = codecs.decode_floats(vbuf)
            elif ftype == FieldType.INTEGER:
                values = codecs.decode_ints(vbuf)
            elif ftype == FieldType.BOOLEAN:
                values = codecs.decode_bools(vbuf)
            else:
                values = StringArray(*codecs.decode_strings(vbuf))
        except ValueError as e:
            raise CorruptionError(path, off, f"undecodable block: {e}") from None
        if len(values) != count:
            raise CorruptionError(path, off, f"block holds {len(values)} values in a column; index says {count}")
        parts_t.append(times)
        parts_v.append(values)
    times = np.concatenate(parts_t)
    values = StringArray.concat(parts_v) if ftype == FieldType.STRING else np.concatenate(parts_v)
    i = int(np.searchsorted(times, lo, side="left"))
    j = int(np.searchsorted(times, hi, side="right"))
    if ftype == FieldType.STRING:
        o = values.offsets[i:j + 1]
        return times[i:j], StringArray(o - o[0], values.data[int(o[0]):int(o[-1])])
    return times[i:j], values[i:j]
