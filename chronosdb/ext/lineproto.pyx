# cython: language_level=3
"""InfluxDB 1.x line protocol -> WriteBatch, scanned in C over the raw request body.

The body is read in place through one typed memoryview; the whole scan runs without the GIL and
makes no Python object per line or per point. Layout of the work (docs/format/line-protocol.md
has the grammar, escapes, types and error reasons):

1. Lines. ``line_end`` finds where the line starting at a position ends: the next newline, found
   with memchr, unless the line holds a '"' -- then a careful scan lets a newline inside a string
   field value belong to the value. Boundaries never depend on whether the line parses, so a bad
   line is skipped whole and the next one parsed (the twin in lineproto_ref.py cuts identically).
2. One line. ``Parser.parse_line`` walks measurement, tags, fields and timestamp with pointers,
   staging tags (``Tag``) and values (``Slot``) in per-line C arrays; nothing reaches the output
   until the whole line is good. Tags are compared in place; when they are already sorted and the
   key has no backslash (the usual case) the canonical series key *is* the line's key bytes and
   is not copied. Otherwise the tags are unescaped, insertion-sorted and the key rebuilt, escaped
   exactly as chronosdb.model.serieskey.make_key escapes it, in a per-line scratch buffer.
3. Commit. ``Parser.commit`` interns the series key in an open-addressing table (a wyhash-style
   hash from include/lineproto.h; bytes compared on a hash match) and appends each value to its
   column: one growable C array each for series index, time and value (strings: end offsets plus
   one data buffer). The column of each field position is remembered from the previous line, so
   a body whose lines share a field order (the usual case) looks a column up by one memcmp.
4. Output. With the GIL back: one ``bytes`` per distinct series key and field key, one memcpy
   per column into numpy arrays, one tuple per rejected line.

Floats are parsed exactly (a Clinger fast path for short decimals, glibc strtod otherwise: the
same double as Python's float()); integers and timestamps with int64 overflow checks.
"""
import numpy as np

cimport numpy as cnp
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset

from chronosdb.ext.lineproto_ref import (
    ERROR_LINE_CAP,
    MAX_KEY_LENGTH,
    R_TIME_RANGE,
    ParseResult,
    check_default_time,
    precision_multiplier,
)
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray

cnp.import_array()

# Field type codes (chronosdb.model.fieldtype.FieldType; part of the on-disk formats).
cdef enum:
    T_FLOAT = 1
    T_INTEGER = 2
    T_BOOLEAN = 3
    T_STRING = 4

# Why a line was rejected. The texts are InfluxDB 1.x's (see REASONS below).
cdef enum:
    E_NONE = 0
    E_MISSING_MEASUREMENT
    E_MISSING_FIELDS
    E_MISSING_TAG_KEY
    E_MISSING_TAG_VALUE
    E_INVALID_TAG_FORMAT
    E_DUPLICATE_TAGS
    E_MISSING_FIELD_KEY
    E_MISSING_FIELD_VALUE
    E_INVALID_FIELD_FORMAT
    E_UNBALANCED_QUOTES
    E_INVALID_NUMBER
    E_INVALID_FLOAT
    E_INVALID_BOOLEAN
    E_INT_RANGE            # detail: the integer token (offset a, length b)
    E_BAD_TIMESTAMP
    E_POINT_INVALID
    E_TIME_RANGE
    E_MAX_KEY              # detail: the key size in a
    E_UTF8
    E_OOM                  # not a line error: the parse stops and raises MemoryError

REASONS = {
    E_MISSING_MEASUREMENT: "missing measurement",
    E_MISSING_FIELDS: "missing fields",
    E_MISSING_TAG_KEY: "missing tag key",
    E_MISSING_TAG_VALUE: "missing tag value",
    E_INVALID_TAG_FORMAT: "invalid tag format",
    E_DUPLICATE_TAGS: "duplicate tags",
    E_MISSING_FIELD_KEY: "missing field key",
    E_MISSING_FIELD_VALUE: "missing field value",
    E_INVALID_FIELD_FORMAT: "invalid field format",
    E_UNBALANCED_QUOTES: "unbalanced quotes",
    E_INVALID_NUMBER: "invalid number",
    E_INVALID_FLOAT: "invalid float",
    E_INVALID_BOOLEAN: "invalid boolean",
    E_BAD_TIMESTAMP: "bad timestamp",
    E_POINT_INVALID: "point is invalid",
    E_TIME_RANGE: R_TIME_RANGE,
    E_UTF8: "invalid UTF-8",
}

