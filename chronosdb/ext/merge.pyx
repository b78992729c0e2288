# cython: language_level=3
"""Merge kernels: the per-point work of combining time columns, done in C without the GIL.

Everything here works on int64 nanosecond time columns and answers with *positions*, never with
values: the caller gathers the values of any type (float64, int64, bool, StringArray) with one
``take`` over the positions. That keeps one kernel per operation instead of one per value type.

- ``merge_runs``: k-way merge of strictly increasing runs given oldest first. A time present in
  several runs is taken from the newest run (highest index): last write wins. The answer is the
  merged times plus, per output entry, its source run and its position inside that run;
  ``gather_index`` turns (src, pos) into an index over the concatenation of the runs.
  Strategy (see bench/bench_merge.py for the figures): 1 non-empty run is a copy, 2 runs a
  two-pointer merge, more runs a binary min-heap keyed on (head time, newest run first) so the
  first entry popped for a time is the one that wins and the rest are skipped. After a pop, the
  stretch of that run lying below every other head is copied without heap work, so runs over
  successive time spans (segments written one after another) merge at copy speed. A pairwise
  fold of 2-run merges was measured and lost to the heap from k = 4 on.
- ``sort_dedup_last``: the write cache appends in arrival order; this returns the positions to
  keep, in time order, keeping the last arrival of each time. Already-sorted input (the usual
  case) is one linear scan; otherwise a stable argsort first.
- ``tombstone_keep``: positions of a sorted column outside a set of inclusive deleted ranges.
  The ranges are sorted and coalesced (k log k), then each coalesced range costs two binary
  searches and the kept positions are written in one pass: O(n + k log k + k log n).
- ``string_take``: gather of a string column stored as int64 offsets (n+1) plus one bytes blob.
- ``window_bounds``: split positions of a sorted column into fixed windows
  [start + i*every, start + (i+1)*every), i = 0..nwin-1; window i is positions [b[i], b[i+1]).
- ``group_points``: the points of several write batches grouped by series (a stable counting
  sort, O(n + k)) and each series' points in time order (a stable merge sort only of the series
  not already in order), for streams; it tells when one batch has a series' time twice (the
  caller then merges those points the slower way).

Preconditions are checked here (bad input raises ValueError naming the argument and position);
the bare C kernels in merge.pxd trust their caller.
"""
import numpy as np

cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport INT64_MAX, int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "window.h":
    int chronos_window_edge(int64_t start, int64_t every, int64_t i, int64_t* out) noexcept nogil


# ---------------------------------------------------------------------------------------------
# C kernels (declared in merge.pxd)
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t first_disorder(const int64_t* a, Py_ssize_t n, bint strict) noexcept nogil:
    cdef Py_ssize_t i
    if strict:
        for i in range(1, n):
            if a[i] <= a[i - 1]:
                return i
    else:
        for i in range(1, n):
            if a[i] < a[i - 1]:
                return i
    return -1


cdef Py_ssize_t merge_two(const int64_t* a, Py_ssize_t na, int32_t src_a,
                          const int64_t* b, Py_ssize_t nb, int32_t src_b,
                          int64_t* out_t, int32_t* out_src, int64_t* out_pos) noexcept nogil:
    cdef Py_ssize_t i = 0, j = 0, o = 0
    cdef int64_t ta, tb
    while i < na and j < nb:
        ta = a[i]
        tb = b[j]
        if ta < tb:
            out_t[o] = ta; out_src[o] = src_a; out_pos[o] = i
            i += 1
        else:
            # tb <= ta: b's entry goes out; on a tie it also shadows a's (b is newer).
            out_t[o] = tb; out_src[o] = src_b; out_pos[o] = j
            if ta == tb:
                i += 1
            j += 1
        o += 1
    while i < na:
        out_t[o] = a[i]; out_src[o] = src_a; out_pos[o] = i
        i += 1; o += 1
    while j < nb:
        out_t[o] = b[j]; out_src[o] = src_b; out_pos[o] = j
        j += 1; o += 1
    return o


cdef inline bint _heap_less(const int64_t* ht, const Py_ssize_t* hr,
                            Py_ssize_t x, Py_ssize_t y) noexcept nogil:
    # Earlier time first; on equal times the newer run (higher index) first, so that the first
    # entry popped for a given time is the one that must win.
    return ht[x] < ht[y] or (ht[x] == ht[y] and hr[x] > hr[y])


