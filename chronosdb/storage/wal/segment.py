"""WAL segment framing: records, lengths, checksums. Nothing here knows what a payload means.

A segment is a sequence of records from offset 0, with no file header. Each record is a 24-byte
little-endian header followed by its payload::

    0      2    3     4     5        8             12         16           24
    | "CW" | v1 | type| flags| 0 0 0 | stored len  | raw len  | xxh3-64    | payload ...

``flags`` bit 0 says the payload is an lz4 block; ``raw len`` is its size once decompressed
(equal to ``stored len`` otherwise). The checksum covers header bytes 0..15 and the stored
payload. The full format, and the rule that tells a torn tail from corruption, are written down in
docs/format/wal.md.

This module is pure: it turns (type, payload) into frame bytes and walks a buffer of frames. It
takes a path only to name it in errors; reading, truncating and fsyncing files is log.py's job.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import lz4.block
import xxhash

from chronosdb.model.errors import CorruptionError

MAGIC = b"CW"
VERSION = 1
# magic + version: the byte pattern a reader searches for when it looks for a record after a bad one
SYNC_BYTES = MAGIC + bytes([VERSION])

HEADER = struct.Struct("<2sBBB3xIIQ")
HEADER_SIZE = HEADER.size  # 24
_CHECKED = struct.Struct("<2sBBB3xII")  # the part of the header the checksum covers (bytes 0..15)
_CHECKSUM = struct.Struct("<Q")
assert HEADER_SIZE == 24 and _CHECKED.size == 16

FLAG_LZ4 = 0x01
_KNOWN_FLAGS = FLAG_LZ4

# Below this, lz4's own overhead eats any saving; it is also the size of the smallest DELETE.
COMPRESS_MIN = 64
# A batch is bounded long before this by the HTTP body limit; the cap keeps lengths far from u32.
MAX_PAYLOAD = 1 << 30
# lz4 cannot expand data by more than ~255x, so a larger raw length is a damaged header.
_LZ4_MAX_RATIO = 255


def frame_record(record_type: int, payload, compress: bool = True) -> bytes:
    """One record's bytes: header plus (lz4-compressed when that is smaller) payload."""
    if not isinstance(record_type, int) or not 1 <= record_type <= 255:
        raise ValueError(f"WAL record type must be an int in 1..255, got {record_type!r}")
    raw = memoryview(payload).cast("B")
    n = raw.nbytes
    if n >= MAX_PAYLOAD:
        raise ValueError(f"WAL payload of {n} bytes is too large (limit {MAX_PAYLOAD})")
    stored, flags = raw, 0
    if compress and n >= COMPRESS_MIN:
        packed = lz4.block.compress(raw, store_size=False)
        if len(packed) < n:
            stored, flags = packed, FLAG_LZ4
    head = _CHECKED.pack(MAGIC, VERSION, record_type, flags, len(stored), n)
    h = xxhash.xxh3_64(head)
    h.update(stored)
    return b"".join((head, _CHECKSUM.pack(h.intdigest()), stored))


@dataclass(frozen=True)
class Frame:
    offset: int        # where the record's header starts in the segment
    end: int           # offset just past its payload (the next record's offset)
    record_type: int
    flags: int
    raw_length: int
    stored: memoryview  # the payload as stored (maybe compressed); a view of the segment buffer

    def payload(self, path: str = "?") -> bytes:
        """The payload, decompressed if it was stored compressed."""
        if not self.flags & FLAG_LZ4:
            return bytes(self.stored)
        try:
            out = lz4.block.decompress(self.stored, uncompressed_size=self.raw_length)
        except Exception as e:  # checksum passed, so this is a writer bug or a format mismatch
            raise CorruptionError(path, self.offset, f"lz4 payload does not decompress: {e}") from e
        if len(out) != self.raw_length:
            raise CorruptionError(
                path, self.offset, f"payload decompressed to {len(out)} bytes, header says {self.raw_length}"
            )
        return out


