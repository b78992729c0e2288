"""WHERE-clause analysis: split a condition into what the index, the time range and the
per-point evaluator each decide.

A WHERE clause mixes three kinds of predicate, and each is answered by a different part of the
engine, at a very different cost:

* **time** comparisons become one inclusive range ``[min_time, max_time]`` that picks shards and
  bounds every scan;
* **tag** predicates (``host = 'a'``, ``region =~ /us-.*/``, ANDs and ORs of them) become a
  ``TagExpr`` the series index answers with bitmaps, before any data is read;
* everything else (field comparisons, arithmetic, ORs that mix tags with fields, tag comparisons
  with ``<``/``>``) stays an AST, the **residual**, that ``eval_residual`` evaluates vectorised
  over the points of one series, with that series' tag values substituted.

``analyze`` splits the top-level AND into conjuncts; AND distributes, so each conjunct goes to
exactly one of the three. ``time`` may appear only in a comparison at the top level: under an OR
it could describe several disjoint ranges, which a single range cannot hold, so it is refused
(InfluxDB 1.6.7 silently answers such queries wrongly; see docs/influxql-schema.md).

``eval_point`` is the slow, obvious twin of ``eval_residual`` (one point, plain Python); the
tests run both on the same random inputs, and a per-point matcher (pubsub) can use it directly.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from chronosdb.model import tagexpr as tx
from chronosdb.model.errors import BadRequest
from chronosdb.model.strings import StringArray
from chronosdb.query.influxql import ast
from chronosdb.query.influxql.durations import parse_time
from chronosdb.storage.engine import MAX_TIME, MIN_TIME

__all__ = ["Condition", "analyze", "analyze_conjuncts", "conjuncts", "eval_residual", "eval_point", "MIN_TIME", "MAX_TIME",
           "references_time", "var_refs"]

_EQ_OPS = ("=", "!=", "<>")
_REGEX_OPS = ("=~", "!~")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!=", "<>": "<>",
         "=~": "=~", "!~": "!~"}


@dataclass(frozen=True)
class Condition:
    tags: Optional[tx.TagExpr]   # what the series index decides (None: every series)
    min_time: int                # inclusive ns; MIN_TIME when there is no lower bound
    max_time: int                # inclusive ns; MAX_TIME when there is no upper bound
    has_min: bool
    has_max: bool
    residual: Optional[ast.Expr]  # evaluated per point by eval_residual (None: nothing left)

    @property
    def empty_range(self) -> bool:
        """The time bounds contradict each other: the query has no data."""
        return self.min_time > self.max_time


# --- tree helpers -----------------------------------------------------------------------------

def _is_time(e) -> bool:
    return isinstance(e, ast.VarRef) and e.name.lower() == "time" and e.type_hint is None


def references_time(e) -> bool:
    """Does ``time`` appear anywhere in the expression?"""
    if _is_time(e):
        return True
    if isinstance(e, ast.BinaryExpr):
        return references_time(e.lhs) or references_time(e.rhs)
    if isinstance(e, ast.UnaryExpr):
        return references_time(e.expr)
    if isinstance(e, ast.Call):
        return any(references_time(a) for a in e.args)
    return False


def var_refs(e) -> list:
    """Every VarRef in the expression, left to right."""
    if isinstance(e, ast.VarRef):
        return [e]
    if isinstance(e, ast.BinaryExpr):
        return var_refs(e.lhs) + var_refs(e.rhs)
    if isinstance(e, ast.UnaryExpr):
        return var_refs(e.expr)
    if isinstance(e, ast.Call):
        return [r for a in e.args for r in var_refs(a)]
    return []


def _conjuncts(e) -> list:
    if isinstance(e, ast.BinaryExpr) and e.op == "AND":
        return _conjuncts(e.lhs) + _conjuncts(e.rhs)
    return [e]


def _and_all(items, make):
    out = None
    for it in items:
        out = it if out is None else make(out, it)
    return out


# --- time -------------------------------------------------------------------------------------

def _time_value(e, now: int) -> int:
    """An absolute time in ns from a literal, now(), or +/- arithmetic of them with durations."""
    if isinstance(e, ast.TimeLiteral):
        return e.ns
    if isinstance(e, (ast.IntegerLiteral, ast.DurationLiteral)):
        return e.value if isinstance(e, ast.IntegerLiteral) else e.ns
    if isinstance(e, ast.NumberLiteral):
        return int(e.value)
    if isinstance(e, ast.NowCall):
        return now
    if isinstance(e, ast.StringLiteral):  # '2016-01-01T00:00:00Z' + 30m reaches us as a string
        try:
            return parse_time(e.value)
        except ValueError:
            raise BadRequest(f"invalid operation: time and *influxql.StringLiteral are not "
                             f"compatible ({ast.quote_string(e.value)} is not a time)") from None
    if isinstance(e, ast.UnaryExpr) and e.op == "-":
        return -_time_value(e.expr, now)
    if isinstance(e, ast.BinaryExpr) and e.op in ("+", "-"):
        a, b = _time_value(e.lhs, now), _time_value(e.rhs, now)
        return a + b if e.op == "+" else a - b
    raise BadRequest(f"invalid time expression: {e}")


def _time_bound(e: ast.BinaryExpr, now: int):
    """(low, high) inclusive bounds from one comparison with ``time`` on either side."""
    if _is_time(e.lhs):
        op, other = e.op, e.rhs
    else:
        op, other = _FLIP[e.op], e.lhs
    if references_time(other):
        raise BadRequest(f"invalid time condition: {e}")
    if op not in ("=", "<", "<=", ">", ">="):
        raise BadRequest(f"invalid time comparison operator: {e.op}")
    v = _time_value(other, now)
    low, high = MIN_TIME, MAX_TIME
    if op == "=":
        low = high = v
    elif op == ">":
        low = v + 1
    elif op == ">=":
        low = v
    elif op == "<":
        high = v - 1
    else:
        high = v
    return low, high, op in ("=", ">", ">="), op in ("=", "<", "<=")


# --- tags -------------------------------------------------------------------------------------

def _tag_name(e, is_tag) -> Optional[str]:
    if not isinstance(e, ast.VarRef) or _is_time(e) or e.qualifier is not None:
        return None
    if e.type_hint == "tag":
        return e.name
    if e.type_hint is None and is_tag(e.name):
        return e.name
    return None


def _tag_expr(e, is_tag) -> Optional[tx.TagExpr]:
    """The TagExpr equal to ``e`` if ``e`` is made only of tag predicates, else None."""
    if not isinstance(e, ast.BinaryExpr):
        return None
    if e.op in ("AND", "OR"):
        left = _tag_expr(e.lhs, is_tag)
        right = _tag_expr(e.rhs, is_tag) if left is not None else None
        if right is None:
            return None
        return tx.And(left, right) if e.op == "AND" else tx.Or(left, right)
    if e.op not in _EQ_OPS and e.op not in _REGEX_OPS:
        return None
    name, other = _tag_name(e.lhs, is_tag), e.rhs
    if name is None:
        name, other = _tag_name(e.rhs, is_tag), e.lhs
    if name is None:
        return None
    if e.op in _EQ_OPS and isinstance(other, ast.StringLiteral):
        return (tx.TagEquals if e.op == "=" else tx.TagNotEquals)(name, other.value)
    if e.op in _REGEX_OPS and isinstance(other, ast.RegexLiteral):
        try:
            return (tx.TagRegex if e.op == "=~" else tx.TagNotRegex)(name, other.pattern)
        except ValueError as err:
            raise BadRequest(str(err)) from None
    return None


def _check_no_time(e) -> None:
    if references_time(e):
        raise BadRequest(f"invalid time condition: time may only be compared at the top level "
                         f"of the WHERE clause, joined by AND (not under OR): {e}")


def analyze(expr: Optional[ast.Expr], *, now: int, is_tag: Callable[[str], bool]) -> Condition:
    """Split a WHERE condition into a tag expression, a time range and a residual.

    ``is_tag(name)`` says whether an identifier is a tag of the measurement; ``::tag`` and
    ``::field`` on the reference override it. Raises BadRequest for ``time`` under OR, ``!=``
    on time and time compared with something that is not a time."""
    return analyze_conjuncts(_conjuncts(expr) if expr is not None else [], now=now, is_tag=is_tag)


def conjuncts(expr: Optional[ast.Expr]) -> list:
    """The operands of the condition's top-level AND (none for no condition)."""
    return _conjuncts(expr) if expr is not None else []


