"""Compile a parsed SELECT into a plan: what to read, how to aggregate, how to shape the answer.

The plan is measurement-independent: which identifiers are tags and which are fields is decided
later, per measurement, from its schema (InfluxQL decides it that way too). Compilation checks
what InfluxDB 1.x checks up front and words its errors the same way:

* aggregates and raw fields cannot be mixed in one SELECT;
* a GROUP BY time() needs an aggregate;
* a function must exist and get the right number of arguments;
* a time range may not hold more GROUP BY windows than ``max_buckets``.

Aggregate calls are de-duplicated: ``SELECT mean(v), mean(v) * 2`` computes one mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from chronosdb.query.influxql import ast
from chronosdb.query.meta import StatementError

AGGREGATES = {"count", "distinct", "integral", "mean", "median", "mode", "spread", "stddev", "sum"}
SELECTORS = {"first", "last", "min", "max", "percentile", "sample", "top", "bottom"}
TRANSFORMS = {"derivative", "non_negative_derivative", "difference", "non_negative_difference",
              "moving_average", "cumulative_sum", "elapsed"}
MATH = {"abs", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "exp", "ln", "log", "log2",
        "log10", "sqrt", "pow", "floor", "ceil", "round"}
MULTI_ROW = {"distinct", "top", "bottom", "sample"}

# (min args, max args) per function, counting the field argument.
ARITY = {
    "count": (1, 1), "distinct": (1, 1), "integral": (1, 2), "mean": (1, 1), "median": (1, 1),
    "mode": (1, 1), "spread": (1, 1), "stddev": (1, 1), "sum": (1, 1), "first": (1, 1),
    "last": (1, 1), "min": (1, 1), "max": (1, 1), "percentile": (2, 2), "sample": (2, 2),
    "top": (2, 3), "bottom": (2, 3), "derivative": (1, 2), "non_negative_derivative": (1, 2),
    "difference": (1, 1), "non_negative_difference": (1, 1), "moving_average": (2, 2),
    "cumulative_sum": (1, 1), "elapsed": (1, 2), "abs": (1, 1), "sin": (1, 1), "cos": (1, 1),
    "tan": (1, 1), "asin": (1, 1), "acos": (1, 1), "atan": (1, 1), "atan2": (2, 2),
    "exp": (1, 1), "ln": (1, 1), "log": (2, 2), "log2": (1, 1), "log10": (1, 1),
    "sqrt": (1, 1), "pow": (2, 2), "floor": (1, 1), "ceil": (1, 1), "round": (1, 1),
    "merge": (1, 64),
}


@dataclass(frozen=True)
class CallKey:
    """One distinct aggregate/selector computation: function, field, literal arguments."""

    func: str          # "mean", "count_distinct", ...
    field: str         # the field it reads
    args: tuple        # literal arguments after the field (e.g. (95,) for percentile)


@dataclass
class OutputColumn:
    name: str
    expr: ast.Expr


@dataclass
class SelectPlan:
    stmt: ast.SelectStatement
    columns: list[OutputColumn]
    is_aggregate: bool
    calls: list[CallKey]                      # distinct aggregate computations
    fields: list[str]                         # field/tag identifiers referenced (raw queries)
    wildcard: bool                            # SELECT * (raw): expand per measurement
    every: int = 0                            # GROUP BY time interval (ns), 0 = none
    offset: int = 0
    group_tags: list[str] | None = None       # None: no tag grouping; [] with group_all
    group_all: bool = False                   # GROUP BY *
    group_regex: str | None = None
    fill: str = "null"
    fill_value: object = None
    single_selector: bool = False             # one selector (plus aux columns): rows keep point times
    aux: list = field(default_factory=list)   # fields/tags read at the selected point (max(x), host)
    multi_row: bool = False                   # distinct/top/bottom/sample
    transforms: list[str] = field(default_factory=list)


def _lit(e):
    if isinstance(e, (ast.IntegerLiteral, ast.NumberLiteral)):
        return e.value
    if isinstance(e, ast.DurationLiteral):
        return e.ns
    if isinstance(e, ast.StringLiteral):
        return e.value
    if isinstance(e, ast.UnaryExpr) and e.op == "-":
        v = _lit(e.expr)
        return -v if isinstance(v, (int, float)) else v
    raise StatementError(f"expected a literal argument, got {e}")


def column_name(expr: ast.Expr) -> str:
    """InfluxDB's default column name: the function name, the field name, or an expression."""
    if isinstance(expr, ast.UnaryExpr):
        return column_name(expr.expr)
    if isinstance(expr, ast.Call):
        return expr.name
    if isinstance(expr, ast.VarRef):
        return expr.name
    if isinstance(expr, ast.BinaryExpr):
        names = [column_name(x) for x in (expr.lhs, expr.rhs)
                 if isinstance(x, (ast.Call, ast.VarRef, ast.BinaryExpr))]
        return "_".join(names) if names else str(expr)
    return str(expr)


