"""Partial aggregates: the mergeable state of one InfluxQL function call over nwin time windows.

A Partial is built per (output series, function call). Shards feed it points
(``add_points``, one Cython pass per call) or whole-block statistics (``add_block_stats``); partials
from other shards or nodes are folded in with ``merge`` (commutative and associative: the result
never depends on the order of merges); ``finalize`` turns it into one row per window
(``Finalized``) or several (``FinalizedMulti``). ``to_bytes``/``from_bytes`` carry a partial between
nodes: a cbor2 map {name, nwin, ftype, args, state}, every array in state as {dtype, raw bytes}
and every string column as {offsets bytes, data bytes}.

State per family (arrays of nwin unless said otherwise):
- count: counts.  sum: sums (float64, or int64 wrapping) + counts.  mean: same.
- spread: lo, hi, has.  stddev: n, mean, m2 (Chan's parallel update on merge).
- min/max/first/last (selectors): val, time, has. Every update -- points, block stats, merge -- is
  "pool the candidates and keep the best per window", with one ordering per function:
  min: value asc, time asc; max: value desc, time asc; first: time asc, value desc;
  last: time desc, value desc. NaN sorts after every number in both min and max.
- integral: one row per (window, piece): area inside the piece + its first and last point.
- median/percentile/mode/distinct/count_distinct: exact rows (window, value, time), capped at
  ``EXACT_VALUE_CAP`` rows (distinct keeps one row per value and window, with its first time).
- top/bottom/sample: at most N rows per window.
"""
from __future__ import annotations

from dataclasses import dataclass

import cbor2
import numpy as np

from chronosdb.ext import aggregates as K
from chronosdb.model.errors import BadRequest
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray

# The most rows an exact partial (median, percentile, mode, distinct) may hold before the query is
# refused: 10M rows of 8-byte values + 8-byte times + 8-byte window ids is ~240 MB.
EXACT_VALUE_CAP = 10_000_000

# sample() ranks points by a hash of their time mixed with this seed (see aggregates.sample_keys).
SAMPLE_SEED = 0x5EED_C4A0_05DB_0001

F, I, B, S = FieldType.FLOAT, FieldType.INTEGER, FieldType.BOOLEAN, FieldType.STRING
NUMERIC = frozenset({F, I})

_ITER = {F: "float", I: "integer", B: "boolean", S: "string"}


@dataclass
class Finalized:
    values: object          # np.ndarray or StringArray, nwin entries (garbage where ~valid)
    valid: np.ndarray       # bool, nwin
    point_time: object      # int64 nwin (selectors) or None
    ftype: FieldType
    # What InfluxDB prints for an empty window under fill(null): None (null) or 0 (count,
    # count(distinct)). Under fill(previous/linear/none/N) the window is empty like any other.
    null_value: object = None


@dataclass
class FinalizedMulti:
    win: np.ndarray         # window of each row
    times: object           # int64 point time of each row, or None (distinct: window start)
    values: object
    ftype: FieldType
    tags: object = None


# ---------------------------------------------------------------------------------------------
# Helpers: candidate pools, string ranks, serialization
# ---------------------------------------------------------------------------------------------

def _empty_values(ftype: FieldType, n: int = 0):
    if ftype == S:
        return StringArray(np.zeros(n + 1, dtype=np.int64), b"")
    return np.zeros(n, dtype=ftype.dtype)


def _take(values, idx):
    idx = np.asarray(idx, dtype=np.int64)
    if isinstance(values, StringArray):
        return values.take(idx)
    return values[idx]


def _concat(parts):
    if isinstance(parts[0], StringArray):
        return StringArray.concat(list(parts))
    return np.concatenate(parts)


def _rank(values) -> np.ndarray:
    """A sort key per value: the value itself for numbers, a dense byte-order rank for strings."""
    if isinstance(values, StringArray):
        if len(values) == 0:
            return np.zeros(0, dtype=np.int64)
        fixed = K.strings_to_fixed(values.offsets, np.frombuffer(values.data, dtype=np.uint8)
                                   if values.data else np.zeros(1, dtype=np.uint8))
        return np.unique(fixed, return_inverse=True)[1].astype(np.int64).reshape(-1)
    return values


