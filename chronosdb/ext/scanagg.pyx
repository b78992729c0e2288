"""chronosdb.ext.scanagg: scan the blocks of many series and aggregate them into group x window cells.

Input layout. The caller (a shard read for one field) hands over the index columns of every chosen
segment block -- offset, size, count, first and last time -- concatenated entry after entry, each
entry's blocks in time order, plus ``entry_starts`` (blocks of entry e are rows
``[entry_starts[e], entry_starts[e+1])``) and ``entry_group`` (the output row of each entry). A block
is framed as in docs/format/segment.md::

    ftype u8 | uvarint times_len | times column | values column | u32 low half of xxh3-64(body)

Output layout. One C-contiguous (ngroups, nwin) array per statistic -- count, sum, min, max, first,
last, first_time, last_time -- so cell (g, w) sits at ``g * nwin + w`` in every array. Window w is
``[start + w*every, start + (w+1)*every)``; ``every == 0`` means one window holding ``[lo, hi]``.

Why one call: the per-series path (read -> window bounds -> partial.add_points) costs ~30 us of
Python per (series, field); a TSBS double-groupby query makes ~1000 of them. Here the whole field
of a shard is one call, and points go from the decoder's scratch buffer straight into the cells.

Passes:

1. framing and arguments (nogil): blocks inside the buffer, counts positive, entry rows in order,
   groups in range, each entry's blocks in time order;
2. checksums (with the GIL): one call of the ``xxhash`` library per block that will be decoded.
   No C xxh3 is available to Cython in this tree (see blockscan.pyx, which measured the call at
   ~0.1 us against ~4 us to decode a 1000-point block); everything else runs without the GIL;
3. decode and aggregate (nogil): per block, the times and values columns are decoded into one
   scratch pair sized for the largest block, checked against the index, trimmed to the range by
   binary search and cut into runs of one window each; a run updates its cell in a tight loop.

Semantics match the engine's kernels (chronosdb/ext/aggregates.pyx and the partials):

- sum: each entry's points of a window are summed in time order from 0 (float64, or int64 wrapping
  through uint64), and that per-entry sum is added to the cell -- the same additions, in the same
  order, as ``SumPartial.add_points`` called per entry in entry order, so float sums agree bit for
  bit;
- count counts NaN, and sum adds it; min/max skip NaN (NaN only when every point is NaN); among
  equal values the first one met is kept;
- first/last by time; at equal times across entries the lower entry index wins first, the higher
  one wins last.

Blocks that lie wholly outside ``[lo, hi]`` intersected with the windows are not read at all (and
so not checksummed). Corruption raises ``CorruptionError(path, offset of the bad block, what)``.
``chronosdb/ext/scanagg_ref.py`` is the plain-Python twin the tests compare against.
"""
cimport cython
from cpython.buffer cimport PyBUF_READ, PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from chronosdb.ext cimport codecs as ccodecs

import numpy as np
import xxhash

from chronosdb.model.errors import CorruptionError

cdef enum:
    FT_FLOAT = 1
    FT_INTEGER = 2

cdef enum:
    CHECKSUM_SIZE = 4
    MIN_BLOCK_SIZE = 6  # type byte + 1-byte times length + checksum (layout.MIN_BLOCK_SIZE)

# What went wrong in a nogil pass; _corruption turns it into a CorruptionError message.
cdef enum:
    OK = 0
    E_BOUNDS = 1       # block outside the buffer or smaller than the minimum
    E_COUNT_INDEX = 2  # the index's count is not positive
    E_TYPE = 3         # type byte differs from the field's type
    E_VARINT = 4       # times length varint truncated or overlong
    E_TIMES_LEN = 5    # times column runs past the block
    E_COUNT = 6        # a column decoded to a count other than the index's
    E_TIMES_INDEX = 7  # first/last decoded time differs from the index's
    E_CHECKSUM = 8     # stored checksum differs from the computed one

_xxh3_64 = xxhash.xxh3_64_intdigest
_I64_MAX = 2 ** 63 - 1

ctypedef fused num_t:
    double
    int64_t


class WindowAggregates:
    """count/sum/min/max/first/last (+ first_time/last_time) per (group, window) cell.

    Every attribute is a C-contiguous numpy array of shape (ngroups, nwin). Cells with count 0
    hold zeros elsewhere (callers must not read them). sum/min/max/first/last are float64 for
    float fields and int64 for integer fields (sum wraps around like the engine's kernels).
    """
    __slots__ = ("count", "sum", "min", "max", "first", "last", "first_time", "last_time")

    def __init__(self, count, sum, min, max, first, last, first_time, last_time):
        self.count, self.sum, self.min, self.max = count, sum, min, max
        self.first, self.last, self.first_time, self.last_time = first, last, first_time, last_time

    def __repr__(self):
        return f"WindowAggregates(shape={self.count.shape}, dtype={self.sum.dtype}, points={int(self.count.sum())})"


