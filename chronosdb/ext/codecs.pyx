# cython: language_level=3
"""Column codecs: one encoded column of times, floats, ints, bools or strings as bytes.

Layout (docs/format/codecs.md has the byte diagrams): every column is

    type:u8 | count:uvarint | body

so a column describes itself. The type byte names the encoding chosen for that column; each
encoder measures its candidates and keeps the smallest, falling back to plain little-endian values
when compression does not pay. Bodies:

  times   RLE (first, delta) for a fixed interval; otherwise delta-of-delta, zigzagged, as a Rice
          or fixed-width bit stream; or plain int64.
  floats  decimal: values that are exact decimals with few digits become integers m = v * 10**e,
          whose zigzagged deltas are Rice coded or bit-packed; Gorilla XOR; or plain float64.
  ints    RLE for constant deltas; zigzagged deltas bit-packed or simple8b; or plain int64.
  bools   bit-packed, LSB first.
  strings varint lengths then the bytes, lz4-compressed as one block when that pays.

Bit streams are LSB-first and read through include/bits.h, whose reader refills a 64-bit window
with one unaligned little-endian load and measures Rice unary prefixes with count-trailing-zeros.
Every kernel runs without the GIL; decoders check every length against the buffer and raise
ValueError naming the byte offset, never reading outside the buffer.

chronosdb/ext/codecs_ref.py is the plain-Python twin of this module: both must produce the same
bytes for the same input (tests/test_codecs.py checks it).
"""
import numpy as np

cimport cython
from libc.math cimport rint, fabs, isfinite
from libc.stdint cimport int64_t, uint64_t, uint8_t, uint32_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

import lz4.block as _lz4


cdef extern from "bits.h" nogil:
    ctypedef struct cdb_bitwriter:
        size_t pos
    ctypedef struct cdb_bitreader:
        int nbits
    int cdb_bit_length(uint64_t x)
    int cdb_clz64(uint64_t x)
    int cdb_ctz64(uint64_t x)
    uint64_t cdb_load64le(const uint8_t* p)
    void cdb_store64le(uint8_t* p, uint64_t v)
    uint64_t cdb_zigzag(int64_t x)
    int64_t cdb_unzigzag(uint64_t u)
    size_t cdb_put_uvarint(uint8_t* p, uint64_t v)
    size_t cdb_uvarint_size(uint64_t v)
    int cdb_get_uvarint(const uint8_t** pp, const uint8_t* end, uint64_t* out)
    void cdb_bw_init(cdb_bitwriter* w, uint8_t* out)
    void cdb_bw_put(cdb_bitwriter* w, uint64_t v, int n)
    void cdb_bw_put64(cdb_bitwriter* w, uint64_t v)
    void cdb_bw_put_wide(cdb_bitwriter* w, uint64_t v, int n)
    size_t cdb_bw_finish(cdb_bitwriter* w)
    void cdb_br_init(cdb_bitreader* r, const uint8_t* p, const uint8_t* end)
    uint64_t cdb_br_get(cdb_bitreader* r, int n)
    uint64_t cdb_br_get_wide(cdb_bitreader* r, int n)
    size_t cdb_br_consumed_bits(const cdb_bitreader* r)
    uint64_t cdb_rice_bits(uint64_t u, int k)
    void cdb_rice_put(cdb_bitwriter* w, uint64_t u, int k)
    uint64_t cdb_rice_get(cdb_bitreader* r, int k)


# ---- encoding type bytes: part of the on-disk format, never renumber ----
cdef enum:
    TIMES_PLAIN = 0x01
    TIMES_RLE = 0x02
    TIMES_DOD_RICE = 0x03
    TIMES_DOD_PACKED = 0x04
    FLOAT_PLAIN = 0x10
    FLOAT_GORILLA = 0x11
    FLOAT_DECIMAL_RICE = 0x12
    FLOAT_DECIMAL_PACKED = 0x13
    INT_PLAIN = 0x20
    INT_RLE = 0x21
    INT_PACKED = 0x22
    INT_SIMPLE8B = 0x23
    BOOL_PACKED = 0x30
    STRING_PLAIN = 0x40
    STRING_LZ4 = 0x41

cdef enum:
    # Largest column an encoder or decoder accepts (segment blocks hold <= 1000 points; a caller
    # with more values splits them). It bounds what a corrupt count can make a decoder allocate.
    MAX_COUNT = 16777216
    # Largest decimal scale: 10**15 is still an exact float64, so m / 10**e is one correctly
    # rounded division.
    MAX_DECIMAL_SCALE = 15
    # Largest Rice parameter: the k low bits are read in one window access (<= 56 bits).
    MAX_RICE_K = 56

cdef uint64_t U64_MAX = ~(<uint64_t>0)
cdef uint64_t SIGN_BIT = (<uint64_t>1) << 63  # also the bits of -0.0

# |m| bound for the decimal path: every integer up to 2**53 is exact in float64.
cdef double MAX_DECIMAL_MANTISSA = 9007199254740992.0

TYPE_TIMES_PLAIN = TIMES_PLAIN
TYPE_TIMES_RLE = TIMES_RLE
TYPE_TIMES_DOD_RICE = TIMES_DOD_RICE
TYPE_TIMES_DOD_PACKED = TIMES_DOD_PACKED
TYPE_FLOAT_PLAIN = FLOAT_PLAIN
TYPE_FLOAT_GORILLA = FLOAT_GORILLA
TYPE_FLOAT_DECIMAL_RICE = FLOAT_DECIMAL_RICE
TYPE_FLOAT_DECIMAL_PACKED = FLOAT_DECIMAL_PACKED
TYPE_INT_PLAIN = INT_PLAIN
TYPE_INT_RLE = INT_RLE
TYPE_INT_PACKED = INT_PACKED
TYPE_INT_SIMPLE8B = INT_SIMPLE8B
TYPE_BOOL_PACKED = BOOL_PACKED
TYPE_STRING_PLAIN = STRING_PLAIN
TYPE_STRING_LZ4 = STRING_LZ4
MAX_VALUES = MAX_COUNT

