"""InfluxQL transformations over one finalized series: (times, values, valid) in, rows out.

The input is either the per-window output of an aggregate (times = window starts) or the raw points
of a series. Rows with valid=False (null windows) are skipped, as InfluxDB 1.x does: under the
default fill(null) a transformation of an aggregate sees only non-empty windows; with fill(N) or
fill(previous) applied first, the filled windows take part. Each function returns compacted
(times, values, valid) of its output rows (valid is all True; it is returned so the result can go
through fill/format like any other column). Per-row work runs in chronosdb.ext.aggregates.

Unit arguments: the caller resolves defaults -- InfluxDB uses 1s for raw points and the GROUP BY
interval for aggregates when ``derivative``/``non_negative_derivative`` get no unit; ``elapsed``
defaults to 1ns.
"""
from __future__ import annotations

import numpy as np

from chronosdb.ext import aggregates as K
from chronosdb.model.errors import BadRequest

_UNSUPPORTED = {"derivative": "derivative", "non_negative_derivative": "derivative",
                "difference": "difference", "non_negative_difference": "difference",
                "moving_average": "moving average", "cumulative_sum": "cumulative sum"}


def _valid_rows(name, times, values, valid):
    if not isinstance(values, np.ndarray) or values.dtype not in (np.float64, np.int64):
        kind = "string" if not isinstance(values, np.ndarray) else "boolean"
        raise BadRequest(f"unsupported {_UNSUPPORTED.get(name, name)} iterator type: "
                         f"*query.{kind}InterruptIterator")
    times = np.ascontiguousarray(times, dtype=np.int64)
    valid = np.ones(len(times), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if not (len(times) == len(values) == len(valid)):
        raise ValueError(f"{name}: times, values and valid differ in length")
    return times[valid], np.ascontiguousarray(values[valid])


def _out(times, values, keep=None):
    if keep is not None:
        times, values = times[keep], values[keep]
    return times, values, np.ones(len(times), dtype=bool)


def _check_unit(unit_ns):
    if not isinstance(unit_ns, (int, np.integer)) or unit_ns <= 0:
        raise BadRequest(f"duration argument must be positive, got {unit_ns}ns")
    return int(unit_ns)


def derivative(times, values, valid, unit_ns: int):
    """Rate of change between consecutive valid rows per unit; float64; stamped at the later row."""
    unit = _check_unit(unit_ns)
    t, v = _valid_rows("derivative", times, values, valid)
    return _out(t[1:], K.derivative(t, v, unit))


def non_negative_derivative(times, values, valid, unit_ns: int):
    """derivative() without the rows whose rate is negative (those rows are dropped, not nulled)."""
    unit = _check_unit(unit_ns)
    t, v = _valid_rows("non_negative_derivative", times, values, valid)
    d = K.derivative(t, v, unit)
    return _out(t[1:], d, d >= 0)


def difference(times, values, valid):
    """v[i] - v[i-1] over valid rows; keeps int64 (wrapping) for ints."""
    t, v = _valid_rows("difference", times, values, valid)
    return _out(t[1:], K.difference(v))


def non_negative_difference(times, values, valid):
    t, v = _valid_rows("non_negative_difference", times, values, valid)
    d = K.difference(v)
    return _out(t[1:], d, d >= 0)


def moving_average(times, values, valid, n: int):
    """Mean of each n consecutive valid rows, float64, stamped at the last row of the run."""
    if not isinstance(n, (int, np.integer)) or n <= 1:
        raise BadRequest(f"moving_average window must be greater than 1, got {n}")
    t, v = _valid_rows("moving_average", times, values, valid)
    return _out(t[n - 1:] if len(t) >= n else t[:0], K.moving_average(v, int(n)))


def cumulative_sum(times, values, valid):
    """Running sum over valid rows (every row is output); int64 wrapping for ints."""
    t, v = _valid_rows("cumulative_sum", times, values, valid)
    return _out(t, K.cumulative_sum(v))


def elapsed(times, values, valid, unit_ns: int = 1):
    """Time between consecutive valid rows in whole units (int64). Works on any field type."""
    unit = _check_unit(unit_ns)
    times = np.ascontiguousarray(times, dtype=np.int64)
    valid = np.ones(len(times), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    t = times[valid]
    return _out(t[1:], K.elapsed(t, unit))


TRANSFORMS = {f.__name__: f for f in (derivative, non_negative_derivative, difference,
                                       non_negative_difference, moving_average, cumulative_sum,
                                       elapsed)}
