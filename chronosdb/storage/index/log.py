"""Framing of the series index log (``series-<seq>.log``): records, lengths, checksums.

This module knows nothing of what a record means (``series_index.py`` encodes and decodes the
payloads); it only frames opaque payloads so that a reader can tell a whole record from a torn
or corrupted one. Layout (little endian; see docs/format/index.md)::

    file   := magic "CDBILOG1" (8 bytes) record*
    record := length u32 | length_check u32 | checksum u64 | payload[length]

``length_check`` is the low 32 bits of xxh3-64 over the 4 length bytes, so a damaged length is
recognised as damage instead of being followed to a wrong place; ``checksum`` is xxh3-64 over
the payload.

What reading decides (appends are not fsynced one by one, so a crash may tear the tail):

* a record (header or payload) that runs past the end of the file is a torn write;
* a header whose length check fails, followed only by zero bytes up to the end of the file, is a
  torn write too (the file grew but its data pages never reached the disk);
* a last record whose payload checksum fails is a torn write;
* anything else that fails a check raises ``CorruptionError(path, offset, what)``.

A torn tail is cut off (the file is truncated to the end of the last whole record) when the log
is opened for appending, so the next append follows good data.
"""
from __future__ import annotations

import os
import struct

import xxhash

from chronosdb.model.errors import CorruptionError

MAGIC = b"CDBILOG1"
HEADER = struct.Struct("<IIQ")  # length, length check, payload checksum
MAX_RECORD = 1 << 30  # one record never holds more than this; a bigger length is damage


def _length_check(length: int) -> int:
    return xxhash.xxh3_64_intdigest(struct.pack("<I", length)) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """The bytes of one record holding ``payload``."""
    n = len(payload)
    if n > MAX_RECORD:
        raise ValueError(f"index log record too large ({n} bytes > {MAX_RECORD})")
    return HEADER.pack(n, _length_check(n), xxhash.xxh3_64_intdigest(payload)) + payload


def read_records(path: str, data: bytes | None = None) -> tuple[list[tuple[int, bytes]], int]:
    """Read every whole record of the log at ``path``.

    Returns (records, good_end): ``records`` are (offset, payload) pairs: ``good_end`` is the offset just past the last whole record,
    smaller than the file size when the tail was torn. Raises CorruptionError for damage that a
    torn append cannot explain.
    """
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    size = len(data)
    if size < len(MAGIC):
        if MAGIC.startswith(data):
            return [], 0  # torn while writing the magic: an empty log
        raise CorruptionError(path, 0, "bad magic (not a series index log)")
    if data[: len(MAGIC)] != MAGIC:
        raise CorruptionError(path, 0, "bad magic (not a series index log)")
    view = memoryview(data)
    out: list[tuple[int, bytes]] = []
    off = len(MAGIC)
    hsize = HEADER.size
    while off < size:
        if size - off < hsize:
            break  # torn header
        length, lcheck, checksum = HEADER.unpack_from(data, off)
        if lcheck != _length_check(length) or length > MAX_RECORD:
            if not any(view[off:]):
                break  # zero-filled tail: the size reached the disk, the data did not
            raise CorruptionError(path, off, "record length check failed")
        end = off + hsize + length
        if end > size:
            break  # torn payload
        payload = bytes(view[off + hsize:end])
        if xxhash.xxh3_64_intdigest(payload) != checksum:
            if end == size:
                break  # the last record: a torn write
            raise CorruptionError(path, off, "record checksum mismatch")
        out.append((off, payload))
        off = end
    return out, off


class LogWriter:
    """Appends framed records to one log file.

    Appends go straight to the OS (unbuffered) so a process crash loses nothing; ``sync`` makes
    them durable against a machine crash. A failed write is rolled back by truncating to the
    previous end, so a later append never lands after a half-written record.
    """

    def __init__(self, path: str, good_end: int | None = None):
        self.path = path
        exists = os.path.exists(path)
        self._f = open(path, "r+b" if exists else "w+b", buffering=0)
        if not exists or good_end == 0:
            self._f.truncate(0)
            self._f.write(MAGIC)
            self._end = len(MAGIC)
        else:
            size = os.fstat(self._f.fileno()).st_size
            self._end = size if good_end is None else good_end
            if self._end < size:
                self._f.truncate(self._end)  # cut the torn tail
        self._f.seek(self._end)
        self._dirty = True

    @property
    def size(self) -> int:
        return self._end

    def append(self, payloads: list[bytes]) -> None:
        """Append records, one write for all of them."""
        if not payloads:
            return
        buf = b"".join(frame(p) for p in payloads)
        try:
            view = memoryview(buf)
            while view:
                view = view[self._f.write(view):]  # a raw write may be short
        except BaseException:
            try:
                self._f.truncate(self._end)
                self._f.seek(self._end)
            except OSError:
                pass
            raise
        self._end += len(buf)
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._f.fileno())
            self._dirty = False

    def close(self) -> None:
        if not self._f.closed:
            self.sync()
            self._f.close()
