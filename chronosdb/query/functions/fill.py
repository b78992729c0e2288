"""fill() for GROUP BY time results: what an empty window (valid=False) becomes.

Modes, as InfluxDB 1.6.7 answers them (verified against it):
- "null": the window stays empty (rendered null), except that count() and count(distinct())
  render 0: pass their Finalized.null_value as ``null_value``.
- "none": the window is dropped: the returned valid mask is the rows to keep.
- "previous": the last non-empty window's value; windows before the first stay empty.
- "linear": interpolated on the line between the nearest non-empty windows on each side; windows
  with no neighbour on one side stay empty. Integer columns: computed in float64, then truncated
  toward zero (fill(linear) of count() between 4 and 1 gives 2). Strings and booleans stay empty.
- a number: that value; for integer columns truncated toward zero (fill(-1.5) -> -1); string
  columns get "" and boolean columns False.
"""
from __future__ import annotations

import numpy as np

from chronosdb.model.strings import StringArray


def _gather(values, idx):
    if isinstance(values, StringArray):
        return values.take(idx)
    return values[idx]


def apply_fill(mode, values, valid, times, fill_value=None, null_value=None):
    """Returns (values, valid) after filling empty windows of one column.

    ``mode`` is "null", "none", "previous", "linear" or "number" (with ``fill_value``); a bare int
    or float is taken as fill(number). ``times`` are the window start times (used by linear).
    """
    valid = np.asarray(valid, dtype=bool)
    if isinstance(mode, (int, float)) and not isinstance(mode, bool):
        mode, fill_value = "number", mode
    n = len(valid)
    if mode == "null":
        if null_value is not None and not valid.all():
            values = values.copy()
            values[~valid] = null_value
            return values, np.ones(n, dtype=bool)
        return values, valid
    if mode == "none":
        return values, valid
    if mode == "previous":
        idx = np.where(valid, np.arange(n), -1)
        idx = np.maximum.accumulate(idx) if n else idx
        filled = idx >= 0
        return _gather(values, np.maximum(idx, 0)), filled
    if mode == "number":
        if fill_value is None or isinstance(fill_value, bool):
            raise ValueError("fill(number) needs a numeric fill_value")
        if isinstance(values, StringArray):
            keep = np.flatnonzero(valid)
            idx = np.where(valid, np.arange(n), len(values))
            return StringArray.concat([values, StringArray.from_list([b""])]).take(idx), np.ones(n, dtype=bool)
        out = values.copy()
        if out.dtype == np.int64:
            out[~valid] = int(np.trunc(fill_value))
        elif out.dtype == np.uint8:
            out[~valid] = 0
        else:
            out[~valid] = float(fill_value)
        return out, np.ones(n, dtype=bool)
    if mode == "linear":
        if isinstance(values, StringArray) or values.dtype == np.uint8 or n == 0:
            return values, valid
        times = np.asarray(times, dtype=np.int64)
        pos = np.arange(n)
        prev = np.maximum.accumulate(np.where(valid, pos, -1))
        nxt = np.minimum.accumulate(np.where(valid, pos, n)[::-1])[::-1]
        fillable = ~valid & (prev >= 0) & (nxt < n)
        out = values.copy()
        if fillable.any():
            p, q = prev[fillable], nxt[fillable]
            x0, x1, x = times[p].astype(np.float64), times[q].astype(np.float64), times[fillable].astype(np.float64)
            y0, y1 = values[p].astype(np.float64), values[q].astype(np.float64)
            y = y0 + (y1 - y0) * ((x - x0) / (x1 - x0))
            out[fillable] = np.trunc(y).astype(np.int64) if out.dtype == np.int64 else y
        return out, valid | fillable
    raise ValueError(f"unknown fill mode {mode!r}")
