"""SegmentReader: maps a segment file, checks its footer and index, serves blocks and ranges.

Layout (docs/format/segment.md): ``header | blocks | index | footer``. Opening reads only the
68-byte footer and the index: the footer's checksum and magic are checked, then the index bytes
against the footer's xxh3-64, then the columnar index is decoded into numpy arrays (one array per
attribute, no object per block). A lookup of (series id, field) is one dict hit: the dict from
(series id, field name) to entry number is built on first use (one pass over the entries), so
files that are opened but never read pay nothing for it. Block bytes are read from the mapping on
demand by ``chronosdb.ext.blockscan``, which verifies each block's checksum, type byte, counts and
end times against the index and decodes every chosen block of an entry into one output pair.
"""
from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from chronosdb.ext import blockscan
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.storage.segment import layout as L

_I64_MIN, _I64_MAX = -(2 ** 63), 2 ** 63 - 1
# median_block_span answers kept per reader (the query paths ask it for every one-series
# window query); emptied when full.
SPAN_CACHE_ENTRIES = 65536
_NO_SPAN = object()


@dataclass
class BlockTable:
    """The blocks of one series+field, in time order: one numpy array per column (views).

    ``sum/min/max/first/last`` are float64 for float fields and int64 for integer fields. Where
    ``has_stats`` is true all five are valid; where only ``has_extremes`` is, min/max/first/last
    are (an integer block whose sum overflows int64). Boolean and string blocks carry none.
    Columns are attributes; ``table["min_time"]`` works too, as for a numpy structured array.
    """

    ftype: FieldType
    offset: np.ndarray     # int64 file offset of each block
    size: np.ndarray       # int64 bytes
    min_time: np.ndarray   # int64
    max_time: np.ndarray   # int64
    count: np.ndarray      # int64
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray
    last: np.ndarray
    has_stats: np.ndarray     # bool: all five statistics valid
    has_extremes: np.ndarray  # bool: min, max, first, last valid

    def __len__(self) -> int:
        return len(self.count)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in _BLOCK_COLUMNS:
            raise KeyError(column)
        return getattr(self, column)


_BLOCK_COLUMNS = frozenset(f for f in BlockTable.__dataclass_fields__ if f != "ftype")


