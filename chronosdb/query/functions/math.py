"""Elementwise InfluxQL math over (values, valid) columns, in numpy, with InfluxDB 1.x typing.

Every function takes and returns (values, valid). A result that is NaN (sqrt(-1), ln(-4),
asin(1.5), x % 0 on floats) becomes null, as InfluxDB does. Types (verified against 1.6.7):
abs/floor/ceil/round keep integers as integers; every other function answers float64. Binary
operators: int op int stays int for + - * % & | ^ (wrapping on overflow), ``/`` always answers
float64 (7 / 2 = 3.5); any float operand makes a float. Division by zero answers 0 (int or float);
int % 0 answers 0; float % 0 answers null.
"""
from __future__ import annotations

import numpy as np

from chronosdb.model.errors import BadRequest


def _num(values, name):
    if not isinstance(values, np.ndarray) or values.dtype not in (np.float64, np.int64):
        raise BadRequest(f"unsupported type for {name}(): only float and integer fields have math")
    return values


def _nan_to_null(out, valid):
    bad = np.isnan(out)
    if bad.any():
        out = np.where(bad, 0.0, out)
        valid = valid & ~bad
    return out, valid


def _round_half_away(x):
    # Go's math.Round: halves go away from zero (numpy's round goes to even).
    r = np.trunc(x)
    return r + np.where(np.abs(x - r) >= 0.5, np.sign(x), 0.0)


_UNARY = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "exp": np.exp, "ln": np.log, "log2": np.log2, "log10": np.log10,
    "sqrt": np.sqrt,
}


def unary(name: str, values, valid):
    """abs, sin, cos, tan, asin, acos, atan, exp, ln, log2, log10, sqrt, floor, ceil, round."""
    values = _num(values, name)
    valid = np.asarray(valid, dtype=bool)
    if name in ("abs", "floor", "ceil", "round"):
        if values.dtype == np.int64:
            return (np.abs(values) if name == "abs" else values.copy()), valid.copy()
        f = {"abs": np.abs, "floor": np.floor, "ceil": np.ceil, "round": _round_half_away}[name]
        return _nan_to_null(f(values), valid)
    fn = _UNARY.get(name)
    if fn is None:
        raise BadRequest(f"undefined function {name}()")
    with np.errstate(all="ignore"):
        return _nan_to_null(fn(values.astype(np.float64)), valid)


def binary_fn(name: str, x, xvalid, y, yvalid):
    """atan2(y, x), log(x, base), pow(x, y): float64; y may be a scalar."""
    x = _num(x, name).astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    valid = np.asarray(xvalid, dtype=bool) & np.asarray(yvalid, dtype=bool)
    with np.errstate(all="ignore"):
        if name == "atan2":
            out = np.arctan2(x, y)
        elif name == "log":
            out = np.log(x) / np.log(y)
        elif name == "pow":
            out = np.power(x, y)
        else:
            raise BadRequest(f"undefined function {name}()")
    return _nan_to_null(np.asarray(out, dtype=np.float64), valid)


def _as_array(v, n):
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, bool):
        raise BadRequest("unsupported operand type: boolean")
    return np.full(n, v, dtype=np.int64 if isinstance(v, int) else np.float64)


def binary_op(op: str, a, avalid, b, bvalid):
    """a <op> b for op in + - * / % & | ^; operands are arrays or Python scalars."""
    n = len(a) if isinstance(a, np.ndarray) else len(b)
    a, b = _as_array(a, n), _as_array(b, n)
    valid = np.asarray(avalid, dtype=bool) & np.asarray(bvalid, dtype=bool)
    ints = a.dtype == np.int64 and b.dtype == np.int64
    if op in ("&", "|", "^"):
        if not ints:
            raise BadRequest(f"bitwise operator {op} needs integer operands")
        return {"&": np.bitwise_and, "|": np.bitwise_or, "^": np.bitwise_xor}[op](a, b), valid
    if ints and op in ("+", "-", "*"):
        with np.errstate(over="ignore"):
            return {"+": np.add, "-": np.subtract, "*": np.multiply}[op](a, b), valid
    if ints and op == "%":
        zero = b == 0
        with np.errstate(all="ignore"):
            out = np.fmod(a, np.where(zero, 1, b))  # sign of the dividend, as Go's %
        return np.where(zero, 0, out), valid
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        if op == "+":
            out = fa + fb
        elif op == "-":
            out = fa - fb
        elif op == "*":
            out = fa * fb
        elif op == "/":
            out = np.where(fb == 0, 0.0, fa / np.where(fb == 0, 1.0, fb))
        elif op == "%":
            out = np.fmod(fa, fb)
        else:
            raise BadRequest(f"unknown operator {op}")
    return _nan_to_null(out, valid)


def negate(values, valid):
    values = _num(values, "-")
    return -values, np.asarray(valid, dtype=bool)
