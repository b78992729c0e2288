"""WHERE analysis (time range, tag expression, residual) and vectorised residual evaluation.

Expected error wordings were observed on a real InfluxDB 1.6.7 (bench/peers.InfluxDB) where it
has one ("invalid time comparison operator: !="); where 1.6.7 silently answers wrongly (time
under OR) we refuse, as docs/influxql-schema.md says.
"""
from __future__ import annotations

import random
import re

import numpy as np
import pytest

from chronosdb.model import tagexpr as tx
from chronosdb.model.errors import BadRequest
from chronosdb.model.strings import StringArray
from chronosdb.query.condition import (MAX_TIME, MIN_TIME, analyze, eval_point, eval_residual)
from chronosdb.query.influxql import ast, parse

NOW = 1_700_000_000_000_000_000
H = 3600 * 10**9
TAGS = {"host", "region"}


def where(text: str):
    return parse(f"SELECT * FROM cpu WHERE {text}")[0].condition


def an(text: str, is_tag=lambda n: n in TAGS):
    return analyze(where(text), now=NOW, is_tag=is_tag)


# --- time -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,lo,hi", [
    ("time > 10", 11, MAX_TIME),
    ("time >= 10", 10, MAX_TIME),
    ("time < 10", MIN_TIME, 9),
    ("time <= 10", MIN_TIME, 10),
    ("time = 10", 10, 10),
    ("10 < time", 11, MAX_TIME),
    ("10 >= time", MIN_TIME, 10),
    ("time > now() - 1h", NOW - H + 1, MAX_TIME),
    ("time >= '2016-01-01T00:00:00Z' + 30m", 1451606400 * 10**9 + 1800 * 10**9, MAX_TIME),
    ("time < '2016-01-01T00:00:00Z'", MIN_TIME, 1451606400 * 10**9 - 1),
    ("time >= 1700000000000ms", 1700000000000 * 10**6, MAX_TIME),  # Grafana's form
    ("time >= 1s AND time <= 2s", 10**9, 2 * 10**9),
    ("time > 5 AND time > 7 AND time < 100 AND time <= 50", 8, 50),
    ("time > now() - 2h AND time < now() + -1h", NOW - 2 * H + 1, NOW - H - 1),
])
def test_time_bounds(text, lo, hi):
    c = an(text)
    assert (c.min_time, c.max_time) == (lo, hi)
    assert c.tags is None and c.residual is None


def test_time_flags_and_empty_range():
    c = an("time > 10")
    assert c.has_min and not c.has_max
    c = an("time <= 10")
    assert c.has_max and not c.has_min
    c = an("time > 10 AND time < 5")
    assert c.empty_range  # fine: the query simply has no data
    c = analyze(None, now=NOW, is_tag=lambda n: True)
    assert (c.min_time, c.max_time, c.has_min, c.has_max, c.tags, c.residual) == \
        (MIN_TIME, MAX_TIME, False, False, None, None)


def test_time_not_equal_refused_with_influxdb_wording():
    with pytest.raises(BadRequest, match=re.escape("invalid time comparison operator: !=")):
        an("time != 10")
    with pytest.raises(BadRequest, match="invalid time comparison operator"):
        an("time <> 10 AND host = 'a'")


@pytest.mark.parametrize("text", [
    "time > 1 OR host = 'a'",
    "(time > 1 AND time < 5s) OR time > 10s",
    "host = 'a' AND (usage > 1 OR time < 5)",
    "usage + time > 5",
])
def test_time_under_or_or_inside_arithmetic_refused(text):
    with pytest.raises(BadRequest, match="time"):
        an(text)


def test_time_compared_with_field_or_bad_string_refused():
    with pytest.raises(BadRequest):
        an("time > usage")
    bad = ast.BinaryExpr(">", ast.VarRef("time"), ast.BinaryExpr("+", ast.StringLiteral("yesterday"),
                                                                  ast.DurationLiteral(5)))
    with pytest.raises(BadRequest, match="not compatible"):
        analyze(bad, now=NOW, is_tag=lambda n: False)


# --- tags -------------------------------------------------------------------------------------

