"""SegmentWriter: streams blocks to a temp file, then appends the index and footer and renames.

Layout (docs/format/segment.md): ``header | blocks | index | footer``. ``add`` cuts one series+field
column into blocks of at most ``MAX_BLOCK_POINTS`` points, encodes each with the codecs, writes it
at once (so memory holds only the index, never the data) and keeps its metadata and statistics in
numpy arrays. ``finish`` sorts the entries by (series id, field name), writes the columnar index
and the footer, fsyncs, renames the temp file into place and fsyncs the directory: a segment
file exists under its real name only when it is complete.

Block statistics are computed for all blocks of one ``add`` at once with ``ufunc.reduceat``
(``block_stats``); ``block_stats_reference`` is its plain-Python twin for the tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from chronosdb.ext import codecs
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage import filenames
from chronosdb.storage.segment import layout as L

POW10 = L.POW10
_EXACT = 2.0 ** 53  # float64 represents every integer of smaller magnitude exactly


@dataclass(frozen=True)
class SegmentInfo:
    path: str
    generation: int
    level: int
    size_bytes: int
    min_time: int | None  # None when the file holds no values
    max_time: int | None
    n_values: int


@dataclass
class BlockStats:
    """Statistics of consecutive blocks: kind/scale per block, stats as (5, n_blocks) arrays."""

    kind: np.ndarray    # uint8 layout.STATS_*
    scale: np.ndarray   # uint8 decimal scale (STATS_DECIMAL)
    ints: np.ndarray    # int64 rows STAT_MIN..STAT_SUM (ints, or decimals scaled by 10**scale)
    floats: np.ndarray  # float64 rows STAT_MIN..STAT_SUM (STATS_FLOAT_RAW)


def block_stats(ftype: FieldType, values, starts: np.ndarray, ends: np.ndarray) -> BlockStats:
    """Statistics of blocks ``values[starts[i]:ends[i]]`` (non-empty, contiguous, in order)."""
    nb = len(starts)
    kind = np.zeros(nb, dtype=np.uint8)
    scale = np.zeros(nb, dtype=np.uint8)
    ints = np.zeros((L.N_STATS, nb), dtype=np.int64)
    floats = np.zeros((L.N_STATS, nb), dtype=np.float64)
    if ftype == FieldType.INTEGER:
        v = values
        ints[L.STAT_MIN] = np.minimum.reduceat(v, starts)
        ints[L.STAT_MAX] = np.maximum.reduceat(v, starts)
        ints[L.STAT_FIRST] = v[starts]
        ints[L.STAT_LAST] = v[ends - 1]
        # Exact sum without overflow: add the high and low 32-bit halves separately (each partial
        # sum fits int64 for <= 2**31 points), then carry and check the high part's range.
        hi = np.add.reduceat(v >> np.int64(32), starts)
        lo = np.add.reduceat(v & np.int64(0xFFFFFFFF), starts)
        q = hi + (lo >> np.int64(32))
        fits = (q >= -(2 ** 31)) & (q < 2 ** 31)
        ints[L.STAT_SUM] = np.where(fits, (q << np.int64(32)) | (lo & np.int64(0xFFFFFFFF)), 0)
        kind[:] = np.where(fits, L.STATS_INT, L.STATS_INT_NO_SUM)
    elif ftype == FieldType.FLOAT:
        with np.errstate(over="ignore", invalid="ignore"):  # inf*10^k and rint(inf) are expected
            _float_block_stats(values, starts, ends, kind, scale, ints, floats)
    # booleans and strings: no statistics (kind NONE)
    return BlockStats(kind, scale, ints, floats)


def _float_block_stats(v, starts, ends, kind, scale, ints, floats) -> None:
    """Fill the stats arrays for float blocks: DECIMAL when possible, NONE with a NaN."""
    nb = len(starts)
    counts = ends - starts
    has_nan = np.logical_or.reduceat(np.isnan(v), starts)
    floats[L.STAT_MIN] = np.minimum.reduceat(v, starts)
    floats[L.STAT_MAX] = np.maximum.reduceat(v, starts)
    floats[L.STAT_FIRST] = v[starts]
    floats[L.STAT_LAST] = v[ends - 1]
    floats[L.STAT_SUM] = np.add.reduceat(v, starts)
    # Smallest decimal scale k at which every value of the block is exactly rint(v*10^k)/10^k.
    block_scale = np.full(nb, -1, dtype=np.int64)
    for k in range(L.MAX_DECIMAL_SCALE + 1):
        open_blocks = (block_scale < 0) & ~has_nan
        if not open_blocks.any():
            break
        s = np.rint(v * POW10[k])
        ok = (np.abs(s) < _EXACT) & (s / POW10[k] == v)
        block_scale[open_blocks & np.logical_and.reduceat(ok, starts)] = k
    decimal = block_scale >= 0
    if decimal.any():
        p = POW10[np.repeat(np.where(decimal, block_scale, 0), counts)]
        scaled = np.where(np.repeat(decimal, counts), np.rint(v * p), 0).astype(np.int64)
        ints[L.STAT_MIN] = np.minimum.reduceat(scaled, starts)
        ints[L.STAT_MAX] = np.maximum.reduceat(scaled, starts)
        ints[L.STAT_FIRST] = scaled[starts]
        ints[L.STAT_LAST] = scaled[ends - 1]
        ints[L.STAT_SUM] = np.add.reduceat(scaled, starts)  # |each| < 2**53, <= 1000 of them
        ints[:, ~decimal] = 0
    kind[:] = np.where(has_nan, L.STATS_NONE, np.where(decimal, L.STATS_DECIMAL, L.STATS_FLOAT_RAW))
    scale[:] = np.where(decimal, block_scale, 0)
    floats[:, kind != L.STATS_FLOAT_RAW] = 0.0


def block_stats_reference(ftype: FieldType, values, starts, ends) -> BlockStats:
    """Plain-Python twin of ``block_stats`` (per-point loops; tests only)."""
    nb = len(starts)
    out = BlockStats(
        np.zeros(nb, np.uint8), np.zeros(nb, np.uint8),
        np.zeros((L.N_STATS, nb), np.int64), np.zeros((L.N_STATS, nb), np.float64),
    )
    for b, (s, e) in enumerate(zip(starts, ends)):
        if ftype == FieldType.INTEGER:
            block = [int(x) for x in values[s:e]]
            total = sum(block)
            fits = -(2 ** 63) <= total < 2 ** 63
            out.kind[b] = L.STATS_INT if fits else L.STATS_INT_NO_SUM
            out.ints[:, b] = [min(block), max(block), block[0], block[-1], total if fits else 0]
        elif ftype == FieldType.FLOAT:
            block = [float(x) for x in values[s:e]]
            if any(x != x for x in block):
                continue  # NaN: kind NONE
            for k in range(L.MAX_DECIMAL_SCALE + 1):
                p = 10.0 ** k
                scaled = [x * p for x in block]
                if all(abs(y) < _EXACT and float(round(y)) / p == x for x, y in zip(block, scaled)):
                    m = [round(y) for y in scaled]
                    out.kind[b], out.scale[b] = L.STATS_DECIMAL, k
                    out.ints[:, b] = [min(m), max(m), m[0], m[-1], sum(m)]
                    break
            else:
                total = 0.0
                for x in block:
                    total += x
                out.kind[b] = L.STATS_FLOAT_RAW
                out.floats[:, b] = [min(block), max(block), block[0], block[-1], total]
    return out


def _check_values(ftype: FieldType, values, n: int):
    """Normalise a values column to what the codecs take; ValueError if it cannot be."""
    if ftype == FieldType.STRING:
        if not isinstance(values, StringArray):
            raise ValueError(f"string field needs a StringArray, got {type(values).__name__}")
    else:
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
        kind = values.dtype.kind
        if ftype == FieldType.FLOAT and kind in "fiu":
            values = np.ascontiguousarray(values, dtype=np.float64)
        elif ftype == FieldType.INTEGER and kind in "iu":
            if kind == "u" and len(values) and values.max() > np.iinfo(np.int64).max:
                raise ValueError("integer value exceeds the int64 range")
            values = np.ascontiguousarray(values, dtype=np.int64)
        elif ftype == FieldType.BOOLEAN and kind in "bu":
            values = np.ascontiguousarray(values, dtype=np.uint8)
            if len(values) and values.max() > 1:
                raise ValueError("boolean values must be 0 or 1")
        else:
            raise ValueError(f"{ftype.influx_name} field cannot hold values of dtype {values.dtype}")
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} times")
    return values


def _encode_values(ftype: FieldType, values, s: int, e: int) -> bytes:
    if ftype == FieldType.FLOAT:
        return codecs.encode_floats(values[s:e])
    if ftype == FieldType.INTEGER:
        return codecs.encode_ints(values[s:e])
    if ftype == FieldType.BOOLEAN:
        return codecs.encode_bools(values[s:e])
    offsets = values.offsets[s:e + 1]
    data = values.data[int(offsets[0]):int(offsets[-1])]
    return codecs.encode_strings(offsets - offsets[0], data)


class SegmentWriter:
    """Writes one segment file. ``add`` each (series id, field) once, then ``finish`` or ``abort``.

    Entries may arrive in any order; the index is sorted at ``finish``. Usable as a context
    manager: leaving the block by an exception aborts.
    """

    def __init__(self, path: str, generation: int, level: int):
        if not (0 <= generation < 2 ** 64) or not (0 <= level < 256):
            raise ValueError(f"bad generation/level {generation}/{level}")
        self.path = str(path)
        self.generation, self.level = generation, level
        self._tmp = filenames.tmp(self.path)
        self._file = open(self._tmp, "wb")
        self._file.write(L.pack_header())
        self._offset = L.HEADER_SIZE
        self._done = False
        self._seen: set[tuple[int, bytes]] = set()
        # per entry (insertion order)
        self._e_series: list[int] = []
        self._e_field: list[bytes] = []
        self._e_ftype: list[int] = []
        self._e_nblocks: list[int] = []
        self._e_offset: list[int] = []
        # per add(): arrays over its blocks
        self._b_size: list[np.ndarray] = []
        self._b_min: list[np.ndarray] = []
        self._b_max: list[np.ndarray] = []
        self._b_count: list[np.ndarray] = []
        self._b_stats: list[BlockStats] = []
        self._n_values = 0
        self._min_time: int | None = None
        self._max_time: int | None = None

    def __enter__(self) -> "SegmentWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, series_id: int, field: bytes, ftype: FieldType, times: np.ndarray, values) -> None:
        if self._done:
            raise ValueError(f"segment writer for {self.path} is already finished or aborted")
        series_id = int(series_id)
        if not 0 <= series_id < 2 ** 64:
            raise ValueError(f"series id {series_id} outside uint64")
        if not isinstance(field, bytes) or not field:
            raise ValueError(f"field name must be non-empty bytes, got {field!r}")
        ftype = FieldType(ftype)
        key = (series_id, field)
        if key in self._seen:
            raise ValueError(f"series {series_id} field {field!r} already added to {self.path}")
        times = np.asarray(times)
        if times.ndim != 1 or times.dtype.kind not in "iu":
            raise ValueError(f"times must be a 1-d integer array, got {times.dtype} {times.shape}")
        times = np.ascontiguousarray(times, dtype=np.int64)
        n = len(times)
        values = _check_values(ftype, values, n)
        if n > 1:
            bad = np.flatnonzero(times[1:] <= times[:-1])
            if len(bad):
                i = int(bad[0]) + 1
                raise ValueError(
                    f"times of series {series_id} field {field!r} not strictly increasing at index "
                    f"{i}: {int(times[i - 1])} then {int(times[i])}"
                )
        if n == 0:
            return  # nothing to store; the entry does not exist
        self._seen.add(key)

        starts = np.arange(0, n, L.MAX_BLOCK_POINTS, dtype=np.int64)
        ends = np.minimum(starts + L.MAX_BLOCK_POINTS, n)
        sizes = np.empty(len(starts), dtype=np.int64)
        first_offset = self._offset
        for b, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
            t = codecs.encode_times(times[s:e])
            block = bytearray((int(ftype),))
            block += L.uvarint(len(t))
            block += t
            block += _encode_values(ftype, values, s, e)
            block += L.BLOCK_CHECKSUM.pack(L.checksum32(block))
            self._file.write(block)
            sizes[b] = len(block)
            self._offset += len(block)

        self._e_series.append(series_id)
        self._e_field.append(field)
        self._e_ftype.append(int(ftype))
        self._e_nblocks.append(len(starts))
        self._e_offset.append(first_offset)
        self._b_size.append(sizes)
        self._b_min.append(times[starts])
        self._b_max.append(times[ends - 1])
        self._b_count.append(ends - starts)
        self._b_stats.append(block_stats(ftype, values, starts, ends))
        self._n_values += n
        lo, hi = int(times[0]), int(times[-1])
        self._min_time = lo if self._min_time is None else min(self._min_time, lo)
        self._max_time = hi if self._max_time is None else max(self._max_time, hi)

    def _index(self) -> L.IndexColumns:
        names = sorted(set(self._e_field))
        field_id = {name: i for i, name in enumerate(names)}
        series = np.array(self._e_series, dtype=np.uint64)
        fields = np.array([field_id[f] for f in self._e_field], dtype=np.int64)
        nblocks = np.array(self._e_nblocks, dtype=np.int64)
        order = np.lexsort((fields, series))
        # Blocks follow their entries into sorted order (each entry's blocks stay contiguous).
        first_old = np.zeros(len(nblocks), dtype=np.int64)
        np.cumsum(nblocks[:-1], out=first_old[1:])
        nb_sorted = nblocks[order]
        first_new = np.zeros(len(nblocks), dtype=np.int64)
        np.cumsum(nb_sorted[:-1], out=first_new[1:])
        perm = np.repeat(first_old[order] - first_new, nb_sorted) + np.arange(int(nblocks.sum()))

        def cat(parts, dtype):
            return np.concatenate(parts)[perm] if parts else np.zeros(0, dtype)

        def cat2(parts, dtype):
            return np.concatenate(parts, axis=1)[:, perm] if parts else np.zeros((L.N_STATS, 0), dtype)

        return L.IndexColumns(
            field_names=names,
            entry_series=series[order],
            entry_field=fields[order],
            entry_ftype=np.array(self._e_ftype, dtype=np.uint8)[order],
            entry_nblocks=nb_sorted,
            entry_offset=np.array(self._e_offset, dtype=np.int64)[order],
            block_size=cat(self._b_size, np.int64),
            block_min_time=cat(self._b_min, np.int64),
            block_max_time=cat(self._b_max, np.int64),
            block_count=cat(self._b_count, np.int64),
            block_kind=cat([s.kind for s in self._b_stats], np.uint8),
            block_scale=cat([s.scale for s in self._b_stats], np.uint8),
            stats_int=cat2([s.ints for s in self._b_stats], np.int64),
            stats_float=cat2([s.floats for s in self._b_stats], np.float64),
        )

    def finish(self) -> SegmentInfo:
        if self._done:
            raise ValueError(f"segment writer for {self.path} is already finished or aborted")
        try:
            min_time = self._min_time if self._min_time is not None else 0
            max_time = self._max_time if self._max_time is not None else 0
            index = L.encode_index(self._index(), min_time)
            footer = L.Footer(
                index_offset=self._offset, index_length=len(index), index_checksum=L.checksum64(index),
                min_time=min_time, max_time=max_time, n_values=self._n_values,
                generation=self.generation, level=self.level,
            )
            self._file.write(index)
            self._file.write(footer.pack())
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            size = self._offset + len(index) + L.FOOTER_SIZE
            os.replace(self._tmp, self.path)
            filenames.fsync_dir(os.path.dirname(self.path) or ".")
        except BaseException:
            self.abort()
            raise
        self._done = True
        return SegmentInfo(
            path=self.path, generation=self.generation, level=self.level, size_bytes=size,
            min_time=self._min_time, max_time=self._max_time, n_values=self._n_values,
        )

    def abort(self) -> None:
        """Drop the temp file. Safe to call more than once; a no-op after a successful finish."""
        if self._done:
            return
        self._done = True
        self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
