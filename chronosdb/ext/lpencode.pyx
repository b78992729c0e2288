# cython: language_level=3
"""Columns -> InfluxDB 1.x line protocol, written in C without a Python object per point.

The inverse of chronosdb.ext.lineproto: what the parser reads, this writes, byte for byte as the
plain-Python twin chronosdb/ext/lpencode_ref.py does (that module documents the spelling of every
piece of a line and is the specification; tests/test_lpencode.py checks the two agree and that
encode -> parse gives the batch back).

Layout of the work:

1. Per series and per column, in Python (lpencode_ref): canonical series keys and field names
   become their wire spelling, checked to be representable. This is once per distinct series,
   never per point. The wire keys go into one blob plus offsets.
2. Per point, numpy: ``lpencode_ref.batch_plan`` puts a WriteBatch's values in line order (one
   stable lexsort, duplicates resolved as the engine resolves them, times scaled to the
   precision). ``encode_columns`` needs no plan: row i is line i.
3. Per point, C: one loop without the GIL appends key, fields and time of each line to a growable
   buffer (include/lineproto.h ``lp_buf``). Floats are printed from the shortest round-trip digits
   of the Ryu implementation in chronosdb.ext.resultenc (cimported, not copied). A NaN or an
   infinity stops the loop; the error is raised, naming the point, once the GIL is back.
"""
import numpy as np

cimport numpy as cnp
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport fabs, isfinite, isnan, signbit
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from chronosdb.ext.resultenc cimport shortest_digits

from chronosdb.ext.lpencode_ref import batch_plan, batch_wire_parts, columns_prepare
from chronosdb.model.fieldtype import FieldType

cnp.import_array()


cdef extern from "lineproto.h":
    ctypedef struct lp_buf:
        char* data
        Py_ssize_t len
        Py_ssize_t cap
    int lp_reserve(lp_buf* b, Py_ssize_t extra) nogil
    int lp_append(lp_buf* b, const void* src, Py_ssize_t n) nogil
    void lp_free(lp_buf* b) nogil


# Field type codes (chronosdb.model.fieldtype.FieldType).
cdef enum:
    T_FLOAT = 1
    T_INTEGER = 2
    T_BOOLEAN = 3
    T_STRING = 4

# Loop outcomes.
cdef enum:
    OK = 0
    E_OOM = -1        # a buffer could not grow
    E_NONFINITE = -2  # a NaN or infinite float (entry index in *bad)


# One field column as the loop sees it: raw pointers into arrays the caller keeps alive.
cdef struct ColView:
    int kind                   # T_* code
    const double* f64          # T_FLOAT values
    const int64_t* i64         # T_INTEGER values
    const uint8_t* u8          # T_BOOLEAN values (0/1)
    const int64_t* str_offsets # T_STRING: n + 1 offsets into str_data
    const char* str_data
    const char* name           # wire spelling of the field key
    Py_ssize_t name_len


# "00" "01" ... "99": two digits per division by 100. The bytes object lives as long as the module.
cdef bytes _DIGIT_PAIRS = b"".join(b"%02d" % i for i in range(100))
cdef const char* DIGIT_PAIRS = _DIGIT_PAIRS


cdef inline int put_u64(char* p, uint64_t v) noexcept nogil:
    """Decimal digits of v at p; returns how many."""
    cdef char tmp[24]
    cdef int n = 0
    cdef int k
    while v >= 100:
        k = <int>(v % 100) * 2
        v //= 100
        tmp[n] = DIGIT_PAIRS[k + 1]
        tmp[n + 1] = DIGIT_PAIRS[k]
        n += 2
    if v >= 10:
        k = <int>v * 2
        tmp[n] = DIGIT_PAIRS[k + 1]
        tmp[n + 1] = DIGIT_PAIRS[k]
        n += 2
    else:
        tmp[n] = <char>(48 + v)
        n += 1
    for k in range(n):
        p[k] = tmp[n - 1 - k]
    return n


cdef inline int put_i64(lp_buf* b, int64_t v) noexcept nogil:
    cdef uint64_t u
    if lp_reserve(b, 24):
        return E_OOM
    if v < 0:
        b.data[b.len] = 45  # '-'
        b.len += 1
        u = <uint64_t>0 - <uint64_t>v
    else:
        u = <uint64_t>v
    b.len += put_u64(b.data + b.len, u)
    return OK