def test_tag_predicates_either_side():
    assert an("host = 'a'").tags == tx.TagEquals("host", "a")
    assert an("'a' = host").tags == tx.TagEquals("host", "a")
    assert an("host != 'a'").tags == tx.TagNotEquals("host", "a")
    assert an("host <> 'a'").tags == tx.TagNotEquals("host", "a")
    assert an("host =~ /^a/").tags == tx.TagRegex("host", "^a")
    assert an("host !~ /^a/").tags == tx.TagNotRegex("host", "^a")
    assert an("region = ''").tags == tx.TagEquals("region", "")


def test_and_or_of_tags_become_tag_exprs():
    c = an("(host = 'a' OR host = 'b') AND region =~ /us/")
    assert c.tags == tx.And(tx.Or(tx.TagEquals("host", "a"), tx.TagEquals("host", "b")),
                            tx.TagRegex("region", "us"))
    assert c.residual is None


def test_mixed_or_goes_to_residual_and_pure_tag_conjuncts_still_to_index():
    c = an("host = 'a' AND (region = 'x' OR usage > 3) AND time > 5 AND usage < 9")
    assert c.tags == tx.TagEquals("host", "a")
    assert c.min_time == 6
    assert str(c.residual) == "(region = 'x' OR usage > 3) AND usage < 9"


def test_tag_comparisons_with_order_operators_are_residual():
    c = an("host > 'b'")
    assert c.tags is None and str(c.residual) == "host > 'b'"
    c = an("host = 1")  # not a string: cannot be a tag predicate
    assert c.tags is None and c.residual is not None


def test_type_hints_override_is_tag():
    c = an("usage::tag = 'x' AND host::field = 'y'")
    assert c.tags == tx.TagEquals("usage", "x")
    assert str(c.residual) == "host::field = 'y'"


def test_dangerous_regex_refused():
    with pytest.raises(BadRequest, match="nests a repeat"):
        an("host =~ /(a+)+$/")


# --- residual evaluation ----------------------------------------------------------------------

def cols(**kw):
    out = {}
    for name, (values, valid) in kw.items():
        out[name] = (values, np.asarray(valid, dtype=bool))
    return out


def test_eval_numbers_missing_and_arithmetic():
    f = cols(u=(np.array([10.0, 20.0, 30.0, 40.0]), [1, 1, 1, 0]),
             s=(np.array([5, 7, 0, 1], dtype=np.int64), [1, 1, 0, 1]))
    ev = lambda t: eval_residual(where(t), {}, f, 4).tolist()
    assert ev("u > 15") == [False, True, True, False]  # missing -> false
    assert ev("u + s > 20") == [False, True, False, False]
    assert ev("u > s * 3") == [False, False, False, False]
    assert ev("u / 0 = 0") == [True, True, True, False]  # InfluxQL: x / 0 is 0
    assert ev("s % 2 = 1") == [True, True, False, True]
    assert ev("u > 15 OR s = 5") == [True, True, True, False]
    assert ev("nothing > 1") == [False] * 4
    assert ev("-u < -15") == [False, True, True, False]


def test_eval_bool_string_regex_and_tags():
    st = StringArray.from_list(["ok", "bad", "ok\x00", ""])
    f = cols(ok=(np.array([1, 0, 1, 0], dtype=np.uint8), [1, 1, 1, 0]),
             status=(st, [1, 1, 1, 1]))
    tags = {"host": "a"}
    ev = lambda t: eval_residual(where(t), tags, f, 4).tolist()
    assert ev("ok = true") == [True, False, True, False]
    assert ev("ok != true") == [False, True, False, False]
    assert ev("ok > false") == [False] * 4  # booleans only compare for (in)equality
    assert ev("status = 'ok'") == [True, False, False, False]  # b"ok\0" is not b"ok"
    assert ev("status != 'ok'") == [False, True, True, True]
    assert ev("status =~ /^ok/") == [True, False, True, False]
    assert ev("status !~ /^ok/") == [False, True, False, True]
    assert ev("status = ''") == [False, False, False, True]
    assert ev("host = 'a' OR status = 'bad'") == [True] * 4
    assert ev("host = 'b' OR status = 'bad'") == [False, True, False, False]
    assert ev("region = ''") == [True] * 4  # a missing tag reads as ""
    assert ev("host < 'b'") == [False] * 4  # as InfluxDB 1.6.7: strings do not order
    assert ev("status = 1") == [False] * 4