class SegmentReader:
    def __init__(self, path: str):
        self.path = str(path)
        self._mm = None
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < L.HEADER_SIZE + L.FOOTER_SIZE:
                raise CorruptionError(self.path, 0, f"file is {size} bytes, too short for a segment")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._open(size)
        except BaseException:
            self.close()
            raise

    def _open(self, size: int) -> None:
        mm = self._mm
        footer_at = size - L.FOOTER_SIZE
        try:
            footer = L.Footer.unpack(mm[footer_at:])
        except ValueError as e:
            raise CorruptionError(self.path, footer_at, str(e)) from None
        if footer.index_offset < L.HEADER_SIZE or footer.index_offset + footer.index_length != footer_at:
            raise CorruptionError(
                self.path, footer_at,
                f"index [{footer.index_offset}, +{footer.index_length}) does not end at the footer",
            )
        header = mm[:L.HEADER_SIZE]
        if header[:4] != L.MAGIC:
            raise CorruptionError(self.path, 0, f"bad header magic {header[:4]!r}")
        index = mm[footer.index_offset:footer_at]  # a copy: no buffer export pins the mapping
        if L.checksum64(index) != footer.index_checksum:
            raise CorruptionError(self.path, footer.index_offset, "index checksum mismatch")
        try:
            ix = L.decode_index(index, footer.min_time, footer.index_offset)
        except ValueError as e:
            raise CorruptionError(self.path, footer.index_offset, str(e)) from None

        self.generation, self.level = footer.generation, footer.level
        self.size_bytes = size
        self.n_values = footer.n_values
        self.min_time = footer.min_time if footer.n_values else None
        self.max_time = footer.max_time if footer.n_values else None

        self._field_names = ix.field_names
        self._field_id = {name: i for i, name in enumerate(ix.field_names)}
        self._e_series = ix.entry_series
        self._e_field = ix.entry_field
        self._e_ftype = ix.entry_ftype
        self._e_first = ix.entry_first_block
        self._e_nblocks = ix.entry_nblocks
        self._b_offset = ix.block_offsets()
        self._b_size = ix.block_size
        self._b_min = ix.block_min_time
        self._b_max = ix.block_max_time
        self._b_count = ix.block_count
        kind = ix.block_kind
        self._b_has_extremes = kind != L.STATS_NONE
        self._b_has_stats = self._b_has_extremes & (kind != L.STATS_INT_NO_SUM)
        # Float statistics as float64 for every block: raw ones as stored, decimal ones divided
        # back by the same power-of-ten table the writer checked them with.
        decimal = kind == L.STATS_DECIMAL
        fstats = ix.stats_float.copy()
        fstats[:, decimal] = ix.stats_int[:, decimal].astype(np.float64) / L.POW10[ix.block_scale[decimal]]
        self._b_fstats = fstats
        self._b_istats = ix.stats_int
        # One 1-D row per statistic (float rows, integer rows), so blocks() slices 1-D arrays only.
        order = (L.STAT_MIN, L.STAT_MAX, L.STAT_FIRST, L.STAT_LAST, L.STAT_SUM)
        self._stat_rows = (tuple(fstats[k] for k in order), tuple(ix.stats_int[k] for k in order))
        self._series_ids = np.unique(ix.entry_series)
        # {(series id, field name): (entry, FieldType, first block row, end block row)}, built by
        # _lookup on first use; plain Python values so a read does no numpy scalar conversions
        self._entry_of = None
        self._spans: dict = {}      # median_block_span's answers (the file never changes)
        self._scanner = blockscan.BlockScanner(
            self.path, self._b_offset, self._b_size, self._b_count, self._b_min, self._b_max)

        if len(ix.block_count) and int(ix.block_count.sum()) != footer.n_values:
            raise CorruptionError(self.path, footer_at, "value count in footer disagrees with the index")

    # --- lookups -------------------------------------------------------------------------------

    def _lookup(self, series_id: int, field: bytes) -> tuple[int, FieldType, int, int] | None:
        table = self._entry_of
        if table is None:
            table = self._entry_of = self._build_entry_table()
        try:
            return table.get((series_id, field))
        except TypeError:  # an unhashable key cannot name an entry
            return None

    def any_block_inside(self, series_id: int, field: bytes, lo: int, hi: int) -> bool:
        """Whether a block of the series+field lies wholly inside [lo, hi] (block index only)."""
        hit = self._lookup(series_id, field)
        if hit is None:
            return False
        _, _ftype, a, b = hit
        mn, mx = self._b_min, self._b_max
        # blocks of an entry are in time order: the first block starting at or after lo is the
        # only candidate that can end earliest
        i = a + int(np.searchsorted(mn[a:b], lo, "left"))
        return i < b and mx[i] <= hi

    def edge_point(self, series_id: int, field: bytes, lo: int, hi: int, last: bool):
        """The first (``last``: last) point of a series+field in [lo, hi] from the block index
        alone: ``(time, value)`` with the value a numpy scalar of the stats' dtype; None when no
        block overlaps the range; False when the edge block straddles the range or has no
        first/last statistic (the caller must decode)."""
        hit = self._lookup(series_id, field)
        if hit is None:
            return None
        _, ftype, a, b = hit
        mn, mx = self._b_min, self._b_max
        if last:
            bi = b - 1
            while bi >= a and mn[bi] > hi:
                bi -= 1
            if bi < a or mx[bi] < lo:
                return None
        else:
            bi = a
            while bi < b and mx[bi] < lo:
                bi += 1
            if bi == b or mn[bi] > hi:
                return None
        if not (mn[bi] >= lo and mx[bi] <= hi and self._b_has_extremes[bi]):
            return False
        stats = self._stat_rows[ftype == FieldType.INTEGER]
        if last:
            return int(mx[bi]), stats[3][bi]
        return int(mn[bi]), stats[2][bi]

    def edge_points(self, series_ids, field: bytes, lo: int, hi: int, last: bool):
        """``edge_point`` for many series of one field at once: ``(state, times, values)``,
        arrays as long as ``series_ids``. state 1: the point is ``(times[i], values[i])``; 0: no
        block overlaps the range (``edge_point`` None); -1: ask ``edge_point`` or decode (the edge
        block straddles the range or lacks the statistic, the series' outermost block lies
        beyond the range, or the field is not float/integer here)."""
        n = len(series_ids)
        state = np.zeros(n, dtype=np.int8)
        times = np.zeros(n, dtype=np.int64)
        pos, first_rows, end_rows, ftype = [], [], [], None
        for i, sid in enumerate(series_ids):
            hit = self._lookup(sid, field)
            if hit is None:
                continue
            ft = hit[1]
            if ft not in (FieldType.FLOAT, FieldType.INTEGER) or (ftype is not None and ft != ftype):
                state[i] = -1
                continue
            ftype = ft
            pos.append(i)
            first_rows.append(hit[2])
            end_rows.append(hit[3])
        if not pos:
            return state, times, np.zeros(n, dtype=np.float64)
        idx = np.array(pos, dtype=np.int64)
        bi = np.array(end_rows, dtype=np.int64) - 1 if last else np.array(first_rows, dtype=np.int64)
        mn, mx = self._b_min[bi], self._b_max[bi]
        if last:
            beyond, none = mn > hi, mx < lo
        else:
            beyond, none = mx < lo, mn > hi
        ok = ~beyond & ~none & (mn >= lo) & (mx <= hi) & self._b_has_extremes[bi]
        state[idx] = np.where(ok, 1, np.where(none & ~beyond, 0, -1))
        times[idx] = mx if last else mn
        stats = self._stat_rows[ftype == FieldType.INTEGER]
        col = stats[3] if last else stats[2]
        values = np.zeros(n, dtype=col.dtype)
        values[idx] = col[bi]
        return state, times, values

    def entry_rows(self, series_id: int, field: bytes):
        """(field type, first block row, end block row) of a series+field, or None: the rows of
        the index's block columns that ``block_columns`` gathers (for scan kernels)."""
        hit = self._lookup(series_id, field)
        return None if hit is None else (hit[1], hit[2], hit[3])

    def block_columns(self, rows: np.ndarray):
        """(offsets, sizes, counts, min times, max times) of the given block rows, int64."""
        return (self._b_offset[rows], self._b_size[rows], self._b_count[rows],
                self._b_min[rows], self._b_max[rows])

    @property
    def buffer(self):
        """The mapped file (for kernels that read blocks themselves)."""
        if self._mm is None:
            raise ValueError(f"segment reader for {self.path} is closed")
        return self._mm

    def _entry(self, series_id: int, field: bytes) -> int | None:
        hit = self._lookup(series_id, field)
        return None if hit is None else hit[0]

    def _build_entry_table(self) -> dict:
        names = self._field_names
        types = {code: FieldType(code) for code in np.unique(self._e_ftype).tolist()}
        first = self._e_first.tolist()
        return {
            (sid, names[fid]): (i, types[ft], a, a + nb)
            for i, (sid, fid, ft, a, nb) in enumerate(zip(
                self._e_series.tolist(), self._e_field.tolist(), self._e_ftype.tolist(),
                first, self._e_nblocks.tolist()))
        }

    def series_ids(self) -> np.ndarray:
        """Distinct series ids in the file, sorted (uint64)."""
        return self._series_ids

    def entries(self) -> Iterator[tuple[int, bytes, FieldType]]:
        """Every (series id, field, type), sorted by series id then field name."""
        names = self._field_names
        for sid, fid, ft in zip(self._e_series.tolist(), self._e_field.tolist(), self._e_ftype.tolist()):
            yield sid, names[fid], FieldType(ft)

    def field_type(self, series_id: int, field: bytes) -> FieldType | None:
        hit = self._lookup(series_id, field)
        return None if hit is None else hit[1]

    def fields_of(self, series_id: int) -> list[tuple[bytes, FieldType]]:
        if not 0 <= series_id < 2 ** 64:
            return []
        sid = np.uint64(series_id)
        lo = int(np.searchsorted(self._e_series, sid, side="left"))
        hi = int(np.searchsorted(self._e_series, sid, side="right"))
        return [
            (self._field_names[f], FieldType(t))
            for f, t in zip(self._e_field[lo:hi].tolist(), self._e_ftype[lo:hi].tolist())
        ]

    def median_block_span(self, series_id: int, field: bytes) -> int | None:
        """The median of max_time - min_time over the blocks of a series+field (the mean of
        the middle two, truncated, for an even count); None if the file has none."""
        key = (series_id, field)
        span = self._spans.get(key, _NO_SPAN)
        if span is not _NO_SPAN:
            return span
        hit = self._lookup(series_id, field)
        if hit is None or hit[2] == hit[3]:
            span = None
        else:
            _, _, a, b = hit
            spans = sorted((self._b_max[a:b] - self._b_min[a:b]).tolist())
            mid = len(spans) // 2
            span = spans[mid] if len(spans) % 2 else (spans[mid - 1] + spans[mid]) // 2
        if len(self._spans) >= SPAN_CACHE_ENTRIES:
            self._spans.clear()
        self._spans[key] = span
        return span

    def blocks(self, series_id: int, field: bytes) -> BlockTable | None:
        hit = self._lookup(series_id, field)
        if hit is None:
            return None
        _, ftype, a, b = hit
        smin, smax, sfirst, slast, ssum = self._stat_rows[ftype == FieldType.INTEGER]
        return BlockTable(
            ftype=ftype, offset=self._b_offset[a:b], size=self._b_size[a:b],
            min_time=self._b_min[a:b], max_time=self._b_max[a:b], count=self._b_count[a:b],
            sum=ssum[a:b], min=smin[a:b], max=smax[a:b], first=sfirst[a:b], last=slast[a:b],
            has_stats=self._b_has_stats[a:b], has_extremes=self._b_has_extremes[a:b],
        )

    # --- block decoding ------------------------------------------------------------------------

    def _decode_rows(self, ftype: FieldType, first: int, last: int, lo: int, hi: int):
        if self._mm is None:
            raise ValueError(f"segment reader for {self.path} is closed")
        return self._scanner.scan(self._mm, first, last, int(ftype), lo, hi)

    def read_block(self, series_id: int, field: bytes, i: int) -> tuple[np.ndarray, object]:
        """Decode block ``i`` of a series+field (checksum verified). KeyError/IndexError if absent."""
        hit = self._lookup(series_id, field)
        if hit is None:
            raise KeyError(f"series {series_id} field {field!r} not in {self.path}")
        _, ftype, a, b = hit
        n = b - a
        if not 0 <= i < n:
            raise IndexError(f"block {i} of series {series_id} field {field!r}: it has {n} blocks")
        return self._decode_rows(ftype, a + i, a + i + 1, _I64_MIN, _I64_MAX)

    def read_blocks(self, series_id: int, field: bytes, blocks, min_time: int | None = None,
                    max_time: int | None = None) -> tuple[np.ndarray, object] | None:
        """Points with min_time <= t <= max_time from the chosen blocks of a series+field.

        ``blocks`` picks blocks of ``blocks(series_id, field)``: a boolean mask as long as that
        table, or block numbers (any order, duplicates ignored). All chosen blocks are decoded in
        one call into one output pair (checksums verified). None when the file has no such
        series+field; empty arrays when nothing chosen lies in range.
        """
        hit = self._lookup(series_id, field)
        if hit is None:
            return None
        if self._mm is None:
            raise ValueError(f"segment reader for {self.path} is closed")
        _, ftype, a, b = hit
        n = b - a
        pick = np.asarray(blocks)
        if pick.dtype == np.bool_:
            if pick.shape != (n,):
                raise ValueError(f"block mask has shape {pick.shape}; series {series_id} field {field!r} has {n} blocks")
            pick = np.flatnonzero(pick)
        else:
            if pick.size and not np.issubdtype(pick.dtype, np.integer):
                raise ValueError(f"blocks must be a boolean mask or block numbers, not {pick.dtype}")
            pick = np.unique(pick.astype(np.int64, copy=False).ravel())
            if pick.size and (pick[0] < 0 or pick[-1] >= n):
                raise IndexError(f"block numbers {pick.tolist()} of series {series_id} field {field!r}: it has {n} blocks")
        lo = _I64_MIN if min_time is None else max(int(min_time), _I64_MIN)
        hi = _I64_MAX if max_time is None else min(int(max_time), _I64_MAX)
        rows = pick + a
        if len(rows) and lo <= hi:
            # skip chosen blocks that cannot overlap the range before decoding anything
            rows = rows[(self._b_max[rows] >= lo) & (self._b_min[rows] <= hi)]
        return self._scanner.scan_rows(self._mm, rows, int(ftype), lo, hi)

    def read(self, series_id: int, field: bytes, min_time: int | None = None,
             max_time: int | None = None) -> tuple[np.ndarray, object] | None:
        """Points of a series+field with min_time <= t <= max_time (None: unbounded).

        None when the file has no such series+field; empty arrays when it has, but not in range.
        """
        hit = self._lookup(series_id, field)
        if hit is None:
            return None
        _, ftype, a, b = hit
        lo = _I64_MIN if min_time is None else max(int(min_time), _I64_MIN)
        hi = _I64_MAX if max_time is None else min(int(max_time), _I64_MAX)
        # Blocks are in time order and disjoint: the scanner picks the overlapping run itself.
        return self._decode_rows(ftype, a, b, lo, hi)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __enter__(self) -> "SegmentReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
