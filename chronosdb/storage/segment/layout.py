"""Byte layout of segment files: constants, header, footer, block framing and the columnar index.

A segment file is ``header | blocks | index | footer`` (docs/format/segment.md has the diagrams).
The 8-byte header is a magic and a version. Each block holds up to ``MAX_BLOCK_POINTS`` points of
one series+field: a type byte, the codec-encoded times column (length-prefixed), the encoded
values column and a 32-bit xxh3 checksum. The index after the last block is *columnar*: one
varint column per attribute (series id deltas, field ids, block sizes, time gaps, counts,
statistics), so the reader turns each column into a numpy array in one vectorised pass instead of
building an object per block. The fixed 68-byte footer at the end says where the index is, carries
its checksum and the file's totals, and is itself checksummed.

Everything here is pure (bytes in, arrays out); the writer and reader do the file I/O. Varints are
encoded and decoded with numpy over whole columns; ``py_encode_uvarints`` / ``py_decode_uvarints``
are the plain-Python twins the tests compare them with.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import xxhash

MAGIC = b"CSEG"
VERSION = 1

# TSM's choice: large enough that the codecs amortise their per-column header, small enough that a
# range read decodes at most ~1000 unwanted points at each end of the range.
MAX_BLOCK_POINTS = 1000

HEADER = struct.Struct("<4sB3x")
HEADER_SIZE = HEADER.size  # 8

# index_offset, index_length, index_xxh3_64, min_time, max_time, n_values, generation, level,
# (pad), version, footer checksum (low 32 bits of xxh3-64 over the preceding 60 bytes), magic
FOOTER = struct.Struct("<QQQqqQQBxHI4s")
FOOTER_SIZE = FOOTER.size  # 68
FOOTER_CHECKED = 60  # bytes of the footer covered by its own checksum

BLOCK_CHECKSUM = struct.Struct("<I")
BLOCK_CHECKSUM_SIZE = BLOCK_CHECKSUM.size
# ftype byte + 1-byte times length + (empty columns are never written) + checksum
MIN_BLOCK_SIZE = 1 + 1 + BLOCK_CHECKSUM_SIZE

# Block statistics kinds (low nibble of B_stats_kind; the high nibble is the decimal scale).
STATS_NONE = 0        # booleans, strings, float blocks holding a NaN
STATS_INT = 1         # int64 min/max/first/last/sum, exact
STATS_INT_NO_SUM = 2  # int64 whose sum overflows: min/max/first/last only
STATS_FLOAT_RAW = 3   # five float64
STATS_DECIMAL = 4     # float64 values that are all exact decimals: stats as scaled integers
STATS_KINDS = (STATS_NONE, STATS_INT, STATS_INT_NO_SUM, STATS_FLOAT_RAW, STATS_DECIMAL)
INT_STATS_KINDS = (STATS_INT, STATS_INT_NO_SUM, STATS_DECIMAL)
# Up to 12 decimals covers sensor data and money; beyond that float64 rarely holds an exact
# decimal anyway, and each extra candidate costs the writer one more numpy pass.
MAX_DECIMAL_SCALE = 12
# 10**k for every decimal scale, as float64 (exact: 10**k < 2**53 for k <= 15). Writer and reader
# both divide by this table so they round the same way.
POW10 = np.array([10.0 ** k for k in range(MAX_DECIMAL_SCALE + 1)], dtype=np.float64)
# Order of the five statistics in every stats array (rows of IndexColumns.stats_int/_float).
STAT_MIN, STAT_MAX, STAT_FIRST, STAT_LAST, STAT_SUM = range(5)
N_STATS = 5

_U64 = np.uint64


def checksum32(data) -> int:
    """Block checksum: the low 32 bits of xxh3-64."""
    return xxhash.xxh3_64_intdigest(data) & 0xFFFFFFFF


def checksum64(data) -> int:
    return xxhash.xxh3_64_intdigest(data)


# --- varints ---------------------------------------------------------------------------------


def encode_uvarints(values) -> bytes:
    """LEB128-encode a column of uint64 (one numpy pass per output byte position, at most 10)."""
    u = np.ascontiguousarray(values).astype(np.uint64, copy=False)
    n = len(u)
    if n == 0:
        return b""
    nbytes = np.ones(n, dtype=np.int64)
    for k in range(1, 10):
        nbytes += u >= _U64(1 << (7 * k))
    ends = np.cumsum(nbytes)
    starts = ends - nbytes
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(int(nbytes.max())):
        sel = np.flatnonzero(nbytes > k)
        byte = ((u[sel] >> _U64(7 * k)) & _U64(0x7F)).astype(np.uint8)
        byte[nbytes[sel] > k + 1] |= 0x80
        out[starts[sel] + k] = byte
    return out.tobytes()


def decode_uvarints(buf, count: int) -> np.ndarray:
    """Decode exactly ``count`` uvarints that fill ``buf`` exactly; ValueError otherwise."""
    b = np.frombuffer(buf, dtype=np.uint8)
    if count == 0:
        if len(b):
            raise ValueError(f"{len(b)} stray bytes in an empty varint column")
        return np.zeros(0, dtype=np.uint64)
    ends = np.flatnonzero(b < 0x80)
    if len(ends) != count or ends[-1] != len(b) - 1:
        raise ValueError(f"varint column holds {len(ends)} values in {len(b)} bytes, expected {count}")
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    longest = int(lengths.max())
    if longest > 10 or (longest == 10 and np.any(b[ends[lengths == 10]] > 1)):
        raise ValueError("varint longer than 64 bits")
    out = np.zeros(count, dtype=np.uint64)
    for k in range(longest):
        sel = np.flatnonzero(lengths > k)
        out[sel] |= (b[starts[sel] + k] & 0x7F).astype(np.uint64) << _U64(7 * k)
    return out


def py_encode_uvarints(values) -> bytes:
    """Plain-Python twin of encode_uvarints (tests only)."""
    out = bytearray()
    for v in values:
        v = int(v)
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def py_decode_uvarints(buf, count: int) -> list[int]:
    """Plain-Python twin of decode_uvarints (tests only)."""
    buf = bytes(buf)
    out, pos = [], 0
    for _ in range(count):
        v = shift = 0
        while True:
            if pos >= len(buf) or shift > 63:
                raise ValueError("truncated or overlong varint")
            byte = buf[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if v >= 1 << 64:
            raise ValueError("varint longer than 64 bits")
        out.append(v)
    if pos != len(buf):
        raise ValueError("stray bytes after varint column")
    return out


def uvarint(value: int) -> bytes:
    return py_encode_uvarints((value,))


def read_uvarint(buf, pos: int) -> tuple[int, int]:
    """One uvarint at ``pos``: (value, next position). ValueError if truncated or overlong."""
    v = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        v |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if v >= 1 << 64:
                raise ValueError("varint longer than 64 bits")
            return v, pos


def zigzag(values) -> np.ndarray:
    """int64 -> uint64 so small magnitudes of either sign become small varints."""
    v = np.asarray(values, dtype=np.int64)
    return ((v << np.int64(1)) ^ (v >> np.int64(63))).view(np.uint64)


def unzigzag(values) -> np.ndarray:
    u = np.asarray(values, dtype=np.uint64)
    return ((u >> _U64(1)) ^ (_U64(0) - (u & _U64(1)))).view(np.int64)


# --- header and footer -----------------------------------------------------------------------


def pack_header() -> bytes:
    return HEADER.pack(MAGIC, VERSION)


@dataclass(frozen=True)
class Footer:
    index_offset: int
    index_length: int
    index_checksum: int
    min_time: int
    max_time: int
    n_values: int
    generation: int
    level: int
    version: int = VERSION

    def pack(self) -> bytes:
        body = FOOTER.pack(
            self.index_offset, self.index_length, self.index_checksum, self.min_time,
            self.max_time, self.n_values, self.generation, self.level, self.version, 0, MAGIC,
        )
        crc = checksum32(body[:FOOTER_CHECKED])
        return body[:FOOTER_CHECKED] + BLOCK_CHECKSUM.pack(crc) + MAGIC

    @classmethod
    def unpack(cls, raw: bytes) -> "Footer":
        """Parse and verify; ValueError says what is wrong."""
        if len(raw) != FOOTER_SIZE:
            raise ValueError(f"footer is {len(raw)} bytes, expected {FOOTER_SIZE}")
        (ioff, ilen, icrc, tmin, tmax, nval, gen, level, version, crc, magic) = FOOTER.unpack(raw)
        if magic != MAGIC:
            raise ValueError(f"bad footer magic {magic!r} (truncated or not a segment file)")
        if checksum32(raw[:FOOTER_CHECKED]) != crc:
            raise ValueError("footer checksum mismatch")
        if version != VERSION:
            raise ValueError(f"unsupported segment version {version}")
        return cls(ioff, ilen, icrc, tmin, tmax, nval, gen, level, version)


# --- index -----------------------------------------------------------------------------------


@dataclass
class IndexColumns:
    """The decoded index: per-entry and per-block numpy columns (no object per block).

    Entries are sorted by (series id, field id) and field ids follow the sorted name table, so the
    order is (series id, field name). Block ``i`` of entry ``e`` is row
    ``entry_first_block[e] + i`` of every block column.
    """

    field_names: list            # sorted bytes; field id = position
    entry_series: np.ndarray     # uint64
    entry_field: np.ndarray      # int64 field id
    entry_ftype: np.ndarray      # uint8 FieldType code
    entry_nblocks: np.ndarray    # int64
    entry_offset: np.ndarray     # int64 file offset of the entry's first block
    block_size: np.ndarray       # int64
    block_min_time: np.ndarray   # int64
    block_max_time: np.ndarray   # int64
    block_count: np.ndarray      # int64
    block_kind: np.ndarray       # uint8 STATS_*
    block_scale: np.ndarray      # uint8 decimal digits (STATS_DECIMAL only)
    stats_int: np.ndarray        # int64 (5, n_blocks) rows STAT_*; scaled for DECIMAL
    stats_float: np.ndarray      # float64 (5, n_blocks) rows STAT_*; FLOAT_RAW only

    @property
    def entry_first_block(self) -> np.ndarray:
        first = np.zeros(len(self.entry_nblocks), dtype=np.int64)
        np.cumsum(self.entry_nblocks[:-1], out=first[1:])
        return first

    def block_offsets(self) -> np.ndarray:
        """File offset of every block: entry offset plus the sizes of the entry's earlier blocks."""
        n = len(self.block_size)
        within = np.cumsum(self.block_size) - self.block_size  # exclusive cumsum over all blocks
        first = self.entry_first_block
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        return np.repeat(self.entry_offset - within[first], self.entry_nblocks) + within