def test_eval_field_vs_field_strings():
    a = StringArray.from_list(["x", "yy", "", "z"])
    b = StringArray.from_list(["x", "y", "", "zz"])
    f = cols(a=(a, [1, 1, 1, 1]), b=(b, [1, 1, 0, 1]))
    assert eval_residual(where("a = b"), {}, f, 4).tolist() == [True, False, False, False]


# --- property: random expressions against a brute-force evaluator ---------------------------

FIELDS = {"usage": "float", "count": "int", "ok": "bool", "status": "str"}
STRINGS = ["", "a", "b", "ok", "bad", "us-east", "eu"]


def oracle(e, tags: dict, t: int, point: dict):
    """Brute force over one point: time, now(), tags (missing = "") and fields (None = no
    value). Written from the semantics, independently of condition.py."""
    if isinstance(e, ast.BinaryExpr):
        if e.op == "AND":
            return oracle(e.lhs, tags, t, point) is True and oracle(e.rhs, tags, t, point) is True
        if e.op == "OR":
            return oracle(e.lhs, tags, t, point) is True or oracle(e.rhs, tags, t, point) is True
        a, b = oracle(e.lhs, tags, t, point), oracle(e.rhs, tags, t, point)
        if e.op in ("+", "-", "*"):
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b)):
                return None
            return {"+": a + b, "-": a - b, "*": a * b}[e.op]
        if e.op in ("=~", "!~"):
            if not isinstance(a, str):
                return False
            return (re.search(b, a) is not None) == (e.op == "=~")
        if a is None or b is None:
            return False
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        same = type(a) is type(b) and isinstance(a, (bool, str))
        if e.op == "=":
            return (numeric or same) and a == b
        if e.op in ("!=", "<>"):
            return (numeric or same) and a != b
        if not numeric:
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
    if isinstance(e, ast.VarRef):
        if e.name == "time":
            return t
        if e.name in FIELDS:
            return point.get(e.name)
        return tags.get(e.name, "")
    if isinstance(e, ast.NowCall):
        return NOW
    if isinstance(e, ast.RegexLiteral):
        return e.pattern
    if isinstance(e, ast.DurationLiteral):
        return e.ns
    if isinstance(e, ast.TimeLiteral):
        return e.ns
    if isinstance(e, ast.UnaryExpr):  # negative literals parse as unary minus
        v = oracle(e.expr, tags, t, point)
        return -v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return e.value


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def s(self):
        return ast.StringLiteral(self.r.choice(STRINGS))

    def tag_pred(self):
        key = ast.VarRef(self.r.choice(["host", "region", "dc"]))
        op = self.r.choice(["=", "!=", "=~", "!~"])
        rhs = ast.RegexLiteral(self.r.choice(["^a", "b", "east$", "^$", "u"])) \
            if op in ("=~", "!~") else self.s()
        return ast.BinaryExpr(op, rhs, key) if self.r.random() < 0.2 and op in ("=", "!=") \
            else ast.BinaryExpr(op, key, rhs)

    def field_pred(self):
        name = self.r.choice(list(FIELDS))
        kind = FIELDS[name]
        ref = ast.VarRef(name)
        if kind in ("float", "int"):
            lhs = ref
            if self.r.random() < 0.3:
                other = ast.VarRef(self.r.choice(["usage", "count"]))
                lhs = ast.BinaryExpr(self.r.choice(["+", "-", "*"]), ref, other)
            lit = ast.IntegerLiteral(self.r.randint(-5, 5)) if self.r.random() < 0.5 \
                else ast.NumberLiteral(self.r.randint(-50, 50) / 10)
            return ast.BinaryExpr(self.r.choice(["=", "!=", "<", "<=", ">", ">="]), lhs, lit)
        if kind == "bool":
            return ast.BinaryExpr(self.r.choice(["=", "!="]), ref,
                                  ast.BooleanLiteral(self.r.random() < 0.5))
        if self.r.random() < 0.4:
            return ast.BinaryExpr(self.r.choice(["=~", "!~"]), ref,
                                  ast.RegexLiteral(self.r.choice(["^o", "a", "^$"])))
        return ast.BinaryExpr(self.r.choice(["=", "!="]), ref, self.s())

    def tree(self, depth, leaf):
        if depth == 0 or self.r.random() < 0.35:
            return leaf()
        return ast.BinaryExpr(self.r.choice(["AND", "OR"]), self.tree(depth - 1, leaf),
                              self.tree(depth - 1, leaf))

    def time_pred(self):
        op = self.r.choice(["=", "<", "<=", ">", ">="])
        if self.r.random() < 0.5:
            v = ast.IntegerLiteral(self.r.randint(0, 20))
        else:
            v = ast.BinaryExpr("-", ast.NowCall(), ast.DurationLiteral(NOW - self.r.randint(0, 20)))
        return ast.BinaryExpr(op, ast.VarRef("time"), v) if self.r.random() < 0.7 \
            else ast.BinaryExpr({"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op), v,
                                ast.VarRef("time"))

    def conjunct(self):
        x = self.r.random()
        if x < 0.25:
            return self.time_pred()
        if x < 0.55:
            return self.tree(2, self.tag_pred)
        if x < 0.8:
            return self.tree(2, self.field_pred)
        return self.tree(2, lambda: self.tag_pred() if self.r.random() < 0.5 else self.field_pred())

    def expr(self):
        out = self.conjunct()
        for _ in range(self.r.randint(0, 3)):
            out = ast.BinaryExpr("AND", out, self.conjunct())
        return out

    def tags(self):
        out = {}
        for k in ("host", "region", "dc"):
            if self.r.random() < 0.7:
                out[k] = self.r.choice([s for s in STRINGS if s])
        return out

    def point(self):
        p = {}
        for name, kind in FIELDS.items():
            if self.r.random() < 0.2:
                p[name] = None
            elif kind == "float":
                p[name] = self.r.randint(-50, 50) / 10
            elif kind == "int":
                p[name] = self.r.randint(-5, 5)
            elif kind == "bool":
                p[name] = self.r.random() < 0.5
            else:
                p[name] = self.r.choice(STRINGS)
        return p


def columns_of(points):
    out = {}
    for name, kind in FIELDS.items():
        vals = [p[name] for p in points]
        valid = np.array([v is not None for v in vals])
        if kind == "str":
            arr = StringArray.from_list([v if v is not None else "" for v in vals])
        else:
            dtype = {"float": np.float64, "int": np.int64, "bool": np.uint8}[kind]
            arr = np.array([v if v is not None else 0 for v in vals], dtype=dtype)
        out[name] = (arr, valid)
    return out


def test_random_conditions_match_brute_force():
    checked = 0
    for seed in range(400):
        g = Gen(seed)
        e = g.expr()
        # Round-trip through the parser: the analysed tree is the one real queries produce.
        e = parse(f"SELECT * FROM cpu WHERE {e}")[0].condition
        c = analyze(e, now=NOW, is_tag=lambda n: n not in FIELDS)
        for _ in range(6):
            tags = g.tags()
            points = [g.point() for _ in range(12)]
            times = [g.r.randint(-2, 22) for _ in points]
            tag_bytes = {k.encode(): v.encode() for k, v in tags.items()}
            tags_ok = c.tags is None or c.tags.matches(tag_bytes)
            mask = eval_residual(c.residual, tags, columns_of(points), len(points))
            for i, (p, t) in enumerate(zip(points, times)):
                want = oracle(e, tags, t, p) is True
                in_range = c.min_time <= t <= c.max_time
                assert eval_point(c.residual, tags, p) == bool(mask[i]), (str(c.residual), tags, p)
                assert (tags_ok and in_range and bool(mask[i])) == want, (str(e), tags, t, p)
                checked += 1
    assert checked == 400 * 6 * 12


def test_time_under_or_always_refused_in_random_trees():
    for seed in range(100):
        g = Gen(seed)
        e = ast.BinaryExpr("OR", g.time_pred(), g.conjunct())
        with pytest.raises(BadRequest):
            analyze(e, now=NOW, is_tag=lambda n: n not in FIELDS)


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 20])
def test_string_columns_chunked_match_per_point_twin(monkeypatch, chunk_bytes):
    """Padded string rows are built a chunk at a time; any chunk size gives the same answers
    as the per-point twin, including values that differ only by trailing NULs."""
    from chronosdb.query import condition
    monkeypatch.setattr(condition, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(11)
    alphabet = ["", "a", "b", "\x00", "é", "ok", "x" * 40]
    for _ in range(30):
        n = int(rng.integers(0, 40))
        a = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 4)))) for _ in range(n)]
        b = [v if rng.random() < 0.5 else "".join(rng.choice(alphabet, size=2)) for v in a]
        valid = rng.random(n) < 0.8
        f = {"s": (StringArray.from_list(a), valid), "t": (StringArray.from_list(b), np.ones(n, bool))}
        for text in ("s = t", "s != t", "s = 'ok'", "s != 'a'", "s = ''", "s =~ /^a/",
                     "s !~ /\\x00$/", "s =~ /é/ OR t = 'ab'", "'ok' = s"):
            e = where(text)
            got = eval_residual(e, {}, f, n).tolist()
            want = [eval_point(e, {}, {"s": a[i] if valid[i] else None, "t": b[i]}) for i in range(n)]
            assert got == want, (text, a, b)