_BOUND_LITERALS = {ast.TimeLiteral: "ns", ast.IntegerLiteral: "value"}


def analyze_conjuncts(parts: list, *, now: int, is_tag: Callable[[str], bool],
                      _fast: bool = True) -> Condition:
    """``analyze`` of the AND of ``parts`` (as ``conjuncts`` splits it).

    The two conjuncts nearly every dashboard query is made of, ``time <op> <time or integer
    literal>`` and ``<tag> = | != '<string>'``, are recognised first in a few attribute tests;
    every other conjunct (and these when anything differs) goes the general way, which gives
    the same answer for them (``_fast=False`` forces it: the tests compare the two)."""
    low, high, has_min, has_max = MIN_TIME, MAX_TIME, False, False
    tags, rest = [], []
    for c in parts:
        if _fast and type(c) is ast.BinaryExpr and type(c.lhs) is ast.VarRef:
            lhs, rhs, op = c.lhs, c.rhs, c.op
            attr = _BOUND_LITERALS.get(type(rhs))
            if attr is not None and lhs.type_hint is None and lhs.name.lower() == "time":
                v = getattr(rhs, attr)
                if op == ">=":
                    low, has_min = max(low, v), True
                    continue
                if op == "<":
                    high, has_max = min(high, v - 1), True
                    continue
                if op == ">":
                    low, has_min = max(low, v + 1), True
                    continue
                if op == "<=":
                    high, has_max = min(high, v), True
                    continue
            elif type(rhs) is ast.StringLiteral and op in _EQ_OPS and lhs.qualifier is None:
                hint = lhs.type_hint
                if hint == "tag" or (hint is None and lhs.name.lower() != "time" and is_tag(lhs.name)):
                    tags.append((tx.TagEquals if op == "=" else tx.TagNotEquals)(lhs.name, rhs.value))
                    continue
        if isinstance(c, ast.BinaryExpr) and c.op in ast.COMPARISON_OPS and (
                _is_time(c.lhs) or _is_time(c.rhs)):
            lo, hi, hmin, hmax = _time_bound(c, now)
            low, high = max(low, lo), min(high, hi)
            has_min |= hmin
            has_max |= hmax
            continue
        _check_no_time(c)
        t = _tag_expr(c, is_tag)
        if t is not None:
            tags.append(t)
        else:
            rest.append(c)
    return Condition(
        tags=_and_all(tags, tx.And),
        min_time=low, max_time=high, has_min=has_min, has_max=has_max,
        residual=_and_all(rest, lambda a, b: ast.BinaryExpr("AND", a, b)),
    )