ENCODING_NAMES = {
    TIMES_PLAIN: "times-plain",
    TIMES_RLE: "times-rle",
    TIMES_DOD_RICE: "times-dod-rice",
    TIMES_DOD_PACKED: "times-dod-packed",
    FLOAT_PLAIN: "float-plain",
    FLOAT_GORILLA: "float-gorilla",
    FLOAT_DECIMAL_RICE: "float-decimal-rice",
    FLOAT_DECIMAL_PACKED: "float-decimal-packed",
    INT_PLAIN: "int-plain",
    INT_RLE: "int-rle",
    INT_PACKED: "int-packed",
    INT_SIMPLE8B: "int-simple8b",
    BOOL_PACKED: "bool-packed",
    STRING_PLAIN: "string-plain",
    STRING_LZ4: "string-lz4",
}

cdef double POW10[MAX_DECIMAL_SCALE + 1]
cdef int _i
for _i in range(MAX_DECIMAL_SCALE + 1):
    POW10[_i] = 10.0 ** _i

# simple8b selectors: (values per 64-bit word, bits per value); the low 4 bits of a word hold the
# selector, values follow from bit 4, first value lowest. Selectors 0 and 1 are runs of zeros.
cdef int S8B_COUNT[16]
cdef int S8B_BITS[16]
S8B_COUNT[:] = [240, 120, 60, 30, 20, 15, 12, 10, 8, 7, 6, 5, 4, 3, 2, 1]
S8B_BITS[:] = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 60]


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

cdef str _msg(what, Py_ssize_t offset):
    if isinstance(what, bytes):
        what = what.decode()
    return f"malformed encoded column: {what} (byte {offset})"


cdef int _malformed(const char* what, Py_ssize_t offset) except -1 with gil:
    raise ValueError(_msg(what, offset))


# ---------------------------------------------------------------------------------------------
# header
# ---------------------------------------------------------------------------------------------

cdef inline bint _known_type(uint8_t t) noexcept nogil:
    return (TIMES_PLAIN <= t <= TIMES_DOD_PACKED or FLOAT_PLAIN <= t <= FLOAT_DECIMAL_PACKED
            or INT_PLAIN <= t <= INT_SIMPLE8B or t == BOOL_PACKED
            or t == STRING_PLAIN or t == STRING_LZ4)


cdef Py_ssize_t _read_header(const uint8_t* p, Py_ssize_t n, uint8_t* typ, Py_ssize_t* count) except -1 nogil:
    """Parse type and count; returns the header length."""
    cdef const uint8_t* q = p + 1
    cdef uint64_t c
    if n < 1:
        _malformed(b"empty buffer", 0)
    if not _known_type(p[0]):
        with gil:
            raise ValueError(_msg(f"unknown encoding type 0x{p[0]:02x}", 0))
    if cdb_get_uvarint(&q, p + n, &c) < 0:
        _malformed(b"truncated or overlong count varint", 1)
    if c > MAX_COUNT:
        with gil:
            raise ValueError(_msg(f"count {c} exceeds the limit {MAX_COUNT}", 1))
    typ[0] = p[0]
    count[0] = <Py_ssize_t>c
    return q - p


cdef inline Py_ssize_t _write_header(uint8_t* out, uint8_t typ, Py_ssize_t count) noexcept nogil:
    out[0] = typ
    return 1 + <Py_ssize_t>cdb_put_uvarint(out + 1, <uint64_t>count)


cdef Py_ssize_t encoded_count_raw(const uint8_t* p, Py_ssize_t n) except -1 nogil:
    cdef uint8_t typ
    cdef Py_ssize_t count
    _read_header(p, n, &typ, &count)
    return count


cdef inline int _check_family(uint8_t typ, uint8_t lo, uint8_t hi, const char* what) except -1 nogil:
    if typ < lo or typ > hi:
        with gil:
            raise ValueError(_msg(f"encoding type 0x{typ:02x} is not a {what.decode()} encoding", 0))
    return 0


cdef inline int _check_cap(Py_ssize_t count, Py_ssize_t cap) except -1 nogil:
    if count > cap:
        with gil:
            raise ValueError(f"column holds {count} values but the output buffer has room for {cap}")
    return 0


cdef inline int _get_varint(const uint8_t** q, const uint8_t* p, const uint8_t* end, uint64_t* v, const char* what) except -1 nogil:
    if cdb_get_uvarint(q, end, v) < 0:
        with gil:
            raise ValueError(_msg(f"truncated or overlong {what.decode()} varint", q[0] - p))
    return 0


cdef inline int _get_u8(const uint8_t** q, const uint8_t* p, const uint8_t* end, int* v, const char* what) except -1 nogil:
    if q[0] >= end:
        with gil:
            raise ValueError(_msg(f"truncated before {what.decode()}", q[0] - p))
    v[0] = q[0][0]
    q[0] += 1
    return 0


cdef inline int _check_end(const uint8_t* q, const uint8_t* p, const uint8_t* end) except -1 nogil:
    if q < end:
        with gil:
            raise ValueError(_msg(f"{end - q} trailing bytes after the column", q - p))
    if q > end:
        _malformed(b"column truncated", end - p)
    return 0


cdef int _check_stream_end(cdb_bitreader* r, const uint8_t* stream, const uint8_t* p, const uint8_t* end) except -1 nogil:
    """After a bit stream is decoded: it must have ended exactly at the last byte."""
    cdef size_t bits = cdb_br_consumed_bits(r)
    cdef size_t used = (bits + 7) >> 3
    cdef size_t have = <size_t>(end - stream)
    if used > have:
        _malformed(b"bit stream truncated", end - p)
    if used < have:
        with gil:
            raise ValueError(_msg(f"{have - used} trailing bytes after the bit stream", (stream - p) + <Py_ssize_t>used))
    return 0