def _group_bounds(win_sorted: np.ndarray, nwin: int) -> np.ndarray:
    return np.searchsorted(win_sorted, np.arange(nwin + 1), side="left").astype(np.int64)


def _points_win(bounds: np.ndarray) -> np.ndarray:
    """Window index of every row in [bounds[0], bounds[-1])."""
    return np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))


def _enc(v):
    if isinstance(v, StringArray):
        return {"o": v.offsets.tobytes(), "s": v.data}
    if isinstance(v, np.ndarray):
        return {"d": v.dtype.str, "b": v.tobytes()}
    return {"v": v}


def _dec(d):
    if "o" in d:
        return StringArray(np.frombuffer(d["o"], dtype=np.int64).copy(), d["s"])
    if "d" in d:
        return np.frombuffer(d["b"], dtype=np.dtype(d["d"])).copy()
    return d["v"]


def _as_values(values, ftype: FieldType):
    if ftype == S:
        if not isinstance(values, StringArray):
            raise ValueError("a string field needs a StringArray of values")
        return values
    return np.ascontiguousarray(values, dtype=ftype.dtype)


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------

class Partial:
    name = "?"
    supports_block_stats = False
    allowed_types = frozenset({F, I, B, S})
    _fields: tuple = ()
    # Text InfluxDB 1.6.7 uses for this function in "unsupported X iterator type" errors.
    iterator_name = None

    def __init__(self, nwin: int, ftype: FieldType, args: tuple = ()):
        if nwin < 0:
            raise ValueError(f"nwin must be >= 0, got {nwin}")
        ftype = FieldType(ftype)
        if ftype not in self.allowed_types:
            kind = "String" if ftype == S else "Boolean"
            raise BadRequest(
                f"unsupported {self.iterator_name or self.name} iterator type: "
                f"*query.{_ITER[ftype]}InterruptIterator".replace("String", kind, 0))
        self.nwin, self.ftype, self.args = nwin, ftype, tuple(args)
        self._check_args()
        self._init_state()

    def _check_args(self):
        pass

    def _init_state(self):
        raise NotImplementedError

    def _same(self, other: "Partial"):
        if (type(other) is not type(self) or other.nwin != self.nwin or other.ftype != self.ftype
                or other.args != self.args):
            raise ValueError(f"cannot merge {other.name}{other.args}/{other.nwin} into "
                             f"{self.name}{self.args}/{self.nwin}")

    def _slice(self, times, values, bounds):
        bounds = np.ascontiguousarray(bounds, dtype=np.int64)
        if len(bounds) != self.nwin + 1:
            raise ValueError(f"bounds must have nwin+1 = {self.nwin + 1} entries, got {len(bounds)}")
        times = np.ascontiguousarray(times, dtype=np.int64)
        values = _as_values(values, self.ftype)
        if len(times) != len(values):
            raise ValueError(f"times ({len(times)}) and values ({len(values)}) differ in length")
        return times, values, bounds

    def add_block_stats(self, win, stats) -> None:
        raise ValueError(f"{self.name}() cannot be answered from block statistics")

    def to_bytes(self) -> bytes:
        return cbor2.dumps({"name": self.name, "nwin": self.nwin, "ftype": int(self.ftype),
                            "args": list(self.args),
                            "state": {f: _enc(getattr(self, f)) for f in self._fields}})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Partial":
        d = cbor2.loads(raw)
        p = make_partial(d["name"], d["nwin"], FieldType(d["ftype"]), tuple(d["args"]))
        for f, v in d["state"].items():
            if f not in p._fields:
                raise ValueError(f"partial {d['name']}: unknown state field {f!r}")
            setattr(p, f, _dec(v))
        if getattr(p, "fresh", False):
            p.fresh = False  # state came with it
        return p


# ---------------------------------------------------------------------------------------------
# count, sum, mean
# ---------------------------------------------------------------------------------------------

