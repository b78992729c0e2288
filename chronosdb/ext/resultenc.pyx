# cython: language_level=3, cdivision=True
"""Query-result encoders: columnar results (chronosdb.query.results) straight to the bytes
InfluxDB 1.6.7 answers, without a Python object per value.

Output layouts (docs/format/query-results.md has the diagrams and the InfluxDB evidence):

    JSON     {"results":[{"statement_id":0,"series":[{"name":..,"tags":{..},"columns":[..],
              "values":[[time,v1,..],..],"partial":true}],"messages":[..],"partial":true,
              "error":".."}]}\\n
    chunked  one such document per chunk, each followed by \\n; a chunk holds rows of one series
    CSV      name,tags,time,<cols>\\n then one line per row; a blank line and a new header when
             the statement or the column list changes

The document skeleton (objects, keys, names, tags) is written per series by ``_JsonWriter``;
the rows are written by one C loop over the columns (``_rows_kernel``), without the GIL, into a
growable malloc'd buffer. Numbers follow Go exactly: floats are the shortest round-trip digits
(Ryu, tables computed at import from exact integers) laid out as Go's encoding/json does
('e' form when |x| < 1e-6 or |x| >= 1e21, exponent without leading zeros) or, for CSV, as
strconv.FormatFloat(x, 'f', -1, 64). Strings are escaped as Go 1.10's encoding/json does: HTML
characters <, >, & as \\u003c.., control characters as \\u00XX (except \\n \\r \\t), U+2028/9
escaped, and each byte of invalid UTF-8 becomes \\ufffd.
"""
import numpy as np

cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint64_t, int32_t
from libc.stdlib cimport free, realloc

