/* bits.h - the bit-level helpers under ChronosDB's column codecs (chronosdb/ext/codecs.pyx).
 *
 * Everything here is a static inline function over plain pointers, so the Cython kernels that
 * include it compile to straight-line C with no calls and no Python objects.
 *
 * Bit order: every bit stream is LSB-first. Bit 0 of the stream is the lowest bit of byte 0, and a
 * w-bit field occupies the next w bits with its own lowest bit first. With this order a 64-bit
 * little-endian load is a window of the next bits with no byte swap, and the unary prefix of a
 * Rice code (zeros terminated by a one) is measured with count-trailing-zeros, the mirror image of
 * the count-leading-zeros an MSB-first stream would use.
 *
 * Safety: the reader never touches a byte outside [start, end). Near the end it falls back to a
 * byte-at-a-time refill and, past the end, feeds zero bits while counting them, so a truncated or
 * corrupt stream cannot fault or hang: the caller checks cdb_br_consumed_bits() against the real
 * length once, after its loop, instead of testing bounds for every value.
 */
#ifndef CHRONOSDB_BITS_H
#define CHRONOSDB_BITS_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline int cdb_ctz64(uint64_t x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
static inline int cdb_clz64(uint64_t x) { unsigned long i; _BitScanReverse64(&i, x); return 63 - (int)i; }
#else
/* Both are undefined for x == 0; every caller guarantees a set bit. */
static inline int cdb_ctz64(uint64_t x) { return __builtin_ctzll(x); }
static inline int cdb_clz64(uint64_t x) { return __builtin_clzll(x); }
#endif

/* Number of significant bits of x: 0 for 0, 64 for values with the top bit set. */
static inline int cdb_bit_length(uint64_t x) { return x ? 64 - cdb_clz64(x) : 0; }

/* Little-endian loads/stores through memcpy: compilers turn these into one mov on x86/ARM and they
 * are alignment-safe everywhere. */
static inline uint64_t cdb_load64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}
static inline void cdb_store64le(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

/* Zigzag maps small signed numbers to small unsigned ones: 0,-1,1,-2,... -> 0,1,2,3,...
 * Done on uint64 so it is defined for every int64 including INT64_MIN. */
static inline uint64_t cdb_zigzag(int64_t x) {
    return ((uint64_t)x << 1) ^ (uint64_t)(-(int64_t)((uint64_t)x >> 63));
}
static inline int64_t cdb_unzigzag(uint64_t u) {
    return (int64_t)((u >> 1) ^ (uint64_t)(-(int64_t)(u & 1)));
}

/* ---- varints (unsigned LEB128: 7 bits per byte, low group first, high bit = more) ---- */

/* Writes at most 10 bytes at p, returns the number written. */
static inline size_t cdb_put_uvarint(uint8_t *p, uint64_t v) {
    size_t i = 0;
    while (v >= 0x80) { p[i++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[i++] = (uint8_t)v;
    return i;
}
static inline size_t cdb_uvarint_size(uint64_t v) {
    size_t i = 1;
    while (v >= 0x80) { v >>= 7; i++; }
    return i;
}
/* Reads one varint from [*pp, end). Returns 0 and advances *pp, or -1 when the varint is truncated
 * or longer than 64 bits (more than 10 bytes, or a 10th byte above 1). */
static inline int cdb_get_uvarint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (p >= end) return -1;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
        if (shift > 63) return -1;
    }
    *pp = p;
    *out = v;
    return 0;
}

/* ---- bit writer ----
 * Invariant between calls: acc holds nacc < 8 pending bits that belong at out[pos]. Each put
 * stores the whole 64-bit accumulator and advances by the completed bytes, so the output buffer
 * needs 8 bytes of slack past the last byte the stream can reach. */
typedef struct {
    uint8_t *out;
    size_t pos;    /* bytes completed */
    uint64_t acc;  /* pending bits, LSB first */
    int nacc;      /* number of pending bits, 0..7 */
} cdb_bitwriter;

static inline void cdb_bw_init(cdb_bitwriter *w, uint8_t *out) {
    w->out = out; w->pos = 0; w->acc = 0; w->nacc = 0;
}
/* Append the low n bits of v (n <= 56; bits of v above n must be zero). */
static inline void cdb_bw_put(cdb_bitwriter *w, uint64_t v, int n) {
    w->acc |= v << w->nacc;  /* n == 0 with v == 0 is a no-op */
    w->nacc += n;
    cdb_store64le(w->out + w->pos, w->acc);
    int bytes = w->nacc >> 3;  /* nacc <= 63, so at most 7 whole bytes */
    w->pos += (size_t)bytes;
    w->acc = bytes ? (w->acc >> (bytes << 3)) : w->acc;
    w->nacc &= 7;
}
/* Append all 64 bits of v (two 32-bit halves, low half first). */
static inline void cdb_bw_put64(cdb_bitwriter *w, uint64_t v) {
    cdb_bw_put(w, v & 0xffffffffu, 32);
    cdb_bw_put(w, v >> 32, 32);
}
/* Append the low n bits of v for any n in 0..64. */
static inline void cdb_bw_put_wide(cdb_bitwriter *w, uint64_t v, int n) {
    if (n <= 56) cdb_bw_put(w, v, n);
    else { cdb_bw_put(w, v & 0xffffffffu, 32); cdb_bw_put(w, v >> 32, n - 32); }
}
/* Bytes the stream occupies, counting a final partial byte (already stored by the last put). */
static inline size_t cdb_bw_finish(cdb_bitwriter *w) {
    return w->pos + (w->nacc ? 1 : 0);
}

/* ---- bit reader ---- */
typedef struct {
    const uint8_t *start;
    const uint8_t *p;    /* next byte not yet in the window */
    const uint8_t *end;
    uint64_t win;        /* next bits, LSB first; bits at and above nbits may hold look-ahead */
    int nbits;           /* valid bits in win */
    size_t pad_bytes;    /* zero bytes fed after end (a stream that needs them is truncated) */
} cdb_bitreader;

static inline void cdb_br_init(cdb_bitreader *r, const uint8_t *p, const uint8_t *end) {
    r->start = p; r->p = p; r->end = end; r->win = 0; r->nbits = 0; r->pad_bytes = 0;
}

/* Slow refill for the last few bytes: one byte at a time, zeros past the end. */
static inline void cdb_br_refill_tail(cdb_bitreader *r) {
    while (r->nbits <= 56) {
        if (r->p < r->end) {
            /* Bits of this byte may already sit in win as look-ahead from an 8-byte load; OR-ing
             * the same byte at the same position leaves them unchanged. */
            r->win |= (uint64_t)(*r->p++) << r->nbits;
        } else {
            r->pad_bytes++;  /* win already has zeros here: look-ahead never comes from past end */
        }
        r->nbits += 8;
    }
}
/* Make at least 56 bits valid (the tail path gives 57..64). */
static inline void cdb_br_refill(cdb_bitreader *r) {
    if (r->end - r->p >= 8) {
        /* One unaligned load, shifted above the bits still valid. The bytes that fit entirely
         * are consumed; the top, partially fitting byte is loaded again next time. */
        r->win |= cdb_load64le(r->p) << r->nbits;
        int bytes = (63 - r->nbits) >> 3;
        r->p += bytes;
        r->nbits += bytes << 3;
    } else {
        cdb_br_refill_tail(r);
    }
}
/* Read n bits, n <= 56. */
static inline uint64_t cdb_br_get(cdb_bitreader *r, int n) {
    if (r->nbits < n) cdb_br_refill(r);
    uint64_t v = r->win & ((n == 64) ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1));
    r->win = (n >= 64) ? 0 : (r->win >> n);
    r->nbits -= n;
    return v;
}
/* Read n bits for any n in 0..64. */
static inline uint64_t cdb_br_get_wide(cdb_bitreader *r, int n) {
    if (n <= 56) return cdb_br_get(r, n);
    uint64_t lo = cdb_br_get(r, 32);
    return lo | (cdb_br_get(r, n - 32) << 32);
}
/* Bits consumed so far, counting any zero padding fed after the end. */
static inline size_t cdb_br_consumed_bits(const cdb_bitreader *r) {
    return ((size_t)(r->p - r->start) + r->pad_bytes) * 8 - (size_t)r->nbits;
}