# ---------------------------------------------------------------------------------------------
# unsigned streams shared by times, floats and ints: Rice with escape, or fixed-width packing
# ---------------------------------------------------------------------------------------------

cdef struct UintCode:
    bint packed   # 1: fixed-width bit-packing, 0: Rice
    int param     # width w (0..64) when packed, Rice k (0..56) otherwise
    uint64_t bits # stream length in bits


cdef void _choose_uint_code(const uint64_t* u, Py_ssize_t m, UintCode* c) noexcept nogil:
    """Pick Rice (k by exact cost over a small window around log2(mean)) or packing, smallest wins.

    The optimal Rice parameter for a geometric-like source is within one of log2(mean), so the
    exact cost is measured for k in [bitlen(mean)-2, bitlen(mean)+1] only: four costs, one pass.
    Ties go to the smaller k and to packing (it decodes faster).
    """
    cdef uint64_t total = 0, orv = 0, x, avg
    cdef uint64_t cost[4]
    cdef Py_ssize_t i
    cdef int klo, khi, k, j, b, w
    if m == 0:
        c.packed = 1
        c.param = 0
        c.bits = 0
        return
    for i in range(m):
        x = u[i]
        orv |= x
        if total + x < total:
            total = U64_MAX  # saturate: the mean only steers the search
        elif total != U64_MAX:
            total += x
    avg = total // <uint64_t>m
    b = cdb_bit_length(avg)
    klo = b - 2 if b >= 2 else 0
    khi = b + 1 if b + 1 <= MAX_RICE_K else MAX_RICE_K
    if klo > khi:
        klo = khi
    for j in range(4):
        cost[j] = 0
    for i in range(m):
        x = u[i]
        for j in range(khi - klo + 1):
            cost[j] += cdb_rice_bits(x, klo + j)
    k = klo
    for j in range(1, khi - klo + 1):
        if cost[j] < cost[k - klo]:
            k = klo + j
    w = cdb_bit_length(orv)
    if <uint64_t>w * <uint64_t>m <= cost[k - klo]:
        c.packed = 1
        c.param = w
        c.bits = <uint64_t>w * <uint64_t>m
    else:
        c.packed = 0
        c.param = k
        c.bits = cost[k - klo]


cdef size_t _write_uints(uint8_t* out, const uint64_t* u, Py_ssize_t m, const UintCode* c) noexcept nogil:
    """Write the stream; returns its length in bytes. out needs 8 bytes of slack."""
    cdef cdb_bitwriter w
    cdef Py_ssize_t i
    cdef int k = c.param
    cdb_bw_init(&w, out)
    if c.packed:
        if k <= 56:
            for i in range(m):
                cdb_bw_put(&w, u[i], k)
        else:
            for i in range(m):
                cdb_bw_put_wide(&w, u[i], k)
    else:
        for i in range(m):
            cdb_rice_put(&w, u[i], k)
    return cdb_bw_finish(&w)


cdef void _read_uints(cdb_bitreader* r, uint64_t* dst, Py_ssize_t m, bint packed, int k) noexcept nogil:
    """Decode m values; a short stream yields zeros, which _check_stream_end then reports."""
    cdef Py_ssize_t i
    if packed:
        if k == 0:
            memset(dst, 0, <size_t>m * 8)
        elif k <= 56:
            for i in range(m):
                dst[i] = cdb_br_get(r, k)
        else:
            for i in range(m):
                dst[i] = cdb_br_get_wide(r, k)
    else:
        for i in range(m):
            dst[i] = cdb_rice_get(r, k)


cdef inline size_t _code_bytes(const UintCode* c) noexcept nogil:
    return <size_t>((c.bits + 7) >> 3)


# ---------------------------------------------------------------------------------------------
# times
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _encode_times(const int64_t* t, Py_ssize_t n, uint8_t* out, uint64_t* scratch) except -1 nogil:
    cdef Py_ssize_t i, h
    cdef uint64_t d, prev, first_delta
    cdef bint constant = True
    cdef UintCode c
    cdef size_t dod_size, plain_size
    for i in range(1, n):
        if t[i] <= t[i - 1]:
            with gil:
                raise ValueError(
                    f"times must be strictly increasing: index {i} ({t[i]}) follows {t[i - 1]}")
    if n == 0:
        return _write_header(out, TIMES_PLAIN, 0)
    first_delta = <uint64_t>t[1] - <uint64_t>t[0] if n >= 2 else 0
    for i in range(2, n):
        if <uint64_t>t[i] - <uint64_t>t[i - 1] != first_delta:
            constant = False
            break
    if constant:
        h = _write_header(out, TIMES_RLE, n)
        h += cdb_put_uvarint(out + h, cdb_zigzag(t[0]))
        h += cdb_put_uvarint(out + h, first_delta)
        return h
    prev = first_delta
    for i in range(2, n):
        d = <uint64_t>t[i] - <uint64_t>t[i - 1]
        scratch[i - 2] = cdb_zigzag(<int64_t>(d - prev))
        prev = d
    _choose_uint_code(scratch, n - 2, &c)
    plain_size = 1 + cdb_uvarint_size(<uint64_t>n) + 8 * <size_t>n
    dod_size = (1 + cdb_uvarint_size(<uint64_t>n) + cdb_uvarint_size(cdb_zigzag(t[0]))
                + cdb_uvarint_size(first_delta) + 1 + _code_bytes(&c))
    if dod_size <= plain_size:
        h = _write_header(out, TIMES_DOD_PACKED if c.packed else TIMES_DOD_RICE, n)
        h += cdb_put_uvarint(out + h, cdb_zigzag(t[0]))
        h += cdb_put_uvarint(out + h, first_delta)
        out[h] = <uint8_t>c.param
        h += 1
        return h + <Py_ssize_t>_write_uints(out + h, scratch, n - 2, &c)
    h = _write_header(out, TIMES_PLAIN, n)
    memcpy(out + h, t, 8 * <size_t>n)  # little-endian hosts (checked at import)
    return h + 8 * n


