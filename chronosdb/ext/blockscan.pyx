"""chronosdb.ext.blockscan: decode a run of segment blocks straight into one output pair.

A segment block (docs/format/segment.md) is::

    ftype u8 | uvarint times_len | times column (times_len bytes) | values column | u32 checksum

where the checksum is the low 32 bits of xxh3-64 over every byte before it, and both columns are
self-describing ``chronosdb.ext.codecs`` columns. The segment index gives, per block, its file
offset, size, point count and first/last time; the caller picks the blocks (in time order, as the
index lists them) and this module decodes them all into ONE pre-sized (times, values) pair, so a
range read allocates two arrays instead of two per block plus a concatenation.

Every block is checked exactly as ``SegmentReader`` always did: bounds against the mapping, the
checksum, the type byte, the times length varint, that each column decodes to the index's count,
and that the first and last decoded times equal the index's. The checks run in three passes:

1. framing (nogil): offsets and sizes inside the buffer, counts positive; sizes the output;
2. checksums (with the GIL): one call of the ``xxhash`` library per block. The C xxhash library is
   not available to Cython here; measured, the call costs ~0.1 us for a ~1.5 KB block against
   ~4 us to decode its 1000 points, so a C port of XXH3 would buy ~2% and was not worth its risk;
3. decoding (nogil for floats, integers and booleans; strings call the codecs' Python decoder
   per block, under the GIL).

A failure raises ``CorruptionError(path, offset of the bad block, what)``. The result is trimmed
to ``lo <= t <= hi`` by binary search over the decoded times and returned as views (no copy).
``chronosdb/ext/blockscan_ref.py`` is the plain-Python twin the tests compare against.
"""
cimport cython
from cpython.buffer cimport PyBUF_READ, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from chronosdb.ext cimport codecs as ccodecs

import numpy as np
import xxhash

from chronosdb.ext import codecs as pycodecs
from chronosdb.model.errors import CorruptionError
from chronosdb.model.strings import StringArray

# FieldType codes (chronosdb.model.fieldtype; part of the on-disk format).
cdef enum:
    FT_FLOAT = 1
    FT_INTEGER = 2
    FT_BOOLEAN = 3
    FT_STRING = 4

cdef enum:
    CHECKSUM_SIZE = 4
    MIN_BLOCK_SIZE = 6  # type byte + 1-byte times length + checksum (layout.MIN_BLOCK_SIZE)

# What went wrong in a nogil pass; the wrapper turns it into a CorruptionError message.
cdef enum:
    OK = 0
    E_BOUNDS = 1       # block outside the buffer or smaller than the minimum
    E_COUNT_INDEX = 2  # the index's count is not positive
    E_TYPE = 3         # type byte differs from the entry's type
    E_VARINT = 4       # times length varint truncated or overlong
    E_TIMES_LEN = 5    # times column runs past the block
    E_COUNT = 6        # a column decoded to a count other than the index's
    E_TIMES_INDEX = 7  # first/last decoded time differs from the index's
    E_CHECKSUM = 8     # stored checksum differs from the computed one

_xxh3_64 = xxhash.xxh3_64_intdigest
_DTYPES = {FT_FLOAT: np.float64, FT_INTEGER: np.int64, FT_BOOLEAN: np.uint8}


cdef struct Job:
    const uint8_t* base      # the mapped file
    Py_ssize_t base_len
    const int64_t* offsets   # per block of the index (all blocks, or just the chosen ones)
    const int64_t* sizes
    const int64_t* counts
    const int64_t* tmin
    const int64_t* tmax
    const int64_t* rows      # chosen rows; NULL means rows first .. first + n - 1
    Py_ssize_t first
    Py_ssize_t n             # number of chosen blocks
    int ftype
    Py_ssize_t cur           # position (0 .. n-1) of the block being checked or decoded
    int err                  # E_* code of the failure, OK while all is well
    int64_t detail_a         # numbers for the failure message
    int64_t detail_b


cdef inline Py_ssize_t _row(const Job* j, Py_ssize_t k) noexcept nogil:
    return <Py_ssize_t>j.rows[k] if j.rows != NULL else j.first + k