cdef inline void _sift_down(int64_t* ht, Py_ssize_t* hr, Py_ssize_t size,
                            Py_ssize_t at) noexcept nogil:
    cdef Py_ssize_t child, best
    cdef int64_t t
    cdef Py_ssize_t r
    while True:
        child = 2 * at + 1
        if child >= size:
            return
        best = child
        if child + 1 < size and _heap_less(ht, hr, child + 1, child):
            best = child + 1
        if not _heap_less(ht, hr, best, at):
            return
        t = ht[at]; ht[at] = ht[best]; ht[best] = t
        r = hr[at]; hr[at] = hr[best]; hr[best] = r
        at = best


cdef Py_ssize_t merge_heap(const int64_t** runs, const Py_ssize_t* lens, Py_ssize_t k,
                           int64_t* heap_t, Py_ssize_t* heap_r, Py_ssize_t* cursor,
                           int64_t* out_t, int32_t* out_src, int64_t* out_pos) noexcept nogil:
    cdef Py_ssize_t size = 0, i, r, c, o = 0, n_r
    cdef int64_t t, last = 0, bound
    cdef const int64_t* run
    cdef bint have_last = False
    for r in range(k):
        cursor[r] = 0
        if lens[r] > 0:
            heap_t[size] = runs[r][0]
            heap_r[size] = r
            size += 1
    i = size // 2
    while i > 0:
        i -= 1
        _sift_down(heap_t, heap_r, size, i)
    while size > 0:
        t = heap_t[0]
        r = heap_r[0]
        c = cursor[r]
        if not have_last or t != last:
            out_t[o] = t; out_src[o] = <int32_t>r; out_pos[o] = c
            o += 1
            last = t
            have_last = True
            c += 1
            # Copy the stretch of this run that lies strictly before every other run's head in
            # one go, without touching the heap: segments written one after another cover
            # successive time spans, so a compaction merge is mostly such stretches.
            if size > 1:
                bound = heap_t[1]
                if size > 2 and heap_t[2] < bound:
                    bound = heap_t[2]
                run = runs[r]
                n_r = lens[r]
                while c < n_r and run[c] < bound:
                    out_t[o] = run[c]; out_src[o] = <int32_t>r; out_pos[o] = c
                    o += 1
                    c += 1
            else:
                # The last run standing: the rest of it goes out as is.
                run = runs[r]
                n_r = lens[r]
                while c < n_r:
                    out_t[o] = run[c]; out_src[o] = <int32_t>r; out_pos[o] = c
                    o += 1
                    c += 1
            last = out_t[o - 1]
        else:
            # An older run holds a time the newer one already emitted: it is shadowed.
            c += 1
        cursor[r] = c
        if c < lens[r]:
            heap_t[0] = runs[r][c]
        else:
            size -= 1
            heap_t[0] = heap_t[size]
            heap_r[0] = heap_r[size]
        _sift_down(heap_t, heap_r, size, 0)
    return o


cdef Py_ssize_t lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t x) noexcept nogil:
    cdef Py_ssize_t hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef Py_ssize_t upper_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t x) noexcept nogil:
    cdef Py_ssize_t hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef Py_ssize_t gallop_lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t n,
                                   int64_t x) noexcept nogil:
    # Probe lo, lo+1, lo+3, lo+7, ... until past x, then binary-search the last gap: the cost
    # is O(log(answer - lo)), so many close searches (many small windows) cost O(n) in total
    # and few far ones O(log n) each.
    cdef Py_ssize_t step = 1, hi = lo
    while hi < n and a[hi] < x:
        lo = hi + 1
        hi = lo + step
        step <<= 1
    if hi > n:
        hi = n
    return lower_bound(a, lo, hi, x)


# ---------------------------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------------------------

