# Typed entry points of chronosdb.ext.codecs for other Cython modules (segment reader, WAL, merge).
#
# Each *_into function decodes exactly one encoded column held in p[0:n] into caller-owned memory
# out[0:cap], without creating Python objects, and returns the number of values written. Malformed
# or truncated input raises ValueError (the GIL is taken only on that path); a column with more than
# cap values raises ValueError too. Call encoded_count_raw first to size the buffer.
from libc.stdint cimport int64_t, uint8_t

cdef Py_ssize_t encoded_count_raw(const uint8_t* p, Py_ssize_t n) except -1 nogil
cdef Py_ssize_t decode_times_into(const uint8_t* p, Py_ssize_t n, int64_t* out, Py_ssize_t cap) except -1 nogil
cdef Py_ssize_t decode_floats_into(const uint8_t* p, Py_ssize_t n, double* out, Py_ssize_t cap) except -1 nogil
cdef Py_ssize_t decode_ints_into(const uint8_t* p, Py_ssize_t n, int64_t* out, Py_ssize_t cap) except -1 nogil
cdef Py_ssize_t decode_bools_into(const uint8_t* p, Py_ssize_t n, uint8_t* out, Py_ssize_t cap) except -1 nogil