def call_key(call: ast.Call) -> CallKey:
    """The CallKey of an aggregate/selector call (its first argument must be a field)."""
    name = call.name
    args = call.args
    if name == "count" and args and isinstance(args[0], ast.Call) and args[0].name == "distinct":
        inner = args[0].args
        if len(inner) != 1 or not isinstance(inner[0], ast.VarRef):
            raise StatementError("expected field argument in distinct()")
        return CallKey("count_distinct", inner[0].name, ())
    if args and isinstance(args[0], (ast.Wildcard, ast.RegexLiteral)):
        # expanded per measurement into one call per matching field (see expand_wildcards)
        lits = tuple(_lit(a) for a in args[1:] if not isinstance(a, ast.VarRef))
        marker = "*" if isinstance(args[0], ast.Wildcard) else "/" + args[0].pattern + "/"
        return CallKey(name, marker, lits)
    if not args or not isinstance(args[0], ast.VarRef):
        raise StatementError(f"expected field argument in {name}()")
    lits = tuple(_lit(a) for a in args[1:] if not isinstance(a, ast.VarRef))
    if name in ("top", "bottom") and len(args) == 3:
        if not isinstance(args[1], ast.VarRef) or not isinstance(args[2], ast.IntegerLiteral):
            raise StatementError(f"expected {name}(field, tag, N)")
        return CallKey(name + "_by_tag", args[0].name, (args[1].name, args[2].value))
    return CallKey(name, args[0].name, lits)


class _Walker:
    def __init__(self):
        self.calls: list[CallKey] = []
        self.fields: list[str] = []
        self.n_agg = 0
        self.n_raw = 0
        self.selectors = 0
        self.multi = False
        self.transforms: list[str] = []

    def walk(self, e: ast.Expr, under_agg: bool = False) -> None:
        if isinstance(e, ast.Call):
            name = e.name
            if name not in ARITY:
                raise StatementError(f"undefined function {name}()")
            lo, hi = ARITY[name]
            if not lo <= len(e.args) <= hi:
                exp = str(lo) if lo == hi else f"{lo}-{hi}"
                raise StatementError(
                    f"invalid number of arguments for {name}, expected {exp}, got {len(e.args)}")
            if name in AGGREGATES or name in SELECTORS:
                key = call_key(e)
                if key not in self.calls:
                    self.calls.append(key)
                self.n_agg += 1
                if name in SELECTORS:
                    self.selectors += 1
                if name in MULTI_ROW:
                    self.multi = True
                return
            if name in TRANSFORMS:
                self.transforms.append(name)
                self.walk(e.args[0])
                return
            for a in e.args:
                self.walk(a, under_agg)
            return
        if isinstance(e, ast.BinaryExpr):
            self.walk(e.lhs, under_agg)
            self.walk(e.rhs, under_agg)
            return
        if isinstance(e, ast.UnaryExpr):
            self.walk(e.expr, under_agg)
            return
        if isinstance(e, ast.VarRef):
            if e.name == "time":
                return
            self.n_raw += 1
            if e.name not in self.fields:
                self.fields.append(e.name)
            return
        if isinstance(e, ast.Wildcard):
            self.n_raw += 1
            return


def _has_varref(e) -> bool:
    """Whether an expression reads a field or tag outside any function call."""
    if isinstance(e, ast.VarRef):
        return e.name != "time"
    if isinstance(e, ast.BinaryExpr):
        return _has_varref(e.lhs) or _has_varref(e.rhs)
    if isinstance(e, ast.UnaryExpr):
        return _has_varref(e.expr)
    return False


def compile_select(stmt: ast.SelectStatement, max_buckets: int = 1_000_000) -> SelectPlan:
    w = _Walker()
    columns: list[OutputColumn] = []
    wildcard = False
    for f in stmt.fields:
        if isinstance(f.expr, ast.VarRef) and f.expr.name == "time":
            continue  # `time` is always the first column
        if isinstance(f.expr, ast.Wildcard):
            wildcard = True
        w.walk(f.expr)
        columns.append(OutputColumn(f.alias or column_name(f.expr), f.expr))
    if not columns:
        raise StatementError("at least 1 non-time field must be queried")
    # top(x, tag, N) / bottom(x, tag, N) also answer the tag, as a column after theirs
    for i, c in enumerate(list(columns)):
        e = c.expr
        if isinstance(e, ast.Call) and e.name in ("top", "bottom") and len(e.args) == 3 \
                and isinstance(e.args[1], ast.VarRef):
            tag = e.args[1].name
            if not any(isinstance(x.expr, ast.VarRef) and x.expr.name == tag for x in columns):
                columns.insert(columns.index(c) + 1, OutputColumn(tag, ast.VarRef(tag, "tag")))
                w.n_raw += 1
    is_agg = w.n_agg > 0
    aux: list[str] = []
    if is_agg and w.n_raw:
        # One selector may carry other fields/tags: they are read at the selected point.
        bare = [c for c in columns if isinstance(c.expr, ast.VarRef)]
        if (w.selectors == w.n_agg and len(w.calls) == 1 and not w.transforms
                and all(isinstance(c.expr, ast.VarRef) or not _has_varref(c.expr) for c in columns)
                and bare):
            aux = [c.expr.name for c in bare]
        else:
            raise StatementError("mixing aggregate and non-aggregate queries is not supported")
    # Duplicate output names get _1, _2, ... as InfluxDB does.
    seen: dict[str, int] = {}
    for c in columns:
        n = seen.get(c.name, 0)
        seen[c.name] = n + 1
        if n:
            c.name = f"{c.name}_{n}"
    plan = SelectPlan(stmt, columns, is_agg, w.calls, w.fields, wildcard,
                      transforms=w.transforms)
    plan.multi_row = w.multi
    plan.aux = aux
    plan.single_selector = (is_agg and len(w.calls) == 1 and w.selectors == 1
                            and not w.transforms and len(columns) == 1 + len(aux))
    for d in stmt.dimensions:
        if isinstance(d, ast.Call) and d.name == "time":
            if plan.every:
                raise StatementError("multiple time dimensions not allowed")
            plan.every, plan.offset = time_dimension(d)
        elif isinstance(d, ast.Wildcard):
            plan.group_all = True
        elif isinstance(d, ast.VarRef):
            plan.group_tags = (plan.group_tags or []) + [d.name]
        elif isinstance(d, ast.RegexLiteral):
            plan.group_regex = d.pattern
        else:
            raise StatementError(f"only time() calls allowed in dimensions: {d}")
    if plan.every and not is_agg:
        raise StatementError("GROUP BY requires at least one aggregate function")
    if stmt.fill is not None:
        plan.fill = stmt.fill.mode
        plan.fill_value = stmt.fill.value
    return plan