# InfluxDB 1.x's valid time range: int64 minus MIN, MIN+1 and MAX (MIN is its "no time" value).
cdef int64_t TIME_MIN = INT64_MIN + 2
cdef int64_t TIME_MAX = INT64_MAX - 1
cdef Py_ssize_t C_MAX_KEY_LENGTH = MAX_KEY_LENGTH

# Above this many fields in one line, duplicate field keys are found with a hash set instead of
# comparing every pair (a few dozen fields compare faster pairwise than they hash).
cdef Py_ssize_t DEDUP_PAIRWISE_MAX = 16

# The bytes the grammar turns on.
cdef enum:
    BS = 92        # backslash
    NL = 10
    SP = 32
    TAB = 9
    CR = 13
    COMMA = 44
    EQ = 61
    QUOTE = 34
    HASH = 35


# ---------------------------------------------------------------------------------------------
# Byte-level helpers
# ---------------------------------------------------------------------------------------------

cdef inline bint is_ws(unsigned char c) noexcept nogil:
    return c == SP or c == TAB


cdef inline Py_ssize_t scan_escaped(const unsigned char* L, Py_ssize_t i, Py_ssize_t m,
                                    unsigned char s1, unsigned char s2,
                                    unsigned char s3) noexcept nogil:
    """First index >= i holding an unescaped s1, s2 or s3 (m when none). A backslash skips the
    byte after it."""
    cdef unsigned char c
    while i < m:
        c = L[i]
        if c == BS:
            i += 2
            continue
        if c == s1 or c == s2 or c == s3:
            return i
        i += 1
    return m


cdef Py_ssize_t line_end(const unsigned char* b, Py_ssize_t pos, Py_ssize_t n,
                         bint* careful) noexcept nogil:
    """Index of the newline ending the line that starts at pos (n when none); see
    lineproto_ref._line_end for the rule. *careful is set when the slow scan ran (then the line
    may contain newlines inside string values)."""
    cdef const unsigned char* q = <const unsigned char*>memchr(b + pos, NL, n - pos)
    cdef Py_ssize_t nl = n if q == NULL else q - b
    cdef Py_ssize_t i, j
    cdef int section = 0
    cdef unsigned char c
    careful[0] = False
    if memchr(b + pos, QUOTE, nl - pos) == NULL:
        return nl
    careful[0] = True
    i = pos
    while i < n and is_ws(b[i]):
        i += 1
    if i < n and b[i] == HASH:
        return nl
    while i < n:
        c = b[i]
        if c == NL:
            return i
        if c == BS:
            if i + 1 < n and b[i + 1] == NL:
                return i + 1
            i += 2
            continue
        if c == SP and section < 2:
            section += 1
            i += 1
            if section == 1:
                while i < n and is_ws(b[i]):
                    i += 1
            continue
        if section == 1 and c == EQ and i + 1 < n and b[i + 1] == QUOTE:
            j = i + 2
            while j < n:
                if b[j] == BS:
                    j += 2
                elif b[j] == QUOTE:
                    break
                else:
                    j += 1
            if j >= n:
                q = <const unsigned char*>memchr(b + i, NL, n - i)
                return n if q == NULL else q - b
            i = j + 1
            continue
        i += 1
    return n


cdef inline int bytes_cmp(const unsigned char* a, Py_ssize_t na,
                          const unsigned char* b, Py_ssize_t nb) noexcept nogil:
    cdef Py_ssize_t k = na if na < nb else nb
    cdef int r = memcmp(a, b, k) if k else 0
    if r:
        return r
    return (na > nb) - (na < nb)


