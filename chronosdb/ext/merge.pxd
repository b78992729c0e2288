# C-level merge kernels, for other Cython modules (cache, segment reader, compactor) to cimport
# and call without the GIL. The Python-facing wrappers in merge.pyx validate their inputs and then
# call exactly these; callers that cimport them must guarantee the stated preconditions themselves.
from libc.stdint cimport int32_t, int64_t


# Index of the first i with a[i] < a[i-1] (strict=0) or a[i] <= a[i-1] (strict=1); -1 if ordered.
cdef Py_ssize_t first_disorder(const int64_t* a, Py_ssize_t n, bint strict) noexcept nogil

# Merge two strictly increasing runs; on equal times the entry of run b (the newer) wins.
# Writes up to na+nb entries (time, source run id, position in run); returns how many it wrote.
cdef Py_ssize_t merge_two(const int64_t* a, Py_ssize_t na, int32_t src_a,
                          const int64_t* b, Py_ssize_t nb, int32_t src_b,
                          int64_t* out_t, int32_t* out_src, int64_t* out_pos) noexcept nogil

# k-way merge (k >= 1) of strictly increasing runs given oldest first, newest wins on ties.
# heap_t/heap_r/cursor are caller-provided scratch of k entries each. Returns the output length.
cdef Py_ssize_t merge_heap(const int64_t** runs, const Py_ssize_t* lens, Py_ssize_t k,
                           int64_t* heap_t, Py_ssize_t* heap_r, Py_ssize_t* cursor,
                           int64_t* out_t, int32_t* out_src, int64_t* out_pos) noexcept nogil

# First position p in the sorted a[lo:n] with a[p] >= x (n when none).
cdef Py_ssize_t lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t x) noexcept nogil

# First position p in the sorted a[lo:n] with a[p] > x (n when none).
cdef Py_ssize_t upper_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t x) noexcept nogil

# Same answer as lower_bound, found by galloping out from lo: O(log(answer - lo)).
cdef Py_ssize_t gallop_lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t x) noexcept nogil
