# cython: language_level=3
"""Aggregate and transform kernels: the per-point work of InfluxQL functions, in C without the GIL.

Layout of the inputs every window kernel shares: a value column (float64, int64 or uint8 for
booleans) whose rows are sorted by time, and ``bounds``, nwin+1 positions from
``chronosdb.ext.merge.window_bounds``; window i is rows ``[bounds[i], bounds[i+1])``. Each kernel
answers with one entry per window, so the Python layer (chronosdb/query/functions/partials.py)
only ever touches nwin-sized arrays, never points.

Group kernels (``group_mode``) take rows already sorted by (window, value, time) -- one numpy
lexsort upstream -- with the same kind of ``bounds`` over the sorted rows.

Transform kernels take the compacted valid rows of one series (times strictly increasing) and
return the output rows.

Conventions fixed here (and written down in docs/functions.md):
- int64 sums wrap around on overflow (two's complement), as Go's int64 arithmetic does in
  InfluxDB 1.x; the addition runs on uint64 so the C code has no signed-overflow UB.
- NaN never wins a min/max comparison: a window whose values are all NaN selects its first row.
- min/max ties keep the earliest row (rows are time-sorted, so the first one).

Every def here has a plain-Python twin of the same name in aggregates_ref.py.
"""
import numpy as np

cimport cython
cimport numpy as cnp
from libc.math cimport isnan, sqrt
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from chronosdb.ext.merge cimport first_disorder, gallop_lower_bound

cnp.import_array()

# num_t (float64 | int64 | uint8) is declared in aggregates.pxd.


def _check_bounds(const int64_t[::1] bounds, Py_ssize_t n):
    cdef Py_ssize_t i
    if bounds.shape[0] < 1:
        raise ValueError("bounds must hold at least one position (nwin+1 entries)")
    for i in range(bounds.shape[0]):
        if bounds[i] < 0 or bounds[i] > n or (i and bounds[i] < bounds[i - 1]):
            raise ValueError(f"bounds[{i}] = {bounds[i]} is out of order or outside 0..{n}")


def window_sum(const num_t[::1] values, const int64_t[::1] bounds):
    """Sum per window: float64 for floats, wrapping int64 for ints (and uint8 -> int64)."""
    cdef double[::1] of
    cdef int64_t[::1] oi
    _check_bounds(bounds, values.shape[0])
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i
    cdef double fs
    cdef uint64_t us
    if num_t is double:
        out_f = np.zeros(nwin, dtype=np.float64)
        of = out_f
        with nogil:
            for w in range(nwin):
                fs = 0.0
                for i in range(bounds[w], bounds[w + 1]):
                    fs += values[i]
                of[w] = fs
        return out_f
    else:
        out_i = np.zeros(nwin, dtype=np.int64)
        oi = out_i
        with nogil:
            for w in range(nwin):
                us = 0
                for i in range(bounds[w], bounds[w + 1]):
                    us += <uint64_t> values[i]
                oi[w] = <int64_t> us
        return out_i


