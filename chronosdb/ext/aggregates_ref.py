"""Plain-Python twins of the kernels in aggregates.pyx: same names, same answers, slow and obvious.

Tests run both on the same seeded inputs; see aggregates.pyx for each kernel's contract.
"""
from __future__ import annotations

import math

import numpy as np

_MASK = (1 << 64) - 1


def _wrap(x: int) -> int:
    x &= _MASK
    return x - (1 << 64) if x >= 1 << 63 else x


def _is_float(values) -> bool:
    return np.asarray(values).dtype == np.float64


def window_sum(values, bounds):
    values = np.asarray(values)
    nwin = len(bounds) - 1
    if _is_float(values):
        out = np.zeros(nwin, dtype=np.float64)
        for w in range(nwin):
            s = 0.0
            for i in range(bounds[w], bounds[w + 1]):
                s += float(values[i])
            out[w] = s
        return out
    out = np.zeros(nwin, dtype=np.int64)
    for w in range(nwin):
        out[w] = _wrap(sum(int(values[i]) for i in range(bounds[w], bounds[w + 1])))
    return out


def window_select(values, bounds, want_max):
    values = np.asarray(values)
    out = np.full(len(bounds) - 1, -1, dtype=np.int64)
    for w in range(len(bounds) - 1):
        rows = [i for i in range(bounds[w], bounds[w + 1])]
        if not rows:
            continue
        real = [i for i in rows if not (_is_float(values) and math.isnan(values[i]))]
        if not real:
            out[w] = rows[0]
            continue
        best = real[0]
        for i in real[1:]:
            if (values[i] > values[best]) if want_max else (values[i] < values[best]):
                best = i  # strict comparison: ties keep the earliest row
        out[w] = best
    return out


def window_cells(values, bounds):
    values = np.asarray(values)
    count = np.diff(np.asarray(bounds, dtype=np.int64))
    total = window_sum(values.astype(np.int64) if values.dtype == np.uint8 else values, bounds)
    out = [count, total]
    for want_max in (False, True):
        rows = window_select(values, bounds, want_max)
        out.append(np.where(rows >= 0, values[np.maximum(rows, 0)] if len(values) else 0, 0).astype(values.dtype))
    for edge in (np.asarray(bounds[:-1]), np.asarray(bounds[1:]) - 1):
        picked = values[np.clip(edge, 0, max(len(values) - 1, 0))] if len(values) else np.zeros(len(count), values.dtype)
        out.append(np.where(count > 0, picked, 0).astype(values.dtype))
    return tuple(out)


def window_calls(times, values, start, every, nwin, codes):
    from chronosdb.ext.merge_ref import window_bounds
    times, values = np.asarray(times), np.asarray(values)
    if every <= 0:
        raise ValueError(f"window_calls: every must be > 0, got {every}")
    if values.dtype not in (np.float64, np.int64):
        raise TypeError("window_calls: numeric values only (float64 or int64), 1-D C-contiguous")
    count, total, mn, mx, first, last = window_cells(values, window_bounds(times, start, every, nwin))
    outs = []
    for code in codes:
        if code == 0:
            outs.append(count)
        elif code == 1:
            outs.append(total)
        elif code == 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                outs.append(np.where(count > 0, total.astype(np.float64) / np.where(count > 0, count, 1), 0.0))
        elif 3 <= code <= 7:
            outs.append({3: mn, 4: mx, 5: first, 6: last, 7: mx - mn}[code])
        else:
            raise ValueError(f"window_calls: unknown call code {code}")
    starts = np.array([start + i * every for i in range(nwin)], dtype=np.int64)
    return starts, count, int(np.count_nonzero(count)), outs


def window_moments(values, bounds):
    nwin = len(bounds) - 1
    mean, m2 = np.zeros(nwin), np.zeros(nwin)
    for w in range(nwin):
        mu, s, k = 0.0, 0.0, 0
        for i in range(bounds[w], bounds[w + 1]):
            x = float(values[i])
            k += 1
            d = x - mu
            mu += d / k
            s += d * (x - mu)
        mean[w], m2[w] = mu, s
    return mean, m2


def window_integral(times, values, bounds, unit):
    if unit <= 0:
        raise ValueError(f"integral unit must be > 0 ns, got {unit}")
    out = np.zeros(len(bounds) - 1)
    for w in range(len(bounds) - 1):
        acc = 0.0
        for i in range(bounds[w] + 1, bounds[w + 1]):
            acc += 0.5 * (float(values[i]) + float(values[i - 1])) * (float(times[i] - times[i - 1]) / unit)
        out[w] = acc
    return out


def group_mode(values, times, bounds):
    out = np.full(len(bounds) - 1, -1, dtype=np.int64)
    for w in range(len(bounds) - 1):
        lo, hi = bounds[w], bounds[w + 1]
        if lo == hi:
            continue
        best, most_freq, curr_freq = lo, 0, 0
        most_time = curr_time = times[lo]
        for i in range(lo, hi):
            if i > lo and values[i] != values[i - 1]:
                curr_freq, curr_time = 1, times[i]
                continue
            curr_freq += 1
            if most_freq > curr_freq or (most_freq == curr_freq and curr_time > most_time):
                continue
            most_freq, best, most_time = curr_freq, i, times[i]
        out[w] = best
    return out


def derivative(times, values, unit):
    if unit <= 0:
        raise ValueError(f"derivative unit must be > 0 ns, got {unit}")
    return np.array([(float(values[i]) - float(values[i - 1])) / (float(times[i] - times[i - 1]) / unit)
                     for i in range(1, len(times))], dtype=np.float64)


def difference(values):
    values = np.asarray(values)
    if _is_float(values):
        return np.array([values[i] - values[i - 1] for i in range(1, len(values))], dtype=np.float64)
    return np.array([_wrap(int(values[i]) - int(values[i - 1])) for i in range(1, len(values))], dtype=np.int64)


def moving_average(values, window):
    if window < 2:
        raise ValueError(f"moving_average window must be greater than 1, got {window}")
    out, s = [], 0.0
    for i in range(len(values)):
        s += float(values[i])
        if i >= window:
            s -= float(values[i - window])
        if i >= window - 1:
            out.append(s / window)
    return np.array(out, dtype=np.float64)


def cumulative_sum(values):
    values = np.asarray(values)
    out, fs, us = [], 0.0, 0
    for v in values:
        if _is_float(values):
            fs += float(v)
            out.append(fs)
        else:
            us = _wrap(us + int(v))
            out.append(us)
    return np.array(out, dtype=np.float64 if _is_float(values) else np.int64)


def elapsed(times, unit):
    if unit <= 0:
        raise ValueError(f"elapsed unit must be > 0 ns, got {unit}")
    # Go's integer division truncates toward zero; times are increasing so differences are >= 0.
    return np.array([int(times[i] - times[i - 1]) // unit for i in range(1, len(times))], dtype=np.int64)


def strings_to_fixed(offsets, data):
    vals = [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]
    w = max([len(v) for v in vals] + [1])
    return np.array(vals, dtype=f"S{w}")


def sample_keys(times, seed):
    out = np.empty(len(times), dtype=np.uint64)
    for i, t in enumerate(times):
        z = ((int(t) & _MASK) ^ seed) & _MASK
        z = (z + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        out[i] = z ^ (z >> 31)
    return out