class CountPartial(Partial):
    name = "count"
    supports_block_stats = True
    _fields = ("counts",)

    def _init_state(self):
        self.counts = np.zeros(self.nwin, dtype=np.int64)

    def add_points(self, times, values, bounds):
        _, _, bounds = self._slice(times, values, bounds)
        self.counts += np.diff(bounds)

    def add_block_stats(self, win, stats):
        np.add.at(self.counts, np.asarray(win, dtype=np.int64), np.asarray(stats.count, dtype=np.int64))

    def merge(self, other):
        self._same(other)
        self.counts += other.counts

    def finalize(self):
        return Finalized(self.counts.copy(), self.counts > 0, None, I, null_value=0)


class SumPartial(Partial):
    name = "sum"
    supports_block_stats = True
    allowed_types = NUMERIC
    _fields = ("sums", "counts")

    def _init_state(self):
        self.sums = np.zeros(self.nwin, dtype=self.ftype.dtype)
        self.counts = np.zeros(self.nwin, dtype=np.int64)

    def add_points(self, times, values, bounds):
        _, values, bounds = self._slice(times, values, bounds)
        self.sums += K.window_sum(values, bounds)
        self.counts += np.diff(bounds)

    def add_block_stats(self, win, stats):
        win = np.asarray(win, dtype=np.int64)
        np.add.at(self.sums, win, np.asarray(stats.sum).astype(self.sums.dtype))
        np.add.at(self.counts, win, np.asarray(stats.count, dtype=np.int64))

    def merge(self, other):
        self._same(other)
        self.sums += other.sums
        self.counts += other.counts

    def finalize(self):
        return Finalized(self.sums.copy(), self.counts > 0, None, self.ftype)


class MeanPartial(SumPartial):
    name = "mean"

    def finalize(self):
        valid = self.counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            # InfluxDB sums ints in int64 (wrapping) and divides once at the end.
            vals = self.sums.astype(np.float64) / np.where(valid, self.counts, 1)
        return Finalized(vals, valid, None, F)


# ---------------------------------------------------------------------------------------------
# spread, stddev
# ---------------------------------------------------------------------------------------------

class SpreadPartial(Partial):
    name = "spread"
    supports_block_stats = True
    allowed_types = NUMERIC
    _fields = ("lo", "hi", "has")

    def _init_state(self):
        self.lo = np.zeros(self.nwin, dtype=self.ftype.dtype)
        self.hi = np.zeros(self.nwin, dtype=self.ftype.dtype)
        self.has = np.zeros(self.nwin, dtype=bool)

    def _fold(self, win, lo, hi):
        win = np.asarray(win, dtype=np.int64)
        fresh = ~self.has
        big = np.inf if self.ftype == F else np.iinfo(np.int64).max
        self.lo[fresh], self.hi[fresh] = big, -big if self.ftype == F else np.iinfo(np.int64).min
        np.minimum.at(self.lo, win, lo)
        np.maximum.at(self.hi, win, hi)
        self.has[win] = True
        self.lo[~self.has], self.hi[~self.has] = 0, 0

    def add_points(self, times, values, bounds):
        _, values, bounds = self._slice(times, values, bounds)
        ilo, ihi = K.window_select(values, bounds, False), K.window_select(values, bounds, True)
        ok = ilo >= 0
        self._fold(np.flatnonzero(ok), values[ilo[ok]], values[ihi[ok]])

    def add_block_stats(self, win, stats):
        self._fold(win, np.asarray(stats.min, dtype=self.lo.dtype), np.asarray(stats.max, dtype=self.hi.dtype))

    def merge(self, other):
        self._same(other)
        w = np.flatnonzero(other.has)
        self._fold(w, other.lo[w], other.hi[w])

    def finalize(self):
        return Finalized(self.hi - self.lo, self.has.copy(), None, self.ftype)