def _column(data: bytes) -> bytes:
    return uvarint(len(data)) + data


def encode_index(ix: IndexColumns, file_min_time: int) -> bytes:
    """Serialise the index columns (entries must already be sorted; see docs/format/segment.md)."""
    n_entries, n_blocks = len(ix.entry_series), len(ix.block_size)
    first = ix.entry_first_block
    is_first = np.zeros(n_blocks, dtype=bool)
    is_first[first] = True

    # Time differences, unsigned 64-bit (a span may exceed the int64 range).
    tmin = ix.block_min_time.view(np.uint64)
    tmax = ix.block_max_time.view(np.uint64)
    prev_max = np.empty(n_blocks, dtype=np.uint64)
    if n_blocks:
        prev_max[1:] = tmax[:-1]
        prev_max[is_first] = _U64(np.int64(file_min_time).view(np.uint64))
    gap = tmin - prev_max
    span = tmax - tmin
    scale = int(np.gcd.reduce(np.concatenate([gap, span]))) if n_blocks else 0
    scale = scale or 1
    gap //= _U64(scale)
    span //= _U64(scale)

    # Entry offsets relative to where the previous entry's blocks ended (every entry has a block).
    expected = np.empty(n_entries, dtype=np.int64)
    if n_entries:
        ends = ix.entry_offset + np.add.reduceat(ix.block_size, first)
        expected[0] = HEADER_SIZE
        expected[1:] = ends[:-1]
    series_delta = np.diff(ix.entry_series, prepend=_U64(0)) if n_entries else ix.entry_series

    kind_byte = ix.block_kind.astype(np.uint64) | (ix.block_scale.astype(np.uint64) << _U64(4))
    int_rows = np.isin(ix.block_kind, INT_STATS_KINDS)
    si = ix.stats_int[:, int_rows]
    mn = si[STAT_MIN].view(np.uint64)
    stats_int = np.empty((int(int_rows.sum()), N_STATS), dtype=np.uint64)
    stats_int[:, 0] = zigzag(si[STAT_MIN])
    stats_int[:, 1] = si[STAT_MAX].view(np.uint64) - mn
    stats_int[:, 2] = si[STAT_FIRST].view(np.uint64) - mn
    stats_int[:, 3] = si[STAT_LAST].view(np.uint64) - mn
    stats_int[:, 4] = zigzag(si[STAT_SUM])
    raw_rows = ix.block_kind == STATS_FLOAT_RAW
    stats_float = np.ascontiguousarray(ix.stats_float[:, raw_rows].T, dtype="<f8")

    names = b"".join(uvarint(len(n)) + n for n in ix.field_names)
    parts = [
        uvarint(len(ix.field_names)), uvarint(n_entries), uvarint(n_blocks), uvarint(scale), names,
        _column(encode_uvarints(series_delta)),
        _column(encode_uvarints(ix.entry_field)),
        _column(encode_uvarints(ix.entry_ftype)),
        _column(encode_uvarints(ix.entry_nblocks)),
        _column(encode_uvarints(zigzag(ix.entry_offset - expected))),
        _column(encode_uvarints(ix.block_size)),
        _column(encode_uvarints(gap)),
        _column(encode_uvarints(span)),
        _column(encode_uvarints(MAX_BLOCK_POINTS - ix.block_count)),
        _column(encode_uvarints(kind_byte)),
        _column(encode_uvarints(stats_int.reshape(-1))),
        _column(stats_float.tobytes()),
    ]
    return b"".join(parts)