def time_dimension(d: ast.Call) -> tuple[int, int]:
    """``(every, offset)`` ns of a ``GROUP BY time(every[, offset])`` dimension."""
    if not d.args or not isinstance(d.args[0], ast.DurationLiteral):
        raise StatementError("time dimension expected 1 or 2 arguments")
    every, offset = d.args[0].ns, 0
    if every < 0:
        raise StatementError("time dimension must have positive duration")
    # GROUP BY time(0s) means one window over the whole range, as in InfluxDB.
    if len(d.args) > 1:
        a = d.args[1]
        if isinstance(a, ast.DurationLiteral):
            offset = a.ns
        elif isinstance(a, ast.UnaryExpr) and isinstance(a.expr, ast.DurationLiteral):
            offset = -a.expr.ns
        elif isinstance(a, ast.Call) and a.name == "now":
            offset = 0
        else:
            raise StatementError("time dimension offset must be duration or now()")
    return every, offset


# Functions that only take numbers: a wildcard argument skips string and boolean fields for them.
NUMERIC_ONLY = {"mean", "median", "spread", "stddev", "sum", "integral", "percentile", "min", "max",
                "top", "bottom", "derivative", "non_negative_derivative", "difference",
                "non_negative_difference", "moving_average", "cumulative_sum"}


def expand_wildcards(plan: SelectPlan, field_types: dict, tag_keys: set) -> SelectPlan:
    """Expand ``f(*)``, ``f(/re/)``, ``*``, ``*::field`` and ``*::tag`` against the union schema
    of the measurements queried (InfluxDB answers every measurement with the union's columns)."""
    import re as _re

    from chronosdb.model.fieldtype import FieldType

    def fields_for(func: str, marker: str) -> list[str]:
        names = sorted(field_types)
        if marker != "*":
            from chronosdb.query.userregex import compile_user_regex

            rx = compile_user_regex(marker[1:-1])
            names = [n for n in names if rx.search(n)]
        if func in NUMERIC_ONLY:
            names = [n for n in names if field_types[n] in (FieldType.FLOAT, FieldType.INTEGER)]
        return names

    cols: list[OutputColumn] = []
    changed = False
    for c in plan.columns:
        e = c.expr
        if isinstance(e, ast.Call) and e.args and isinstance(e.args[0], (ast.Wildcard, ast.RegexLiteral)):
            marker = "*" if isinstance(e.args[0], ast.Wildcard) else "/" + e.args[0].pattern + "/"
            for f in fields_for(e.name, marker):
                cols.append(OutputColumn(f"{c.name}_{f}", ast.Call(e.name, (ast.VarRef(f),) + tuple(e.args[1:]))))
            changed = True
        elif isinstance(e, ast.Wildcard):
            hint = e.type_hint
            names = set()
            if hint in (None, "field"):
                names |= set(field_types)
            if hint in (None, "tag"):
                names |= tag_keys
            for n in sorted(names):
                cols.append(OutputColumn(n, ast.VarRef(n, "tag" if n in tag_keys and n not in field_types else None)))
            changed = True
        else:
            cols.append(c)
    if not changed:
        return plan
    import copy

    new = copy.copy(plan)
    new.columns = cols
    w = _Walker()
    for c in cols:
        w.walk(c.expr)
    new.calls = w.calls
    new.fields = w.fields
    new.wildcard = False
    new.single_selector = (plan.is_aggregate and len(w.calls) == 1 and w.selectors == 1
                           and not w.transforms and len(cols) == 1 + len(plan.aux))
    return new