cdef struct Scan:
    const uint8_t* base       # the mapped file
    Py_ssize_t base_len
    const int64_t* offsets    # per chosen block
    const int64_t* sizes
    const int64_t* counts
    const int64_t* tmin
    const int64_t* tmax
    const uint8_t* wanted     # per block: 1 when it overlaps the effective range (decoded)
    const int64_t* estart     # E+1 block rows
    const int32_t* egroup     # E groups
    Py_ssize_t nblocks
    Py_ssize_t nentries
    int ftype
    int64_t lo                # effective inclusive range: [lo, hi] within the windows
    int64_t hi
    int64_t start
    uint64_t every            # 0: one window
    Py_ssize_t nwin           # windows per group row (stride of the outputs)
    Py_ssize_t cur            # block row being checked or decoded
    int err
    int64_t detail_a
    int64_t detail_b
    # outputs, ngroups * nwin each
    int64_t* count
    int64_t* ftime
    int64_t* ltime
    # scratch, one block
    int64_t* tbuf


cdef inline uint32_t _le32(const uint8_t* p) noexcept nogil:
    return <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


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


cdef Py_ssize_t _lower_bound(const int64_t* t, Py_ssize_t a, Py_ssize_t b, int64_t x) noexcept nogil:
    """First index i in [a, b) with t[i] >= x (t sorted), b if none."""
    cdef Py_ssize_t m
    while a < b:
        m = (a + b) >> 1
        if t[m] < x:
            a = m + 1
        else:
            b = m
    return a


cdef Py_ssize_t _upper_bound(const int64_t* t, Py_ssize_t a, Py_ssize_t b, int64_t x) noexcept nogil:
    """First index i in [a, b) with t[i] > x (t sorted), b if none."""
    cdef Py_ssize_t m
    while a < b:
        m = (a + b) >> 1
        if t[m] <= x:
            a = m + 1
        else:
            b = m
    return a


cdef int64_t _frame_pass(Scan* s) noexcept nogil:
    """Bounds and counts of every wanted block; returns the largest count, -1 on failure."""
    cdef Py_ssize_t k
    cdef int64_t off, size, count, biggest = 0
    for k in range(s.nblocks):
        if not s.wanted[k]:
            continue
        s.cur = k
        off = s.offsets[k]
        size = s.sizes[k]
        count = s.counts[k]
        if size < MIN_BLOCK_SIZE or off < 0 or off > s.base_len - size:
            s.err = E_BOUNDS
            return -1
        if count < 1 or count > 0x7FFFFFFF:
            s.err = E_COUNT_INDEX
            s.detail_a = count
            return -1
        if count > biggest:
            biggest = count
    return biggest


cdef int _checksum_pass(Scan* s) except -1:
    """Verify the checksum of every wanted block (one xxhash call each, under the GIL)."""
    cdef Py_ssize_t k, body
    cdef const uint8_t* p
    cdef uint64_t h
    for k in range(s.nblocks):
        if not s.wanted[k]:
            continue
        s.cur = k
        p = s.base + s.offsets[k]
        body = <Py_ssize_t>s.sizes[k] - CHECKSUM_SIZE
        h = _xxh3_64(PyMemoryView_FromMemory(<char*>p, body, PyBUF_READ))
        if <uint32_t>(h & 0xFFFFFFFF) != _le32(p + body):
            s.err = E_CHECKSUM
            return 1
    return 0


cdef int _decode_block(Scan* s, Py_ssize_t k, num_t* vbuf) except -1 nogil:
    """Decode block k into s.tbuf / vbuf and check it against the index; OK or an E_* code.
    Codec errors raise ValueError (the wrapper names the block from s.cur)."""
    cdef const uint8_t* p = s.base + s.offsets[k]
    cdef Py_ssize_t body = <Py_ssize_t>s.sizes[k] - CHECKSUM_SIZE
    cdef Py_ssize_t count = <Py_ssize_t>s.counts[k]
    cdef Py_ssize_t used, got, vpos
    cdef uint64_t tlen
    s.cur = k
    if p[0] != s.ftype:
        s.err = E_TYPE
        s.detail_a = p[0]
        return E_TYPE
    if _uvarint(p + 1, p + body, &tlen, &used) < 0:
        s.err = E_VARINT
        return E_VARINT
    if tlen > <uint64_t>(body - 1 - used):
        s.err = E_TIMES_LEN
        return E_TIMES_LEN
    got = ccodecs.decode_times_into(p + 1 + used, <Py_ssize_t>tlen, s.tbuf, count)
    if got != count:
        s.err = E_COUNT
        s.detail_a = got
        s.detail_b = count
        return E_COUNT
    if s.tbuf[0] != s.tmin[k] or s.tbuf[count - 1] != s.tmax[k]:
        s.err = E_TIMES_INDEX
        return E_TIMES_INDEX
    vpos = 1 + used + <Py_ssize_t>tlen
    if num_t is double:
        got = ccodecs.decode_floats_into(p + vpos, body - vpos, vbuf, count)
    else:
        got = ccodecs.decode_ints_into(p + vpos, body - vpos, vbuf, count)
    if got != count:
        s.err = E_COUNT
        s.detail_a = got
        s.detail_b = count
        return E_COUNT
    return OK