cdef Py_ssize_t _frame_pass(Job* j) noexcept nogil:
    """Bounds and counts of every chosen block; returns the total point count, -1 on failure."""
    cdef Py_ssize_t k, r, total = 0
    cdef int64_t off, size, count
    for k in range(j.n):
        j.cur = k
        r = _row(j, k)
        off = j.offsets[r]
        size = j.sizes[r]
        count = j.counts[r]
        if size < MIN_BLOCK_SIZE or off < 0 or off > j.base_len - size:
            j.err = E_BOUNDS
            j.detail_a = size
            return -1
        if count < 1 or count > 0x7FFFFFFF:
            j.err = E_COUNT_INDEX
            j.detail_a = count
            return -1
        total += <Py_ssize_t>count
    return total


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef int _checksum_pass(Job* j) except -1:
    """Verify every chosen block's checksum (one xxhash call each, under the GIL)."""
    cdef Py_ssize_t k, r
    cdef const uint8_t* p
    cdef Py_ssize_t body
    cdef uint64_t h
    for k in range(j.n):
        j.cur = k
        r = _row(j, k)
        p = j.base + j.offsets[r]
        body = <Py_ssize_t>j.sizes[r] - CHECKSUM_SIZE
        h = _xxh3_64(PyMemoryView_FromMemory(<char*>p, body, PyBUF_READ))
        if <uint32_t>(h & 0xFFFFFFFF) != _le32(p + body):
            j.err = E_CHECKSUM
            return 1
    return 0


cdef inline int _uvarint(const uint8_t* p, const uint8_t* end, uint64_t* v, Py_ssize_t* used) noexcept nogil:
    """LEB128 at p (at most 10 bytes, not past end); 0 on success, -1 if truncated or overlong."""
    cdef uint64_t x = 0
    cdef int shift = 0
    cdef const uint8_t* q = p
    while q < end and shift < 70:
        if shift == 63 and q[0] > 1:
            return -1
        x |= (<uint64_t>(q[0] & 0x7F)) << shift
        if q[0] < 0x80:
            v[0] = x
            used[0] = q - p + 1
            return 0
        q += 1
        shift += 7
    return -1


cdef int _times_of_block(Job* j, Py_ssize_t k, int64_t* t_out, Py_ssize_t* vpos) except -1 nogil:
    """Check block k's type byte and times length, decode its times into t_out[0:count] and
    check them against the index. Returns OK, or an E_* code (also stored in j.err); codec
    errors raise ValueError. ``vpos`` gets the offset of the values column within the block."""
    cdef Py_ssize_t r = _row(j, k)
    cdef const uint8_t* p = j.base + j.offsets[r]
    cdef Py_ssize_t body = <Py_ssize_t>j.sizes[r] - CHECKSUM_SIZE
    cdef Py_ssize_t count = <Py_ssize_t>j.counts[r]
    cdef Py_ssize_t used, got
    cdef uint64_t tlen
    j.cur = k
    if p[0] != j.ftype:
        j.err = E_TYPE
        j.detail_a = p[0]
        return E_TYPE
    if _uvarint(p + 1, p + body, &tlen, &used) < 0:
        j.err = E_VARINT
        return E_VARINT
    if tlen > <uint64_t>(body - 1 - used):
        j.err = E_TIMES_LEN
        return E_TIMES_LEN
    got = ccodecs.decode_times_into(p + 1 + used, <Py_ssize_t>tlen, t_out, count)
    if got != count:
        j.err = E_COUNT
        j.detail_a = got
        j.detail_b = count
        return E_COUNT
    if t_out[0] != j.tmin[r] or t_out[count - 1] != j.tmax[r]:
        j.err = E_TIMES_INDEX
        return E_TIMES_INDEX
    vpos[0] = 1 + used + <Py_ssize_t>tlen
    return OK


cdef int _decode_numeric(Job* j, int64_t* t_out, char* v_out) except -1 nogil:
    """Decode every chosen block of a float/integer/boolean entry into t_out / v_out."""
    cdef Py_ssize_t k, r, at = 0, count, body, vpos = 0, got = 0
    cdef const uint8_t* p
    for k in range(j.n):
        r = _row(j, k)
        if _times_of_block(j, k, t_out + at, &vpos) != OK:
            return 1
        p = j.base + j.offsets[r]
        body = <Py_ssize_t>j.sizes[r] - CHECKSUM_SIZE
        count = <Py_ssize_t>j.counts[r]
        if j.ftype == FT_FLOAT:
            got = ccodecs.decode_floats_into(p + vpos, body - vpos, (<double*>v_out) + at, count)
        elif j.ftype == FT_INTEGER:
            got = ccodecs.decode_ints_into(p + vpos, body - vpos, (<int64_t*>v_out) + at, count)
        else:
            got = ccodecs.decode_bools_into(p + vpos, body - vpos, (<uint8_t*>v_out) + at, count)
        if got != count:
            j.err = E_COUNT
            j.detail_a = got
            j.detail_b = count
            return 1
        at += count
    return 0


cdef Py_ssize_t _lower_bound(const int64_t* t, Py_ssize_t n, int64_t x) noexcept nogil:
    """First index i with t[i] >= x (t sorted)."""
    cdef Py_ssize_t a = 0, b = n, m
    while a < b:
        m = (a + b) >> 1
        if t[m] < x:
            a = m + 1
        else:
            b = m
    return a