from chronosdb.model.strings import StringArray

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>

    /* ---- Ryu shortest digits --------------------------------------------------------------
       x = m2 * 2^e2 is bracketed by the halfway points to its neighbours; Ryu scales the three
       values 4*m2-1-mmShift, 4*m2, 4*m2+2 by a 125-bit approximation of 10^-q (or 5^i), then
       drops decimal digits while the bracket still separates, rounding the middle value. The
       two tables hold floor(5^i / 2^(len(5^i) - 125)) and ceil(2^(len(5^q) - 1 + 125) / 5^q),
       filled at import from Python integers (exact), as (low word, high word). */
    static uint64_t renc_pow5_split[326][2];
    static uint64_t renc_pow5_inv_split[342][2];

    static void renc_set_table(int inverse, int i, uint64_t lo, uint64_t hi) {
        if (inverse) { renc_pow5_inv_split[i][0] = lo; renc_pow5_inv_split[i][1] = hi; }
        else { renc_pow5_split[i][0] = lo; renc_pow5_split[i][1] = hi; }
    }

    static inline int32_t renc_pow5bits(int32_t e) { return (int32_t)(((uint32_t)e * 1217359u) >> 19) + 1; }
    static inline int32_t renc_log10_pow2(int32_t e) { return (int32_t)(((uint32_t)e * 78913u) >> 18); }
    static inline int32_t renc_log10_pow5(int32_t e) { return (int32_t)(((uint32_t)e * 732923u) >> 20); }

    static inline int renc_pow5_factor(uint64_t v) {
        int count = 0;
        while (v != 0 && v % 5 == 0) { v /= 5; count++; }
        return count;
    }

    static inline uint64_t renc_mulshift(uint64_t m, const uint64_t *mul, int32_t j) {
        unsigned __int128 low = (unsigned __int128)m * mul[0];
        unsigned __int128 high = (unsigned __int128)m * mul[1];
        return (uint64_t)(((low >> 64) + high) >> (j - 64));
    }

    /* x finite and non-zero (its sign is ignored). Returns digits with x = digits * 10^exp10,
       shortest round-trip, nearest to x, no trailing zeros. */
    static uint64_t renc_shortest(double x, int *exp10) {
        uint64_t bits;
        memcpy(&bits, &x, 8);
        uint64_t mantissa = bits & ((1ull << 52) - 1);
        uint32_t exponent = (uint32_t)((bits >> 52) & 0x7ff);
        int32_t e2;
        uint64_t m2;
        if (exponent == 0) { e2 = 1 - 1023 - 52 - 2; m2 = mantissa; }
        else { e2 = (int32_t)exponent - 1023 - 52 - 2; m2 = (1ull << 52) | mantissa; }
        int accept_bounds = (m2 & 1) == 0;
        uint64_t mv = 4 * m2;
        uint32_t mm_shift = (mantissa != 0 || exponent <= 1);
        uint64_t vr, vp, vm;
        int32_t e10;
        int vm_trailing_zeros = 0, vr_trailing_zeros = 0;
        if (e2 >= 0) {
            int32_t q = renc_log10_pow2(e2) - (e2 > 3);
            e10 = q;
            int32_t k = 125 + renc_pow5bits(q) - 1;
            int32_t i = -e2 + q + k;
            vr = renc_mulshift(4 * m2, renc_pow5_inv_split[q], i);
            vp = renc_mulshift(4 * m2 + 2, renc_pow5_inv_split[q], i);
            vm = renc_mulshift(4 * m2 - 1 - mm_shift, renc_pow5_inv_split[q], i);
            if (q <= 21) {
                if (mv % 5 == 0) vr_trailing_zeros = renc_pow5_factor(mv) >= q;
                else if (accept_bounds) vm_trailing_zeros = renc_pow5_factor(mv - 1 - mm_shift) >= q;
                else vp -= renc_pow5_factor(mv + 2) >= q;
            }
        } else {
            int32_t q = renc_log10_pow5(-e2) - (-e2 > 1);
            e10 = q + e2;
            int32_t i = -e2 - q;
            int32_t k = renc_pow5bits(i) - 125;
            int32_t j = q - k;
            vr = renc_mulshift(4 * m2, renc_pow5_split[i], j);
            vp = renc_mulshift(4 * m2 + 2, renc_pow5_split[i], j);
            vm = renc_mulshift(4 * m2 - 1 - mm_shift, renc_pow5_split[i], j);
            if (q <= 1) {
                vr_trailing_zeros = 1;
                if (accept_bounds) vm_trailing_zeros = mm_shift == 1;
                else --vp;
            } else if (q < 63) {
                vr_trailing_zeros = (mv & ((1ull << q) - 1)) == 0;
            }
        }
        int32_t removed = 0;
        uint8_t last_removed = 0;
        uint64_t output;
        if (vm_trailing_zeros || vr_trailing_zeros) {
            /* Rare: an interval end is exact, so ties and inclusive bounds matter. */
            while (vp / 10 > vm / 10) {
                vm_trailing_zeros &= (vm % 10) == 0;
                vr_trailing_zeros &= last_removed == 0;
                last_removed = (uint8_t)(vr % 10);
                vr /= 10; vp /= 10; vm /= 10;
                removed++;
            }
            if (vm_trailing_zeros) {
                while (vm % 10 == 0) {
                    vr_trailing_zeros &= last_removed == 0;
                    last_removed = (uint8_t)(vr % 10);
                    vr /= 10; vp /= 10; vm /= 10;
                    removed++;
                }
            }
            if (vr_trailing_zeros && last_removed == 5 && vr % 2 == 0) last_removed = 4;  /* half-even */
            output = vr + ((vr == vm && (!accept_bounds || !vm_trailing_zeros)) || last_removed >= 5);
        } else {
            int round_up = 0;
            /* most doubles lose several digits: take two at a time while that is safe */
            while (vp / 100 > vm / 100) {
                round_up = (vr % 100) >= 50;
                vr /= 100; vp /= 100; vm /= 100;
                removed += 2;
            }
            while (vp / 10 > vm / 10) {
                round_up = (vr % 10) >= 5;
                vr /= 10; vp /= 10; vm /= 10;
                removed++;
            }
            output = vr + (vr == vm || round_up);
        }
        int32_t exp = e10 + removed;
        while (output % 10 == 0) { output /= 10; exp++; }
        *exp10 = exp;
        return output;
    }

    /* ---- number and time formatting (each returns the new end of the output) -------------- */
    static const char renc_pairs[201] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";

    static inline int renc_decimal_length(uint64_t v) {
        int n = 1;
        while (v >= 10000) { v /= 10000; n += 4; }
        if (v >= 100) { v /= 100; n += 2; }
        if (v >= 10) n += 1;
        return n;
    }

    /* decimal digits of v at digits[0..n), most significant first; returns n */
    static inline int renc_utoa(uint64_t v, char *digits) {
        int n = renc_decimal_length(v);
        char *p = digits + n;
        while (v >= 100) { uint64_t k = (v % 100) * 2; v /= 100; p -= 2; p[0] = renc_pairs[k]; p[1] = renc_pairs[k + 1]; }
        if (v >= 10) { p -= 2; p[0] = renc_pairs[v * 2]; p[1] = renc_pairs[v * 2 + 1]; }
        else { *--p = (char)('0' + v); }
        return n;
    }

    static inline char *renc_put(char *p, const char *s, Py_ssize_t n) {
        /* the row and cell separators are 0-2 bytes: no libc call for those */
        if (n == 1) { *p = *s; return p + 1; }
        if (n == 2) { p[0] = s[0]; p[1] = s[1]; return p + 2; }
        if (n == 0) return p;
        memcpy(p, s, (size_t)n);
        return p + n;
    }

    static inline char *renc_i64(char *p, int64_t v) {
        uint64_t u = (uint64_t)v;
        if (v < 0) { *p++ = '-'; u = 0 - u; }
        return p + renc_utoa(u, p);
    }

    /* digits (n of them) times 10^exp in plain positional form, as Go's 'f' with precision -1. */
    static inline char *renc_fixed(char *p, const char *digits, int n, int exp) {
        int point = n + exp;  /* digits before the decimal point */
        if (point <= 0) {
            *p++ = '0'; *p++ = '.';
            memset(p, '0', (size_t)(-point)); p += -point;
            memcpy(p, digits, (size_t)n); p += n;
        } else if (point >= n) {
            memcpy(p, digits, (size_t)n); p += n;
            memset(p, '0', (size_t)(point - n)); p += point - n;
        } else {
            memcpy(p, digits, (size_t)point); p += point;
            *p++ = '.';
            memcpy(p, digits + point, (size_t)(n - point)); p += n - point;
        }
        return p;
    }

    /* Go encoding/json for a float64; NaN and +-Inf (which Go refuses) become null. */
    static inline char *renc_json_double(char *p, double x) {
        if (isnan(x) || isinf(x)) { memcpy(p, "null", 4); return p + 4; }
        if (signbit(x)) { *p++ = '-'; x = -x; }
        if (x == 0) { *p++ = '0'; return p; }
        if (x < 9007199254740992.0 && x == (double)(uint64_t)x)
            return p + renc_utoa((uint64_t)x, p);   /* an integer below 2^53: its digits are shortest */
        int exp;
        char digits[20];
        int n = renc_utoa(renc_shortest(x, &exp), digits);
        if (x < 1e-6 || x >= 1e21) {
            *p++ = digits[0];
            if (n > 1) { *p++ = '.'; memcpy(p, digits + 1, (size_t)(n - 1)); p += n - 1; }
            int e = exp + n - 1;
            *p++ = 'e';
            *p++ = e < 0 ? '-' : '+';
            p += renc_utoa((uint64_t)(e < 0 ? -e : e), p);
            return p;
        }
        return renc_fixed(p, digits, n, exp);
    }

    /* strconv.FormatFloat(x, 'f', -1, 64), as InfluxDB's CSV writer prints floats. */
    static inline char *renc_csv_double(char *p, double x) {
        if (isnan(x)) { memcpy(p, "NaN", 3); return p + 3; }
        if (isinf(x)) { memcpy(p, x > 0 ? "+Inf" : "-Inf", 4); return p + 4; }
        if (signbit(x)) { *p++ = '-'; x = -x; }
        if (x == 0) { *p++ = '0'; return p; }
        if (x < 9007199254740992.0 && x == (double)(uint64_t)x)
            return p + renc_utoa((uint64_t)x, p);
        int exp;
        char digits[20];
        int n = renc_utoa(renc_shortest(x, &exp), digits);
        return renc_fixed(p, digits, n, exp);
    }

    static inline char *renc_2digits(char *p, int v) { *p++ = (char)('0' + v / 10); *p++ = (char)('0' + v % 10); return p; }

    /* Go's time.RFC3339Nano in UTC: 2016-01-01T00:00:00.5Z (fraction trimmed, dot dropped). */
    static inline char *renc_rfc3339(char *p, int64_t ns) {
        int64_t secs = ns / 1000000000, frac = ns % 1000000000;
        if (frac < 0) { frac += 1000000000; secs -= 1; }
        int64_t days = secs / 86400, sod = secs % 86400;
        if (sod < 0) { sod += 86400; days -= 1; }
        /* civil date from days since 1970-01-01, counting in 400-year eras from 0000-03-01 */
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int day = (int)(doy - (153 * mp + 2) / 5 + 1);
        int month = (int)(mp < 10 ? mp + 3 : mp - 9);
        int64_t year = yoe + era * 400 + (month <= 2);
        /* int64 ns spans 1677..2262, always four digits */
        p = renc_2digits(p, (int)(year / 100)); p = renc_2digits(p, (int)(year % 100));
        *p++ = '-'; p = renc_2digits(p, month); *p++ = '-'; p = renc_2digits(p, day);
        *p++ = 'T'; p = renc_2digits(p, (int)(sod / 3600)); *p++ = ':';
        p = renc_2digits(p, (int)(sod / 60 % 60)); *p++ = ':'; p = renc_2digits(p, (int)(sod % 60));
        if (frac) {
            char f[9];
            int len = 9;
            for (int i = 8; i >= 0; i--) { f[i] = (char)('0' + frac % 10); frac /= 10; }
            while (f[len - 1] == '0') len--;
            *p++ = '.'; memcpy(p, f, (size_t)len); p += len;
        }
        *p++ = 'Z';
        return p;
    }

    /* The same in a time zone: local wall time, then the offset (+05:30), or Z when it is 0,
       as Go prints RFC3339Nano for a time in a Location (tz() queries). */
    static inline char *renc_rfc3339_off(char *p, int64_t ns, int32_t off_s) {
        p = renc_rfc3339(p, ns + (int64_t)off_s * 1000000000LL);
        if (off_s == 0) return p;
        p--;  /* replace the Z */
        int32_t a = off_s < 0 ? -off_s : off_s;
        *p++ = off_s < 0 ? '-' : '+';
        p = renc_2digits(p, (int)(a / 3600)); *p++ = ':'; p = renc_2digits(p, (int)(a / 60 % 60));
        return p;
    }

    /* ---- strings ------------------------------------------------------------------------- */
    /* Length of the valid UTF-8 sequence at s (Go's utf8.DecodeRune rules: no overlongs, no
       surrogates, nothing above U+10FFFF), or 0 when s starts an invalid one. */
    static inline int renc_utf8_len(const uint8_t *s, Py_ssize_t n) {
        uint8_t c = s[0];
        int need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) return 1;
        if (c < 0xC2 || c > 0xF4) return 0;
        if (c < 0xE0) need = 2;
        else if (c < 0xF0) { need = 3; if (c == 0xE0) lo = 0xA0; else if (c == 0xED) hi = 0x9F; }
        else { need = 4; if (c == 0xF0) lo = 0x90; else if (c == 0xF4) hi = 0x8F; }
        if (n < need || s[1] < lo || s[1] > hi) return 0;
        for (int i = 2; i < need; i++) if (s[i] < 0x80 || s[i] > 0xBF) return 0;
        return need;
    }

    static const char renc_hex[] = "0123456789abcdef";

    /* A quoted JSON string as Go 1.10 writes it (HTML-safe). Needs 6n + 2 bytes of room. */
    static inline char *renc_json_string(char *p, const uint8_t *s, Py_ssize_t n) {
        *p++ = '"';
        Py_ssize_t i = 0;
        while (i < n) {
            uint8_t c = s[i];
            if (c < 0x80) {
                if (c >= 0x20 && c != '"' && c != '\\\\' && c != '<' && c != '>' && c != '&') { *p++ = (char)c; }
                else if (c == '"' || c == '\\\\') { *p++ = '\\\\'; *p++ = (char)c; }
                else if (c == '\\n') { *p++ = '\\\\'; *p++ = 'n'; }
                else if (c == '\\r') { *p++ = '\\\\'; *p++ = 'r'; }
                else if (c == '\\t') { *p++ = '\\\\'; *p++ = 't'; }
                else { memcpy(p, "\\\\u00", 4); p += 4; *p++ = renc_hex[c >> 4]; *p++ = renc_hex[c & 15]; }
                i++;
                continue;
            }
            int len = renc_utf8_len(s + i, n - i);
            if (len == 0) { memcpy(p, "\\\\ufffd", 6); p += 6; i++; continue; }
            if (len == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                memcpy(p, s[i + 2] == 0xA8 ? "\\\\u2028" : "\\\\u2029", 6); p += 6;
            } else {
                memcpy(p, s + i, (size_t)len); p += len;
            }
            i += len;
        }
        *p++ = '"';
        return p;
    }

    /* Go 1.10 encoding/csv fieldNeedsQuotes: separator, quote, CR, LF, the field \\. or a
       leading unicode.IsSpace rune. */
    static inline int renc_csv_needs_quotes(const uint8_t *s, Py_ssize_t n) {
        if (n == 0) return 0;
        if (n == 2 && s[0] == '\\\\' && s[1] == '.') return 1;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint8_t c = s[i];
            if (c == ',' || c == '"' || c == '\\r' || c == '\\n') return 1;
        }
        uint8_t c = s[0];
        if (c == ' ' || (c >= '\\t' && c <= '\\r')) return 1;
        if (n >= 2 && c == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 1;
        if (n >= 3 && c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 1;
        if (n >= 3 && c == 0xE2 && s[1] == 0x80 &&
            (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF)) return 1;
        if (n >= 3 && c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 1;
        if (n >= 3 && c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 1;
        return 0;
    }

    /* A CSV cell: raw, or quoted with "" for each quote. Needs 2n + 2 bytes of room. */
    static inline char *renc_csv_string(char *p, const uint8_t *s, Py_ssize_t n) {
        if (!renc_csv_needs_quotes(s, n)) { memcpy(p, s, (size_t)n); return p + n; }
        *p++ = '"';
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] == '"') *p++ = '"';
            *p++ = (char)s[i];
        }
        *p++ = '"';
        return p;
    }
    """
    void renc_set_table(int inverse, int i, uint64_t lo, uint64_t hi)
    uint64_t renc_shortest(double x, int* exp10) noexcept nogil
    char* renc_i64(char* p, int64_t v) noexcept nogil
    char* renc_json_double(char* p, double x) noexcept nogil
    char* renc_csv_double(char* p, double x) noexcept nogil
    char* renc_rfc3339(char* p, int64_t ns) noexcept nogil
    char* renc_rfc3339_off(char* p, int64_t ns, int32_t off_s) noexcept nogil
    char* renc_put(char* p, const char* s, Py_ssize_t n) noexcept nogil
    char* renc_json_string(char* p, const uint8_t* s, Py_ssize_t n) noexcept nogil
    char* renc_csv_string(char* p, const uint8_t* s, Py_ssize_t n) noexcept nogil


def _fill_ryu_tables():
    """Exact 125-bit multipliers for Ryu, from Python integers (no table copied from anywhere)."""
    mask = (1 << 64) - 1
    for i in range(326):
        pow5 = 5 ** i
        shift = pow5.bit_length() - 125
        v = pow5 >> shift if shift >= 0 else pow5 << -shift
        renc_set_table(0, i, v & mask, v >> 64)
    for q in range(342):
        pow5 = 5 ** q
        v = (1 << (pow5.bit_length() - 1 + 125)) // pow5 + 1
        renc_set_table(1, q, v & mask, v >> 64)


_fill_ryu_tables()

# Column kinds as the row kernel sees them.
cdef enum:
    COL_NULL = 0      # all-null column (values is None)
    COL_FLOAT = 1
    COL_INT = 2
    COL_BOOL = 3
    COL_STRING = 4
    COL_JSON = 5      # a StringArray of already-encoded JSON values, written as they are

# How the time column is written.
cdef enum:
    TIME_ABSENT = 0   # the series has no time column
    TIME_RFC3339 = 1  # "2016-01-01T00:00:00Z"
    TIME_EPOCH = 2    # integer, ns divided by a unit (truncating toward zero, as Go's /)

# Worst-case bytes of one fixed-width cell: a CSV float in 'f' form can be 5e-324 spelt out,
# "-0." plus 323 zeros plus a digit, or 1.8e308 as 309 digits; everything else is far shorter.
cdef enum:
    CELL_MAX = 360

# epoch parameter -> divisor of int64 ns. InfluxDB 1.6.7 (httpd convertToEpoch) knows u, ms, s, m
# and h and answers any other non-empty value in ns; we also take "µ" as microseconds.
_EPOCH_DIVISORS = {"u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}

_KIND_CODES = {"float": COL_FLOAT, "integer": COL_INT, "boolean": COL_BOOL, "string": COL_STRING,
               "json": COL_JSON}


cdef extern from "Python.h":
    PyObject* _new_bytes "PyBytes_FromStringAndSize"(const char* v, Py_ssize_t n)
    int _resize_bytes "_PyBytes_Resize"(PyObject** b, Py_ssize_t n)
    char* _bytes_data "PyBytes_AS_STRING"(PyObject* b) nogil
    void Py_XDECREF(PyObject* o)
    void PyErr_Clear()


cdef int ob_grow(OutBuf* ob, Py_ssize_t cap) noexcept with gil:
    """Resize the bytes object being filled (or create it); -1 when memory runs out."""
    if ob.owner == NULL:
        ob.owner = _new_bytes(NULL, cap)
    elif _resize_bytes(&ob.owner, cap) < 0:
        ob.owner = NULL  # _PyBytes_Resize dropped the old object
    if ob.owner == NULL:
        PyErr_Clear()
        ob.data = NULL
        ob.length = 0
        ob.capacity = 0
        return -1
    ob.data = _bytes_data(ob.owner)
    ob.capacity = cap
    return 0


cdef inline int ob_reserve(OutBuf* ob, Py_ssize_t extra) noexcept nogil:
    """Make room for ``extra`` more bytes; -1 when memory runs out (the caller raises)."""
    cdef Py_ssize_t need = ob.length + extra
    cdef Py_ssize_t cap
    if need <= ob.capacity:
        return 0
    cap = ob.capacity * 2 if ob.capacity else 4096
    while cap < need:
        cap *= 2
    return ob_grow(ob, cap)


cdef int ob_write(OutBuf* ob, const char* p, Py_ssize_t n) noexcept nogil:
    if ob_reserve(ob, n) < 0:
        return -1
    memcpy_(ob.data + ob.length, p, n)
    ob.length += n
    return 0


cdef extern from "string.h":
    void* memcpy_ "memcpy"(void* dst, const void* src, size_t n) nogil


cdef class _Buffer:
    """Owns one OutBuf; everything an encoder call writes goes here, then out as one bytes."""

    cdef OutBuf ob

    def __dealloc__(self):
        Py_XDECREF(self.ob.owner)

    cdef write(self, bytes b):
        if ob_write(&self.ob, PyBytes_AS_STRING(b), len(b)) < 0:
            raise MemoryError("query result encoder: out of memory")

    cdef json_str(self, s):
        cdef bytes raw = _utf8(s)
        cdef Py_ssize_t n = len(raw)
        if ob_reserve(&self.ob, 6 * n + 2) < 0:
            raise MemoryError("query result encoder: out of memory")
        cdef char* end = renc_json_string(self.ob.data + self.ob.length,
                                          <const uint8_t*>PyBytes_AS_STRING(raw), n)
        self.ob.length = end - self.ob.data

    cdef csv_str(self, s):
        cdef bytes raw = _utf8(s)
        cdef Py_ssize_t n = len(raw)
        if ob_reserve(&self.ob, 2 * n + 2) < 0:
            raise MemoryError("query result encoder: out of memory")
        cdef char* end = renc_csv_string(self.ob.data + self.ob.length,
                                         <const uint8_t*>PyBytes_AS_STRING(raw), n)
        self.ob.length = end - self.ob.data

    cdef bytes take(self):
        """The bytes written so far (the object itself, shrunk to fit, not a copy); the buffer
        starts over empty."""
        if self.ob.owner == NULL:
            return b""
        if _resize_bytes(&self.ob.owner, self.ob.length) < 0:
            self.ob.owner = NULL
            raise MemoryError("query result encoder: out of memory")
        cdef bytes out = <bytes>self.ob.owner
        Py_XDECREF(self.ob.owner)
        self.ob.owner = NULL
        self.ob.data = NULL
        self.ob.length = 0
        self.ob.capacity = 0
        return out


cdef bytes _utf8(s):
    if isinstance(s, bytes):
        return <bytes>s
    # surrogatepass: a lone surrogate becomes bytes Go would call invalid, hence \ufffd
    return (<str>s).encode("utf-8", "surrogatepass")


def _sort_key(s):
    """Go sorts map keys by their bytes."""
    return _utf8(s)


cdef class _JsonWriter:
    """The document skeleton, compact or indented as Go's json.MarshalIndent(v, "", "    ")."""

    cdef _Buffer buf
    cdef bint pretty
    cdef int depth
    cdef list first          # per open container: no element written yet

    def __cinit__(self, _Buffer buf, bint pretty):
        self.buf = buf
        self.pretty = pretty
        self.depth = 0
        self.first = []

    cdef bytes newline(self, int depth):
        return b"\n" + b"    " * depth

    cdef element(self):
        """Separator before an array element or an object key."""
        if not self.first:
            return
        top = len(self.first) - 1
        if self.first[top]:
            self.first[top] = False
        else:
            self.buf.write(b",")
        if self.pretty:
            self.buf.write(self.newline(self.depth))

    cdef open(self, bytes bracket):
        self.buf.write(bracket)
        self.first.append(True)
        self.depth += 1

    cdef close(self, bytes bracket):
        self.depth -= 1
        empty = self.first.pop()
        if self.pretty and not empty:
            self.buf.write(self.newline(self.depth))
        self.buf.write(bracket)

    cdef key(self, name):
        self.element()
        self.buf.json_str(name)
        self.buf.write(b": " if self.pretty else b":")

    cdef value(self, v):
        """A small Python value (messages, names): str, bool, int, float, None, dict, list."""
        if v is None:
            self.buf.write(b"null")
        elif v is True:
            self.buf.write(b"true")
        elif v is False:
            self.buf.write(b"false")
        elif isinstance(v, (str, bytes)):
            self.buf.json_str(v)
        elif isinstance(v, int):
            self.buf.write(str(int(v)).encode())
        elif isinstance(v, float):
            self.buf.write(format_json_float(v))
        elif isinstance(v, dict):
            self.open(b"{")
            for k, item in v.items():
                self.key(str(k))
                self.value(item)
            self.close(b"}")
        elif isinstance(v, (list, tuple)):
            self.open(b"[")
            for item in v:
                self.element()
                self.value(item)
            self.close(b"]")
        else:
            raise TypeError(f"query result encoder: cannot write {type(v).__name__} as JSON")

    cdef mark_written(self):
        """The row kernel wrote elements into the innermost container."""
        self.first[len(self.first) - 1] = False