cdef Py_ssize_t decode_times_into(const uint8_t* p, Py_ssize_t n, int64_t* out, Py_ssize_t cap) except -1 nogil:
    cdef uint8_t typ
    cdef Py_ssize_t count, i, h
    cdef const uint8_t* q
    cdef const uint8_t* end = p + n
    cdef uint64_t first, delta, t
    cdef int param
    cdef cdb_bitreader r
    cdef uint64_t* u = <uint64_t*>out
    h = _read_header(p, n, &typ, &count)
    _check_family(typ, TIMES_PLAIN, TIMES_DOD_PACKED, b"times")
    _check_cap(count, cap)
    q = p + h
    if typ == TIMES_PLAIN:
        if n - h != 8 * count:
            with gil:
                raise ValueError(_msg(f"plain times need {8 * count} bytes, have {n - h}", h))
        memcpy(out, q, 8 * <size_t>count)
        return count
    if count == 0:
        _malformed(b"empty column with a non-plain encoding", 0)
    _get_varint(&q, p, end, &first, b"first time")
    _get_varint(&q, p, end, &delta, b"first delta")
    first = <uint64_t>cdb_unzigzag(first)
    if typ == TIMES_RLE:
        _check_end(q, p, end)
        t = first
        for i in range(count):
            out[i] = <int64_t>t
            t += delta
        return count
    if count < 2:
        _malformed(b"delta-of-delta times need at least 2 values", 1)
    _get_u8(&q, p, end, &param, b"stream parameter")
    if (typ == TIMES_DOD_PACKED and param > 64) or (typ == TIMES_DOD_RICE and param > MAX_RICE_K):
        with gil:
            raise ValueError(_msg(f"stream parameter {param} out of range", q - p - 1))
    cdb_br_init(&r, q, end)
    # The zigzagged delta-of-deltas land in out[2:], then one pass integrates them in place.
    _read_uints(&r, u + 2, count - 2, typ == TIMES_DOD_PACKED, param)
    _check_stream_end(&r, q, p, end)
    out[0] = <int64_t>first
    t = first + delta
    out[1] = <int64_t>t
    for i in range(2, count):
        delta += <uint64_t>cdb_unzigzag(u[i])
        t += delta
        out[i] = <int64_t>t
    return count


# ---------------------------------------------------------------------------------------------
# floats
# ---------------------------------------------------------------------------------------------

cdef inline bint _decimal_ok(double v, int e) noexcept nogil:
    """v is exactly rint(v * 10**e) / 10**e, bit for bit, with a mantissa that float64 holds."""
    cdef double x = rint(v * POW10[e])
    cdef double back
    if not (fabs(x) <= MAX_DECIMAL_MANTISSA):
        return False
    back = x / POW10[e]
    return (<uint64_t*>&back)[0] == (<uint64_t*>&v)[0]


cdef int _decimal_scale(const double* v, Py_ssize_t n) noexcept nogil:
    """Smallest scale the incremental search settles on, or -1 when the column is not decimal.

    Scan once, raising e whenever a value needs more digits; then values checked before the last
    raise are checked again at the final e (exactness at e does not strictly imply exactness at a
    larger e, so this is verified rather than assumed; the reference twin re-checks all values).
    """
    cdef int e = 0
    cdef Py_ssize_t i, last_raise = 0
    cdef uint64_t bits
    for i in range(n):
        bits = (<const uint64_t*>&v[i])[0]
        if not isfinite(v[i]) or bits == SIGN_BIT:
            return -1  # NaN, inf and -0.0 are never decimal
        if not _decimal_ok(v[i], e):
            while True:
                e += 1
                if e > MAX_DECIMAL_SCALE:
                    return -1
                if _decimal_ok(v[i], e):
                    break
            last_raise = i
    while e <= MAX_DECIMAL_SCALE:
        for i in range(last_raise):
            if not _decimal_ok(v[i], e):
                break
        else:
            return e
        e += 1
        last_raise = n  # after a failed re-check every value must pass at the new e
    return -1


cdef Py_ssize_t _encode_gorilla(const double* v, Py_ssize_t n, uint8_t* out) noexcept nogil:
    """Gorilla XOR (Pelkonen et al. 2015), our bit order: see docs/format/codecs.md."""
    cdef const uint64_t* b = <const uint64_t*>v
    cdef cdb_bitwriter w
    cdef uint64_t prev, x
    cdef int lead, trail, wlead = 64, wtrail = 0, mlen
    cdef Py_ssize_t i, h
    h = _write_header(out, FLOAT_GORILLA, n)
    cdb_bw_init(&w, out + h)
    prev = b[0]
    cdb_bw_put64(&w, prev)
    for i in range(1, n):
        x = b[i] ^ prev
        prev = b[i]
        if x == 0:
            cdb_bw_put(&w, 0, 1)
            continue
        lead = cdb_clz64(x)
        trail = cdb_ctz64(x)
        if lead > 31:
            lead = 31  # 5-bit field; the window simply starts with a few zeros
        if lead >= wlead and trail >= wtrail:
            cdb_bw_put(&w, 1, 2)  # bits 1,0: reuse the previous window
            mlen = 64 - wlead - wtrail
            cdb_bw_put_wide(&w, x >> wtrail, mlen)
        else:
            mlen = 64 - lead - trail
            cdb_bw_put(&w, 3 | (<uint64_t>lead << 2) | (<uint64_t>(mlen - 1) << 7), 13)
            cdb_bw_put_wide(&w, x >> trail, mlen)
            wlead = lead
            wtrail = trail
    return h + <Py_ssize_t>cdb_bw_finish(&w)