class StddevPartial(Partial):
    name = "stddev"
    allowed_types = NUMERIC
    _fields = ("n", "mean", "m2")

    def _init_state(self):
        self.n = np.zeros(self.nwin, dtype=np.int64)
        self.mean = np.zeros(self.nwin)
        self.m2 = np.zeros(self.nwin)

    def _combine(self, n2, mean2, m22):
        n1 = self.n
        n = n1 + n2
        safe = np.where(n > 0, n, 1)
        delta = mean2 - self.mean
        self.mean = np.where(n > 0, self.mean + delta * (n2 / safe), 0.0)
        self.m2 = self.m2 + m22 + delta * delta * (n1 * n2 / safe)
        self.n = n

    def add_points(self, times, values, bounds):
        _, values, bounds = self._slice(times, values, bounds)
        mean, m2 = K.window_moments(values, bounds)
        self._combine(np.diff(bounds), mean, m2)

    def merge(self, other):
        self._same(other)
        self._combine(other.n, other.mean, other.m2)

    def finalize(self):
        valid = self.n > 1  # InfluxDB answers null for a single value
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.sqrt(np.maximum(self.m2, 0.0) / np.where(valid, self.n - 1, 1))
        return Finalized(vals, valid, None, F)


# ---------------------------------------------------------------------------------------------
# Selectors: min, max, first, last
# ---------------------------------------------------------------------------------------------

class SelectorPartial(Partial):
    supports_block_stats = True
    _fields = ("val", "time", "has")
    # True when add_block_stats knows the exact time of the selected point (first/last). For
    # min/max the block index has no time of its min/max, so block stats are exact only when the
    # caller shows window start times (GROUP BY time), not point times.
    block_stats_exact_time = True

    def _init_state(self):
        self.val = _empty_values(self.ftype, self.nwin)
        self.time = np.zeros(self.nwin, dtype=np.int64)
        self.has = np.zeros(self.nwin, dtype=bool)
        self.fresh = True   # nothing pooled yet (then one candidate per window simply lands)

    def _order(self, win, vals, times):
        raise NotImplementedError

    def _pool(self, win, vals, times):
        """Fold candidate rows (window, value, time) into the state: best per window wins."""
        win = np.asarray(win, dtype=np.int64)
        if len(win) == 0:
            return
        self.fresh = False
        have = np.flatnonzero(self.has)
        win = np.concatenate([have, win])
        vals = _concat([_take(self.val, have), vals])
        times = np.concatenate([self.time[have], np.asarray(times, dtype=np.int64)])
        order = self._order(win, _rank(vals), times)
        ws = win[order]
        first = np.ones(len(ws), dtype=bool)
        first[1:] = ws[1:] != ws[:-1]
        pick = order[first]
        w = win[pick]
        self.has[w] = True
        self.time[w] = times[pick]
        if isinstance(vals, StringArray):
            idx = np.zeros(self.nwin, dtype=np.int64)
            take_from = np.full(self.nwin, -1, dtype=np.int64)
            take_from[w] = pick
            # Windows without data get an empty string: gather from a one-empty-string tail.
            allv = StringArray.concat([vals, StringArray.from_list([b""])])
            idx = np.where(take_from >= 0, take_from, len(vals))
            self.val = allv.take(idx)
        else:
            self.val[w] = vals[pick]

    def add_points(self, times, values, bounds):
        times, values, bounds = self._slice(times, values, bounds)
        idx = self._point_candidates(values, bounds)
        ok = idx >= 0
        rows = idx[ok]
        self._pool(np.flatnonzero(ok), _take(values, rows), times[rows])

    def merge(self, other):
        self._same(other)
        w = np.flatnonzero(other.has)
        self._pool(w, _take(other.val, w), other.time[w])

    def finalize(self):
        v = self.val if isinstance(self.val, StringArray) else self.val.copy()
        return Finalized(v, self.has.copy(), self.time.copy(), self.ftype)


def _nan_last(key):
    if key.dtype == np.float64:
        return np.isnan(key)
    return np.zeros(len(key), dtype=bool)