# ---------------------------------------------------------------------------------------------
# Validation: one pass per series, never per value.

cdef class _SeriesView:
    """A validated series: contiguous arrays kept alive and the kernel's ColumnView table."""

    cdef object times            # int64 ndarray or None
    cdef object offsets          # int32 ndarray of UTC offsets in seconds per row (tz()), or None
    cdef list keep               # arrays the ColumnView pointers point into
    cdef ColumnView* cols
    cdef Py_ssize_t ncols
    cdef Py_ssize_t nrows
    cdef list names              # header: "time" (when there is one) then the column names

    def __dealloc__(self):
        free(self.cols)


cdef _SeriesView _view(series):
    cdef _SeriesView v = _SeriesView.__new__(_SeriesView)
    cdef Py_ssize_t n = -1
    cdef cnp.ndarray arr
    cdef ColumnView* c
    v.keep = []
    v.names = []
    columns = list(series.columns)
    if series.times is not None:
        times = np.asarray(series.times)
        if times.ndim != 1 or times.dtype.kind not in "iu":
            raise ValueError(f"series {series.name!r}: times must be a 1-d int64 array, got {times.dtype}")
        v.times = np.ascontiguousarray(times, dtype=np.int64)
        n = len(v.times)
        v.names.append("time")
        offsets = getattr(series, "utc_offsets", None)
        if offsets is not None:
            v.offsets = np.ascontiguousarray(offsets, dtype=np.int32)
            if len(v.offsets) != n:
                raise ValueError(f"series {series.name!r}: {len(v.offsets)} UTC offsets for {n} rows")
        else:
            v.offsets = None
    else:
        v.times = None
        v.offsets = None
    v.ncols = len(columns)
    v.cols = <ColumnView*>realloc(NULL, sizeof(ColumnView) * (v.ncols if v.ncols else 1))
    if v.cols == NULL:
        raise MemoryError("query result encoder: out of memory")
    for i, col in enumerate(columns):
        c = &v.cols[i]
        c.values = NULL
        c.valid = NULL
        c.str_offsets = NULL
        c.str_data = NULL
        v.names.append(col.name)
        code = _KIND_CODES.get(col.kind)
        if code is None:
            raise ValueError(f"column {col.name!r}: unknown kind {col.kind!r} "
                             f"(expected float, integer, boolean, string or json)")
        values = col.values
        length = -1
        if values is None:
            c.kind = COL_NULL
        elif code == COL_STRING or code == COL_JSON:
            if not isinstance(values, StringArray):
                raise ValueError(f"column {col.name!r}: a {col.kind} column needs a StringArray, "
                                 f"got {type(values).__name__}")
            arr = values.offsets
            v.keep.append(arr)
            v.keep.append(values.data)
            c.kind = code
            c.str_offsets = <const int64_t*>arr.data
            c.str_data = PyBytes_AS_STRING(values.data)
            length = len(values)
        else:
            values = np.asarray(values)
            if values.ndim != 1:
                raise ValueError(f"column {col.name!r}: values must be 1-d")
            dk = values.dtype.kind
            if code == COL_FLOAT and dk == "f":
                arr = np.ascontiguousarray(values, dtype=np.float64)
            elif code == COL_INT and (dk == "i" or (dk == "u" and values.dtype.itemsize < 8)):
                arr = np.ascontiguousarray(values, dtype=np.int64)
            elif code == COL_BOOL and (dk == "b" or values.dtype == np.uint8):
                arr = np.ascontiguousarray(values).view(np.uint8)
            else:
                raise ValueError(f"column {col.name!r}: kind {col.kind!r} cannot hold {values.dtype} values")
            v.keep.append(arr)
            c.kind = code
            c.values = <const void*>arr.data
            length = len(arr)
        if col.valid is not None:
            valid = np.asarray(col.valid)
            if valid.ndim != 1 or valid.dtype.kind not in "bu":
                raise ValueError(f"column {col.name!r}: valid must be a 1-d bool mask, got {valid.dtype}")
            arr = np.ascontiguousarray(valid != 0).view(np.uint8)
            v.keep.append(arr)
            c.valid = <const char*>arr.data
            if length >= 0 and len(arr) != length:
                raise ValueError(f"column {col.name!r}: {length} values but a mask of {len(arr)}")
            length = len(arr)
        if length >= 0:
            if n < 0:
                n = length
            elif length != n:
                raise ValueError(f"series {series.name!r}: column {col.name!r} has {length} rows, "
                                 f"expected {n}")
    v.nrows = n if n >= 0 else 0
    return v