def check_frame(buf, offset: int) -> tuple[Frame | None, str]:
    """Parse and verify the record at ``offset``: (frame, "") if valid, else (None, why not)."""
    size = len(buf)
    if size - offset < HEADER_SIZE:
        return None, f"record header cut short ({size - offset} of {HEADER_SIZE} bytes before end of file)"
    magic, version, rtype, flags, stored_len, raw_len, checksum = HEADER.unpack_from(buf, offset)
    if magic != MAGIC:
        if bytes(buf[offset:offset + HEADER_SIZE]) == bytes(HEADER_SIZE):
            return None, "zero bytes where a record header should be"
        return None, f"bad record magic {bytes(magic)!r}"
    if version != VERSION:
        return None, f"unknown record version {version}"
    if rtype == 0:
        return None, "record type 0"
    if flags & ~_KNOWN_FLAGS:
        return None, f"unknown record flags 0x{flags:02x}"
    if bytes(buf[offset + 5:offset + 8]) != b"\0\0\0":
        return None, "reserved header bytes are not zero"
    if flags & FLAG_LZ4:
        if raw_len > stored_len * _LZ4_MAX_RATIO + 16:
            return None, f"raw length {raw_len} impossible for {stored_len} lz4 bytes"
    elif raw_len != stored_len:
        return None, f"raw length {raw_len} != stored length {stored_len} in an uncompressed record"
    if raw_len >= MAX_PAYLOAD:
        return None, f"payload length {raw_len} over the limit"
    start = offset + HEADER_SIZE
    end = start + stored_len
    if end > size:
        return None, f"payload of {stored_len} bytes runs {end - size} bytes past end of file"
    mv = memoryview(buf)
    h = xxhash.xxh3_64(mv[offset:offset + 16])
    h.update(mv[start:end])
    if h.intdigest() != checksum:
        return None, "checksum mismatch"
    return Frame(offset, end, rtype, flags, raw_len, mv[start:end]), ""


def next_valid_frame(buf, after: int) -> Frame | None:
    """The first valid record starting at any offset > ``after``, or None.

    Searches for the magic+version bytes and fully checks each candidate, so stray matches inside
    compressed payloads (about one per 16 MiB of random bytes) cost little.
    """
    data = buf if isinstance(buf, (bytes, bytearray)) else bytes(buf)
    pos = after + 1
    while True:
        pos = data.find(SYNC_BYTES, pos)
        if pos < 0:
            return None
        frame, _ = check_frame(data, pos)
        if frame is not None:
            return frame
        pos += 1


@dataclass
class SegmentScan:
    """What a walk over one segment found."""

    frames: list[Frame]    # every valid record, in order
    valid_length: int      # bytes of the valid prefix (where a torn tail would be truncated)
    torn_reason: str = ""  # why the bytes after valid_length were judged a torn tail ("" if none)

    @property
    def torn(self) -> bool:
        return bool(self.torn_reason)


def scan_segment(buf, path: str, tail_may_be_torn: bool) -> SegmentScan:
    """Walk every record of a segment buffer and verify it.

    ``tail_may_be_torn`` is true only for the last segment of a WAL being recovered. Then bad
    bytes after which no valid record starts anywhere are a torn tail: the scan reports them and
    stops at ``valid_length``. Every other bad record raises CorruptionError naming ``path`` and
    the record's offset: a segment that is not the last was fsynced whole, and records after a
    bad one must never be silently dropped.
    """
    frames: list[Frame] = []
    size = len(buf)
    off = 0
    while off < size:
        frame, why = check_frame(buf, off)
        if frame is not None:
            frames.append(frame)
            off = frame.end
            continue
        if not tail_may_be_torn:
            raise CorruptionError(path, off, why)
        later = next_valid_frame(buf, off)
        if later is not None:
            raise CorruptionError(
                path, off, f"{why}, but a valid record follows at offset {later.offset} (not a torn tail)"
            )
        return SegmentScan(frames, off, why)
    return SegmentScan(frames, off)