class MinPartial(SelectorPartial):
    name = "min"
    allowed_types = frozenset({F, I, B})
    block_stats_exact_time = False

    @staticmethod
    def _beats(new, cur):
        return new < cur

    def _pool(self, win, vals, times):
        """Fast path: one candidate per window, strictly increasing windows, no NaN anywhere —
        an elementwise comparison with the held best decides (same rule as the sort: the better
        value wins, equal values keep the earlier time). Anything else takes the general path."""
        win = np.asarray(win, dtype=np.int64)
        if (isinstance(vals, np.ndarray) and len(win) and (len(win) == 1 or (win[1:] > win[:-1]).all())):
            v = vals
            if self.fresh:  # the first candidates, one per window: each is its window's best
                self.fresh = False
                self.val[win] = v
                self.time[win] = times
                self.has[win] = True
                return
            cur = self.val[win]
            if not (v.dtype == np.float64 and (np.isnan(v).any() or np.isnan(cur).any())):
                t = np.asarray(times, dtype=np.int64)
                ct = self.time[win]
                better = ~self.has[win] | self._beats(v, cur) | ((v == cur) & (t < ct))
                if better.any():
                    w = win[better]
                    self.val[w] = v[better]
                    self.time[w] = t[better]
                    self.has[w] = True
                return
        super()._pool(win, vals, times)

    def _order(self, win, key, times):
        return np.lexsort((times, np.where(_nan_last(key), 0, key), _nan_last(key), win))

    def _point_candidates(self, values, bounds):
        return K.window_select(values, bounds, False)

    def add_block_stats(self, win, stats):
        self._pool(win, np.asarray(stats.min, dtype=self.ftype.dtype), stats.min_time)


class MaxPartial(MinPartial):
    name = "max"

    @staticmethod
    def _beats(new, cur):
        return new > cur

    def _order(self, win, key, times):
        neg = -key.astype(np.float64) if key.dtype != np.float64 else -key
        if key.dtype == np.int64:  # negating int64 loses order at the extremes; rank instead
            neg = -np.unique(key, return_inverse=True)[1].reshape(-1)
        return np.lexsort((times, np.where(_nan_last(key), 0, neg), _nan_last(key), win))

    def _point_candidates(self, values, bounds):
        return K.window_select(values, bounds, True)

    def add_block_stats(self, win, stats):
        self._pool(win, np.asarray(stats.max, dtype=self.ftype.dtype), stats.min_time)


def _desc_key(key):
    """A key whose ascending order is key's descending order (works for int64 extremes)."""
    return -np.unique(key, return_inverse=True)[1].reshape(-1)


class FirstPartial(SelectorPartial):
    name = "first"

    def _order(self, win, key, times):
        return np.lexsort((_desc_key(key), times, win))

    def _point_candidates(self, values, bounds):
        b = bounds[:-1]
        return np.where(np.diff(bounds) > 0, b, -1)

    def add_block_stats(self, win, stats):
        self._pool(win, np.asarray(stats.first, dtype=self.ftype.dtype), stats.min_time)


class LastPartial(SelectorPartial):
    name = "last"

    def _order(self, win, key, times):
        return np.lexsort((_desc_key(key), -times, win))

    def _point_candidates(self, values, bounds):
        return np.where(np.diff(bounds) > 0, bounds[1:] - 1, -1)

    def add_block_stats(self, win, stats):
        self._pool(win, np.asarray(stats.last, dtype=self.ftype.dtype), stats.max_time)


# ---------------------------------------------------------------------------------------------
# integral
# ---------------------------------------------------------------------------------------------