# ---------------------------------------------------------------------------------------------
# The row kernel.

cdef int _rows_kernel(OutBuf* ob, ColumnView* cols, Py_ssize_t ncols,
                      const int64_t* times, const int32_t* utc_offsets, int time_mode, int64_t divisor,
                      Py_ssize_t lo, Py_ssize_t hi, bint csv,
                      const char* first_row, Py_ssize_t first_row_n,
                      const char* next_row, Py_ssize_t next_row_n,
                      const char* first_cell, Py_ssize_t first_cell_n,
                      const char* next_cell, Py_ssize_t next_cell_n,
                      const char* row_end, Py_ssize_t row_end_n) noexcept nogil:
    """Rows [lo, hi): per row its prefix, then per cell a prefix and the value, then row_end.

    JSON compact uses "[" / ",[" / "" / "," / "]" around rows and cells (indented variants for
    pretty); CSV uses "name,tags" as the row prefix, "," before each cell and "\n" after. Room
    for everything but string bytes is reserved once per row, so the cells write through a bare
    pointer; a string cell reserves its own worst case (6 bytes per input byte in JSON) on top."""
    cdef Py_ssize_t r, j, n, row_room, cell_prefix_n
    cdef char* p
    cdef ColumnView* c
    cdef const int64_t* offs
    cdef bint first
    # Worst case of one row without string bytes: the longest JSON number is 24 bytes
    # (-2.2250738585072014e-308), a CSV float CELL_MAX, a time 40.
    cell_prefix_n = first_cell_n if first_cell_n > next_cell_n else next_cell_n
    row_room = (first_row_n if first_row_n > next_row_n else next_row_n) + row_end_n + 48
    row_room += (ncols + 1) * (cell_prefix_n + (CELL_MAX if csv else 32))
    for r in range(lo, hi):
        if ob_reserve(ob, row_room) < 0:
            return -1
        p = ob.data + ob.length
        if r == lo:
            p = renc_put(p, first_row, first_row_n)
        else:
            p = renc_put(p, next_row, next_row_n)
        first = True
        if time_mode != TIME_ABSENT:
            p = renc_put(p, first_cell, first_cell_n)
            first = False
            if time_mode == TIME_RFC3339:
                p[0] = b'"'
                if utc_offsets != NULL:
                    p = renc_rfc3339_off(p + 1, times[r], utc_offsets[r])
                else:
                    p = renc_rfc3339(p + 1, times[r])
                p[0] = b'"'
                p += 1
            else:
                # cdivision: C's / truncates toward zero, as Go's does (-1500 ns is 0 ms)
                p = renc_i64(p, times[r] if divisor == 1 else times[r] // divisor)
        for j in range(ncols):
            c = &cols[j]
            if first:
                p = renc_put(p, first_cell, first_cell_n)
                first = False
            else:
                p = renc_put(p, next_cell, next_cell_n)
            if c.kind == COL_NULL or (c.valid != NULL and not c.valid[r]):
                if not csv:
                    memcpy_(p, b"null", 4)
                    p += 4
            elif c.kind == COL_FLOAT:
                if csv:
                    p = renc_csv_double(p, (<const double*>c.values)[r])
                else:
                    p = renc_json_double(p, (<const double*>c.values)[r])
            elif c.kind == COL_INT:
                p = renc_i64(p, (<const int64_t*>c.values)[r])
            elif c.kind == COL_BOOL:
                if (<const uint8_t*>c.values)[r]:
                    memcpy_(p, b"true", 4)
                    p += 4
                else:
                    memcpy_(p, b"false", 5)
                    p += 5
            else:  # COL_STRING, COL_JSON
                offs = c.str_offsets
                n = offs[r + 1] - offs[r]
                ob.length = p - ob.data
                if ob_reserve(ob, ((2 * n + 2) if csv else (6 * n + 2)) + row_room) < 0:
                    return -1
                p = ob.data + ob.length
                if c.kind == COL_JSON and not csv:
                    # the caller's JSON text, as it is (CSV writes it as a quoted cell)
                    p = renc_put(p, <const char*>(c.str_data + offs[r]), n)
                elif csv:
                    p = renc_csv_string(p, <const uint8_t*>(c.str_data + offs[r]), n)
                else:
                    p = renc_json_string(p, <const uint8_t*>(c.str_data + offs[r]), n)
        if first and not csv:
            # a row without cells: the prefix opened it, and Go writes [] compactly even when
            # indenting
            p[0] = b']'
            p += 1
        else:
            p = renc_put(p, row_end, row_end_n)
        ob.length = p - ob.data
    return 0


cdef _run_rows(_Buffer buf, _SeriesView v, int time_mode, int64_t divisor,
               Py_ssize_t lo, Py_ssize_t hi, bint csv, bytes first_row, bytes next_row,
               bytes first_cell, bytes next_cell, bytes row_end):
    cdef const int64_t* times = NULL
    cdef const int32_t* offs = NULL
    cdef cnp.ndarray t, o
    cdef int rc
    if v.times is not None:
        t = v.times
        times = <const int64_t*>t.data
        if v.offsets is not None:
            o = v.offsets
            offs = <const int32_t*>o.data
    else:
        time_mode = TIME_ABSENT
    cdef const char* fr = first_row
    cdef const char* nr = next_row
    cdef const char* fc = first_cell
    cdef const char* nc = next_cell
    cdef const char* re = row_end
    cdef Py_ssize_t frn = len(first_row), nrn = len(next_row), fcn = len(first_cell)
    cdef Py_ssize_t ncn = len(next_cell), ren = len(row_end)
    with nogil:
        rc = _rows_kernel(&buf.ob, v.cols, v.ncols, times, offs, time_mode, divisor, lo, hi, csv,
                          fr, frn, nr, nrn, fc, fcn, nc, ncn, re, ren)
    if rc < 0:
        raise MemoryError("query result encoder: out of memory")


# ---------------------------------------------------------------------------------------------
# JSON documents.

cdef _time_mode(epoch):
    """(mode, divisor) for the ``epoch`` parameter, as InfluxDB 1.6.7 reads it."""
    if epoch is None or epoch == "":
        return TIME_RFC3339, 1
    if not isinstance(epoch, str):
        raise ValueError(f"epoch must be a string or None, got {type(epoch).__name__}")
    return TIME_EPOCH, _EPOCH_DIVISORS.get(epoch, 1)


cdef _write_series(_JsonWriter w, series, _SeriesView v, int time_mode, int64_t divisor,
                   Py_ssize_t lo, Py_ssize_t hi, bint partial):
    """One series object holding rows [lo, hi); keys in the order of Go's models.Row."""
    w.element()
    w.open(b"{")
    if series.name:
        w.key("name")
        w.buf.json_str(series.name)
    if series.tags:
        w.key("tags")
        w.open(b"{")
        for k in sorted(series.tags, key=_sort_key):
            w.key(k)
            w.buf.json_str(series.tags[k])
        w.close(b"}")
    if v.names:
        w.key("columns")
        w.open(b"[")
        for name in v.names:
            w.element()
            w.buf.json_str(name)
        w.close(b"]")
    if hi > lo:
        w.key("values")
        w.open(b"[")
        if w.pretty:
            row_indent = w.newline(w.depth)
            cell_indent = w.newline(w.depth + 1)
            _run_rows(w.buf, v, time_mode, divisor, lo, hi, False,
                      row_indent + b"[", b"," + row_indent + b"[", cell_indent, b"," + cell_indent,
                      row_indent + b"]")
        else:
            _run_rows(w.buf, v, time_mode, divisor, lo, hi, False, b"[", b",[", b"", b",", b"]")
        w.mark_written()
        w.close(b"]")
    if partial:
        w.key("partial")
        w.buf.write(b"true")
    w.close(b"}")


cdef _message_value(m):
    if isinstance(m, dict):
        return {"level": m.get("level", ""), "text": m.get("text", "")}
    if isinstance(m, (tuple, list)) and len(m) == 2:
        return {"level": m[0], "text": m[1]}
    return {"level": getattr(m, "level"), "text": getattr(m, "text")}


cdef _open_result(_JsonWriter w, result):
    w.element()
    w.open(b"{")
    w.key("statement_id")
    w.buf.write(str(int(result.statement_id)).encode())


cdef _close_result(_JsonWriter w, result, bint with_messages, bint partial, bint with_error):
    if with_messages and result.messages:
        w.key("messages")
        w.value([_message_value(m) for m in result.messages])
    if partial:
        w.key("partial")
        w.buf.write(b"true")
    if with_error and result.error:
        w.key("error")
        w.buf.json_str(result.error)
    w.close(b"}")


def encode_results(results, epoch=None, pretty=False):
    """The whole {"results":[...]} document, newline-terminated, as InfluxDB 1.6.7 sends it."""
    cdef _Buffer buf = _Buffer()
    cdef _JsonWriter w = _JsonWriter(buf, bool(pretty))
    cdef _SeriesView v
    mode, divisor = _time_mode(epoch)
    w.open(b"{")
    if results:
        w.key("results")
        w.open(b"[")
        for result in results:
            _open_result(w, result)
            if result.series:
                w.key("series")
                w.open(b"[")
                for series in result.series:
                    v = _view(series)
                    _write_series(w, series, v, mode, divisor, 0, v.nrows, series.partial)
                w.close(b"]")
            _close_result(w, result, True, result.partial, True)
        w.close(b"]")
    w.close(b"}")
    buf.write(b"\n")
    return buf.take()


class _RowSet:
    """What ``_view`` reads: the rows ``encode_row_ranges`` cuts its events from."""
    __slots__ = ("name", "times", "columns", "utc_offsets")

    def __init__(self, times, columns):
        self.name, self.times, self.columns, self.utc_offsets = None, times, columns, None


def series_head(name, tags, column_names):
    """The start of one compact series object up to its first row, as ``encode_results`` writes
    it: ``{"name":..,"tags":{..},"columns":[..],"values":[``."""
    cdef _Buffer buf = _Buffer()
    cdef _JsonWriter w = _JsonWriter(buf, False)
    w.open(b"{")
    if name:
        w.key("name")
        buf.json_str(name)
    if tags:
        w.key("tags")
        w.open(b"{")
        for k in sorted(tags, key=_sort_key):
            w.key(k)
            buf.json_str(tags[k])
        w.close(b"}")
    w.key("columns")
    w.open(b"[")
    for c in column_names:
        w.element()
        buf.json_str(c)
    w.close(b"]")
    w.key("values")
    buf.write(b"[")
    return buf.take()


def encode_row_ranges(times, columns, lo, hi, heads, tail, epoch=None):
    """Several documents cut from one set of rows: document i is ``heads[i]``, then the rows
    [lo[i], hi[i]) of ``times`` and ``columns`` (``results.Column``-like: name, values, valid,
    kind; over all rows) written as compact JSON rows exactly as ``encode_results`` writes
    them, then ``tail``; None where lo[i] >= hi[i]. The columns are validated once for all
    documents and every document's rows are written with the GIL released: the events of many
    streams following one series each, from one tick's rows (chronosdb.pubsub.streaming)."""
    cdef _SeriesView v = _view(_RowSet(times, columns))
    cdef _Buffer buf
    mode, divisor = _time_mode(epoch)
    lo_a = np.ascontiguousarray(lo, dtype=np.int64)
    hi_a = np.ascontiguousarray(hi, dtype=np.int64)
    cdef const int64_t[::1] l = lo_a
    cdef const int64_t[::1] h = hi_a
    cdef Py_ssize_t i, m = len(heads)
    if l.shape[0] != m or h.shape[0] != m:
        raise ValueError(f"encode_row_ranges: {m} heads but {l.shape[0]} lo and {h.shape[0]} hi")
    out = [None] * m
    for i in range(m):
        if l[i] >= h[i]:
            continue
        if l[i] < 0 or h[i] > v.nrows:
            raise ValueError(f"encode_row_ranges: range {i} [{l[i]}, {h[i]}) outside the {v.nrows} rows")
        buf = _Buffer()
        # Room for the rows at about their usual size (a time and short numbers), so the
        # buffer rarely grows (each growth copies it) while the kernel writes.
        if ob_reserve(&buf.ob, len(heads[i]) + len(tail) + (h[i] - l[i]) * (24 + 12 * v.ncols)) < 0:
            raise MemoryError("query result encoder: out of memory")
        buf.write(heads[i])
        _run_rows(buf, v, mode, divisor, l[i], h[i], False, b"[", b",[", b"", b",", b"]")
        buf.write(tail)
        out[i] = buf.take()
    return out


def encode_error(message, pretty=False):
    """A request-level failure, {"error":"..."}\\n (e.g. a query that does not parse)."""
    cdef _Buffer buf = _Buffer()
    cdef _JsonWriter w = _JsonWriter(buf, bool(pretty))
    w.open(b"{")
    w.key("error")
    buf.json_str(message)
    w.close(b"}")
    buf.write(b"\n")
    return buf.take()


def encode_csv_error(message):
    """A request-level failure for Accept: application/csv: a one-cell table ``error``."""
    cdef _Buffer buf = _Buffer()
    buf.write(b"error\n")
    buf.csv_str(message)
    buf.write(b"\n")
    return buf.take()


def encode_chunks(results, epoch=None, chunk_size=10000, pretty=False):
    """InfluxDB's chunked=true: yields one newline-terminated document per chunk.

    A chunk holds rows of one series only, at most ``chunk_size`` of them (<= 0 means InfluxDB's
    default, 10000). Every piece of a series but its last says "partial": true, and so does every
    chunk of a statement but its last (the last pieces carry the input's own partial flags, so a
    streaming caller can pass results in slices). A statement without series is one chunk
    {"statement_id":N} (with its error or messages, if any); messages ride on a statement's
    first chunk, the error on its last.
    """
    cdef _Buffer buf = _Buffer()
    cdef _JsonWriter w
    cdef _SeriesView v
    cdef Py_ssize_t lo, hi, size
    mode, divisor = _time_mode(epoch)
    size = int(chunk_size)
    if size <= 0:
        size = 10000
    for result in results:
        pieces = []
        for series in (result.series or ()):
            v = _view(series)
            if v.nrows == 0:
                pieces.append((series, v, 0, 0, series.partial))
                continue
            lo = 0
            while lo < v.nrows:
                hi = min(lo + size, v.nrows)
                pieces.append((series, v, lo, hi, series.partial if hi == v.nrows else True))
                lo = hi
        if not pieces:
            pieces.append(None)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            w = _JsonWriter(buf, bool(pretty))
            w.open(b"{")
            w.key("results")
            w.open(b"[")
            _open_result(w, result)
            if piece is not None:
                series, v, lo, hi, partial = piece
                w.key("series")
                w.open(b"[")
                _write_series(w, series, v, mode, divisor, lo, hi, partial)
                w.close(b"]")
            _close_result(w, result, index == 0, result.partial if last else True, last)
            w.close(b"]")
            w.close(b"}")
            buf.write(b"\n")
            yield buf.take()


# ---------------------------------------------------------------------------------------------
# CSV.

cdef str _escape_tag(str s):
    return s.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


cdef str _tags_cell(tags):
    """models.Tags.HashKey without its leading comma: sorted k=v, escaped, empty values left out."""
    if not tags:
        return ""
    return ",".join(f"{_escape_tag(k)}={_escape_tag(tags[k])}"
                    for k in sorted(tags, key=_sort_key) if tags[k])


def encode_csv(results, epoch=None):
    """Accept: application/csv, as InfluxDB 1.6.7's csvFormatter writes it.

    Header ``name,tags,<columns>`` per statement with series (a blank line between statements),
    again after a blank line when a series' columns differ from the previous one's. Times are
    integers (ns unless ``epoch`` says otherwise); nulls are empty cells; statements that failed
    or found nothing write nothing (InfluxDB drops statement errors from CSV too).
    """
    cdef _Buffer buf = _Buffer()
    cdef _SeriesView v
    mode, divisor = _time_mode(epoch)
    if mode == TIME_RFC3339:
        mode, divisor = TIME_EPOCH, 1
    current_statement = None
    for result in results:
        if not result.series:
            continue
        if result.statement_id != current_statement:
            if current_statement is not None:
                buf.write(b"\n")
            current_statement = result.statement_id
            previous = None
        for series in result.series:
            v = _view(series)
            if v.names != previous:
                if previous is not None:
                    buf.write(b"\n")
                buf.write(b"name,tags")
                for name in v.names:
                    buf.write(b",")
                    buf.csv_str(name)
                buf.write(b"\n")
                previous = v.names
            prefix = _Buffer()
            prefix.csv_str(series.name or "")
            prefix.write(b",")
            prefix.csv_str(_tags_cell(series.tags))
            row_prefix = prefix.take()
            _run_rows(buf, v, mode, divisor, 0, v.nrows, True, row_prefix, row_prefix,
                      b",", b",", b"\n")
    return buf.take()


# ---------------------------------------------------------------------------------------------
# Single values, for tests and for callers formatting one number the way the encoders do.

def format_json_float(double x):
    """One float64 as Go's encoding/json writes it (NaN and infinities as null)."""
    cdef char out[CELL_MAX]
    cdef char* end = renc_json_double(out, x)
    return PyBytes_FromStringAndSize(out, end - out)


def format_csv_float(double x):
    """One float64 as strconv.FormatFloat(x, 'f', -1, 64)."""
    cdef char out[CELL_MAX]
    cdef char* end = renc_csv_double(out, x)
    return PyBytes_FromStringAndSize(out, end - out)


def format_rfc3339(int64_t ns):
    """Nanoseconds since the epoch as Go's time.RFC3339Nano in UTC."""
    cdef char out[64]
    cdef char* end = renc_rfc3339(out, ns)
    return PyBytes_FromStringAndSize(out, end - out)


def shortest(double x):
    """(digits, exp10) with x == digits * 10**exp10, shortest round-trip (finite, non-zero x)."""
    cdef int e = 0
    if x != x or x == 0 or x in (float("inf"), float("-inf")):
        raise ValueError(f"shortest() needs a finite non-zero float, got {x!r}")
    cdef uint64_t d = renc_shortest(x, &e)
    return int(d), e


cdef uint64_t shortest_digits(double x, int* exp10) noexcept nogil:
    return renc_shortest(x, exp10)