cdef Py_ssize_t _encode_floats(const double* v, Py_ssize_t n, uint8_t* out, uint64_t* scratch) noexcept nogil:
    cdef Py_ssize_t i, h, gorilla_size, plain_size
    cdef size_t dec_size = <size_t>-1
    cdef int e
    cdef int64_t m, prev_m = 0, first_m = 0
    cdef UintCode c
    cdef double p
    if n == 0:
        return _write_header(out, FLOAT_PLAIN, 0)
    e = _decimal_scale(v, n)
    if e >= 0:
        p = POW10[e]
        for i in range(n):
            m = <int64_t>rint(v[i] * p)
            if i == 0:
                first_m = m
            else:
                scratch[i - 1] = cdb_zigzag(m - prev_m)
            prev_m = m
        _choose_uint_code(scratch, n - 1, &c)
        dec_size = (1 + cdb_uvarint_size(<uint64_t>n) + 1 + cdb_uvarint_size(cdb_zigzag(first_m))
                    + 1 + _code_bytes(&c))
    plain_size = 1 + <Py_ssize_t>cdb_uvarint_size(<uint64_t>n) + 8 * n
    gorilla_size = _encode_gorilla(v, n, out)
    if e >= 0 and dec_size <= <size_t>gorilla_size and dec_size <= <size_t>plain_size:
        h = _write_header(out, FLOAT_DECIMAL_PACKED if c.packed else FLOAT_DECIMAL_RICE, n)
        out[h] = <uint8_t>e
        h += 1
        h += cdb_put_uvarint(out + h, cdb_zigzag(first_m))
        out[h] = <uint8_t>c.param
        h += 1
        return h + <Py_ssize_t>_write_uints(out + h, scratch, n - 1, &c)
    if gorilla_size <= plain_size:
        return gorilla_size
    h = _write_header(out, FLOAT_PLAIN, n)
    memcpy(out + h, v, 8 * <size_t>n)
    return h + 8 * n


cdef Py_ssize_t decode_floats_into(const uint8_t* p, Py_ssize_t n, double* out, Py_ssize_t cap) except -1 nogil:
    cdef uint8_t typ
    cdef Py_ssize_t count, i, h
    cdef const uint8_t* q
    cdef const uint8_t* end = p + n
    cdef uint64_t first, x, prev
    cdef uint64_t* u = <uint64_t*>out
    cdef int e, param, lead, mlen, wlead, wtrail
    cdef double scale
    cdef cdb_bitreader r
    h = _read_header(p, n, &typ, &count)
    _check_family(typ, FLOAT_PLAIN, FLOAT_DECIMAL_PACKED, b"float")
    _check_cap(count, cap)
    q = p + h
    if typ == FLOAT_PLAIN:
        if n - h != 8 * count:
            with gil:
                raise ValueError(_msg(f"plain floats need {8 * count} bytes, have {n - h}", h))
        memcpy(out, q, 8 * <size_t>count)
        return count
    if count == 0:
        _malformed(b"empty column with a non-plain encoding", 0)
    if typ == FLOAT_GORILLA:
        cdb_br_init(&r, q, end)
        prev = cdb_br_get_wide(&r, 64)
        u[0] = prev
        wlead = 64
        wtrail = 0
        for i in range(1, count):
            if cdb_br_get(&r, 1):
                if cdb_br_get(&r, 1):
                    lead = <int>cdb_br_get(&r, 5)
                    mlen = <int>cdb_br_get(&r, 6) + 1
                    if lead + mlen > 64:
                        _malformed(b"Gorilla window wider than 64 bits", h + <Py_ssize_t>(cdb_br_consumed_bits(&r) >> 3))
                    wlead = lead
                    wtrail = 64 - lead - mlen
                elif wlead == 64:
                    _malformed(b"Gorilla window reused before one was set", h + <Py_ssize_t>(cdb_br_consumed_bits(&r) >> 3))
                else:
                    mlen = 64 - wlead - wtrail
                prev ^= cdb_br_get_wide(&r, mlen) << wtrail
            u[i] = prev
            if cdb_br_consumed_bits(&r) > 8 * <size_t>(end - q):
                break  # ran into the zero padding: report below instead of looping on
        _check_stream_end(&r, q, p, end)
        return count
    # decimal
    _get_u8(&q, p, end, &e, b"decimal scale")
    if e > MAX_DECIMAL_SCALE:
        with gil:
            raise ValueError(_msg(f"decimal scale {e} out of range", q - p - 1))
    _get_varint(&q, p, end, &first, b"first mantissa")
    _get_u8(&q, p, end, &param, b"stream parameter")
    if (typ == FLOAT_DECIMAL_PACKED and param > 64) or (typ == FLOAT_DECIMAL_RICE and param > MAX_RICE_K):
        with gil:
            raise ValueError(_msg(f"stream parameter {param} out of range", q - p - 1))
    cdb_br_init(&r, q, end)
    _read_uints(&r, u + 1, count - 1, typ == FLOAT_DECIMAL_PACKED, param)
    _check_stream_end(&r, q, p, end)
    scale = POW10[e]
    x = <uint64_t>cdb_unzigzag(first)
    out[0] = <double>(<int64_t>x) / scale
    for i in range(1, count):
        x += <uint64_t>cdb_unzigzag(u[i])
        out[i] = <double>(<int64_t>x) / scale
    return count


# ---------------------------------------------------------------------------------------------
# ints
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _s8b_words(const uint64_t* u, Py_ssize_t m, uint8_t* out) noexcept nogil:
    """Greedy simple8b: at each position the first selector whose run fits. Writes when out is
    not NULL. Returns the number of words, or -1 when a value needs more than 60 bits."""
    cdef Py_ssize_t i = 0, words = 0, j
    cdef int sel, cnt, bits
    cdef uint64_t word, limit
    while i < m:
        for sel in range(16):
            cnt = S8B_COUNT[sel]
            if cnt > m - i:
                continue
            bits = S8B_BITS[sel]
            limit = (<uint64_t>1) << bits
            for j in range(i, i + cnt):
                if u[j] >= limit:
                    break
            else:
                break
        else:
            return -1
        if out != NULL:
            word = <uint64_t>sel
            if bits:
                for j in range(cnt):
                    word |= u[i + j] << (4 + j * bits)
            cdb_store64le(out + 8 * words, word)
        i += cnt
        words += 1
    return words