class IntegralPartial(Partial):
    """State: one row per (window, piece) -- a piece being the points one add_points call saw in
    that window -- with the area inside it and its first and last point. Pieces are only joined
    at finalize (sorted by time, each linked to the next by a trapezoid), so merges commute and
    associate even when pieces arrive out of time order."""
    name = "integral"
    allowed_types = NUMERIC
    _fields = ("win", "area", "t0", "v0", "t1", "v1")

    def _check_args(self):
        unit = self.args[0] if self.args else 1_000_000_000
        if not isinstance(unit, (int, np.integer)) or isinstance(unit, bool) or unit <= 0:
            raise BadRequest(f"duration argument must be positive, got {unit}ns")
        self.unit = int(unit)

    def _init_state(self):
        self.win = np.zeros(0, dtype=np.int64)
        self.t0, self.t1 = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.area, self.v0, self.v1 = np.zeros(0), np.zeros(0), np.zeros(0)

    def _append(self, *cols):
        for f, c in zip(self._fields, cols):
            setattr(self, f, np.concatenate([getattr(self, f), c]))

    def add_points(self, times, values, bounds):
        times, values, bounds = self._slice(times, values, bounds)
        area = K.window_integral(times, values, bounds, self.unit)
        w = np.flatnonzero(np.diff(bounds) > 0)
        lo, hi = bounds[w], bounds[w + 1] - 1
        fv = values.astype(np.float64)
        self._append(w, area[w], times[lo], fv[lo], times[hi], fv[hi])

    def merge(self, other):
        self._same(other)
        self._append(other.win, other.area, other.t0, other.v0, other.t1, other.v1)

    def _joined(self):
        """Per window: area (pieces linked in time order), first and last point, has."""
        n = self.nwin
        order = np.lexsort((self.t0, self.win))
        w, t0, v0, t1, v1 = (a[order] for a in (self.win, self.t0, self.v0, self.t1, self.v1))
        area = self.area[order].copy()
        same = w[1:] == w[:-1]
        link = 0.5 * (v1[:-1] + v0[1:]) * (np.maximum(t0[1:] - t1[:-1], 0) / self.unit)
        area[1:] += np.where(same, link, 0.0)
        total = np.bincount(w, weights=area, minlength=n) if len(w) else np.zeros(n)
        has = np.bincount(w, minlength=n) > 0 if len(w) else np.zeros(n, dtype=bool)
        first = np.ones(len(w), dtype=bool); first[1:] = ~same
        last = np.ones(len(w), dtype=bool); last[:-1] = ~same
        ft, fv, lt, lv = np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64), np.zeros(n)
        ft[w[first]], fv[w[first]] = t0[first], v0[first]
        lt[w[last]], lv[w[last]] = t1[last], v1[last]
        return total, ft, fv, lt, lv, has

    def finalize(self, grid: tuple | None = None):
        """Per-window areas. With ``grid=(start, every)`` (GROUP BY time) the area between two
        non-empty windows is split at the earlier window's end, the value there interpolated on
        the line joining the two points, as InfluxDB 1.x does (the stretch over empty windows in
        between goes to the later window). Without it each window stands alone."""
        area, t0, v0, t1, v1, has = self._joined()
        if grid is not None and self.nwin > 1:
            start, every = grid
            w = np.flatnonzero(has)
            if len(w) > 1:
                a, b = w[:-1], w[1:]
                end = start + (a + 1) * every
                tl, vl, tf, vf = t1[a], v1[a], t0[b], v0[b]
                span = (tf - tl).astype(np.float64)
                ve = vl + (vf - vl) * ((end - tl) / np.where(span > 0, span, 1))
                area[a] += 0.5 * (vl + ve) * ((end - tl) / self.unit)
                area[b] += 0.5 * (ve + vf) * (np.maximum(tf - end, 0) / self.unit)
        return Finalized(area, has, None, F)


# ---------------------------------------------------------------------------------------------
# Exact row-keeping partials: median, percentile, mode, distinct, count(distinct)
# ---------------------------------------------------------------------------------------------

class RowsPartial(Partial):
    _fields = ("win", "vals", "times")
    cap = EXACT_VALUE_CAP

    def _init_state(self):
        self.win = np.zeros(0, dtype=np.int64)
        self.vals = _empty_values(self.ftype)
        self.times = np.zeros(0, dtype=np.int64)

    def _append(self, win, vals, times):
        if len(self.win) + len(win) > self.cap:
            raise BadRequest(f"{self.name}() would hold more than {self.cap} values in memory; "
                             "narrow the time range or group by a shorter time interval")
        self.win = np.concatenate([self.win, win])
        self.vals = _concat([self.vals, vals])
        self.times = np.concatenate([self.times, times])
        self._compact()

    def _compact(self):
        pass

    def add_points(self, times, values, bounds):
        times, values, bounds = self._slice(times, values, bounds)
        lo, hi = bounds[0], bounds[-1]
        self._append(_points_win(bounds), _take(values, np.arange(lo, hi)), times[lo:hi])

    def merge(self, other):
        self._same(other)
        self._append(other.win, other.vals, other.times)

    def _sorted(self):
        """Rows sorted by (window, value, time) and the group bounds over them."""
        key = _rank(self.vals)
        order = np.lexsort((self.times, key, self.win))
        return order, key[order], _group_bounds(self.win[order], self.nwin)


