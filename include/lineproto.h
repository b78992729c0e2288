/* C helpers for chronosdb/ext/lineproto.pyx: growable buffers, the key hash, UTF-8 validation and
 * exact number parsing. Everything here is plain C over pointer + length, free of Python, so the
 * parser can call it without the GIL.
 */
#ifndef CHRONOSDB_LINEPROTO_H
#define CHRONOSDB_LINEPROTO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* ---------------------------------------------------------------------------------------------
 * Growable byte buffer. lp_reserve returns 0 on success, -1 when out of memory (the buffer is
 * then unchanged); callers remember the failure and raise MemoryError once they hold the GIL.
 * Growth doubles, so appending n bytes one piece at a time costs O(n) copies in total.
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} lp_buf;

static inline int lp_reserve(lp_buf *b, Py_ssize_t extra) {
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = (char *)realloc(b->data, (size_t)cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int lp_append(lp_buf *b, const void *src, Py_ssize_t n) {
    if (lp_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static inline void lp_free(lp_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Key hash for the intern tables (not stored anywhere, so it only has to be fast and spread
 * well): 8 bytes at a time, each word folded in with a 64x64->128 multiply (the wyhash mixing
 * step), the tail read with memcpy so no byte past the end is touched.
 * ------------------------------------------------------------------------------------------- */
static inline uint64_t lp_mix(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * (__uint128_t)b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t lp_hash(const unsigned char *p, Py_ssize_t n, uint64_t seed) {
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    uint64_t h = seed ^ k0 ^ (uint64_t)n;
    uint64_t w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = lp_mix(h ^ w, k1);
        p += 8;
        n -= 8;
    }
    if (n) {
        w = 0;
        memcpy(&w, p, (size_t)n);
        h = lp_mix(h ^ w ^ ((uint64_t)n << 56), k1);
    }
    return lp_mix(h, k0 ^ 0x8ebc6af09c88c6e3ULL);
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8. lp_is_ascii answers for a whole body in one pass (8 bytes per step), so the common
 * all-ASCII body skips per-line validation. lp_valid_utf8 accepts exactly what Python's strict
 * bytes.decode("utf-8") accepts: no overlong forms, no surrogates, nothing above U+10FFFF.
 * ------------------------------------------------------------------------------------------- */
static inline int lp_is_ascii(const unsigned char *p, Py_ssize_t n) {
    uint64_t acc = 0, w;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++) acc |= p[i];
    return (acc & 0x8080808080808080ULL) == 0;
}

static inline int lp_valid_utf8(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) { i++; continue; }
        unsigned char lo = 0x80, hi = 0xBF;
        int extra;
        if (c >= 0xC2 && c <= 0xDF) extra = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0) lo = 0xA0;          /* overlong */
            else if (c == 0xED) hi = 0x9F;     /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0) lo = 0x90;          /* overlong */
            else if (c == 0xF4) hi = 0x8F;     /* above U+10FFFF */
        } else return 0;
        if (i + extra >= n) return 0;   /* truncated sequence */
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (int k = 2; k <= extra; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return 0;
        i += extra + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Numbers. Result codes shared with the .pyx (which maps them to the InfluxDB reasons).
 * ------------------------------------------------------------------------------------------- */
#define LP_NUM_OK 0
#define LP_NUM_INVALID 1     /* "invalid number" / "bad timestamp" */
#define LP_NUM_RANGE 2       /* integer outside int64 / float overflows to infinity */

/* -?[0-9]+ into int64 with overflow checking. */
static inline int lp_parse_int(const unsigned char *p, Py_ssize_t n, int64_t *out) {
    int neg = 0;
    Py_ssize_t i = 0;
    if (n > 0 && p[0] == '-') { neg = 1; i = 1; }
    if (i >= n) return LP_NUM_INVALID;
    uint64_t v = 0;
    int range = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)p[i] - '0';
        if (d > 9) return LP_NUM_INVALID;
        if (v > (UINT64_C(0xFFFFFFFFFFFFFFFF) - d) / 10) range = 1;  /* keep checking syntax */
        else v = v * 10 + d;
    }
    if (range) return LP_NUM_RANGE;
    if (neg) {
        if (v > UINT64_C(0x8000000000000000)) return LP_NUM_RANGE;
        *out = (int64_t)(0 - v);
    } else {
        if (v > UINT64_C(0x7FFFFFFFFFFFFFFF)) return LP_NUM_RANGE;
        *out = (int64_t)v;
    }
    return LP_NUM_OK;
}

/* Exact powers of ten representable in a double: 10^0 .. 10^22. */
static const double lp_pow10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* -?(digits[.digits?] | .digits)([eE][+-]?digits)? into a double, correctly rounded.
 *
 * Fast path (Clinger): when the decimal significand has at most 19 digits, fits in 53 bits and
 * the decimal exponent is within +-22, both the significand and 10^|e| are exact doubles and one
 * IEEE multiply or divide rounds the exact quotient once: the correctly rounded result. Devops
 * values such as 58.13 always take it. Anything else is handed to strtod (glibc's is correctly
 * rounded, the same answer as Python's float()) on a NUL-terminated copy; the grammar was
 * checked first, so strtod never sees hex, inf or nan spellings.
 */
static inline int lp_parse_float(const unsigned char *p, Py_ssize_t n, double *out) {
    Py_ssize_t i = 0;
    int neg = 0;
    if (n > 0 && p[0] == '-') { neg = 1; i = 1; }
    uint64_t mant = 0;
    int ndigits = 0;         /* significand digits accumulated, leading zeros excluded */
    int frac_digits = 0;     /* of those (and skipped zeros), how many after the point */
    int int_count = 0, frac_count = 0;
    int overflow_digits = 0;
    for (; i < n && (unsigned)(p[i] - '0') <= 9; i++) {
        int_count++;
        if (mant == 0 && p[i] == '0') continue;
        if (ndigits < 19) { mant = mant * 10 + (p[i] - '0'); ndigits++; }
        else overflow_digits = 1;
    }
    if (i < n && p[i] == '.') {
        i++;
        for (; i < n && (unsigned)(p[i] - '0') <= 9; i++) {
            frac_count++;
            if (mant == 0 && p[i] == '0') { frac_digits++; continue; }
            if (ndigits < 19) { mant = mant * 10 + (p[i] - '0'); ndigits++; frac_digits++; }
            else overflow_digits = 1;
        }
    }
    if (int_count + frac_count == 0) return LP_NUM_INVALID;
    int64_t exp10 = 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < n && (p[i] == '+' || p[i] == '-')) { eneg = p[i] == '-'; i++; }
        if (i >= n) return LP_NUM_INVALID;
        for (; i < n; i++) {
            unsigned d = (unsigned)p[i] - '0';
            if (d > 9) return LP_NUM_INVALID;
            if (exp10 < 100000000) exp10 = exp10 * 10 + d;   /* beyond this only inf or 0 */
        }
        if (eneg) exp10 = -exp10;
    }
    if (i != n) return LP_NUM_INVALID;

    double v;
    int64_t e = exp10 - frac_digits;
    if (!overflow_digits && mant <= (UINT64_C(1) << 53) && e >= -22 && e <= 22) {
        v = (double)mant;
        if (e < 0) v /= lp_pow10[-e];
        else v *= lp_pow10[e];
        if (neg) v = -v;
    } else {
        char small[64];
        char *tmp = small;
        if (n >= (Py_ssize_t)sizeof(small)) {
            tmp = (char *)malloc((size_t)n + 1);
            if (!tmp) return -1;
        }
        memcpy(tmp, p, (size_t)n);
        tmp[n] = 0;
        v = strtod(tmp, NULL);
        if (tmp != small) free(tmp);
    }
    if (isinf(v)) return LP_NUM_RANGE;
    *out = v;
    return LP_NUM_OK;
}

/* a * b for a timestamp scale; 1 on int64 overflow. */
static inline int lp_mul_overflow(int64_t a, int64_t b, int64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

#endif