cdef int put_float(lp_buf* b, double x) noexcept nogil:
    """Shortest round-trip decimal, laid out as lpencode_ref.format_float does."""
    cdef char digits[24]
    cdef int exp10, n, point, i
    cdef char* p
    if not isfinite(x):
        return E_NONFINITE
    if lp_reserve(b, 48):
        return E_OOM
    p = b.data + b.len
    if signbit(x):
        p[0] = 45
        p += 1
    if x == 0:
        p[0] = 48
        b.len = (p + 1) - b.data
        return OK
    n = put_u64(digits, shortest_digits(fabs(x), &exp10))
    point = n + exp10
    if exp10 >= 0 and point <= 21:
        memcpy(p, digits, n)
        p += n
        for i in range(exp10):
            p[i] = 48
        p += exp10
    elif 0 < point < n:
        memcpy(p, digits, point)
        p += point
        p[0] = 46  # '.'
        memcpy(p + 1, digits + point, n - point)
        p += 1 + n - point
    elif -6 < point <= 0:
        p[0] = 48
        p[1] = 46
        p += 2
        for i in range(-point):
            p[i] = 48
        p += -point
        memcpy(p, digits, n)
        p += n
    else:
        p[0] = digits[0]
        p += 1
        if n > 1:
            p[0] = 46
            memcpy(p + 1, digits + 1, n - 1)
            p += n
        p[0] = 101  # 'e'
        p += 1
        i = point - 1
        if i < 0:
            p[0] = 45
            p += 1
            i = -i
        p += put_u64(p, <uint64_t>i)
    b.len = p - b.data
    return OK


cdef inline int put_string(lp_buf* b, const char* s, Py_ssize_t n) noexcept nogil:
    """A string field value in double quotes, '"' and '\\' escaped."""
    cdef Py_ssize_t i
    cdef char c
    cdef char* p
    if lp_reserve(b, 2 * n + 2):
        return E_OOM
    p = b.data + b.len
    p[0] = 34
    p += 1
    for i in range(n):
        c = s[i]
        if c == 34 or c == 92:
            p[0] = 92
            p += 1
        p[0] = c
        p += 1
    p[0] = 34
    b.len = (p + 1) - b.data
    return OK


cdef inline int put_field(lp_buf* b, const ColView* col, Py_ssize_t row) noexcept nogil:
    """name=value of one column at one row."""
    cdef int kind = col.kind
    if lp_reserve(b, col.name_len + 8):
        return E_OOM
    memcpy(b.data + b.len, col.name, col.name_len)
    b.len += col.name_len
    b.data[b.len] = 61  # '='
    b.len += 1
    if kind == T_FLOAT:
        return put_float(b, col.f64[row])
    if kind == T_INTEGER:
        if put_i64(b, col.i64[row]):
            return E_OOM
        return lp_append(b, b"i", 1)
    if kind == T_BOOLEAN:
        if col.u8[row]:
            return lp_append(b, b"true", 4)
        return lp_append(b, b"false", 5)
    return put_string(b, col.str_data + col.str_offsets[row],
                      col.str_offsets[row + 1] - col.str_offsets[row])


cdef class _Columns:
    """C views of field columns plus the Python objects that keep their memory alive."""
    cdef ColView* views
    cdef Py_ssize_t n
    cdef list keep

    def __cinit__(self, kinds, values, names):
        self.n = len(kinds)
        self.keep = []
        self.views = <ColView*>malloc(max(self.n, 1) * sizeof(ColView))
        if self.views == NULL:
            raise MemoryError()
        cdef Py_ssize_t j
        cdef ColView* v
        cdef cnp.ndarray arr, offs
        cdef bytes name, data
        for j in range(self.n):
            v = &self.views[j]
            v.kind = int(kinds[j])
            v.f64 = NULL
            v.i64 = NULL
            v.u8 = NULL
            v.str_offsets = NULL
            v.str_data = NULL
            name = names[j]
            self.keep.append(name)
            v.name = name
            v.name_len = len(name)
            if v.kind == T_STRING:
                offs = np.ascontiguousarray(values[j].offsets, dtype=np.int64)
                data = values[j].data
                self.keep.append(offs)
                self.keep.append(data)
                v.str_offsets = <const int64_t*>cnp.PyArray_DATA(offs)
                v.str_data = data
            else:
                arr = np.ascontiguousarray(values[j], dtype=FieldType(v.kind).dtype)
                self.keep.append(arr)
                if v.kind == T_FLOAT:
                    v.f64 = <const double*>cnp.PyArray_DATA(arr)
                elif v.kind == T_INTEGER:
                    v.i64 = <const int64_t*>cnp.PyArray_DATA(arr)
                else:
                    v.u8 = <const uint8_t*>cnp.PyArray_DATA(arr)

    def __dealloc__(self):
        free(self.views)


cdef tuple _key_blob(list keys):
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    if keys:
        offsets[1:] = np.cumsum([len(k) for k in keys])
    return b"".join(keys), offsets


cdef bytes _take(lp_buf* b):
    try:
        return PyBytes_FromStringAndSize(b.data, b.len) if b.len else b""
    finally:
        lp_free(b)