class MedianPartial(RowsPartial):
    name = "median"
    allowed_types = NUMERIC

    def finalize(self):
        order, key, gb = self._sorted()
        n = np.diff(gb)
        valid = n > 0
        v = self.vals[order].astype(np.float64)
        lo = np.clip(gb[:-1] + (n - 1) // 2, 0, max(len(v) - 1, 0))
        hi = np.clip(gb[:-1] + n // 2, 0, max(len(v) - 1, 0))
        if len(v) == 0:
            return Finalized(np.zeros(self.nwin), valid, None, F)
        # Even count: the low middle plus half the gap, the way InfluxDB writes it.
        out = v[lo] + (v[hi] - v[lo]) / 2
        return Finalized(out, valid, None, F)


class PercentilePartial(RowsPartial):
    name = "percentile"
    allowed_types = NUMERIC

    def _check_args(self):
        if len(self.args) != 1:
            raise BadRequest(f"invalid number of arguments for percentile, expected 2, got {len(self.args) + 1}")
        if not isinstance(self.args[0], (int, float)) or isinstance(self.args[0], bool):
            raise BadRequest(f"expected float argument in percentile()")
        self.pct = float(self.args[0])

    def finalize(self):
        order, key, gb = self._sorted()
        n = np.diff(gb)
        # Nearest rank, as InfluxDB 1.x: i = floor(n * p / 100 + 0.5) - 1, null when outside 0..n-1.
        i = np.floor(n * self.pct / 100.0 + 0.5).astype(np.int64) - 1
        valid = (i >= 0) & (i < n)
        rows = order[np.where(valid, gb[:-1] + i, 0)] if len(order) else np.zeros(self.nwin, dtype=np.int64)
        vals = self.vals[rows] if len(order) else np.zeros(self.nwin, dtype=self.ftype.dtype)
        t = self.times[rows] if len(order) else np.zeros(self.nwin, dtype=np.int64)
        return Finalized(vals, valid, t, self.ftype)


class ModePartial(RowsPartial):
    name = "mode"

    def finalize(self):
        if self.ftype == B:
            # InfluxDB 1.6.7 counts booleans apart: true wins unless false is strictly more frequent.
            trues = np.bincount(self.win, weights=self.vals, minlength=self.nwin)
            total = np.bincount(self.win, minlength=self.nwin)
            return Finalized((trues >= total - trues).astype(np.uint8), total > 0, None, B)
        order, key, gb = self._sorted()
        pick = K.group_mode(np.ascontiguousarray(key), np.ascontiguousarray(self.times[order]), gb)
        valid = pick >= 0
        rows = order[np.where(valid, pick, 0)] if len(order) else np.zeros(self.nwin, dtype=np.int64)
        if len(order) == 0:
            return Finalized(_empty_values(self.ftype, self.nwin), valid, None, self.ftype)
        vals = _take(self.vals, rows)
        return Finalized(vals, valid, None, self.ftype)


class DistinctPartial(RowsPartial):
    """One row per (window, value), holding the value's earliest time (its output order)."""
    name = "distinct"

    def _compact(self):
        if len(self.win) == 0:
            return
        key = _rank(self.vals)
        order = np.lexsort((self.times, key, self.win))
        ws, ks = self.win[order], key[order]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = (ws[1:] != ws[:-1]) | (ks[1:] != ks[:-1])
        if self.ftype == F:  # NaN != NaN would keep every NaN; treat NaNs as one value
            vs = self.vals[order]
            keep[1:] &= ~(np.isnan(vs[1:]) & np.isnan(vs[:-1]) & (ws[1:] == ws[:-1]))
        rows = order[keep]
        self.win, self.vals, self.times = self.win[rows], _take(self.vals, rows), self.times[rows]

    def finalize(self):
        key = _rank(self.vals)
        order = np.lexsort((key, self.times, self.win))  # InfluxDB lists values by first appearance
        return FinalizedMulti(self.win[order], None, _take(self.vals, order), self.ftype)


class CountDistinctPartial(DistinctPartial):
    name = "count_distinct"

    def finalize(self):
        c = np.bincount(self.win, minlength=self.nwin).astype(np.int64)
        return Finalized(c, c > 0, None, I, null_value=0)


# ---------------------------------------------------------------------------------------------
# top, bottom, sample: at most N rows per window
# ---------------------------------------------------------------------------------------------

class TopPartial(RowsPartial):
    name = "top"
    allowed_types = NUMERIC
    _desc = True

    def _check_args(self):
        if len(self.args) < 1:
            raise BadRequest(f"invalid number of arguments for {self.name}, expected at least 2, got 1")
        n = self.args[-1]
        if not isinstance(n, int) or isinstance(n, bool):
            raise BadRequest(f"expected integer as last argument in {self.name}(), found {n!r}")
        if n < 1:
            raise BadRequest(f"limit ({n}) in {self.name} function must be at least 1")
        self.limit = n

    def _rank_key(self):
        key = _rank(self.vals)
        return _desc_key(key) if self._desc else key

    def _compact(self):
        if len(self.win) == 0:
            return
        order = np.lexsort((self.times, self._rank_key(), self.win))
        ws = self.win[order]
        gb = _group_bounds(ws, self.nwin)
        pos = np.arange(len(ws)) - gb[ws]
        rows = np.sort(order[pos < self.limit])
        self.win, self.vals, self.times = self.win[rows], _take(self.vals, rows), self.times[rows]

    def _append(self, win, vals, times):
        # Bounded by limit rows per window after every compaction; no exact-value cap needed.
        self.win = np.concatenate([self.win, win])
        self.vals = _concat([self.vals, vals])
        self.times = np.concatenate([self.times, times])
        self._compact()

    def finalize(self):
        order = np.lexsort((self.times, self.win))  # output rows in time order within a window
        return FinalizedMulti(self.win[order], self.times[order], _take(self.vals, order), self.ftype)


class BottomPartial(TopPartial):
    name = "bottom"
    _desc = False


class SamplePartial(TopPartial):
    name = "sample"
    allowed_types = frozenset({F, I, B, S})

    def _check_args(self):
        if len(self.args) != 1:
            raise BadRequest(f"invalid number of arguments for sample, expected 2, got {len(self.args) + 1}")
        n = self.args[0]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise BadRequest(f"sample window must be greater than 1, got {n}")
        self.limit = n

    def _rank_key(self):
        # Rank by a hash of the time: the same points are sampled whatever the merge order.
        return K.sample_keys(self.times, SAMPLE_SEED)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_CLASSES = {c.name: c for c in (
    CountPartial, SumPartial, MeanPartial, SpreadPartial, StddevPartial, MinPartial, MaxPartial,
    FirstPartial, LastPartial, IntegralPartial, MedianPartial, PercentilePartial, ModePartial,
    DistinctPartial, CountDistinctPartial, TopPartial, BottomPartial, SamplePartial)}

AGGREGATES = {"count", "count_distinct", "distinct", "integral", "mean", "median", "mode", "spread",
              "stddev", "sum"}
SELECTORS = {"first", "last", "min", "max", "percentile", "top", "bottom", "sample"}
MULTI_ROW = {"distinct", "top", "bottom", "sample"}


def make_partial(name: str, nwin: int, ftype: FieldType, args: tuple = ()) -> Partial:
    """The empty partial of function ``name`` over nwin windows of a field of type ftype."""
    cls = _CLASSES.get(name.lower())
    if cls is None:
        raise BadRequest(f"undefined function {name}()")
    return cls(nwin, ftype, tuple(args))