# --- residual evaluation, vectorised ----------------------------------------------------------
#
# Every operand evaluates to a _Val: a kind, the data (a numpy array of n values or a Python
# scalar) and a validity mask (None: all valid). Kinds: "num" (int64/float64), "bool", "str"
# (a scalar str, or a _StrCol), "regex" (a compiled pattern) and "null" (missing: every
# comparison with it is false, as InfluxDB compares with nil).

@dataclass
class _Val:
    kind: str
    data: object
    valid: Optional[np.ndarray] = None


_NULL = _Val("null", None)


class _StrCol:
    """A string field column, compared without a Python object per value.

    Equality with a literal compares lengths, then the bytes of the same-length candidates in
    one gather. Column-vs-column equality and regexes go through fixed-width rows: each value
    padded to the longest, ending with a 0x01 sentinel before the padding so numpy's stripping of
    trailing NULs cannot make b"a" and b"a\\x00" equal. Rows are built ``_CHUNK_BYTES`` at a
    time, so a few very long values cannot make the padded copy huge."""

    __slots__ = ("sa", "lens", "n")

    def __init__(self, sa: StringArray):
        self.sa = sa
        self.lens = np.diff(sa.offsets)
        self.n = len(self.lens)

    def _fixed(self, lo: int, hi: int, width: int) -> np.ndarray:
        lens = self.lens[lo:hi]
        buf = np.zeros((hi - lo, width), dtype=np.uint8)
        if hi > lo:
            data = np.frombuffer(self.sa.data, dtype=np.uint8)
            cols = np.arange(width - 1)
            take = cols[None, :] < lens[:, None]
            buf[:, :width - 1][take] = data[(self.sa.offsets[lo:hi, None] + cols[None, :])[take]]
            buf[np.arange(hi - lo), lens] = 1
        return buf.view(f"S{width}").reshape(hi - lo)

    def _chunks(self, width: int):
        step = max(1, _CHUNK_BYTES // max(width, 1))
        for lo in range(0, self.n, step):
            yield lo, min(self.n, lo + step)

    def _width(self) -> int:
        return int(self.lens.max()) + 1 if self.n else 1

    def eq_scalar(self, value: str) -> np.ndarray:
        lit = np.frombuffer(value.encode(), dtype=np.uint8)
        out = self.lens == len(lit)
        cand = np.flatnonzero(out)
        if len(lit) and len(cand):
            data = np.frombuffer(self.sa.data, dtype=np.uint8)
            rows = data[self.sa.offsets[cand, None] + np.arange(len(lit))[None, :]]
            out[cand] = (rows == lit[None, :]).all(axis=1)
        return out

    def eq_column(self, other: "_StrCol") -> np.ndarray:
        width = max(self._width(), other._width())
        out = np.empty(self.n, dtype=bool)
        for lo, hi in self._chunks(width):
            out[lo:hi] = self._fixed(lo, hi, width) == other._fixed(lo, hi, width)
        return out

    def search(self, regex) -> np.ndarray:
        """Does ``regex`` find a match in each value? Runs once per distinct value (per chunk)."""
        width = self._width()
        out = np.empty(self.n, dtype=bool)
        for lo, hi in self._chunks(width):
            uniq, inverse = np.unique(self._fixed(lo, hi, width), return_inverse=True)
            hits = np.fromiter((regex.search(u[:-1].decode("utf-8", errors="replace")) is not None
                                for u in uniq.tolist()), dtype=bool, count=len(uniq))
            out[lo:hi] = hits[inverse]
        return out


_CHUNK_BYTES = 16 << 20  # padded rows built at a time: bounded memory, still few numpy calls


def _and_valid(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _full(n, value) -> np.ndarray:
    return np.full(n, bool(value), dtype=bool)


def _truth(v: _Val, n: int) -> np.ndarray:
    """The boolean mask a value means in AND/OR position (only booleans can be true)."""
    if v.kind != "bool":
        return np.zeros(n, dtype=bool)
    d = v.data if isinstance(v.data, np.ndarray) else _full(n, v.data)
    return d & v.valid if v.valid is not None else d


_CMP = {"=": operator.eq, "!=": operator.ne, "<>": operator.ne, "<": operator.lt,
        "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(op: str, a: _Val, b: _Val, n: int) -> _Val:
    if op in _REGEX_OPS:
        if a.kind == "regex":
            a, b = b, a
        if a.kind != "str" or b.kind != "regex":
            return _Val("bool", False)
        if isinstance(a.data, _StrCol):
            res = a.data.search(b.data)
        else:
            res = b.data.search(a.data) is not None
        if op == "!~":
            res = ~res if isinstance(res, np.ndarray) else not res
        return _Val("bool", res, a.valid)
    if a.kind == "null" or b.kind == "null":
        return _Val("bool", False)
    valid = _and_valid(a.valid, b.valid)
    fn = _CMP[op]
    if a.kind == "num" and b.kind == "num":
        with np.errstate(invalid="ignore"):
            return _Val("bool", fn(a.data, b.data), valid)
    if a.kind == "bool" and b.kind == "bool" and op in _EQ_OPS:
        return _Val("bool", fn(a.data, b.data), valid)
    if a.kind == "str" and b.kind == "str" and op in _EQ_OPS:
        # Strings compare only for (in)equality, as in InfluxDB 1.6.7 (`host < 'b'` is false).
        da, db = a.data, b.data
        if isinstance(db, _StrCol) and not isinstance(da, _StrCol):
            da, db = db, da
        if isinstance(da, _StrCol):
            eq = da.eq_column(db) if isinstance(db, _StrCol) else da.eq_scalar(db)
            return _Val("bool", eq if fn is operator.eq else ~eq, valid)
        return _Val("bool", fn(da, db), valid)
    return _Val("bool", False)


def _arith(op: str, a: _Val, b: _Val) -> _Val:
    valid = _and_valid(a.valid, b.valid)
    if a.kind == "num" and b.kind == "num":
        x, y = a.data, b.data
        xi = np.asarray(x).dtype.kind in "iu"
        yi = np.asarray(y).dtype.kind in "iu"
        with np.errstate(all="ignore"):
            if op == "+":
                return _Val("num", np.add(x, y), valid)
            if op == "-":
                return _Val("num", np.subtract(x, y), valid)
            if op == "*":
                return _Val("num", np.multiply(x, y), valid)
            if op == "/":
                # InfluxQL divides in floats and answers 0 for a division by zero.
                xf, yf = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
                return _Val("num", np.where(yf == 0, 0.0, xf / np.where(yf == 0, 1.0, yf)), valid)
            if op == "%":
                # Go's % and math.Mod truncate towards zero, as fmod does; modulo by zero has
                # no value, so comparisons with it are false.
                zero = np.asarray(y) == 0
                if zero.ndim == 0:
                    return _NULL if zero else _Val("num", np.fmod(x, y), valid)
                r = np.fmod(x, np.where(zero, 1, y))
                return _Val("num", r, _and_valid(valid, ~zero) if zero.any() else valid)
            if op in ("&", "|", "^") and xi and yi:
                f = {"&": np.bitwise_and, "|": np.bitwise_or, "^": np.bitwise_xor}[op]
                return _Val("num", f(x, y), valid)
    if a.kind == "bool" and b.kind == "bool" and op in ("&", "|", "^"):
        f = {"&": np.logical_and, "|": np.logical_or, "^": np.logical_xor}[op]
        return _Val("bool", f(a.data, b.data), valid)
    return _NULL


def _column_val(values, valid, n: int) -> _Val:
    if isinstance(values, StringArray):
        return _Val("str", _StrCol(values), valid)
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        return _Val("bool", arr.astype(bool, copy=False), valid)
    return _Val("num", arr, valid)


def _eval(e, tag_values, fields, n) -> _Val:
    if isinstance(e, ast.BinaryExpr):
        if e.op in ("AND", "OR"):
            a = _truth(_eval(e.lhs, tag_values, fields, n), n)
            b = _truth(_eval(e.rhs, tag_values, fields, n), n)
            return _Val("bool", (a & b) if e.op == "AND" else (a | b))
        a = _eval(e.lhs, tag_values, fields, n)
        b = _eval(e.rhs, tag_values, fields, n)
        if e.op in ast.COMPARISON_OPS:
            return _compare(e.op, a, b, n)
        return _arith(e.op, a, b)
    if isinstance(e, ast.VarRef):
        if e.type_hint != "tag" and e.name in fields:
            values, valid = fields[e.name]
            return _column_val(values, None if valid is None else np.asarray(valid, dtype=bool), n)
        if e.type_hint in (None, "tag"):
            # Not a field of this series: a tag, and a missing tag reads as "" (InfluxDB).
            return _Val("str", tag_values.get(e.name, ""))
        return _NULL
    if isinstance(e, ast.UnaryExpr):
        v = _eval(e.expr, tag_values, fields, n)
        if v.kind == "num":
            return _Val("num", np.negative(v.data), v.valid)
        return _NULL
    if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral)):
        return _Val("num", e.value)
    if isinstance(e, ast.DurationLiteral):
        return _Val("num", e.ns)
    if isinstance(e, ast.TimeLiteral):
        return _Val("num", e.ns)
    if isinstance(e, ast.StringLiteral):
        return _Val("str", e.value)
    if isinstance(e, ast.BooleanLiteral):
        return _Val("bool", e.value)
    if isinstance(e, ast.RegexLiteral):
        try:
            tx.check_pattern(e.pattern)
        except ValueError as err:
            raise BadRequest(str(err)) from None
        return _Val("regex", re.compile(e.pattern))
    return _NULL


def eval_residual(expr: Optional[ast.Expr], tag_values: dict, fields: dict, n: int) -> np.ndarray:
    """Which of ``n`` points satisfy ``expr``: a bool mask.

    ``tag_values`` maps tag key -> value for the series (a missing tag reads as ""),
    ``fields`` maps field name -> (values, valid mask), values being a numpy array (float64,
    int64, bool/uint8) or a StringArray, aligned on the same n points. A field that is missing
    at a point makes every comparison with it false there."""
    if expr is None:
        return np.ones(n, dtype=bool)
    return _truth(_eval(expr, tag_values, fields, n), n).copy()


# --- the per-point twin -----------------------------------------------------------------------

def _p_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _p_eval(e, tags: dict, point: dict, order_strings: bool = False):
    """One point: returns a Python value, or None for null. The plain reading of the rules."""
    if isinstance(e, ast.BinaryExpr):
        if e.op in ("AND", "OR"):
            a = _p_eval(e.lhs, tags, point, order_strings) is True
            b = _p_eval(e.rhs, tags, point, order_strings) is True
            return (a and b) if e.op == "AND" else (a or b)
        a, b = _p_eval(e.lhs, tags, point, order_strings), _p_eval(e.rhs, tags, point, order_strings)
        if e.op in _REGEX_OPS:
            if isinstance(a, re.Pattern):
                a, b = b, a
            if not isinstance(a, str) or not isinstance(b, re.Pattern):
                return False
            hit = b.search(a) is not None
            return hit if e.op == "=~" else not hit
        if e.op in ast.COMPARISON_OPS:
            if a is None or b is None:
                return False
            if _p_num(a) and _p_num(b):
                return _CMP[e.op](a, b)
            if isinstance(a, bool) and isinstance(b, bool) and e.op in _EQ_OPS:
                return _CMP[e.op](a, b)
            if isinstance(a, str) and isinstance(b, str) and (e.op in _EQ_OPS or order_strings):
                return _CMP[e.op](a, b)
            return False
        if a is None or b is None:
            return None
        if _p_num(a) and _p_num(b):
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                return 0.0 if b == 0 else float(a) / float(b)
            if e.op == "%":
                return None if b == 0 else float(np.fmod(a, b)) if isinstance(a, float) or \
                    isinstance(b, float) else int(np.fmod(a, b))
            if e.op in ("&", "|", "^") and isinstance(a, int) and isinstance(b, int):
                return {"&": a & b, "|": a | b, "^": a ^ b}[e.op]
            return None
        if isinstance(a, bool) and isinstance(b, bool) and e.op in ("&", "|", "^"):
            return {"&": a and b, "|": a or b, "^": a != b}[e.op]
        return None
    if isinstance(e, ast.VarRef):
        if e.type_hint != "tag" and e.name in point:
            return point[e.name]  # None when the field has no value at this point
        if e.type_hint in (None, "tag"):
            return tags.get(e.name, "")
        return None
    if isinstance(e, ast.UnaryExpr):
        v = _p_eval(e.expr, tags, point, order_strings)
        return -v if _p_num(v) else None
    if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral, ast.StringLiteral, ast.BooleanLiteral)):
        return e.value
    if isinstance(e, ast.DurationLiteral):
        return e.ns
    if isinstance(e, ast.TimeLiteral):
        return e.ns
    if isinstance(e, ast.RegexLiteral):
        return re.compile(e.pattern)
    return None


def eval_point(expr: Optional[ast.Expr], tag_values: dict, point: dict, *,
               order_strings: bool = False) -> bool:
    """``eval_residual`` for one point: ``point`` maps field name -> Python value (float, int,
    bool, str) or None when the field has no value at this point.

    ``order_strings`` lets ``<``/``>`` compare strings (bytewise on UTF-8, as Go compares), which
    InfluxDB 1.6.7 does when it matches series for a DELETE, though not in SELECT."""
    if expr is None:
        return True
    return _p_eval(expr, tag_values, point, order_strings) is True