cdef object _int64_column(object arr, str what):
    """A 1-D C-contiguous int64 array (no copy when it already is one)."""
    a = np.ascontiguousarray(arr, dtype=np.int64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D int64 array, got shape {a.shape}")
    return a


cdef object _trimmed(object arr, Py_ssize_t n):
    """arr[:n], copied only when that frees at least half of arr.

    Copying a large result into a fresh buffer costs more than the merge itself (the new pages
    fault in one by one; see bench/bench_merge.py), while results are short-lived: pinning up to
    2x their size for a moment is the cheaper side of the trade.
    """
    if n == arr.shape[0]:
        return arr
    if n < arr.shape[0] // 2:
        return arr[:n].copy()
    return arr[:n]


def merge_runs(runs):
    """Merge strictly increasing int64 time runs, oldest first; newest run wins on equal times.

    Returns ``(times int64, src int32, pos int64)``: output i is ``runs[src[i]][pos[i]]``.
    """
    cdef Py_ssize_t k = len(runs), r, total = 0, n_out, bad
    cdef list cols = []
    cdef cnp.ndarray col
    cdef const int64_t[::1] view
    for r in range(k):
        col = _int64_column(runs[r], f"runs[{r}]")
        cols.append(col)
        total += col.shape[0]
    if k > 2147483647:
        raise ValueError("merge_runs: too many runs for an int32 source id")

    out_t_arr = np.empty(total, dtype=np.int64)
    out_src_arr = np.empty(total, dtype=np.int32)
    out_pos_arr = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] out_t = out_t_arr
    cdef int32_t[::1] out_src = out_src_arr
    cdef int64_t[::1] out_pos = out_pos_arr

    cdef const int64_t** ptrs = <const int64_t**>malloc((k if k else 1) * sizeof(int64_t*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>malloc((k if k else 1) * sizeof(Py_ssize_t))
    cdef int64_t* heap_t = <int64_t*>malloc((k if k else 1) * sizeof(int64_t))
    cdef Py_ssize_t* heap_r = <Py_ssize_t*>malloc((k if k else 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* cursor = <Py_ssize_t*>malloc((k if k else 1) * sizeof(Py_ssize_t))
    # The non-empty runs, by index: 1 or 2 of them take the fast paths.
    cdef Py_ssize_t* live = <Py_ssize_t*>malloc((k if k else 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t n_live = 0, i, a, b
    if not (ptrs and lens and heap_t and heap_r and cursor and live):
        free(ptrs); free(lens); free(heap_t); free(heap_r); free(cursor); free(live)
        raise MemoryError()
    try:
        for r in range(k):
            col = <cnp.ndarray>cols[r]
            lens[r] = col.shape[0]
            ptrs[r] = <const int64_t*>cnp.PyArray_DATA(col)
        with nogil:
            bad = -1
            for r in range(k):
                if first_disorder(ptrs[r], lens[r], True) >= 0:
                    bad = r
                    break
        if bad >= 0:
            i = first_disorder(ptrs[bad], lens[bad], True)
            raise ValueError(
                f"merge_runs: runs[{bad}] is not strictly increasing at position {i} "
                f"({ptrs[bad][i - 1]} then {ptrs[bad][i]})"
            )
        for r in range(k):
            if lens[r] > 0:
                live[n_live] = r
                n_live += 1
        n_out = 0
        if total > 0:
            with nogil:
                if n_live == 1:
                    a = live[0]
                    memcpy(&out_t[0], ptrs[a], lens[a] * sizeof(int64_t))
                    for i in range(lens[a]):
                        out_src[i] = <int32_t>a
                        out_pos[i] = i
                    n_out = lens[a]
                elif n_live == 2:
                    a = live[0]
                    b = live[1]
                    n_out = merge_two(ptrs[a], lens[a], <int32_t>a, ptrs[b], lens[b], <int32_t>b,
                                      &out_t[0], &out_src[0], &out_pos[0])
                else:
                    n_out = merge_heap(ptrs, lens, k, heap_t, heap_r, cursor,
                                       &out_t[0], &out_src[0], &out_pos[0])
    finally:
        free(ptrs); free(lens); free(heap_t); free(heap_r); free(cursor); free(live)
    return _trimmed(out_t_arr, n_out), _trimmed(out_src_arr, n_out), _trimmed(out_pos_arr, n_out)


def gather_index(runs_lengths, src, pos):
    """Global index into the concatenation of the runs: ``offset(src[i]) + pos[i]``."""
    lengths_arr = _int64_column(runs_lengths, "runs_lengths")
    src_arr = np.ascontiguousarray(src, dtype=np.int32)
    pos_arr = _int64_column(pos, "pos")
    if src_arr.ndim != 1 or src_arr.shape[0] != pos_arr.shape[0]:
        raise ValueError(f"gather_index: src and pos differ in shape ({src_arr.shape} vs {pos_arr.shape})")
    cdef const int64_t[::1] lengths = lengths_arr
    cdef const int32_t[::1] s = src_arr
    cdef const int64_t[::1] p = pos_arr
    cdef Py_ssize_t k = lengths.shape[0], n = s.shape[0], i, bad = -1, bad_len = -1
    offsets_arr = np.zeros(k + 1, dtype=np.int64)
    cdef int64_t[::1] offsets = offsets_arr
    for i in range(k):
        if lengths[i] < 0:
            raise ValueError(f"gather_index: runs_lengths[{i}] is negative ({lengths[i]})")
        offsets[i + 1] = offsets[i] + lengths[i]
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef int32_t r
    with nogil:
        for i in range(n):
            r = s[i]
            if r < 0 or r >= k or p[i] < 0 or p[i] >= lengths[r]:
                bad = i
                break
            out[i] = offsets[r] + p[i]
    if bad >= 0:
        raise ValueError(
            f"gather_index: entry {bad} (src={s[bad]}, pos={p[bad]}) is outside the runs "
            f"(lengths {list(lengths_arr)})"
        )
    return out_arr


def sort_dedup_last(times):
    """Positions to keep, in increasing time order, keeping the last arrival of each time."""
    times_arr = _int64_column(times, "times")
    cdef const int64_t[::1] t = times_arr
    cdef Py_ssize_t n = t.shape[0], i, o = 0, disorder
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef const int64_t[::1] order
    if n == 0:
        return out_arr
    with nogil:
        disorder = first_disorder(&t[0], n, False)
        if disorder < 0:
            # Already in time order: keep i unless the next entry has the same time.
            for i in range(n - 1):
                if t[i] != t[i + 1]:
                    out[o] = i
                    o += 1
            out[o] = n - 1
            o += 1
    if disorder >= 0:
        # A stable sort keeps arrival order among equal times, so the last of each equal stretch
        # is the last arrival.
        order_arr = np.argsort(times_arr, kind="stable").astype(np.int64, copy=False)
        order = order_arr
        with nogil:
            for i in range(n - 1):
                if t[order[i]] != t[order[i + 1]]:
                    out[o] = order[i]
                    o += 1
            out[o] = order[n - 1]
            o += 1
    return _trimmed(out_arr, o)


def tombstone_keep(times, ranges):
    """Positions of the sorted ``times`` that lie in no inclusive ``[min, max]`` row of ``ranges``."""
    times_arr = _int64_column(times, "times")
    ranges_arr = np.ascontiguousarray(ranges, dtype=np.int64)
    if ranges_arr.size == 0:
        ranges_arr = ranges_arr.reshape(0, 2)
    if ranges_arr.ndim != 2 or ranges_arr.shape[1] != 2:
        raise ValueError(f"tombstone_keep: ranges must have shape (k, 2), got {ranges_arr.shape}")
    cdef const int64_t[::1] t = times_arr
    cdef Py_ssize_t n = t.shape[0], k = ranges_arr.shape[0], i, m = 0, o = 0, prev, lo, hi, bad
    with nogil:
        bad = first_disorder(&t[0], n, False) if n else -1
    if bad >= 0:
        raise ValueError(f"tombstone_keep: times not sorted at position {bad} ({t[bad - 1]} then {t[bad]})")
    bad_rows = np.flatnonzero(ranges_arr[:, 0] > ranges_arr[:, 1])
    if bad_rows.size:
        r0 = int(bad_rows[0])
        raise ValueError(
            f"tombstone_keep: ranges[{r0}] has min {ranges_arr[r0, 0]} > max {ranges_arr[r0, 1]}"
        )
    sorted_ranges = np.ascontiguousarray(ranges_arr[np.argsort(ranges_arr[:, 0], kind="stable")])
    cdef int64_t[:, ::1] rg = sorted_ranges
    out_arr = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    with nogil:
        # Coalesce overlapping ranges in place (rows 0..m-1 end up disjoint and increasing).
        for i in range(k):
            if m > 0 and rg[i, 0] <= rg[m - 1, 1]:
                if rg[i, 1] > rg[m - 1, 1]:
                    rg[m - 1, 1] = rg[i, 1]
            else:
                rg[m, 0] = rg[i, 0]
                rg[m, 1] = rg[i, 1]
                m += 1
        prev = 0
        for i in range(m):
            if prev >= n:
                break
            lo = lower_bound(&t[0], prev, n, rg[i, 0])
            hi = upper_bound(&t[0], lo, n, rg[i, 1])
            while prev < lo:
                out[o] = prev
                o += 1
                prev += 1
            prev = hi
        while prev < n:
            out[o] = prev
            o += 1
            prev += 1
    return _trimmed(out_arr, o)


def string_take(offsets, data, idx):
    """Gather values ``idx`` of a string column; returns ``(new_offsets int64, new_data bytes)``."""
    offsets_arr = _int64_column(offsets, "offsets")
    idx_arr = _int64_column(idx, "idx")
    if offsets_arr.shape[0] < 1:
        raise ValueError("string_take: offsets must hold at least one entry (n + 1 for n values)")
    cdef const unsigned char[::1] blob = memoryview(data).cast("B") if len(data) else b"\0"
    cdef Py_ssize_t data_len = len(data)
    cdef const int64_t[::1] off = offsets_arr
    cdef const int64_t[::1] ix = idx_arr
    cdef Py_ssize_t n = off.shape[0] - 1, m = ix.shape[0], j, bad = -1
    cdef int64_t i, a, b
    new_off_arr = np.empty(m + 1, dtype=np.int64)
    cdef int64_t[::1] new_off = new_off_arr
    new_off[0] = 0
    with nogil:
        for j in range(m):
            i = ix[j]
            if i < 0 or i >= n:
                bad = j
                break
            a = off[i]
            b = off[i + 1]
            if a < 0 or b < a or b > data_len:
                bad = j
                break
            new_off[j + 1] = new_off[j] + (b - a)
    if bad >= 0:
        i = ix[bad]
        if i < 0 or i >= n:
            raise ValueError(f"string_take: idx[{bad}] = {i} is outside 0..{n - 1}")
        raise ValueError(
            f"string_take: offsets[{i}:{i + 2}] = ({off[i]}, {off[i + 1]}) is not a slice of "
            f"data of length {data_len}"
        )
    out = PyBytes_FromStringAndSize(NULL, new_off[m])
    cdef char* dst = PyBytes_AS_STRING(out)
    with nogil:
        for j in range(m):
            i = ix[j]
            memcpy(dst + new_off[j], &blob[0] + off[i], <size_t>(new_off[j + 1] - new_off[j]))
    return new_off_arr, out


def window_bounds(times, int64_t start, int64_t every, Py_ssize_t nwin):
    """Positions splitting sorted ``times`` at ``start + i*every`` for i = 0..nwin (nwin+1 of them)."""
    times_arr = _int64_column(times, "times")
    if every <= 0:
        raise ValueError(f"window_bounds: every must be > 0, got {every}")
    if nwin < 0:
        raise ValueError(f"window_bounds: nwin must be >= 0, got {nwin}")
    cdef const int64_t[::1] t = times_arr
    cdef Py_ssize_t n = t.shape[0], i, pos = 0, bad
    with nogil:
        bad = first_disorder(&t[0], n, False) if n else -1
    if bad >= 0:
        raise ValueError(f"window_bounds: times not sorted at position {bad} ({t[bad - 1]} then {t[bad]})")
    out_arr = np.empty(nwin + 1, dtype=np.int64)
    cdef int64_t[::1] out = out_arr
    cdef int64_t edge
    with nogil:
        for i in range(nwin + 1):
            if pos < n and chronos_window_edge(start, every, i, &edge) == 0:
                # Edges increase, so each search starts where the previous one ended.
                pos = gallop_lower_bound(&t[0], pos, n, edge)
            else:
                pos = n
            out[i] = pos
    return out_arr


cdef void _stable_sort_by_time(int64_t* idx, int64_t* tmp, int64_t* runs, Py_ssize_t n,
                               const int64_t* t) noexcept nogil:
    """Natural merge sort of positions ``idx`` by t[position], stable (ties keep their order):
    the runs already in time order are found (a series' points from one batch usually are one),
    then neighbouring runs are merged pairwise until one is left; a pair whose left run ends at
    or before the right one begins is copied, not merged. ``tmp`` holds n positions, ``runs``
    n + 1 run bounds."""
    cdef Py_ssize_t nr = 0, r, j, lo, mid, hi, i, a, b
    cdef int64_t* src = idx
    cdef int64_t* dst = tmp
    cdef int64_t* sw
    runs[0] = 0
    for i in range(1, n):
        if t[idx[i]] < t[idx[i - 1]]:
            nr += 1
            runs[nr] = i
    nr += 1
    runs[nr] = n
    while nr > 1:
        r = 0
        j = 0
        while r < nr:
            lo = runs[r]
            if r + 1 < nr:
                mid = runs[r + 1]
                hi = runs[r + 2]
                r += 2
                if t[src[mid]] >= t[src[mid - 1]]:
                    memcpy(dst + lo, src + lo, (hi - lo) * sizeof(int64_t))
                else:
                    a, b, i = lo, mid, lo
                    while a < mid and b < hi:
                        if t[src[b]] < t[src[a]]:
                            dst[i] = src[b]
                            b += 1
                        else:
                            dst[i] = src[a]
                            a += 1
                        i += 1
                    if a < mid:
                        memcpy(dst + i, src + a, (mid - a) * sizeof(int64_t))
                    elif b < hi:
                        memcpy(dst + i, src + b, (hi - b) * sizeof(int64_t))
            else:
                hi = runs[r + 1]
                r += 1
                memcpy(dst + lo, src + lo, (hi - lo) * sizeof(int64_t))
            runs[j] = lo
            j += 1
        runs[j] = n
        nr = j
        sw = src
        src = dst
        dst = sw
    if src != idx:
        memcpy(idx, src, n * sizeof(int64_t))


def group_points(gid, times, batch, Py_ssize_t k):
    """(order, start, end, clean): ``order`` lists point positions grouped by ``gid`` (0..k-1)
    and, within a group, by time (stable: points of equal time keep their input order); group
    g is order[start[g]:end[g]]. A counting sort by group, O(n + k), then a stable natural merge
    sort of each group whose times are not already in order (writers usually send them in
    order; several writers of one series send runs in order).
    ``clean`` is False when one group has one time twice for one ``batch`` value (two points of
    one series and time in one batch, which a caller must merge). Checked here: gid in range;
    equal lengths."""
    g_arr = _int64_column(gid, "gid")
    t_arr = _int64_column(times, "times")
    b_arr = np.ascontiguousarray(batch, dtype=np.int32)
    cdef Py_ssize_t n = g_arr.shape[0], i, j
    if t_arr.shape[0] != n or b_arr.shape[0] != n:
        raise ValueError(f"group_points: gid, times and batch differ in length "
                         f"({n}, {t_arr.shape[0]}, {b_arr.shape[0]})")
    if k < 0:
        raise ValueError(f"group_points: k must be >= 0, got {k}")
    cdef const int64_t[::1] g = g_arr
    cdef const int64_t[::1] t = t_arr
    cdef const int32_t[::1] b = b_arr
    order_arr = np.empty(n, dtype=np.int64)
    tmp_arr = np.empty(n, dtype=np.int64)
    runs_arr = np.empty(n + 1, dtype=np.int64)
    start_arr = np.zeros(k, dtype=np.int64)
    end_arr = np.zeros(k, dtype=np.int64)
    cdef int64_t[::1] order = order_arr
    cdef int64_t[::1] tmp = tmp_arr
    cdef int64_t[::1] runs = runs_arr
    cdef int64_t[::1] start = start_arr
    cdef int64_t[::1] end = end_arr
    cdef Py_ssize_t bad = -1
    cdef int64_t x, acc = 0
    cdef bint clean = True
    with nogil:
        for i in range(n):
            x = g[i]
            if x < 0 or x >= k:
                bad = i
                break
            end[x] += 1
        if bad < 0:
            for j in range(k):
                start[j] = acc
                acc += end[j]
                end[j] = start[j]          # the fill position, then the end
            for i in range(n):
                x = g[i]
                order[end[x]] = i
                end[x] += 1
            for j in range(k):
                for i in range(start[j] + 1, end[j]):
                    if t[order[i]] < t[order[i - 1]]:
                        _stable_sort_by_time(&order[start[j]], &tmp[0], &runs[0], end[j] - start[j], &t[0])
                        break
                if clean:
                    for i in range(start[j] + 1, end[j]):
                        if t[order[i]] == t[order[i - 1]] and b[order[i]] == b[order[i - 1]]:
                            clean = False
                            break
    if bad >= 0:
        raise ValueError(f"group_points: gid {g[bad]} at position {bad} is outside 0..{k - 1}")
    return order_arr, start_arr, end_arr, clean