/* ---- Rice code with escape ----
 * A value u with parameter k (0..56) is q = u >> k written as q zero bits and a one bit, then the
 * low k bits of u. When q >= 32 the code is instead 32 zero bits followed by the 64 bits of u, so
 * one outlier (a gap in a time column, a jump in a gauge) costs 96 bits, not 2^k-sized unary. */
#define CDB_RICE_ESCAPE 32

static inline uint64_t cdb_rice_bits(uint64_t u, int k) {
    uint64_t q = u >> k;
    return q < CDB_RICE_ESCAPE ? q + 1 + (uint64_t)k : (uint64_t)(CDB_RICE_ESCAPE + 64);
}
static inline void cdb_rice_put(cdb_bitwriter *w, uint64_t u, int k) {
    uint64_t q = u >> k;
    if (q < CDB_RICE_ESCAPE) {
        /* q zeros then a one: the (q+1)-bit value 1 << q. q + 1 + k <= 88 bits, so two puts. */
        cdb_bw_put(w, (uint64_t)1 << q, (int)q + 1);
        cdb_bw_put(w, u & (((uint64_t)1 << k) - 1), k);
    } else {
        cdb_bw_put(w, 0, CDB_RICE_ESCAPE);
        cdb_bw_put64(w, u);
    }
}
static inline uint64_t cdb_rice_get(cdb_bitreader *r, int k) {
    if (r->nbits < CDB_RICE_ESCAPE + 1) cdb_br_refill(r);
    /* The sentinel bit at position 32 caps the count at the escape length and makes ctz defined. */
    int q = cdb_ctz64(r->win | ((uint64_t)1 << CDB_RICE_ESCAPE));
    if (q < CDB_RICE_ESCAPE) {
        r->win >>= q + 1;
        r->nbits -= q + 1;
        return ((uint64_t)q << k) | cdb_br_get(r, k);
    }
    r->win >>= CDB_RICE_ESCAPE;
    r->nbits -= CDB_RICE_ESCAPE;
    return cdb_br_get_wide(r, 64);
}

#endif /* CHRONOSDB_BITS_H */