cdef Py_ssize_t _upper_bound(const int64_t* t, Py_ssize_t n, int64_t x) noexcept nogil:
    """First index i with t[i] > x (t sorted)."""
    cdef Py_ssize_t a = 0, b = n, m
    while a < b:
        m = (a + b) >> 1
        if t[m] <= x:
            a = m + 1
        else:
            b = m
    return a


cdef _corruption(Job* j, path, what=None):
    cdef Py_ssize_t r = _row(j, j.cur)
    cdef int64_t off = j.offsets[r], size = j.sizes[r]
    if what is None:
        e = j.err
        if e == E_CHECKSUM:
            what = f"block checksum mismatch ({size}-byte block)"
        elif e == E_BOUNDS:
            what = f"{size}-byte block lies outside the file or is too small"
        elif e == E_COUNT_INDEX:
            what = f"index gives the block {j.detail_a} points"
        elif e == E_TYPE:
            what = f"block type byte {j.detail_a}, index says {j.ftype}"
        elif e == E_VARINT:
            what = "undecodable block: truncated or overlong times length"
        elif e == E_TIMES_LEN:
            what = "undecodable block: times column runs past the block"
        elif e == E_COUNT:
            what = f"block holds {j.detail_a} values in a column; index says {j.detail_b}"
        elif e == E_TIMES_INDEX:
            what = "block times disagree with the index"
        else:
            what = f"unknown failure {e}"
    return CorruptionError(path, int(off), what)


def _empty(int ftype):
    if ftype == FT_STRING:
        return np.zeros(0, dtype=np.int64), StringArray(np.zeros(1, dtype=np.int64), b"")
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=_DTYPES[ftype])


cdef object _run(Job* j, buf, path, int64_t lo, int64_t hi):
    """Acquire buf, run the three passes, trim; always releases the buffer."""
    cdef Py_buffer view
    cdef Py_ssize_t total, i, a, b, r, at, body
    cdef int rc = 0
    cdef int64_t[::1] tv
    cdef uint8_t[::1] vb
    cdef int64_t* tp
    cdef char* vp
    cdef Py_ssize_t vpos = 0
    if j.ftype < FT_FLOAT or j.ftype > FT_STRING:
        raise ValueError(f"unknown field type code {j.ftype}")
    if j.n == 0 or lo > hi:
        return _empty(j.ftype)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        j.base = <const uint8_t*>view.buf
        j.base_len = view.len
        j.err = OK
        with nogil:
            total = _frame_pass(j)
        if total < 0:
            raise _corruption(j, path)
        if _checksum_pass(j):
            raise _corruption(j, path)
        times = np.empty(total, dtype=np.int64)
        tv = times
        tp = &tv[0]
        if j.ftype != FT_STRING:
            values = np.empty(total, dtype=_DTYPES[j.ftype])
            vb = values.view(np.uint8)
            vp = <char*>&vb[0]
            try:
                with nogil:
                    rc = _decode_numeric(j, tp, vp)
            except ValueError as e:
                raise _corruption(j, path, f"undecodable block: {e}") from None
            if rc:
                raise _corruption(j, path)
        else:
            parts = []
            at = 0
            for i in range(j.n):
                r = _row(j, i)
                try:
                    rc = _times_of_block(j, i, tp + at, &vpos)
                    if rc:
                        raise _corruption(j, path)
                    body = j.sizes[r] - CHECKSUM_SIZE
                    offsets, data = pycodecs.decode_strings(
                        PyMemoryView_FromMemory(<char*>(j.base + j.offsets[r] + vpos), body - vpos, PyBUF_READ))
                except ValueError as e:
                    raise _corruption(j, path, f"undecodable block: {e}") from None
                if len(offsets) - 1 != j.counts[r]:
                    raise _corruption(j, path, f"block holds {len(offsets) - 1} values in a column; "
                                               f"index says {j.counts[r]}")
                parts.append(StringArray(offsets, data))
                at += j.counts[r]
            values = parts[0] if len(parts) == 1 else StringArray.concat(parts)
    finally:
        j.base = NULL
        PyBuffer_Release(&view)
    with nogil:
        a = _lower_bound(tp, total, lo)
        b = _upper_bound(tp, total, hi)
    if a == 0 and b == total:
        return times, values
    if j.ftype == FT_STRING:
        o = values.offsets[a:b + 1]
        return times[a:b], StringArray(o - o[0], values.data[int(o[0]):int(o[len(o) - 1])])
    return times[a:b], values[a:b]