cdef void _nan_aware_bounds(const double* v, Py_ssize_t i, Py_ssize_t j, double* lo, double* hi) noexcept nogil:
    """Min and max of v[i:j] skipping NaN; NaN when every value is NaN (slow path of _scan)."""
    cdef Py_ssize_t r
    cdef double x, mn = NAN, mx = NAN
    for r in range(i, j):
        x = v[r]
        if x < mn or mn != mn:
            mn = x
        if x > mx or mx != mx:
            mx = x
    lo[0] = mn
    hi[0] = mx


cdef int _scan(Scan* s, num_t* vbuf, num_t* osum, num_t* omin, num_t* omax,
               num_t* ofirst, num_t* olast) except -1 nogil:
    """Decode every wanted block and fold its points into the cells; 0, or 1 with s.err set."""
    cdef Py_ssize_t e, k, n, a, b, i, j, r, c, cell = -1
    cdef uint64_t w, lim, every = s.every
    cdef uint64_t ustart = <uint64_t>s.start
    cdef int64_t g
    cdef int64_t* t = s.tbuf
    cdef double facc = 0.0
    cdef uint64_t iacc = 0
    cdef num_t x, mn, mx
    cdef double rmin, rmax
    for e in range(s.nentries):
        g = s.egroup[e]
        cell = -1
        for k in range(s.estart[e], s.estart[e + 1]):
            if not s.wanted[k]:
                continue
            if _decode_block(s, k, vbuf) != OK:
                return 1
            n = <Py_ssize_t>s.counts[k]
            a = 0 if s.tmin[k] >= s.lo else _lower_bound(t, 0, n, s.lo)
            b = n if s.tmax[k] <= s.hi else _upper_bound(t, a, n, s.hi)
            i = a
            while i < b:
                # One run: the points [i, j) of window w (t >= start holds: lo >= start).
                if every == 0:
                    w = 0
                    j = b
                else:
                    w = (<uint64_t>t[i] - ustart) // every
                    if w >= <uint64_t>s.nwin:
                        break
                    # (w + 1) * every cannot wrap: the wrapper caps nwin so that the last
                    # window starts at or below INT64_MAX, i.e. nwin * every < 2^64.
                    lim = (w + 1) * every
                    j = i + 1
                    while j < b and <uint64_t>t[j] - ustart < lim:
                        j += 1
                c = g * s.nwin + <Py_ssize_t>w
                if c != cell:
                    # Flush the previous window's per-entry sum before starting a new one.
                    if cell >= 0:
                        if num_t is double:
                            osum[cell] += facc
                        else:
                            osum[cell] = <int64_t>(<uint64_t>osum[cell] + iacc)
                    cell = c
                    facc = 0.0
                    iacc = 0
                if s.count[c] == 0:
                    mn = vbuf[i]
                    mx = vbuf[i]
                    ofirst[c] = vbuf[i]
                    s.ftime[c] = t[i]
                    olast[c] = vbuf[j - 1]
                    s.ltime[c] = t[j - 1]
                else:
                    mn = omin[c]
                    mx = omax[c]
                    if t[i] < s.ftime[c]:
                        ofirst[c] = vbuf[i]
                        s.ftime[c] = t[i]
                    if t[j - 1] >= s.ltime[c]:
                        olast[c] = vbuf[j - 1]
                        s.ltime[c] = t[j - 1]
                s.count[c] += j - i
                if num_t is double:
                    # Branchless: a NaN x fails both comparisons, so it never replaces a bound.
                    # rmin/rmax stay at +-inf when every point of the run is NaN (or is itself
                    # +-inf); _nan_aware_bounds sorts that rare case out exactly.
                    rmin = INFINITY
                    rmax = -INFINITY
                    for r in range(i, j):
                        x = vbuf[r]
                        facc += x
                        rmin = x if x < rmin else rmin
                        rmax = x if x > rmax else rmax
                    if rmin == INFINITY or rmax == -INFINITY:
                        _nan_aware_bounds(vbuf, i, j, &rmin, &rmax)
                    # NaN never wins; a NaN held so far loses to any value.
                    if rmin < mn or mn != mn:
                        mn = rmin
                    if rmax > mx or mx != mx:
                        mx = rmax
                else:
                    for r in range(i, j):
                        x = vbuf[r]
                        iacc += <uint64_t>x
                        mn = x if x < mn else mn
                        mx = x if x > mx else mx
                omin[c] = mn
                omax[c] = mx
                i = j
        if cell >= 0:
            if num_t is double:
                osum[cell] += facc
            else:
                osum[cell] = <int64_t>(<uint64_t>osum[cell] + iacc)
    return 0


