# C-level pieces of the query-result encoder, for other Cython modules to cimport.
from libc.stdint cimport int64_t, uint64_t


from cpython.object cimport PyObject


# A growable output buffer owned by one encoder call: the bytes object that will be returned,
# written in place and resized (realloc) as it grows, so the answer is never copied. Appends
# never fail silently: the Python wrappers check every reserve and raise MemoryError.
cdef struct OutBuf:
    PyObject* owner     # the bytes object being filled (one reference held), NULL until used
    char* data          # its byte array, NULL until the first reserve
    Py_ssize_t length   # bytes written so far
    Py_ssize_t capacity # bytes allocated


# One value column as the row kernel sees it: raw pointers into arrays the caller keeps alive.
cdef struct ColumnView:
    int kind                    # COL_* code (see resultenc.pyx)
    const void* values          # float64 / int64 / uint8 data, NULL for an all-null column
    const char* valid           # bool mask (1 = has a value), NULL when every row is valid
    const int64_t* str_offsets  # StringArray offsets (n + 1), strings only
    const char* str_data        # StringArray blob, strings only


# Shortest round-trip decimal digits of a finite, non-zero double (Ryu): x = digits * 10**exp10.
cdef uint64_t shortest_digits(double x, int* exp10) noexcept nogil