cdef Py_ssize_t _encode_ints(const int64_t* v, Py_ssize_t n, uint8_t* out, uint64_t* scratch) noexcept nogil:
    cdef Py_ssize_t i, h, words, m = n - 1
    cdef uint64_t d0, orv
    cdef bint constant = True
    cdef UintCode c
    cdef size_t base, packed_size, s8b_size, plain_size
    if n == 0:
        return _write_header(out, INT_PLAIN, 0)
    d0 = <uint64_t>v[1] - <uint64_t>v[0] if n >= 2 else 0
    for i in range(1, n):
        scratch[i - 1] = cdb_zigzag(<int64_t>(<uint64_t>v[i] - <uint64_t>v[i - 1]))
        if <uint64_t>v[i] - <uint64_t>v[i - 1] != d0:
            constant = False
    if constant:
        h = _write_header(out, INT_RLE, n)
        h += cdb_put_uvarint(out + h, cdb_zigzag(v[0]))
        h += cdb_put_uvarint(out + h, cdb_zigzag(<int64_t>d0))
        return h
    base = 1 + cdb_uvarint_size(<uint64_t>n) + cdb_uvarint_size(cdb_zigzag(v[0]))
    # Ints are bit-packed or simple8b (Rice is for the time and decimal streams): width of the
    # widest delta, found as the bit length of their OR.
    orv = 0
    for i in range(m):
        orv |= scratch[i]
    c.packed = 1
    c.param = cdb_bit_length(orv)
    c.bits = <uint64_t>c.param * <uint64_t>m
    packed_size = base + 1 + _code_bytes(&c)
    words = _s8b_words(scratch, m, NULL)
    s8b_size = base + 8 * <size_t>words if words >= 0 else <size_t>-1
    plain_size = 1 + cdb_uvarint_size(<uint64_t>n) + 8 * <size_t>n
    if s8b_size < packed_size and s8b_size <= plain_size:
        h = _write_header(out, INT_SIMPLE8B, n)
        h += cdb_put_uvarint(out + h, cdb_zigzag(v[0]))
        return h + 8 * _s8b_words(scratch, m, out + h)
    if packed_size <= plain_size:
        h = _write_header(out, INT_PACKED, n)
        h += cdb_put_uvarint(out + h, cdb_zigzag(v[0]))
        out[h] = <uint8_t>c.param
        h += 1
        return h + <Py_ssize_t>_write_uints(out + h, scratch, m, &c)
    h = _write_header(out, INT_PLAIN, n)
    memcpy(out + h, v, 8 * <size_t>n)
    return h + 8 * n


cdef Py_ssize_t decode_ints_into(const uint8_t* p, Py_ssize_t n, int64_t* out, Py_ssize_t cap) except -1 nogil:
    cdef uint8_t typ
    cdef Py_ssize_t count, i, h, j, k
    cdef const uint8_t* q
    cdef const uint8_t* end = p + n
    cdef uint64_t first, delta, x, word, mask
    cdef uint64_t* u = <uint64_t*>out
    cdef int param, sel, cnt, bits
    cdef cdb_bitreader r
    h = _read_header(p, n, &typ, &count)
    _check_family(typ, INT_PLAIN, INT_SIMPLE8B, b"integer")
    _check_cap(count, cap)
    q = p + h
    if typ == INT_PLAIN:
        if n - h != 8 * count:
            with gil:
                raise ValueError(_msg(f"plain ints need {8 * count} bytes, have {n - h}", h))
        memcpy(out, q, 8 * <size_t>count)
        return count
    if count == 0:
        _malformed(b"empty column with a non-plain encoding", 0)
    _get_varint(&q, p, end, &first, b"first value")
    x = <uint64_t>cdb_unzigzag(first)
    if typ == INT_RLE:
        _get_varint(&q, p, end, &delta, b"delta")
        _check_end(q, p, end)
        delta = <uint64_t>cdb_unzigzag(delta)
        for i in range(count):
            out[i] = <int64_t>x
            x += delta
        return count
    if typ == INT_PACKED:
        _get_u8(&q, p, end, &param, b"bit width")
        if param > 64:
            with gil:
                raise ValueError(_msg(f"bit width {param} out of range", q - p - 1))
        cdb_br_init(&r, q, end)
        _read_uints(&r, u + 1, count - 1, True, param)
        _check_stream_end(&r, q, p, end)
    else:  # simple8b
        i = 1
        while i < count:
            if end - q < 8:
                _malformed(b"simple8b word truncated", q - p)
            word = cdb_load64le(q)
            sel = <int>(word & 15)
            cnt = S8B_COUNT[sel]
            bits = S8B_BITS[sel]
            if cnt > count - i:
                with gil:
                    raise ValueError(_msg(f"simple8b word holds {cnt} values, {count - i} remain", q - p))
            if bits == 0:
                memset(&u[i], 0, 8 * <size_t>cnt)
            else:
                mask = ((<uint64_t>1) << bits) - 1
                word >>= 4
                for j in range(cnt):
                    u[i + j] = word & mask
                    word >>= bits
            i += cnt
            q += 8
        _check_end(q, p, end)
    out[0] = <int64_t>x
    for i in range(1, count):
        x += <uint64_t>cdb_unzigzag(u[i])
        out[i] = <int64_t>x
    return count