def test_valid_mask_may_be_none():
    f = {"u": (np.array([1.0, 2.0]), None)}
    assert eval_residual(where("u > 1"), {}, f, 2).tolist() == [False, True]


def _analysis(parts, fast):
    from chronosdb.query.condition import analyze_conjuncts
    try:
        c = analyze_conjuncts(parts, now=NOW, is_tag=lambda n: n in TAGS or n == "time", _fast=fast)
    except BadRequest as e:
        return ("error", str(e))
    return (c.tags, c.min_time, c.max_time, c.has_min, c.has_max, str(c.residual))


@pytest.mark.parametrize("text", [
    "time >= 10 AND time < 20 AND host = 'a'",
    "time > '2016-01-01T00:00:00Z' AND time <= '2016-01-02T00:00:00Z' AND host != 'b'",
    "TIME >= 10 AND \"time\" < 20 AND region <> 'x'",
    "time = 5 AND host = 'a'",
    "time >= 10.5 AND time < now() - 1h",
    "time::tag = 'a' AND time >= 3",
    "time::field = 'a' AND time >= 3",
    "host::tag = 'a' AND usage::field = 'b' AND usage = 'c' AND dc = 'x'",
    "cpu.host = 'a' AND host = 'b'",
    "'a' = host AND 10 <= time",
    "time != 10",
    "host = 'a' OR region = 'b'",
])
def test_fast_conjunct_analysis_equals_the_general_one(text):
    """analyze_conjuncts' fast recognition of ``time <op> literal`` and ``tag = 'x'`` gives
    exactly what the general path gives (errors included), whatever the hints and names."""
    from chronosdb.query.condition import conjuncts
    parts = conjuncts(where(text))
    assert _analysis(parts, True) == _analysis(parts, False), text


def test_fast_conjunct_analysis_equals_the_general_one_on_random_conditions():
    from chronosdb.query.condition import conjuncts
    # trees the parser does not make (time against a plain string), built by hand
    for op in ("=", "!="):
        for name in ("time", "Time"):
            parts = [ast.BinaryExpr(op, ast.VarRef(name), ast.StringLiteral("2016-01-01T00:00:00Z"))]
            assert _analysis(parts, True) == _analysis(parts, False)
    for seed in range(400):
        g = Gen(seed)
        parts = conjuncts(parse(f"SELECT * FROM cpu WHERE {g.expr()}")[0].condition)
        parts += [ast.BinaryExpr(random.Random(seed).choice(["<", "<=", ">", ">=", "="]),
                                 ast.VarRef("time"), ast.IntegerLiteral(seed))]
        assert _analysis(parts, True) == _analysis(parts, False)