cdef _corruption(Scan* s, path, what=None):
    cdef Py_ssize_t k = s.cur
    cdef int64_t off = s.offsets[k], size = s.sizes[k]
    if what is None:
        e = s.err
        if e == E_CHECKSUM:
            what = f"block checksum mismatch ({size}-byte block)"
        elif e == E_BOUNDS:
            what = f"{size}-byte block lies outside the file or is too small"
        elif e == E_COUNT_INDEX:
            what = f"index gives the block {s.detail_a} points"
        elif e == E_TYPE:
            what = f"block type byte {s.detail_a}, index says {s.ftype}"
        elif e == E_VARINT:
            what = "undecodable block: truncated or overlong times length"
        elif e == E_TIMES_LEN:
            what = "undecodable block: times column runs past the block"
        elif e == E_COUNT:
            what = f"block holds {s.detail_a} values in a column; index says {s.detail_b}"
        elif e == E_TIMES_INDEX:
            what = "block times disagree with the index"
        else:
            what = f"unknown failure {e}"
    return CorruptionError(path, int(off), what)


def _i64(a, name):
    arr = np.ascontiguousarray(a, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


def effective_range(int64_t lo, int64_t hi, int64_t start, int64_t every, int nwin):
    """(lo, hi, nwin_reachable) actually aggregated: [lo, hi] cut to the windows, and nwin capped
    to the windows that start at or below INT64_MAX. lo > hi means nothing to read."""
    if every < 0:
        raise ValueError(f"every must be >= 0, got {every}")
    if nwin < 0:
        raise ValueError(f"nwin must be >= 0, got {nwin}")
    if every == 0:
        if nwin != 1:
            raise ValueError(f"every == 0 means one window [lo, hi]; nwin must be 1, got {nwin}")
        return lo, hi, 1
    reach = min(nwin, (_I64_MAX - start) // every + 1)
    if reach <= 0:
        return 1, 0, 0
    elo = max(lo, start)
    ehi = min(hi, start + reach * every - 1)
    return elo, ehi, reach


def window_aggregate(buf, path, int ftype, offsets, sizes, counts, min_times, max_times,
                     entry_starts, entry_group, int64_t lo, int64_t hi, int64_t start, int64_t every,
                     int nwin, int ngroups):
    """Scan the chosen blocks of every entry and aggregate their points into (ngroups, nwin) cells.

    ``buf`` is the whole mapped segment (any buffer). Block columns are int64, entry after entry,
    each entry's blocks in time order; blocks of entry e are rows
    ``[entry_starts[e], entry_starts[e+1])`` and its points go to row ``entry_group[e]``. Only
    points with lo <= t <= hi inside a window count. Returns a WindowAggregates.
    """
    if ftype != FT_FLOAT and ftype != FT_INTEGER:
        raise ValueError(f"window_aggregate handles float (1) and integer (2) fields, not type {ftype}")
    if ngroups < 0:
        raise ValueError(f"ngroups must be >= 0, got {ngroups}")
    elo, ehi, reach = effective_range(lo, hi, start, every, nwin)
    cdef const int64_t[::1] o = _i64(offsets, "offsets")
    cdef const int64_t[::1] sz = _i64(sizes, "sizes")
    cdef const int64_t[::1] cn = _i64(counts, "counts")
    cdef const int64_t[::1] t0 = _i64(min_times, "min_times")
    cdef const int64_t[::1] t1 = _i64(max_times, "max_times")
    cdef const int64_t[::1] es = _i64(entry_starts, "entry_starts")
    cdef const int32_t[::1] eg = np.ascontiguousarray(entry_group, dtype=np.int32).reshape(-1)
    cdef Py_ssize_t nb = o.shape[0], ne = eg.shape[0], e, k, bad = -1
    if not (sz.shape[0] == cn.shape[0] == t0.shape[0] == t1.shape[0] == nb):
        raise ValueError("offsets, sizes, counts, min_times and max_times differ in length")
    if es.shape[0] != ne + 1:
        raise ValueError(f"entry_starts must hold len(entry_group) + 1 = {ne + 1} rows, got {es.shape[0]}")
    if es[0] != 0 or es[ne] != nb:
        raise ValueError(f"entry_starts must run from 0 to the block count {nb}, got {es[0]} .. {es[ne]}")
    for e in range(ne):
        if es[e + 1] < es[e]:
            raise ValueError(f"entry_starts decreases at entry {e}: {es[e]} then {es[e + 1]}")
        if eg[e] < 0 or eg[e] >= ngroups:
            raise ValueError(f"entry_group[{e}] = {eg[e]} outside 0..{ngroups - 1}")
    cdef int64_t c_lo = elo, c_hi = ehi
    cdef Py_ssize_t nreach = reach
    wanted_arr = np.zeros(nb, dtype=np.uint8)
    cdef uint8_t[::1] wanted = wanted_arr
    with nogil:
        for e in range(ne):
            for k in range(es[e], es[e + 1]):
                if k > es[e] and t0[k] < t1[k - 1]:
                    bad = e
                wanted[k] = c_lo <= c_hi and nreach > 0 and t1[k] >= c_lo and t0[k] <= c_hi
    if bad >= 0:
        raise ValueError(f"blocks of entry {bad} are not in time order")

    dtype = np.float64 if ftype == FT_FLOAT else np.int64
    shape = (ngroups, nwin)
    count = np.zeros(shape, dtype=np.int64)
    osum, omin, omax = np.zeros(shape, dtype), np.zeros(shape, dtype), np.zeros(shape, dtype)
    ofirst, olast = np.zeros(shape, dtype), np.zeros(shape, dtype)
    ftime, ltime = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    result = WindowAggregates(count, osum, omin, omax, ofirst, olast, ftime, ltime)
    if nb == 0 or ngroups == 0 or nwin == 0 or not wanted_arr.any():
        return result

    cdef Scan s
    cdef Py_buffer view
    cdef int rc = 0
    cdef int64_t biggest
    cdef int64_t[:, ::1] cv = count, fv = ftime, lv = ltime
    cdef double[:, ::1] fsum, fmin, fmax, ffirst, flast
    cdef int64_t[:, ::1] isum, imin, imax, ifirst, ilast
    cdef int64_t[::1] tscratch
    cdef double[::1] fscratch
    cdef int64_t[::1] iscratch
    s.offsets, s.sizes, s.counts, s.tmin, s.tmax = &o[0], &sz[0], &cn[0], &t0[0], &t1[0]
    s.wanted = &wanted[0]
    s.estart = &es[0]
    s.egroup = &eg[0] if ne else NULL
    s.nblocks, s.nentries, s.ftype = nb, ne, ftype
    s.lo, s.hi, s.start, s.every, s.nwin = c_lo, c_hi, start, <uint64_t>every, nwin
    s.count, s.ftime, s.ltime = &cv[0, 0], &fv[0, 0], &lv[0, 0]
    s.err = OK
    s.cur = 0
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        s.base = <const uint8_t*>view.buf
        s.base_len = view.len
        with nogil:
            biggest = _frame_pass(&s)
        if biggest < 0:
            raise _corruption(&s, path)
        if _checksum_pass(&s):
            raise _corruption(&s, path)
        tscratch = np.empty(biggest, dtype=np.int64)
        s.tbuf = &tscratch[0]
        try:
            if ftype == FT_FLOAT:
                fscratch = np.empty(biggest, dtype=np.float64)
                fsum, fmin, fmax, ffirst, flast = osum, omin, omax, ofirst, olast
                with nogil:
                    rc = _scan(&s, &fscratch[0], &fsum[0, 0], &fmin[0, 0], &fmax[0, 0],
                               &ffirst[0, 0], &flast[0, 0])
            else:
                iscratch = np.empty(biggest, dtype=np.int64)
                isum, imin, imax, ifirst, ilast = osum, omin, omax, ofirst, olast
                with nogil:
                    rc = _scan(&s, &iscratch[0], &isum[0, 0], &imin[0, 0], &imax[0, 0],
                               &ifirst[0, 0], &ilast[0, 0])
        except ValueError as exc:
            raise _corruption(&s, path, f"undecodable block: {exc}") from None
        if rc:
            raise _corruption(&s, path)
    finally:
        s.base = NULL
        PyBuffer_Release(&view)
    return result