# ---------------------------------------------------------------------------------------------
# bools
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _encode_bools(const uint8_t* v, Py_ssize_t n, uint8_t* out) except -1 nogil:
    cdef Py_ssize_t i, h, nbytes
    cdef uint8_t b
    for i in range(n):
        if v[i] > 1:
            with gil:
                raise ValueError(f"bools must be 0 or 1: index {i} is {v[i]}")
    h = _write_header(out, BOOL_PACKED, n)
    nbytes = (n + 7) >> 3
    memset(out + h, 0, <size_t>nbytes)
    for i in range(n):
        out[h + (i >> 3)] |= <uint8_t>(v[i] << (i & 7))
    return h + nbytes


cdef Py_ssize_t decode_bools_into(const uint8_t* p, Py_ssize_t n, uint8_t* out, Py_ssize_t cap) except -1 nogil:
    cdef uint8_t typ
    cdef Py_ssize_t count, i, h
    h = _read_header(p, n, &typ, &count)
    _check_family(typ, BOOL_PACKED, BOOL_PACKED, b"boolean")
    _check_cap(count, cap)
    if n - h != (count + 7) >> 3:
        with gil:
            raise ValueError(_msg(f"{count} packed bools need {(count + 7) >> 3} bytes, have {n - h}", h))
    p += h
    for i in range(count):
        out[i] = (p[i >> 3] >> (i & 7)) & 1
    return count


# ---------------------------------------------------------------------------------------------
# strings
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _string_body(const int64_t* off, Py_ssize_t n, const uint8_t* data, Py_ssize_t ndata, uint8_t* out) except -1 nogil:
    """varint lengths, then the bytes; returns the body length."""
    cdef Py_ssize_t i, h = 0
    if off[0] != 0:
        with gil:
            raise ValueError(f"string offsets must start at 0, not {off[0]}")
    for i in range(n):
        if off[i + 1] < off[i]:
            with gil:
                raise ValueError(f"string offsets must not decrease: index {i + 1}")
        h += cdb_put_uvarint(out + h, <uint64_t>(off[i + 1] - off[i]))
    if off[n] != ndata:
        with gil:
            raise ValueError(f"string offsets end at {off[n]} but data has {ndata} bytes")
    memcpy(out + h, data, <size_t>ndata)
    return h + ndata


cdef Py_ssize_t _parse_string_body(const uint8_t* b, Py_ssize_t nb, Py_ssize_t count, int64_t* off, Py_ssize_t base) except -1 nogil:
    """Fill offsets from the varint lengths; returns where the bytes start in b."""
    cdef const uint8_t* q = b
    cdef const uint8_t* end = b + nb
    cdef uint64_t ln, total = 0
    cdef Py_ssize_t i
    off[0] = 0
    for i in range(count):
        if cdb_get_uvarint(&q, end, &ln) < 0:
            with gil:
                raise ValueError(_msg(f"truncated length varint of string {i}", base + (q - b)))
        total += ln
        if ln > <uint64_t>nb or total > <uint64_t>nb:
            with gil:
                raise ValueError(_msg(f"string {i} runs past the end of the column", base + (q - b)))
        off[i + 1] = <int64_t>total
    if <uint64_t>(end - q) != total:
        with gil:
            raise ValueError(_msg(f"strings need {total} bytes, have {end - q}", base + (q - b)))
    return q - b


# ---------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------

cdef inline int _check_len(Py_ssize_t n) except -1:
    if n > MAX_COUNT:
        raise ValueError(f"a column holds at most {MAX_COUNT} values, got {n}")
    return 0


def encode_times(times) -> bytes:
    """Encode strictly increasing int64 times (delta-of-delta, RLE for a fixed interval)."""
    cdef const int64_t[::1] t = np.ascontiguousarray(times, dtype=np.int64).reshape(-1)
    cdef Py_ssize_t n = t.shape[0], size
    _check_len(n)
    out = np.empty(64 + 8 * n, dtype=np.uint8)
    scratch = np.empty(max(n, 1), dtype=np.uint64)
    cdef uint8_t[::1] o = out
    cdef uint64_t[::1] s = scratch
    with nogil:
        size = _encode_times(&t[0] if n else NULL, n, &o[0], &s[0])
    return out[:size].tobytes()


def encode_floats(values) -> bytes:
    """Encode float64 values bit-exactly: decimal, Gorilla XOR or plain, whichever is smallest."""
    cdef const double[::1] v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t n = v.shape[0], size
    _check_len(n)
    out = np.empty(64 + 10 * n, dtype=np.uint8)
    scratch = np.empty(max(n, 1), dtype=np.uint64)
    cdef uint8_t[::1] o = out
    cdef uint64_t[::1] s = scratch
    with nogil:
        size = _encode_floats(&v[0] if n else NULL, n, &o[0], &s[0])
    return out[:size].tobytes()


def encode_ints(values) -> bytes:
    """Encode int64 values: RLE, zigzag deltas bit-packed or simple8b, or plain."""
    cdef const int64_t[::1] v = np.ascontiguousarray(values, dtype=np.int64).reshape(-1)
    cdef Py_ssize_t n = v.shape[0], size
    _check_len(n)
    out = np.empty(64 + 8 * n, dtype=np.uint8)
    scratch = np.empty(max(n, 1), dtype=np.uint64)
    cdef uint8_t[::1] o = out
    cdef uint64_t[::1] s = scratch
    with nogil:
        size = _encode_ints(&v[0] if n else NULL, n, &o[0], &s[0])
    return out[:size].tobytes()