def encode_batch(batch, str precision="ns"):
    """See lpencode.pyi."""
    keys, names = batch_wire_parts(batch)
    series, times, cols, rows, line_start = batch_plan(batch, precision)
    blob, key_offsets = _key_blob(keys)
    columns = _Columns([col.ftype for col in batch.columns], [col.values for col in batch.columns],
                       names)
    cdef const int64_t[::1] s = np.ascontiguousarray(series, dtype=np.int64)
    cdef const int64_t[::1] t = np.ascontiguousarray(times, dtype=np.int64)
    cdef const int64_t[::1] c = np.ascontiguousarray(cols, dtype=np.int64)
    cdef const int64_t[::1] r = np.ascontiguousarray(rows, dtype=np.int64)
    cdef const uint8_t[::1] starts = np.ascontiguousarray(line_start, dtype=np.uint8)
    cdef const int64_t[::1] ko = key_offsets
    cdef const char* kb = blob
    cdef Py_ssize_t n = len(s), i, bad = -1
    cdef int st = OK
    cdef lp_buf b
    b.data = NULL
    b.len = 0
    b.cap = 0
    cdef ColView* views = columns.views
    with nogil:
        if n:
            st = lp_reserve(&b, n * 24)
        for i in range(n):
            if st:
                break
            if starts[i]:
                if i:
                    st = lp_append(&b, b" ", 1)
                    if not st:
                        st = put_i64(&b, t[i - 1])
                    if not st:
                        st = lp_append(&b, b"\n", 1)
                if not st:
                    st = lp_append(&b, kb + ko[s[i]], ko[s[i] + 1] - ko[s[i]])
                if not st:
                    st = lp_append(&b, b" ", 1)
            else:
                st = lp_append(&b, b",", 1)
            if not st:
                st = put_field(&b, &views[c[i]], r[i])
                if st == E_NONFINITE:
                    bad = i
        if n and not st:
            st = lp_append(&b, b" ", 1)
            if not st:
                st = put_i64(&b, t[n - 1])
            if not st:
                st = lp_append(&b, b"\n", 1)
    if st == E_OOM:
        lp_free(&b)
        raise MemoryError("line-protocol output buffer could not grow")
    if st == E_NONFINITE:
        lp_free(&b)
        col = batch.columns[c[bad]]
        raise ValueError(
            f"field {col.name!r} of series {batch.keys[s[bad]]!r} at time {int(t[bad])} is "
            f"{float(col.values[r[bad]])!r}, which line protocol cannot carry"
        )
    return _take(&b)


def encode_columns(measurement, tags, times, fields, str precision="ns", bint skip_nan=False):
    """See lpencode.pyi."""
    keys, series, tt, names, kinds, values = columns_prepare(measurement, tags, times, fields,
                                                              precision)
    blob, key_offsets = _key_blob(keys)
    columns = _Columns(kinds, values, names)
    cdef const int64_t[::1] s = series
    cdef const int64_t[::1] t = tt
    cdef const int64_t[::1] ko = key_offsets
    cdef const char* kb = blob
    cdef Py_ssize_t n = len(t), i, j, line_at, fields_at, bad = -1, bad_col = -1
    cdef Py_ssize_t ncol = columns.n
    cdef int st = OK
    cdef double x
    cdef lp_buf b
    b.data = NULL
    b.len = 0
    b.cap = 0
    cdef ColView* views = columns.views
    with nogil:
        if n:
            st = lp_reserve(&b, n * (16 + 16 * ncol))
        for i in range(n):
            if st:
                break
            line_at = b.len
            st = lp_append(&b, kb + ko[s[i]], ko[s[i] + 1] - ko[s[i]])
            if not st:
                st = lp_append(&b, b" ", 1)
            fields_at = b.len
            for j in range(ncol):
                if st:
                    break
                if views[j].kind == T_FLOAT:
                    x = views[j].f64[i]
                    if skip_nan and isnan(x):
                        continue
                    if not isfinite(x):
                        st = E_NONFINITE
                        bad = i
                        bad_col = j
                        break
                if b.len != fields_at:
                    st = lp_append(&b, b",", 1)
                if not st:
                    st = put_field(&b, &views[j], i)
            if st:
                break
            if b.len == fields_at:
                b.len = line_at  # every field of this row was missing: no line
                continue
            st = lp_append(&b, b" ", 1)
            if not st:
                st = put_i64(&b, t[i])
            if not st:
                st = lp_append(&b, b"\n", 1)
    if st == E_OOM:
        lp_free(&b)
        raise MemoryError("line-protocol output buffer could not grow")
    if st == E_NONFINITE:
        lp_free(&b)
        raise ValueError(
            f"field {names[bad_col]!r} at row {bad} (time {int(t[bad])}) is "
            f"{float(values[bad_col][bad])!r}, which line protocol cannot carry"
        )
    return _take(&b)
