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
2. checksums (nogil): XXH3-64 of every block that will be decoded, by a C port of the algorithm
   kept in this module (blockscan.pyx calls the ``xxhash`` library under the GIL instead; here the
   whole scan must run without the GIL);
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

from chronosdb.model.errors import CorruptionError

cdef enum:
    FT_FLOAT = 1
    FT_INTEGER = 2

cdef enum:
    CHECKSUM_SIZE = 4
    MIN_BLOCK_SIZE = 6  # type byte + 1-byte times length + checksum (layout.MIN_BLOCK_SIZE)
    # codecs.MAX_VALUES: no column decodes to more, so a larger index count is corruption (and
    # must not size the scratch buffers).
    MAX_BLOCK_VALUES = 16777216

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


# XXH3-64 (seed 0, default secret) in C, so the checksum pass runs without the GIL. Written from
# the published algorithm (xxHash's doc/xxhash_spec.md); the 192-byte secret below is the
# algorithm's fixed default key, a constant of the format like a CRC polynomial. The tests check
# it against the ``xxhash`` library for every length class (0..3, 4..8, 9..16, 17..128, 129..240
# and the striped long path). It belongs in include/ (a request to whoever owns that directory);
# until then it lives here as a verbatim C block.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    static const uint8_t sa_xxh3_key[192] = {
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    };

    #define SA_P32_1 0x9E3779B1U
    #define SA_P32_2 0x85EBCA77U
    #define SA_P32_3 0xC2B2AE3DU
    #define SA_P64_1 0x9E3779B185EBCA87ULL
    #define SA_P64_2 0xC2B2AE3D27D4EB4FULL
    #define SA_P64_3 0x165667B19E3779F9ULL
    #define SA_P64_4 0x85EBCA77C2B2AE63ULL
    #define SA_P64_5 0x27D4EB2F165667C5ULL
    #define SA_MIX_1 0x165667919E3779F9ULL
    #define SA_MIX_2 0x9FB21C651E98DF25ULL

    /* Little-endian loads through memcpy: no alignment assumptions, one mov on x86. */
    static inline uint32_t sa_le32(const uint8_t *p) {
        uint32_t v; memcpy(&v, p, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap32(v);
    #endif
        return v;
    }
    static inline uint64_t sa_le64(const uint8_t *p) {
        uint64_t v; memcpy(&v, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
    #endif
        return v;
    }
    static inline uint64_t sa_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

    /* Full 64x64 -> 128 product, folded by xor of its halves. */
    static inline uint64_t sa_mulfold(uint64_t a, uint64_t b) {
        unsigned __int128 p = (unsigned __int128)a * b;
        return (uint64_t)p ^ (uint64_t)(p >> 64);
    }
    /* XXH64's final mix (used by the 0..3 byte path). */
    static inline uint64_t sa_xxh64_final(uint64_t h) {
        h ^= h >> 33; h *= SA_P64_2; h ^= h >> 29; h *= SA_P64_3; h ^= h >> 32;
        return h;
    }
    static inline uint64_t sa_final(uint64_t h) {
        h ^= h >> 37; h *= SA_MIX_1; h ^= h >> 32;
        return h;
    }
    /* Mix 16 input bytes with 16 key bytes. */
    static inline uint64_t sa_mix16(const uint8_t *in, const uint8_t *key) {
        return sa_mulfold(sa_le64(in) ^ sa_le64(key), sa_le64(in + 8) ^ sa_le64(key + 8));
    }

    static uint64_t sa_xxh3_short(const uint8_t *in, size_t n) {
        const uint8_t *k = sa_xxh3_key;
        if (n > 8) {  /* 9..16: first and last eight bytes */
            uint64_t a = sa_le64(in) ^ (sa_le64(k + 24) ^ sa_le64(k + 32));
            uint64_t b = sa_le64(in + n - 8) ^ (sa_le64(k + 40) ^ sa_le64(k + 48));
            return sa_final((uint64_t)n + __builtin_bswap64(a) + b + sa_mulfold(a, b));
        }
        if (n >= 4) {  /* 4..8: first and last four bytes as one 64-bit word */
            uint64_t w = (uint64_t)sa_le32(in + n - 4) + ((uint64_t)sa_le32(in) << 32);
            uint64_t h = w ^ (sa_le64(k + 8) ^ sa_le64(k + 16));
            h ^= sa_rotl64(h, 49) ^ sa_rotl64(h, 24);
            h *= SA_MIX_2;
            h ^= (h >> 35) + (uint64_t)n;
            h *= SA_MIX_2;
            return h ^ (h >> 28);
        }
        if (n > 0) {  /* 1..3: first, middle and last byte plus the length */
            uint32_t w = ((uint32_t)in[0] << 16) | ((uint32_t)in[n >> 1] << 24) | (uint32_t)in[n - 1]
                         | ((uint32_t)n << 8);
            return sa_xxh64_final((uint64_t)w ^ (uint64_t)(sa_le32(k) ^ sa_le32(k + 4)));
        }
        return sa_xxh64_final(sa_le64(k + 56) ^ sa_le64(k + 64));
    }

    static uint64_t sa_xxh3_mid(const uint8_t *in, size_t n) {
        const uint8_t *k = sa_xxh3_key;
        uint64_t h = (uint64_t)n * SA_P64_1;
        if (n <= 128) {  /* 17..128: pairs of 16-byte chunks from both ends, outermost last */
            if (n > 32) {
                if (n > 64) {
                    if (n > 96) {
                        h += sa_mix16(in + 48, k + 96);
                        h += sa_mix16(in + n - 64, k + 112);
                    }
                    h += sa_mix16(in + 32, k + 64);
                    h += sa_mix16(in + n - 48, k + 80);
                }
                h += sa_mix16(in + 16, k + 32);
                h += sa_mix16(in + n - 32, k + 48);
            }
            h += sa_mix16(in, k);
            h += sa_mix16(in + n - 16, k + 16);
            return sa_final(h);
        }
        /* 129..240: eight chunks, a mix, the remaining chunks against the key shifted by 3,
           and the last 16 bytes against key offset 136 - 17. */
        size_t rounds = n / 16, i;
        for (i = 0; i < 8; i++) h += sa_mix16(in + 16 * i, k + 16 * i);
        h = sa_final(h);
        for (i = 8; i < rounds; i++) h += sa_mix16(in + 16 * i, k + 16 * (i - 8) + 3);
        h += sa_mix16(in + n - 16, k + 119);
        return sa_final(h);
    }

    /* One 64-byte stripe into the eight lanes. */
    static inline void sa_stripe(uint64_t *acc, const uint8_t *in, const uint8_t *key) {
        for (int i = 0; i < 8; i++) {
            uint64_t d = sa_le64(in + 8 * i);
            uint64_t dk = d ^ sa_le64(key + 8 * i);
            acc[i ^ 1] += d;
            acc[i] += (uint64_t)(uint32_t)dk * (dk >> 32);
        }
    }
    static inline void sa_scramble(uint64_t *acc, const uint8_t *key) {
        for (int i = 0; i < 8; i++) {
            uint64_t a = acc[i];
            a ^= a >> 47;
            a ^= sa_le64(key + 8 * i);
            acc[i] = a * SA_P32_1;
        }
    }

    static uint64_t sa_xxh3_long(const uint8_t *in, size_t n) {
        /* 16 stripes of 64 bytes per 1024-byte round, the key advancing 8 bytes per stripe;
           a scramble after every full round; then the stripes of the tail and the last 64
           bytes of input (against key offset 192 - 64 - 7); lanes merged from key offset 11. */
        const uint8_t *k = sa_xxh3_key;
        uint64_t acc[8] = {SA_P32_3, SA_P64_1, SA_P64_2, SA_P64_3, SA_P64_4, SA_P32_2, SA_P64_5, SA_P32_1};
        const size_t per_round = 16, round_len = 64 * 16;
        size_t rounds = (n - 1) / round_len, r, s, tail;
        for (r = 0; r < rounds; r++) {
            for (s = 0; s < per_round; s++) sa_stripe(acc, in + r * round_len + 64 * s, k + 8 * s);
            sa_scramble(acc, k + 192 - 64);
        }
        tail = ((n - 1) - round_len * rounds) / 64;
        for (s = 0; s < tail; s++) sa_stripe(acc, in + rounds * round_len + 64 * s, k + 8 * s);
        sa_stripe(acc, in + n - 64, k + 192 - 64 - 7);
        uint64_t h = (uint64_t)n * SA_P64_1;
        for (int i = 0; i < 4; i++)
            h += sa_mulfold(acc[2 * i] ^ sa_le64(k + 11 + 16 * i), acc[2 * i + 1] ^ sa_le64(k + 11 + 16 * i + 8));
        return sa_final(h);
    }

    static uint64_t sa_xxh3_64(const uint8_t *in, size_t n) {
        if (n <= 16) return sa_xxh3_short(in, n);
        if (n <= 240) return sa_xxh3_mid(in, n);
        return sa_xxh3_long(in, n);
    }
    """
    uint64_t sa_xxh3_64(const uint8_t* data, size_t n) nogil


def xxh3_64(data) -> int:
    """XXH3-64 (seed 0) of a bytes-like object, by the module's own C port (tests compare it with
    the xxhash library)."""
    cdef const uint8_t[::1] v = memoryview(data).cast("B")
    cdef uint64_t h
    if v.shape[0] == 0:
        return sa_xxh3_64(<const uint8_t*>b"", 0)
    with nogil:
        h = sa_xxh3_64(&v[0], <size_t>v.shape[0])
    return h


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
        if count < 1 or count > MAX_BLOCK_VALUES:
            s.err = E_COUNT_INDEX
            s.detail_a = count
            return -1
        if count > biggest:
            biggest = count
    return biggest


cdef int _checksum_pass(Scan* s) noexcept nogil:
    """Verify the checksum of every wanted block; 0, or 1 with s.err/s.cur set."""
    cdef Py_ssize_t k, body
    cdef const uint8_t* p
    for k in range(s.nblocks):
        if not s.wanted[k]:
            continue
        p = s.base + s.offsets[k]
        body = <Py_ssize_t>s.sizes[k] - CHECKSUM_SIZE
        if <uint32_t>sa_xxh3_64(p, <size_t>body) != _le32(p + body):  # low 32 bits
            s.cur = k
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
                    # Points of different series at the same time: the greater value wins,
                    # for first and for last alike (InfluxDB 1.x's reducers; a NaN never wins).
                    if t[i] < s.ftime[c] or (t[i] == s.ftime[c] and vbuf[i] > ofirst[c]):
                        ofirst[c] = vbuf[i]
                        s.ftime[c] = t[i]
                    if t[j - 1] > s.ltime[c] or (t[j - 1] == s.ltime[c] and vbuf[j - 1] > olast[c]):
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
    groups_arr = np.asarray(entry_group)
    if groups_arr.ndim != 1 or (groups_arr.size and groups_arr.dtype.kind not in "iu"):
        raise ValueError("entry_group must be a one-dimensional integer array")
    if groups_arr.dtype != np.int32 and groups_arr.size and (groups_arr.min() < 0 or groups_arr.max() >= ngroups):
        bad_e = int(np.flatnonzero((groups_arr < 0) | (groups_arr >= ngroups))[0])
        raise ValueError(f"entry_group[{bad_e}] = {int(groups_arr[bad_e])} outside 0..{ngroups - 1}")
    cdef const int32_t[::1] eg = np.ascontiguousarray(groups_arr, dtype=np.int32)
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
            if biggest >= 0:
                rc = _checksum_pass(&s)
        if biggest < 0 or rc:
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