cdef inline Py_ssize_t unescape_to(unsigned char* out, const unsigned char* p, Py_ssize_t n,
                                   bint is_tag) noexcept nogil:
    """Name unescaping: backslash + ',' or ' ' (and '=' in tags and field keys) -> that byte;
    any other backslash pair is kept as written. Returns the bytes written (<= n)."""
    cdef Py_ssize_t i = 0, o = 0
    cdef unsigned char c, d
    while i < n:
        c = p[i]
        if c == BS and i + 1 < n:
            d = p[i + 1]
            if d == COMMA or d == SP or (is_tag and d == EQ):
                out[o] = d
                o += 1
            else:
                out[o] = c
                out[o + 1] = d
                o += 2
            i += 2
        else:
            out[o] = c
            o += 1
            i += 1
    return o


cdef inline Py_ssize_t escape_to(unsigned char* out, const unsigned char* p, Py_ssize_t n,
                                 bint is_tag) noexcept nogil:
    """Canonical key escaping (serieskey.make_key): a backslash before '\\', ',', ' ' (and '='
    in tags). Returns the bytes written (<= 2n)."""
    cdef Py_ssize_t i, o = 0
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if c == BS or c == COMMA or c == SP or (is_tag and c == EQ):
            out[o] = BS
            o += 1
        out[o] = c
        o += 1
    return o