def window_select(const num_t[::1] values, const int64_t[::1] bounds, bint want_max):
    """Row index of the min (or max) of each window, -1 for an empty window.

    Ties keep the earliest row; NaN loses every comparison.
    """
    _check_bounds(bounds, values.shape[0])
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i, best
    out = np.full(nwin, -1, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for w in range(nwin):
            if bounds[w] == bounds[w + 1]:
                continue
            best = bounds[w]
            for i in range(bounds[w] + 1, bounds[w + 1]):
                if num_t is double:
                    if isnan(values[i]):
                        continue
                    if isnan(values[best]):
                        best = i
                        continue
                if want_max:
                    if values[i] > values[best]:
                        best = i
                else:
                    if values[i] < values[best]:
                        best = i
            o[w] = best
    return out


cdef inline void _fold(const num_t* v, Py_ssize_t a, Py_ssize_t b, double* fsum, uint64_t* usum,
                       num_t* mn_out, num_t* mx_out) noexcept nogil:
    """Sum, min and max of the rows v[a:b] (a < b), as window_sum and window_select have them:
    floats summed in row order from zero (-0.0 alone sums to 0.0), other values summed on uint64
    (int64 wrapping, without C's signed-overflow UB); NaN loses min/max (a comparison with NaN is
    false; a NaN best so far takes any number); strict comparisons keep the earliest of equal
    values."""
    cdef Py_ssize_t i
    cdef num_t x, mn = v[a], mx = v[a]
    cdef double fs = 0.0
    cdef uint64_t us
    if num_t is double:
        fs += mn
        for i in range(a + 1, b):
            x = v[i]
            fs += x
            if x < mn or (mn != mn and x == x):
                mn = x
            if x > mx or (mx != mx and x == x):
                mx = x
        fsum[0] = fs
    else:
        us = <uint64_t> mn
        for i in range(a + 1, b):
            x = v[i]
            us += <uint64_t> x
            if x < mn:
                mn = x
            if x > mx:
                mx = x
        usum[0] = us
    mn_out[0] = mn
    mx_out[0] = mx


def window_cells(const num_t[::1] values, const int64_t[::1] bounds):
    """(count, sum, min, max, first, last) of each window in one pass over the rows.

    The values are those of ``np.diff(bounds)``, ``window_sum`` and the rows ``window_select``
    and the window edges pick: sums in row order from zero (int64 wrapping), NaN loses min/max
    (a window of NaN only gives NaN), ties keep the earliest row. Empty windows hold 0. sum is
    float64 for floats and int64 otherwise; min/max/first/last keep the values' type.
    """
    _check_bounds(bounds, values.shape[0])
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i, a, b
    dt = np.float64 if num_t is double else (np.int64 if num_t is int64_t else np.uint8)
    count = np.zeros(nwin, dtype=np.int64)
    total = np.zeros(nwin, dtype=np.float64 if num_t is double else np.int64)
    cells = np.zeros((4, nwin), dtype=dt)   # min, max, first, last
    cdef int64_t[::1] oc = count
    cdef num_t[:, ::1] oc4 = cells
    cdef double[::1] osf
    cdef int64_t[::1] osi
    cdef double fs = 0.0
    cdef uint64_t us = 0
    cdef num_t mn, mx
    cdef const num_t* vp = &values[0] if values.shape[0] else NULL
    if num_t is double:
        osf = total
    else:
        osi = total
    with nogil:
        for w in range(nwin):
            a = bounds[w]
            b = bounds[w + 1]
            oc[w] = b - a
            if a == b:
                continue
            _fold(vp, a, b, &fs, &us, &mn, &mx)
            if num_t is double:
                osf[w] = fs
            else:
                osi[w] = <int64_t> us
            oc4[0, w] = mn
            oc4[1, w] = mx
            oc4[2, w] = values[a]
            oc4[3, w] = values[b - 1]
    return count, total, cells[0], cells[1], cells[2], cells[3]


# Codes of the calls ``window_calls`` finalizes (the cell-answerable ones, see
# chronosdb/query/windowcells.py: CALL_CODES maps the names).
cdef enum:
    CALL_COUNT = 0
    CALL_SUM = 1
    CALL_MEAN = 2
    CALL_MIN = 3
    CALL_MAX = 4
    CALL_FIRST = 5
    CALL_LAST = 6
    CALL_SPREAD = 7


cdef extern from "window.h":
    int chronos_window_edge(int64_t start, int64_t every, int64_t i, int64_t* out) noexcept nogil


def window_calls(times, values, int64_t start, int64_t every, Py_ssize_t nwin, codes):
    """(window starts, count, windows with a point, [one array per call code]) of one series'
    points in time order, GROUP BY time windows ``start + i*every`` for i < nwin: the windows'
    rows as ``merge.window_bounds`` splits them, their cells as ``window_cells`` folds them, each
    finalized per call as the cells are (``windowcells.call_cells``), in one call and one pass.

    Per window: count (int64); sum (float64 for floats, int64 wrapping otherwise); mean
    (float64: the sum as float64 over the count); min, max, first, last (the values' type); spread
    (max - min in the values' type, int64 wrapping). An empty window holds 0 in every output.
    Numeric values only (float64, int64); one dtype check instead of fused-type dispatch, which
    costs more than the whole pass for a dashboard's few hundred points."""
    if every <= 0:
        raise ValueError(f"window_calls: every must be > 0, got {every}")
    if nwin < 0:
        raise ValueError(f"window_calls: nwin must be >= 0, got {nwin}")
    cdef cnp.ndarray t = times
    cdef cnp.ndarray v = values
    if t.ndim != 1 or t.dtype.num != cnp.NPY_INT64 or not cnp.PyArray_IS_C_CONTIGUOUS(t):
        raise TypeError("window_calls: times must be a 1-D C-contiguous int64 array")
    if v.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(v) or \
            (v.dtype.num != cnp.NPY_FLOAT64 and v.dtype.num != cnp.NPY_INT64):
        raise TypeError("window_calls: numeric values only (float64 or int64), 1-D C-contiguous")
    cdef Py_ssize_t n = t.shape[0]
    if v.shape[0] != n:
        raise ValueError(f"window_calls: {n} times but {v.shape[0]} values")
    cdef const int64_t* tp = <const int64_t*> cnp.PyArray_DATA(t)
    cdef Py_ssize_t bad
    with nogil:
        bad = first_disorder(tp, n, False) if n else -1
    if bad >= 0:
        raise ValueError(f"window_calls: times not sorted at position {bad} ({tp[bad - 1]} then {tp[bad]})")
    cdef Py_ssize_t ncalls = len(codes), k
    cdef int[16] code
    if ncalls > 16:
        raise ValueError("window_calls: at most 16 calls")
    for k in range(ncalls):
        code[k] = codes[k]
        if code[k] < CALL_COUNT or code[k] > CALL_SPREAD:
            raise ValueError(f"window_calls: unknown call code {codes[k]}")
    cdef bint is_float = v.dtype.num == cnp.NPY_FLOAT64
    starts = np.empty(nwin, dtype=np.int64)
    count = np.zeros(nwin, dtype=np.int64)
    outs = []
    cdef void* out[16]
    cdef cnp.ndarray arr
    for k in range(ncalls):
        if code[k] == CALL_COUNT:
            arr = count
        elif code[k] == CALL_MEAN or (is_float and code[k] == CALL_SUM):
            arr = np.zeros(nwin, dtype=np.float64)
        else:
            arr = np.zeros(nwin, dtype=np.float64 if is_float else np.int64)
        outs.append(arr)
        out[k] = cnp.PyArray_DATA(arr)
    cdef Py_ssize_t nvalid
    cdef cnp.ndarray sa = starts, ca = count
    cdef int64_t* sp = <int64_t*> cnp.PyArray_DATA(sa)
    cdef int64_t* cp = <int64_t*> cnp.PyArray_DATA(ca)
    cdef const void* vp = cnp.PyArray_DATA(v)
    with nogil:
        if is_float:
            nvalid = _window_calls[double](tp, <const double*> vp, n, start, every, nwin, code,
                                           ncalls, out, sp, cp)
        else:
            nvalid = _window_calls[int64_t](tp, <const int64_t*> vp, n, start, every, nwin, code,
                                            ncalls, out, sp, cp)
    if nvalid < 0:
        raise ValueError(f"window_calls: {nwin} windows of {every} ns from {start} pass INT64_MAX")
    return starts, count, nvalid, outs


cdef Py_ssize_t _window_calls(const int64_t* t, const num_t* values, Py_ssize_t n, int64_t start,
                              int64_t every, Py_ssize_t nwin, int* code, Py_ssize_t ncalls,
                              void** out, int64_t* starts, int64_t* oc) noexcept nogil:
    cdef Py_ssize_t w, a, b = 0, k, nvalid = 0
    cdef int64_t edge
    cdef double fs = 0.0, dsum
    cdef uint64_t us = 0
    cdef num_t x, mn, mx
    # the first window's first row: the points before ``start`` belong to no window
    if n and chronos_window_edge(start, every, 0, &edge) == 0:
        b = gallop_lower_bound(t, 0, n, edge)
    for w in range(nwin):
        if chronos_window_edge(start, every, w, &starts[w]) != 0:
            return -1                       # this window would start past INT64_MAX
        a = b
        if b < n and chronos_window_edge(start, every, w + 1, &edge) == 0:
            b = gallop_lower_bound(t, b, n, edge)
        else:
            b = n
        oc[w] = b - a
        if a == b:
            continue
        nvalid += 1
        _fold(values, a, b, &fs, &us, &mn, &mx)
        dsum = fs if num_t is double else <double> <int64_t> us
        for k in range(ncalls):
            if code[k] == CALL_COUNT:
                continue
            elif code[k] == CALL_MEAN:
                (<double*> out[k])[w] = dsum / <double> (b - a)
            elif code[k] == CALL_SUM:
                if num_t is double:
                    (<double*> out[k])[w] = fs
                else:
                    (<int64_t*> out[k])[w] = <int64_t> us
            else:
                if code[k] == CALL_MIN:
                    x = mn
                elif code[k] == CALL_MAX:
                    x = mx
                elif code[k] == CALL_FIRST:
                    x = values[a]
                elif code[k] == CALL_LAST:
                    x = values[b - 1]
                elif num_t is double:
                    x = mx - mn
                else:
                    x = <num_t> (<uint64_t> mx - <uint64_t> mn)
                (<num_t*> out[k])[w] = x
    return nvalid


def window_moments(const num_t[::1] values, const int64_t[::1] bounds):
    """(mean, m2) per window by Welford's update; m2 = sum of squared deviations from the mean."""
    _check_bounds(bounds, values.shape[0])
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i
    mean_a = np.zeros(nwin, dtype=np.float64)
    m2_a = np.zeros(nwin, dtype=np.float64)
    cdef double[::1] mean = mean_a
    cdef double[::1] m2 = m2_a
    cdef double mu, s, x, d
    cdef int64_t k
    with nogil:
        for w in range(nwin):
            mu = 0.0
            s = 0.0
            k = 0
            for i in range(bounds[w], bounds[w + 1]):
                x = <double> values[i]
                k += 1
                d = x - mu
                mu += d / k
                s += d * (x - mu)
            mean[w] = mu
            m2[w] = s
    return mean_a, m2_a


def window_integral(const int64_t[::1] times, const num_t[::1] values,
                    const int64_t[::1] bounds, int64_t unit):
    """Trapezoid area inside each window, time measured in ``unit`` ns.

    A row at the same time as the one before it replaces it (zero width, as InfluxDB's reducer).
    """
    _check_bounds(bounds, values.shape[0])
    if times.shape[0] != values.shape[0]:
        raise ValueError("times and values differ in length")
    if unit <= 0:
        raise ValueError(f"integral unit must be > 0 ns, got {unit}")
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i
    out = np.zeros(nwin, dtype=np.float64)
    cdef double[::1] o = out
    cdef double acc, u = <double> unit
    with nogil:
        for w in range(nwin):
            acc = 0.0
            for i in range(bounds[w] + 1, bounds[w + 1]):
                acc += 0.5 * (<double> values[i] + <double> values[i - 1]) * (<double> (times[i] - times[i - 1]) / u)
            o[w] = acc
    return out


def group_mode(const num_t[::1] values, const int64_t[::1] times, const int64_t[::1] bounds):
    """Row index of each group's mode, -1 for an empty group, InfluxDB 1.x's rule exactly.

    Rows are sorted by (group, value, time). Runs of equal values are walked in ascending value
    order. The first row of the group counts toward its run; in every later run the run's first
    row only opens it, so a later value seen once can never win. After counting a row, the run
    takes the lead when its count beats the leader's, or equals it and the run's first time is not
    after the time of the leader's last counted row. (Verified against InfluxDB 1.6.7: ties mostly
    go to the value seen earliest, but not always -- see docs/functions.md.)
    """
    _check_bounds(bounds, values.shape[0])
    cdef Py_ssize_t nwin = bounds.shape[0] - 1, w, i, best
    out = np.full(nwin, -1, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef int64_t most_freq, curr_freq, most_time, curr_time
    with nogil:
        for w in range(nwin):
            if bounds[w] == bounds[w + 1]:
                continue
            best = bounds[w]
            most_freq = 0
            curr_freq = 0
            most_time = times[best]
            curr_time = times[best]
            for i in range(bounds[w], bounds[w + 1]):
                if i > bounds[w] and values[i] != values[i - 1]:
                    curr_freq = 1
                    curr_time = times[i]
                    continue
                curr_freq += 1
                if most_freq > curr_freq or (most_freq == curr_freq and curr_time > most_time):
                    continue
                most_freq = curr_freq
                best = i
                most_time = times[i]
            o[w] = best
    return out


# ---------------------------------------------------------------------------------------------
# Transforms over the valid rows of one series
# ---------------------------------------------------------------------------------------------

def derivative(const int64_t[::1] times, const num_t[::1] values, int64_t unit):
    """(v[i] - v[i-1]) / ((t[i] - t[i-1]) / unit) for i >= 1, as float64 (n-1 rows)."""
    if times.shape[0] != values.shape[0]:
        raise ValueError("times and values differ in length")
    if unit <= 0:
        raise ValueError(f"derivative unit must be > 0 ns, got {unit}")
    cdef Py_ssize_t n = times.shape[0], i
    out = np.empty(max(n - 1, 0), dtype=np.float64)
    cdef double[::1] o = out
    cdef double u = <double> unit
    with nogil:
        for i in range(1, n):
            o[i - 1] = (<double> values[i] - <double> values[i - 1]) / (<double> (times[i] - times[i - 1]) / u)
    return out


def difference(const num_t[::1] values):
    """v[i] - v[i-1] for i >= 1: float64 for floats, wrapping int64 for ints (n-1 rows)."""
    cdef double[::1] of
    cdef int64_t[::1] oi
    cdef Py_ssize_t n = values.shape[0], i
    if num_t is double:
        outf = np.empty(max(n - 1, 0), dtype=np.float64)
        of = outf
        with nogil:
            for i in range(1, n):
                of[i - 1] = values[i] - values[i - 1]
        return outf
    else:
        outi = np.empty(max(n - 1, 0), dtype=np.int64)
        oi = outi
        with nogil:
            for i in range(1, n):
                oi[i - 1] = <int64_t> (<uint64_t> values[i] - <uint64_t> values[i - 1])
        return outi


def moving_average(const num_t[::1] values, Py_ssize_t window):
    """Mean of each run of ``window`` consecutive values, float64 (n-window+1 rows, or none).

    A running sum (add the new value, drop the oldest) like InfluxDB's ring buffer.
    """
    if window < 2:
        raise ValueError(f"moving_average window must be greater than 1, got {window}")
    cdef Py_ssize_t n = values.shape[0], i
    cdef Py_ssize_t m = n - window + 1 if n >= window else 0
    out = np.empty(m, dtype=np.float64)
    cdef double[::1] o = out
    cdef double s = 0.0
    with nogil:
        for i in range(n):
            s += <double> values[i]
            if i >= window:
                s -= <double> values[i - window]
            if i >= window - 1:
                o[i - window + 1] = s / window
    return out


def cumulative_sum(const num_t[::1] values):
    """Running sum: float64 for floats, wrapping int64 for ints (n rows)."""
    cdef double[::1] of
    cdef int64_t[::1] oi
    cdef Py_ssize_t n = values.shape[0], i
    cdef double fs = 0.0
    cdef uint64_t us = 0
    if num_t is double:
        outf = np.empty(n, dtype=np.float64)
        of = outf
        with nogil:
            for i in range(n):
                fs += values[i]
                of[i] = fs
        return outf
    else:
        outi = np.empty(n, dtype=np.int64)
        oi = outi
        with nogil:
            for i in range(n):
                us += <uint64_t> values[i]
                oi[i] = <int64_t> us
        return outi


def elapsed(const int64_t[::1] times, int64_t unit):
    """(t[i] - t[i-1]) // unit for i >= 1, int64 (n-1 rows); truncating like Go's division."""
    if unit <= 0:
        raise ValueError(f"elapsed unit must be > 0 ns, got {unit}")
    cdef Py_ssize_t n = times.shape[0], i
    out = np.empty(max(n - 1, 0), dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(1, n):
            o[i - 1] = (times[i] - times[i - 1]) / unit
    return out


# ---------------------------------------------------------------------------------------------
# Helpers for string columns and sampling
# ---------------------------------------------------------------------------------------------

def strings_to_fixed(const int64_t[::1] offsets, const unsigned char[::1] data):
    """A numpy 'S<w>' array (w = longest value) of a StringArray, for numpy sorts and uniques.

    numpy compares 'S' values with trailing NUL bytes stripped, so b"a" and b"a\\0" compare equal.
    """
    cdef Py_ssize_t n = offsets.shape[0] - 1, i, w = 0, ln
    if n < 0:
        raise ValueError("offsets must hold at least one entry")
    for i in range(n):
        ln = offsets[i + 1] - offsets[i]
        if ln < 0 or offsets[i + 1] > data.shape[0]:
            raise ValueError(f"string offsets out of order at {i}")
        if ln > w:
            w = ln
    out = np.zeros(n, dtype=f"S{max(w, 1)}")
    cdef unsigned char* dst = <unsigned char*> cnp.PyArray_DATA(out)
    cdef Py_ssize_t stride = max(w, 1)
    with nogil:
        for i in range(n):
            ln = offsets[i + 1] - offsets[i]
            if ln:
                memcpy(dst + i * stride, &data[offsets[i]], ln)
    return out


def sample_keys(const int64_t[::1] times, uint64_t seed):
    """splitmix64(time ^ seed) per row: the rank sample() keeps the smallest N of, per window.

    Depending only on the time makes the sample deterministic and independent of merge order.
    """
    cdef Py_ssize_t n = times.shape[0], i
    out = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef uint64_t z
    with nogil:
        for i in range(n):
            z = (<uint64_t> times[i]) ^ seed
            z = z + <uint64_t> 0x9E3779B97F4A7C15ULL
            z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9ULL
            z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EBULL
            o[i] = z ^ (z >> 31)
    return out