cdef inline const int64_t* _ptr(const int64_t[::1] a) noexcept:
    return &a[0] if a.shape[0] else NULL


def _i64(a, name):
    arr = np.ascontiguousarray(a, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


def decode_blocks(buf, offsets, sizes, counts, min_times, max_times, int ftype, int64_t lo, int64_t hi,
                  path="<segment>"):
    """Decode the given blocks (index columns of the chosen blocks, in time order) into one
    (times int64, values) pair trimmed to lo <= t <= hi. ``buf`` is the whole mapped file (any
    buffer: mmap, bytes, uint8 array). Corruption raises CorruptionError(path, block offset, what).
    """
    cdef const int64_t[::1] o = _i64(offsets, "offsets")
    cdef const int64_t[::1] s = _i64(sizes, "sizes")
    cdef const int64_t[::1] c = _i64(counts, "counts")
    cdef const int64_t[::1] t0 = _i64(min_times, "min_times")
    cdef const int64_t[::1] t1 = _i64(max_times, "max_times")
    cdef Job j
    cdef Py_ssize_t n = o.shape[0]
    if not (s.shape[0] == c.shape[0] == t0.shape[0] == t1.shape[0] == n):
        raise ValueError("offsets, sizes, counts, min_times and max_times differ in length")
    j.offsets, j.sizes, j.counts, j.tmin, j.tmax = _ptr(o), _ptr(s), _ptr(c), _ptr(t0), _ptr(t1)
    j.rows = NULL
    j.first = 0
    j.n = n
    j.ftype = ftype
    return _run(&j, buf, path, lo, hi)


cdef class BlockScanner:
    """The block columns of one segment's index, held once, so a read costs no array set-up.

    ``scan`` reads a contiguous run of an entry's blocks (choosing the ones that overlap the
    range by binary search over the index times); ``scan_rows`` reads chosen rows.
    """
    cdef readonly object path
    cdef const int64_t[::1] offsets
    cdef const int64_t[::1] sizes
    cdef const int64_t[::1] counts
    cdef const int64_t[::1] tmin
    cdef const int64_t[::1] tmax

    def __init__(self, path, offsets, sizes, counts, min_times, max_times):
        self.path = path
        self.offsets = _i64(offsets, "offsets")
        self.sizes = _i64(sizes, "sizes")
        self.counts = _i64(counts, "counts")
        self.tmin = _i64(min_times, "min_times")
        self.tmax = _i64(max_times, "max_times")
        n = self.offsets.shape[0]
        if not (self.sizes.shape[0] == self.counts.shape[0] == self.tmin.shape[0] == self.tmax.shape[0] == n):
            raise ValueError("offsets, sizes, counts, min_times and max_times differ in length")

    cdef void _fill(self, Job* j, int ftype) noexcept:
        j.offsets, j.sizes, j.counts = _ptr(self.offsets), _ptr(self.sizes), _ptr(self.counts)
        j.tmin, j.tmax = _ptr(self.tmin), _ptr(self.tmax)
        j.ftype = ftype

    def scan(self, buf, Py_ssize_t first, Py_ssize_t last, int ftype, int64_t lo, int64_t hi):
        """Points with lo <= t <= hi from blocks [first, last) (one entry's blocks, time order)."""
        cdef Job j
        cdef Py_ssize_t a, b, nb = self.offsets.shape[0]
        if first < 0 or last > nb or first > last:
            raise IndexError(f"block rows [{first}, {last}) outside 0..{nb}")
        self._fill(&j, ftype)
        a, b = first, last
        if a < b and (lo > self.tmin[a] or hi < self.tmax[b - 1]):
            # The entry's blocks are disjoint and in time order: overlap is one contiguous run.
            a = first + _lower_bound(&self.tmax[first], last - first, lo)
            b = first + _upper_bound(&self.tmin[first], last - first, hi)
        j.rows = NULL
        j.first = a
        j.n = b - a if b > a else 0
        return _run(&j, buf, self.path, lo, hi)

    def scan_rows(self, buf, rows, int ftype, int64_t lo, int64_t hi):
        """Points with lo <= t <= hi from the given block rows (ascending, same entry)."""
        cdef const int64_t[::1] rv = _i64(rows, "rows")
        cdef Job j
        cdef Py_ssize_t k, nb = self.offsets.shape[0]
        cdef int64_t prev = -1
        for k in range(rv.shape[0]):
            if rv[k] <= prev or rv[k] >= nb:
                raise IndexError(f"block rows must be strictly ascending within 0..{nb - 1}")
            prev = rv[k]
        self._fill(&j, ftype)
        j.rows = _ptr(rv)
        j.first = 0
        j.n = rv.shape[0]
        return _run(&j, buf, self.path, lo, hi)