def encode_bools(values) -> bytes:
    """Encode 0/1 uint8 values, 8 per byte."""
    arr = np.ascontiguousarray(values).reshape(-1)
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            bad = int(np.flatnonzero((arr < 0) | (arr > 1))[0])
            raise ValueError(f"bools must be 0 or 1: index {bad} is {arr[bad]}")
        arr = arr.astype(np.uint8)
    cdef const uint8_t[::1] v = arr
    cdef Py_ssize_t n = v.shape[0], size
    _check_len(n)
    out = np.empty(16 + (n + 7) // 8, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        size = _encode_bools(&v[0] if n else NULL, n, &o[0])
    return out[:size].tobytes()


def encode_strings(offsets, data) -> bytes:
    """Encode n strings given as n+1 int64 offsets into data: varint lengths + bytes, lz4 if it pays."""
    cdef const int64_t[::1] off = np.ascontiguousarray(offsets, dtype=np.int64).reshape(-1)
    cdef const uint8_t[::1] d = memoryview(data).cast("B") if len(data) else memoryview(b"\0")
    cdef Py_ssize_t n = off.shape[0] - 1, ndata = len(data), blen
    if n < 0:
        raise ValueError("string offsets need at least one entry (0)")
    _check_len(n)
    body = np.empty(10 * n + ndata + 16, dtype=np.uint8)
    cdef uint8_t[::1] b = body
    with nogil:
        blen = _string_body(&off[0], n, &d[0], ndata, &b[0])
    raw = body[:blen].tobytes()
    head = bytearray(11)
    hlen = _write_header(<uint8_t*><char*>head, STRING_PLAIN, n)
    head = bytes(head[:hlen])
    if blen:
        comp = _lz4.compress(raw, store_size=False)
        if len(comp) + _uvarint_len(blen) < blen:
            return bytes((STRING_LZ4,)) + head[1:] + _uvarint_bytes(blen) + comp
    return head + raw


cdef Py_ssize_t _uvarint_len(uint64_t v):
    return <Py_ssize_t>cdb_uvarint_size(v)


cdef bytes _uvarint_bytes(uint64_t v):
    cdef uint8_t tmp[10]
    cdef size_t k = cdb_put_uvarint(tmp, v)
    return (<char*>tmp)[:k]


def _buffer(buf):
    """A read-only uint8 view of any C-contiguous buffer."""
    mv = memoryview(buf)
    if not mv.c_contiguous:
        raise ValueError("encoded column must be a C-contiguous buffer")
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def encoded_count(buf) -> int:
    """Number of values in an encoded column, read from its header."""
    cdef const uint8_t[::1] b = _buffer(buf)
    if b.shape[0] == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    return encoded_count_raw(&b[0], b.shape[0])


def encoding_of(buf) -> int:
    """The encoding type byte of an encoded column (see ENCODING_NAMES)."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef uint8_t typ
    cdef Py_ssize_t count
    if b.shape[0] == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    _read_header(&b[0], b.shape[0], &typ, &count)
    return typ


def decode_times(buf):
    """Decode an encoded times column into a new int64 array."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef Py_ssize_t n = b.shape[0], count
    if n == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    count = encoded_count_raw(&b[0], n)
    out = np.empty(max(count, 2), dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        count = decode_times_into(&b[0], n, &o[0], o.shape[0])
    return out[:count]


def decode_floats(buf):
    """Decode an encoded float column into a new float64 array (bit-exact)."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef Py_ssize_t n = b.shape[0], count
    if n == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    count = encoded_count_raw(&b[0], n)
    out = np.empty(max(count, 1), dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        count = decode_floats_into(&b[0], n, &o[0], o.shape[0])
    return out[:count]


def decode_ints(buf):
    """Decode an encoded integer column into a new int64 array."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef Py_ssize_t n = b.shape[0], count
    if n == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    count = encoded_count_raw(&b[0], n)
    out = np.empty(max(count, 1), dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        count = decode_ints_into(&b[0], n, &o[0], o.shape[0])
    return out[:count]


def decode_bools(buf):
    """Decode an encoded boolean column into a new uint8 array of 0/1."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef Py_ssize_t n = b.shape[0], count
    if n == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    count = encoded_count_raw(&b[0], n)
    out = np.empty(max(count, 1), dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        count = decode_bools_into(&b[0], n, &o[0], o.shape[0])
    return out[:count]


def decode_strings(buf):
    """Decode an encoded string column into (offsets int64[n+1], data bytes)."""
    cdef const uint8_t[::1] b = _buffer(buf)
    cdef Py_ssize_t n = b.shape[0], count, h, start
    cdef uint8_t typ
    cdef const uint8_t* q
    cdef uint64_t raw_len
    cdef const uint8_t[::1] body
    if n == 0:
        raise ValueError("malformed encoded column: empty buffer (byte 0)")
    h = _read_header(&b[0], n, &typ, &count)
    _check_family(typ, STRING_PLAIN, STRING_LZ4, b"string")
    offsets = np.empty(count + 1, dtype=np.int64)
    cdef int64_t[::1] off = offsets
    base = h
    if typ == STRING_PLAIN:
        body_obj = b[h:]
    else:
        q = &b[0] + h
        _get_varint(&q, &b[0], &b[0] + n, &raw_len, b"uncompressed length")
        start = q - &b[0]
        # lz4 expands at most ~255x; a larger claim is corruption, not a reason to allocate.
        if raw_len == 0 or raw_len > 255 * <uint64_t>(n - start) + 64 or raw_len > 0x7FFFFFFF:
            raise ValueError(_msg(f"implausible uncompressed length {raw_len}", h))
        try:
            body_obj = _lz4.decompress(bytes(b[start:]), uncompressed_size=<Py_ssize_t>raw_len)
        except Exception as exc:  # lz4.block.LZ4BlockError: the block is corrupt
            raise ValueError(f"malformed encoded column: lz4 block does not decompress ({exc}) (byte {start})") from None
        if len(body_obj) != <Py_ssize_t>raw_len:
            raise ValueError(_msg(f"lz4 block gave {len(body_obj)} bytes, header says {raw_len}", start))
        base = start
    if len(body_obj) == 0:
        if count:
            raise ValueError(_msg("string column truncated", n))
        offsets[0] = 0
        return offsets, b""
    body = body_obj
    with nogil:
        start = _parse_string_body(&body[0], body.shape[0], count, &off[0], base)
    return offsets, bytes(body[start:])


if np.little_endian is not True:  # plain encodings memcpy native values
    raise ImportError("chronosdb.ext.codecs needs a little-endian host")