cdef inline bint parse_bool(const unsigned char* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """t T true True TRUE f F false False FALSE."""
    if n == 1:
        if p[0] == b't' or p[0] == b'T':
            out[0] = 1
            return True
        if p[0] == b'f' or p[0] == b'F':
            out[0] = 0
            return True
        return False
    if n == 4:
        if (memcmp(p, b"true", 4) == 0 or memcmp(p, b"True", 4) == 0
                or memcmp(p, b"TRUE", 4) == 0):
            out[0] = 1
            return True
        return False
    if n == 5:
        if (memcmp(p, b"false", 5) == 0 or memcmp(p, b"False", 5) == 0
                or memcmp(p, b"FALSE", 5) == 0):
            out[0] = 0
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Intern tables and growable arrays
# ---------------------------------------------------------------------------------------------

cdef int intern_grow(Intern* t) noexcept nogil:
    cdef Py_ssize_t cap = t.cap * 2 if t.cap else 64
    cdef uint64_t* hashes = <uint64_t*>malloc(cap * sizeof(uint64_t))
    cdef int32_t* slots = <int32_t*>malloc(cap * sizeof(int32_t))
    cdef Py_ssize_t k, s, mask = cap - 1
    if hashes == NULL or slots == NULL:
        free(hashes)
        free(slots)
        return -1
    memset(slots, 0xFF, cap * sizeof(int32_t))
    for k in range(t.cap):
        if t.slots[k] >= 0:
            s = <Py_ssize_t>(t.hashes[k] & <uint64_t>mask)
            while slots[s] >= 0:
                s = (s + 1) & mask
            slots[s] = t.slots[k]
            hashes[s] = t.hashes[k]
    free(t.hashes)
    free(t.slots)
    t.hashes = hashes
    t.slots = slots
    t.cap = cap
    return 0


cdef Py_ssize_t intern(Intern* t, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Dense index of the bytes p[:n] in t, adding them when new; -1 when out of memory."""
    cdef uint64_t h = lp_hash(p, n, 0)
    cdef Py_ssize_t s, mask, idx
    cdef int64_t* sp
    cdef int64_t span[2]
    if (t.count + 1) * 2 > t.cap:
        if intern_grow(t):
            return -1
    mask = t.cap - 1
    s = <Py_ssize_t>(h & <uint64_t>mask)
    while True:
        idx = t.slots[s]
        if idx < 0:
            break
        if t.hashes[s] == h:
            sp = (<int64_t*>t.spans.data) + 2 * idx
            if sp[1] == n and memcmp(t.arena.data + sp[0], p, n) == 0:
                return idx
        s = (s + 1) & mask
    span[0] = t.arena.len
    span[1] = n
    if lp_append(&t.arena, p, n) or lp_append(&t.spans, span, sizeof(span)):
        return -1
    t.slots[s] = <int32_t>t.count
    t.hashes[s] = h
    t.count += 1
    return t.count - 1


cdef void intern_free(Intern* t) noexcept nogil:
    free(t.hashes)
    free(t.slots)
    t.hashes = NULL
    t.slots = NULL
    t.cap = t.count = 0
    lp_free(&t.arena)
    lp_free(&t.spans)


cdef inline int push8(lp_buf* b, const void* v) noexcept nogil:
    if b.len + 8 > b.cap and lp_reserve(b, 8):
        return -1
    memcpy(b.data + b.len, v, 8)
    b.len += 8
    return 0


cdef inline int push4(lp_buf* b, int32_t v) noexcept nogil:
    if b.len + 4 > b.cap and lp_reserve(b, 4):
        return -1
    memcpy(b.data + b.len, &v, 4)
    b.len += 4
    return 0


cdef inline int push1(lp_buf* b, uint8_t v) noexcept nogil:
    if b.len + 1 > b.cap and lp_reserve(b, 1):
        return -1
    b.data[b.len] = <char>v
    b.len += 1
    return 0


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------

cdef class Parser:
    """Scan state of one parse() call; owns every C buffer and frees them when collected."""

    def __dealloc__(self):
        cdef Column* cols = <Column*>self.columns.data
        cdef Py_ssize_t k
        for k in range(self.columns.len // sizeof(Column)):
            lp_free(&cols[k].series)
            lp_free(&cols[k].times)
            lp_free(&cols[k].values)
            lp_free(&cols[k].sdata)
        lp_free(&self.columns)
        lp_free(&self.tags)
        lp_free(&self.slots)
        lp_free(&self.scratch)
        lp_free(&self.slot_col)
        lp_free(&self.keytmp)
        lp_free(&self.errors)
        intern_free(&self.series)
        intern_free(&self.fkeys)

    cdef void run(self) noexcept nogil:
        cdef const unsigned char* b = self.body
        cdef Py_ssize_t n = self.n, pos = 0, end, s, e
        cdef int64_t lineno = 1, line_no
        cdef const unsigned char* q
        cdef bint careful
        cdef int code
        cdef ErrRec rec
        while pos < n:
            end = line_end(b, pos, n, &careful)
            line_no = lineno
            lineno += 1
            if careful:
                s = pos
                while True:
                    q = <const unsigned char*>memchr(b + s, NL, end - s)
                    if q == NULL:
                        break
                    lineno += 1
                    s = (q - b) + 1
            s = pos
            e = end
            pos = end + 1
            while s < e and is_ws(b[s]):
                s += 1
            while e > s and (is_ws(b[e - 1]) or b[e - 1] == CR):
                e -= 1
            if s == e or b[s] == HASH:
                continue
            code = self.parse_line(b + s, e - s)
            if code == E_NONE:
                code = self.commit()
            if code == E_OOM:
                self.oom = True
                return
            if code != E_NONE:
                rec.lineno = line_no
                rec.start = s
                rec.length = e - s
                rec.code = code
                rec.a = self.err_a
                rec.b = self.err_b
                if lp_append(&self.errors, &rec, sizeof(ErrRec)):
                    self.oom = True
                    return

    cdef int parse_line(self, const unsigned char* L, Py_ssize_t m) noexcept nogil:
        """Parse one trimmed line into the staging arrays; E_NONE or the rejection reason."""
        cdef Py_ssize_t i, j, k0, v0, e, q, v, t, u, key_end, meas_l, nt, ns
        cdef Tag tag
        cdef Tag* tags
        cdef Slot* slot
        cdef Slot* slots
        cdef unsigned char c
        cdef unsigned char* sc
        cdef const unsigned char* mp
        cdef Py_ssize_t ml
        cdef bint key_bs, in_order
        cdef int rc
        cdef int64_t ts, tns

        if self.check_utf8 and not lp_valid_utf8(L, m):
            return E_UTF8
        # Everything the line writes to scratch fits in 5m: unescaped names (<= m) plus the
        # rebuilt key (<= 2m) plus unescaped field keys (<= m). Reserving it up front keeps the
        # pointers into scratch valid for the whole line.
        self.scratch.len = 0
        if lp_reserve(&self.scratch, 5 * m + 64):
            return E_OOM
        sc = <unsigned char*>self.scratch.data

        # measurement
        if m == 0 or L[0] == COMMA:
            return E_MISSING_MEASUREMENT
        i = scan_escaped(L, 0, m, COMMA, SP, SP)
        if i >= m:
            return E_MISSING_FIELDS
        meas_l = i

        # tags
        self.tags.len = 0
        if L[i] == COMMA:
            while True:
                k0 = i + 1
                if k0 >= m or L[k0] == SP or L[k0] == COMMA or L[k0] == EQ:
                    return E_MISSING_TAG_KEY
                j = scan_escaped(L, k0, m, EQ, COMMA, SP)
                if j >= m or L[j] != EQ:
                    return E_MISSING_TAG_VALUE
                v0 = j + 1
                if v0 >= m or L[v0] == COMMA or L[v0] == SP:
                    return E_MISSING_TAG_VALUE
                e = scan_escaped(L, v0, m, COMMA, EQ, SP)
                if e >= m:
                    return E_MISSING_FIELDS
                if L[e] == EQ:
                    return E_INVALID_TAG_FORMAT
                tag.kp = L + k0
                tag.kl = j - k0
                tag.vp = L + v0
                tag.vl = e - v0
                if lp_append(&self.tags, &tag, sizeof(Tag)):
                    return E_OOM
                i = e
                if L[e] == SP:
                    break
        key_end = i
        nt = self.tags.len // sizeof(Tag)
        tags = <Tag*>self.tags.data

        # canonical key: tags sorted by unescaped key, no duplicates
        key_bs = memchr(L, BS, key_end) != NULL
        mp = L
        ml = meas_l
        if key_bs:
            mp = sc + self.scratch.len
            ml = unescape_to(sc + self.scratch.len, L, meas_l, False)
            self.scratch.len += ml
            for t in range(nt):
                u = unescape_to(sc + self.scratch.len, tags[t].kp, tags[t].kl, True)
                tags[t].kp = sc + self.scratch.len
                tags[t].kl = u
                self.scratch.len += u
                u = unescape_to(sc + self.scratch.len, tags[t].vp, tags[t].vl, True)
                tags[t].vp = sc + self.scratch.len
                tags[t].vl = u
                self.scratch.len += u
        in_order = True
        for t in range(1, nt):
            rc = bytes_cmp(tags[t - 1].kp, tags[t - 1].kl, tags[t].kp, tags[t].kl)
            if rc > 0:
                in_order = False
                break
            if rc == 0:
                return E_DUPLICATE_TAGS
        if not in_order:
            for t in range(1, nt):          # insertion sort: lines carry few tags
                tag = tags[t]
                u = t
                while u > 0 and bytes_cmp(tags[u - 1].kp, tags[u - 1].kl, tag.kp, tag.kl) > 0:
                    tags[u] = tags[u - 1]
                    u -= 1
                tags[u] = tag
            for t in range(1, nt):
                if bytes_cmp(tags[t - 1].kp, tags[t - 1].kl, tags[t].kp, tags[t].kl) == 0:
                    return E_DUPLICATE_TAGS
        if in_order and not key_bs:
            self.key_p = L                  # already canonical: no copy
            self.key_l = key_end
        else:
            self.key_p = sc + self.scratch.len
            u = self.scratch.len
            u += escape_to(sc + u, mp, ml, False)
            for t in range(nt):
                sc[u] = COMMA
                u += 1
                u += escape_to(sc + u, tags[t].kp, tags[t].kl, True)
                sc[u] = EQ
                u += 1
                u += escape_to(sc + u, tags[t].vp, tags[t].vl, True)
            self.key_l = u - self.scratch.len
            self.scratch.len = u

        # fields
        i = key_end + 1
        while i < m and is_ws(L[i]):
            i += 1
        if i >= m:
            return E_MISSING_FIELDS
        self.slots.len = 0
        while True:
            k0 = i
            j = scan_escaped(L, k0, m, EQ, COMMA, SP)
            if j >= m or L[j] != EQ:
                return E_INVALID_FIELD_FORMAT
            if j == k0:
                return E_MISSING_FIELD_KEY
            if lp_reserve(&self.slots, sizeof(Slot)):
                return E_OOM
            slot = <Slot*>(self.slots.data + self.slots.len)
            self.slots.len += sizeof(Slot)
            slot.dead = False
            if memchr(L + k0, BS, j - k0) != NULL:
                slot.kp = sc + self.scratch.len
                slot.kl = unescape_to(sc + self.scratch.len, L + k0, j - k0, True)
                self.scratch.len += slot.kl
            else:
                slot.kp = L + k0
                slot.kl = j - k0
            v = j + 1
            if v >= m or L[v] == COMMA or L[v] == SP:
                return E_MISSING_FIELD_VALUE
            c = L[v]
            if c == QUOTE:
                q = scan_escaped(L, v + 1, m, QUOTE, QUOTE, QUOTE)
                if q >= m:
                    return E_UNBALANCED_QUOTES
                slot.ftype = T_STRING
                slot.sp = L + v + 1
                slot.sl = q - v - 1
                i = q + 1
                if i < m and L[i] != COMMA and L[i] != SP:
                    return E_INVALID_FIELD_FORMAT
            else:
                e = v
                while e < m and L[e] != COMMA and L[e] != SP:
                    e += 1
                if (c >= b'0' and c <= b'9') or c == b'.' or c == b'-':
                    if L[e - 1] == b'i':
                        rc = lp_parse_int(L + v, e - v - 1, &slot.i)
                        if rc == LP_NUM_INVALID:
                            return E_INVALID_NUMBER
                        if rc == LP_NUM_RANGE:
                            self.err_a = (L + v) - self.body
                            self.err_b = e - v - 1
                            return E_INT_RANGE
                        slot.ftype = T_INTEGER
                    else:
                        rc = lp_parse_float(L + v, e - v, &slot.f)
                        if rc < 0:
                            return E_OOM
                        if rc == LP_NUM_INVALID:
                            return E_INVALID_NUMBER
                        if rc == LP_NUM_RANGE:
                            return E_INVALID_FLOAT
                        slot.ftype = T_FLOAT
                elif c == b't' or c == b'T' or c == b'f' or c == b'F':
                    if not parse_bool(L + v, e - v, &slot.i):
                        return E_INVALID_BOOLEAN
                    slot.ftype = T_BOOLEAN
                else:
                    return E_INVALID_BOOLEAN
                i = e
            if i >= m or L[i] == SP:
                break
            i += 1

        ns = self.slots.len // sizeof(Slot)
        slots = <Slot*>self.slots.data
        for t in range(ns):
            if self.key_l + 4 + slots[t].kl > C_MAX_KEY_LENGTH:
                self.err_a = self.key_l + 4 + slots[t].kl
                return E_MAX_KEY
        if ns > 1 and self.mark_duplicate_fields(slots, ns):
            return E_OOM

        # timestamp
        while i < m and is_ws(L[i]):
            i += 1
        if i >= m:
            self.time = self.default_time
            return E_NONE
        e = i
        while e < m and not is_ws(L[e]):
            e += 1
        if lp_parse_int(L + i, e - i, &ts) != LP_NUM_OK:
            return E_BAD_TIMESTAMP
        if lp_mul_overflow(ts, self.mult, &tns) or tns < TIME_MIN or tns > TIME_MAX:
            return E_TIME_RANGE
        while e < m and is_ws(L[e]):
            e += 1
        if e < m:
            return E_POINT_INVALID
        self.time = tns
        return E_NONE

    cdef int mark_duplicate_fields(self, Slot* slots, Py_ssize_t ns) noexcept nogil:
        """Mark every field whose key appears again later in the line: the last one wins."""
        cdef Py_ssize_t a, b2, cap, mask, s
        cdef int32_t* table
        cdef uint64_t h
        if ns <= DEDUP_PAIRWISE_MAX:
            for a in range(ns - 1):
                for b2 in range(a + 1, ns):
                    if (slots[a].kl == slots[b2].kl and slots[a].kp[0] == slots[b2].kp[0]
                            and memcmp(slots[a].kp, slots[b2].kp, slots[a].kl) == 0):
                        slots[a].dead = True
                        break
            return 0
        cap = 64
        while cap < 2 * ns:
            cap *= 2
        mask = cap - 1
        table = <int32_t*>malloc(cap * sizeof(int32_t))
        if table == NULL:
            return -1
        memset(table, 0xFF, cap * sizeof(int32_t))
        a = ns - 1
        while a >= 0:                      # from the last field back: a key seen already loses
            h = lp_hash(slots[a].kp, slots[a].kl, 0)
            s = <Py_ssize_t>(h & <uint64_t>mask)
            while table[s] >= 0:
                b2 = table[s]
                if (slots[b2].kl == slots[a].kl
                        and memcmp(slots[b2].kp, slots[a].kp, slots[a].kl) == 0):
                    slots[a].dead = True
                    break
                s = (s + 1) & mask
            if not slots[a].dead:
                table[s] = <int32_t>a
            a -= 1
        free(table)
        return 0

    cdef int commit(self) noexcept nogil:
        """Append the staged line to the output; E_NONE or E_OOM."""
        cdef Py_ssize_t si, ci, t, k, ns, npos
        cdef Slot* slots = <Slot*>self.slots.data
        cdef Slot* sl
        cdef Column* col
        cdef Column fresh
        cdef int32_t* cache
        cdef int64_t* span
        cdef uint8_t tb
        cdef unsigned char* out
        cdef const unsigned char* p
        cdef Py_ssize_t o
        cdef int64_t end_off
        cdef uint8_t bval

        si = intern(&self.series, self.key_p, self.key_l)
        if si < 0:
            return E_OOM
        ns = self.slots.len // sizeof(Slot)
        npos = self.slot_col.len // sizeof(int32_t)
        if npos < ns:
            if lp_reserve(&self.slot_col, (ns - npos) * sizeof(int32_t)):
                return E_OOM
            memset(self.slot_col.data + self.slot_col.len, 0xFF, (ns - npos) * sizeof(int32_t))
            self.slot_col.len = ns * sizeof(int32_t)
        cache = <int32_t*>self.slot_col.data
        for t in range(ns):
            sl = &slots[t]
            if sl.dead:
                continue
            ci = cache[t]
            if ci >= 0:
                col = (<Column*>self.columns.data) + ci
                if not (col.ftype == sl.ftype and col.name_len == sl.kl
                        and memcmp(self.fkeys.arena.data + col.name_off, sl.kp, sl.kl) == 0):
                    ci = -1
            if ci < 0:
                # field intern key: the field key bytes followed by the type code byte
                self.keytmp.len = 0
                tb = <uint8_t>sl.ftype
                if lp_append(&self.keytmp, sl.kp, sl.kl) or lp_append(&self.keytmp, &tb, 1):
                    return E_OOM
                k = self.fkeys.count
                ci = intern(&self.fkeys, <const unsigned char*>self.keytmp.data, self.keytmp.len)
                if ci < 0:
                    return E_OOM
                if ci == k:                 # a new column
                    memset(&fresh, 0, sizeof(Column))
                    span = (<int64_t*>self.fkeys.spans.data) + 2 * ci
                    fresh.name_off = span[0]
                    fresh.name_len = span[1] - 1
                    fresh.ftype = sl.ftype
                    if lp_append(&self.columns, &fresh, sizeof(Column)):
                        return E_OOM
                cache[t] = <int32_t>ci
            col = (<Column*>self.columns.data) + ci
            if push4(&col.series, <int32_t>si) or push8(&col.times, &self.time):
                return E_OOM
            if sl.ftype == T_FLOAT:
                if push8(&col.values, &sl.f):
                    return E_OOM
            elif sl.ftype == T_INTEGER:
                if push8(&col.values, &sl.i):
                    return E_OOM
            elif sl.ftype == T_BOOLEAN:
                bval = <uint8_t>sl.i
                if push1(&col.values, bval):
                    return E_OOM
            else:
                # string value: \" -> " and \\ -> \, any other backslash kept
                if lp_reserve(&col.sdata, sl.sl):
                    return E_OOM
                out = <unsigned char*>col.sdata.data + col.sdata.len
                p = sl.sp
                o = 0
                k = 0
                while k < sl.sl:
                    if p[k] == BS and k + 1 < sl.sl and (p[k + 1] == QUOTE or p[k + 1] == BS):
                        out[o] = p[k + 1]
                        k += 2
                    else:
                        out[o] = p[k]
                        k += 1
                    o += 1
                col.sdata.len += o
                end_off = col.sdata.len
                if push8(&col.values, &end_off):
                    return E_OOM
        self.n_lines += 1
        return E_NONE


# ---------------------------------------------------------------------------------------------
# Python entry point
# ---------------------------------------------------------------------------------------------

cdef object c_array(lp_buf* b, object dtype, Py_ssize_t itemsize):
    cdef Py_ssize_t count = b.len // itemsize
    cdef cnp.ndarray arr = np.empty(count, dtype=dtype)
    if b.len:
        memcpy(cnp.PyArray_DATA(arr), b.data, b.len)
    return arr


def parse(body, precision="ns", default_time=0):
    """Parse an InfluxDB 1.x line-protocol body into a ParseResult (see lineproto.pyi)."""
    cdef int64_t mult = precision_multiplier(precision)
    cdef int64_t dflt = check_default_time(default_time)
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"line protocol body must be bytes, bytearray or memoryview, not {type(body).__name__}"
        )
    if isinstance(body, memoryview) and (body.ndim != 1 or body.itemsize != 1
                                         or not body.c_contiguous):
        body = body.tobytes()
    cdef const unsigned char[::1] view = body if len(body) else b"\n"
    cdef Parser p = Parser()
    cdef Py_ssize_t k, ncols
    cdef Column* col
    cdef ErrRec* er
    cdef int64_t* span
    p.body = &view[0]
    p.n = len(body)
    p.mult = mult
    p.default_time = dflt
    with nogil:
        p.check_utf8 = not lp_is_ascii(p.body, p.n)
        p.run()
    if p.oom:
        raise MemoryError("line protocol parse ran out of memory")

    keys = []
    spans = <int64_t*>p.series.spans.data
    for k in range(p.series.count):
        keys.append(PyBytes_FromStringAndSize(p.series.arena.data + spans[2 * k], spans[2 * k + 1]))
    columns = []
    ncols = p.columns.len // sizeof(Column)
    for k in range(ncols):
        col = (<Column*>p.columns.data) + k
        name = PyBytes_FromStringAndSize(p.fkeys.arena.data + col.name_off, col.name_len)
        series = c_array(&col.series, np.int32, 4)
        times = c_array(&col.times, np.int64, 8)
        if col.ftype == T_FLOAT:
            values = c_array(&col.values, np.float64, 8)
        elif col.ftype == T_INTEGER:
            values = c_array(&col.values, np.int64, 8)
        elif col.ftype == T_BOOLEAN:
            values = c_array(&col.values, np.uint8, 1)
        else:
            ends = c_array(&col.values, np.int64, 8)
            offsets = np.zeros(len(ends) + 1, dtype=np.int64)
            offsets[1:] = ends
            values = StringArray(offsets, PyBytes_FromStringAndSize(col.sdata.data, col.sdata.len))
        columns.append(FieldColumn(name, FieldType(col.ftype), series, times, values))
    errors = []
    for k in range(p.errors.len // sizeof(ErrRec)):
        er = (<ErrRec*>p.errors.data) + k
        if er.code == E_INT_RANGE:
            tok = PyBytes_FromStringAndSize(<const char*>p.body + er.a, er.b).decode()
            reason = f"unable to parse integer {tok}: value out of range"
        elif er.code == E_MAX_KEY:
            reason = f"max key length exceeded: {er.a} > {MAX_KEY_LENGTH}"
        else:
            reason = REASONS[er.code]
        raw = PyBytes_FromStringAndSize(<const char*>p.body + er.start,
                                        min(er.length, ERROR_LINE_CAP))
        errors.append((er.lineno, raw, reason))
    return ParseResult(WriteBatch(keys, columns), p.n_lines, errors)