class _Cursor:
    """Reads the index front to back; every failure is a ValueError naming the index position."""

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def uvarint(self, what: str) -> int:
        try:
            v, self.pos = read_uvarint(self.buf, self.pos)
        except ValueError as e:
            raise ValueError(f"index {what} at index byte {self.pos}: {e}") from None
        return v

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError(f"index {what} at index byte {self.pos} runs past the index end")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def column(self, count: int, what: str) -> np.ndarray:
        start = self.pos
        raw = self.take(self.uvarint(what + " length"), what)
        try:
            return decode_uvarints(raw, count)
        except ValueError as e:
            raise ValueError(f"index column {what} at index byte {start}: {e}") from None


def decode_index(buf: bytes, file_min_time: int, data_end: int) -> IndexColumns:
    """Parse the index bytes (already checksum-verified) and sanity-check what they say.

    ``data_end`` is the index offset: every block must lie in [HEADER_SIZE, data_end).
    """
    c = _Cursor(buf)
    n_fields = c.uvarint("field count")
    n_entries = c.uvarint("entry count")
    n_blocks = c.uvarint("block count")
    scale = c.uvarint("time scale")
    if n_blocks < n_entries or n_blocks * MIN_BLOCK_SIZE > data_end or n_fields > n_entries + 1:
        raise ValueError(f"implausible counts: {n_fields} fields, {n_entries} entries, {n_blocks} blocks")
    names = [c.take(c.uvarint("field name length"), "field name") for _ in range(n_fields)]
    if any(a >= b for a, b in zip(names, names[1:])):
        raise ValueError("field name table not strictly sorted")

    series = np.cumsum(c.column(n_entries, "entry series"), dtype=np.uint64)
    field = c.column(n_entries, "entry field").astype(np.int64)
    ftype = c.column(n_entries, "entry type")
    nblocks = c.column(n_entries, "entry block count").astype(np.int64)
    offset_adj = unzigzag(c.column(n_entries, "entry offset"))
    size = c.column(n_blocks, "block size").astype(np.int64)
    gap = c.column(n_blocks, "block gap")
    span = c.column(n_blocks, "block span")
    missing = c.column(n_blocks, "block count")
    kind_byte = c.column(n_blocks, "stats kind")
    kind = (kind_byte & _U64(0xF)).astype(np.uint8)
    dscale = (kind_byte >> _U64(4)).astype(np.uint8)
    if np.any(~np.isin(kind, STATS_KINDS)) or np.any(dscale > MAX_DECIMAL_SCALE) or np.any(kind_byte > 0xFF):
        raise ValueError("unknown block statistics kind")
    int_rows = np.isin(kind, INT_STATS_KINDS)
    raw_rows = kind == STATS_FLOAT_RAW
    packed = c.column(int(int_rows.sum()) * N_STATS, "integer stats").reshape(-1, N_STATS)
    raw_float = c.take(c.uvarint("float stats length"), "float stats")
    if len(raw_float) != int(raw_rows.sum()) * N_STATS * 8:
        raise ValueError("float stats column has the wrong length")
    if c.pos != len(buf):
        raise ValueError(f"{len(buf) - c.pos} stray bytes after the index")

    if np.any(field >= n_fields) or np.any((ftype < 1) | (ftype > 4)) or np.any(nblocks < 1):
        raise ValueError("entry with an unknown field, type or no blocks")
    if int(nblocks.sum()) != n_blocks or np.any(missing >= MAX_BLOCK_POINTS):
        raise ValueError("block counts do not add up")
    if n_entries > 1:
        same_series = series[1:] == series[:-1]
        if np.any((series[1:] < series[:-1]) | (same_series & (field[1:] <= field[:-1]))):
            raise ValueError("entries not strictly sorted by (series id, field)")

    first = np.zeros(n_entries, dtype=np.int64)
    np.cumsum(nblocks[:-1], out=first[1:])
    # Times: within an entry min_i = base + g*(sum of gaps and spans before it + gap_i).
    g = _U64(scale)
    steps = np.cumsum(gap + span, dtype=np.uint64)
    before = np.zeros(n_entries, dtype=np.uint64)
    if n_blocks:
        before[1:] = steps[first[1:] - 1]
    through = steps - np.repeat(before, nblocks)
    base = _U64(np.int64(file_min_time).view(np.uint64))
    tmax = (base + g * through).view(np.int64)
    tmin = (base + g * (through - span)).view(np.int64)

    # Entry offsets, then block offsets, all inside the data region.
    sizes_per_entry = np.add.reduceat(size, first) if n_blocks else np.zeros(0, np.int64)
    entry_offset = np.empty(n_entries, dtype=np.int64)
    if n_entries:
        # offset_e = end of entry e-1 + adj_e, end_e = offset_e + size_e  => a running sum.
        entry_offset = HEADER_SIZE + np.cumsum(offset_adj) + np.concatenate(([0], np.cumsum(sizes_per_entry)[:-1]))
    if n_entries and (np.any(size < MIN_BLOCK_SIZE) or np.any(entry_offset < HEADER_SIZE)
                      or np.any(entry_offset + sizes_per_entry > data_end)):
        raise ValueError("block outside the data region")

    stats_int = np.zeros((N_STATS, n_blocks), dtype=np.int64)
    if len(packed):
        mn = unzigzag(packed[:, 0])
        mnu = mn.view(np.uint64)
        stats_int[STAT_MIN, int_rows] = mn
        stats_int[STAT_MAX, int_rows] = (mnu + packed[:, 1]).view(np.int64)
        stats_int[STAT_FIRST, int_rows] = (mnu + packed[:, 2]).view(np.int64)
        stats_int[STAT_LAST, int_rows] = (mnu + packed[:, 3]).view(np.int64)
        stats_int[STAT_SUM, int_rows] = unzigzag(packed[:, 4])
    stats_float = np.zeros((N_STATS, n_blocks), dtype=np.float64)
    if len(raw_float):
        stats_float[:, raw_rows] = np.frombuffer(raw_float, dtype="<f8").reshape(-1, N_STATS).T

    return IndexColumns(
        field_names=names, entry_series=series, entry_field=field, entry_ftype=ftype.astype(np.uint8),
        entry_nblocks=nblocks, entry_offset=entry_offset, block_size=size, block_min_time=tmin,
        block_max_time=tmax, block_count=MAX_BLOCK_POINTS - missing.astype(np.int64),
        block_kind=kind, block_scale=dscale, stats_int=stats_int, stats_float=stats_float,
    )
