"""The InfluxQL syntax tree: immutable values the grammar builds and the compiler reads.

Every node is a frozen dataclass (sequences are tuples), so a parsed tree can be cached and
shared between queries without copying. Every node renders back to InfluxQL with ``str()``, and
``parse(str(node)) == node`` for any tree the parser can produce: rendering adds exactly the
parentheses that operator precedence needs, which is why the tree has no parenthesis node
(``(a + b) * c`` is ``BinaryExpr('*', BinaryExpr('+', a, b), c)``).

Conventions: identifiers are ``str`` exactly as written (quoted ones unescaped); keywords and
function names are normalised (function names lower-case); durations are int nanoseconds;
``limit``/``offset``/``slimit``/``soffset`` of 0 mean "none", as in InfluxDB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional, Union

from .durations import format_duration

# Words the grammar reserves: unquoted, they are keywords, so names equal to them must be quoted.
KEYWORDS = frozenset("""
ALL ALTER ANALYZE AND ANY AS ASC BEGIN BY CARDINALITY CONTINUOUS CREATE DATABASE DATABASES
DEFAULT DELETE DESC DESTINATIONS DIAGNOSTICS DISTINCT DROP DURATION END EVERY EXACT EXPLAIN FALSE
FIELD FOR FROM GRANT GRANTS GROUP GROUPS IN INF INSERT INTO KEY KEYS KILL LIMIT MEASUREMENT
MEASUREMENTS NAME OFFSET ON OR ORDER PASSWORD POLICIES POLICY PRIVILEGES QUERIES QUERY READ
REPLICATION RESAMPLE RETENTION REVOKE SELECT SERIES SET SHARD SHARDS SLIMIT SOFFSET STATS
SUBSCRIPTION SUBSCRIPTIONS TAG TO TRUE USER USERS VALUES WHERE WITH WRITE
""".split())
# Our JOIN extension's words are not reserved (a measurement may be called "left"), but we quote
# them when rendering so a name can never be mistaken for the start of a join.
_ALWAYS_QUOTE = KEYWORDS | {"JOIN", "INNER", "FULL", "LEFT"}
_BARE_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def quote_ident(name: str) -> str:
    """Render an identifier: bare when it can be, else double-quoted with escapes."""
    if _BARE_IDENT.match(name) and name.upper() not in _ALWAYS_QUOTE:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def quote_regex(pattern: str) -> str:
    return "/" + pattern.replace("/", "\\/") + "/"


def _join(items) -> str:
    return ", ".join(str(i) for i in items)


def _idents(names) -> str:
    return ", ".join(quote_ident(n) for n in names)


# --- expressions ------------------------------------------------------------------------------

# Binding strength of binary operators (higher binds tighter); unary minus binds tighter still.
PRECEDENCE = {
    "OR": 1, "AND": 2,
    "=": 4, "!=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "=~": 4, "!~": 4,
    "+": 5, "-": 5, "|": 5, "^": 5,
    "*": 6, "/": 6, "%": 6, "&": 6,
}
COMPARISON_OPS = frozenset(op for op, p in PRECEDENCE.items() if p == 4)


class Expr:
    """Base of expression nodes."""
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class VarRef(Expr):
    """A field or tag name: ``usage``, ``"my field"::float``, ``cpu.usage_user`` (qualifier cpu,
    our JOIN extension)."""
    name: str
    type_hint: Optional[str] = None  # float integer unsigned string boolean field tag
    qualifier: Optional[str] = None

    def __str__(self):
        text = quote_ident(self.name)
        if self.qualifier is not None:
            text = quote_ident(self.qualifier) + "." + text
        if self.type_hint:
            text += "::" + self.type_hint
        return text


@dataclass(frozen=True, slots=True)
class Wildcard(Expr):
    """``*``, ``*::field`` or ``*::tag``."""
    type_hint: Optional[str] = None

    def __str__(self):
        return "*::" + self.type_hint if self.type_hint else "*"


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function call; ``name`` is lower-case."""
    name: str
    args: tuple = ()

    def __str__(self):
        return f"{self.name}({_join(self.args)})"


@dataclass(frozen=True, slots=True)
class NowCall(Expr):
    """``now()``: the query's start time, bound by the compiler."""

    def __str__(self):
        return "now()"


@dataclass(frozen=True, slots=True)
class BinaryExpr(Expr):
    op: str  # one of PRECEDENCE; AND/OR upper-case
    lhs: Expr
    rhs: Expr

    def __str__(self):
        p = PRECEDENCE[self.op]
        left, right = str(self.lhs), str(self.rhs)
        # Left-associative: a child of lower precedence needs parentheses; on the right, one of
        # equal precedence does too (a - (b - c)).
        if isinstance(self.lhs, BinaryExpr) and PRECEDENCE[self.lhs.op] < p:
            left = f"({left})"
        if isinstance(self.rhs, BinaryExpr) and PRECEDENCE[self.rhs.op] <= p:
            right = f"({right})"
        return f"{left} {self.op} {right}"


@dataclass(frozen=True, slots=True)
class UnaryExpr(Expr):
    op: str  # "-"
    expr: Expr

    def __str__(self):
        inner = str(self.expr)
        # "--x" would read as a comment, and a binary operand needs grouping.
        if isinstance(self.expr, (BinaryExpr, UnaryExpr)):
            inner = f"({inner})"
        return self.op + inner


@dataclass(frozen=True, slots=True)
class IntegerLiteral(Expr):
    value: int

    def __str__(self):
        return str(self.value)


@dataclass(frozen=True, slots=True)
class NumberLiteral(Expr):
    """A float literal (``1.5``, ``.5``, ``3.``)."""
    value: float

    def __str__(self):
        text = format(Decimal(repr(self.value)), "f")  # positional: the grammar has no exponents
        return text if "." in text else text + ".0"


@dataclass(frozen=True, slots=True)
class StringLiteral(Expr):
    value: str

    def __str__(self):
        return quote_string(self.value)


@dataclass(frozen=True, slots=True)
class BooleanLiteral(Expr):
    value: bool

    def __str__(self):
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class DurationLiteral(Expr):
    ns: int

    def __str__(self):
        return format_duration(self.ns)


@dataclass(frozen=True, slots=True)
class TimeLiteral(Expr):
    """A quoted time compared with ``time`` (``time > '2016-01-01T00:00:00Z'``).

    ``ns`` reads the text as UTC when it has no offset; ``text`` is kept so the compiler can
    re-read it in the statement's ``tz()`` zone (see ``durations.time_has_offset``)."""
    ns: int
    text: str

    def __str__(self):
        return quote_string(self.text)


@dataclass(frozen=True, slots=True)
class RegexLiteral(Expr):
    """``/pattern/``; ``\\/`` in the text is a slash in the pattern, other escapes are kept."""
    pattern: str

    def __str__(self):
        return quote_regex(self.pattern)


@dataclass(frozen=True, slots=True)
class BoundParameter(Expr):
    """``$name``: a value supplied with the request's ``params``."""
    name: str

    def __str__(self):
        return "$" + quote_ident(self.name)


Literal = Union[IntegerLiteral, NumberLiteral, StringLiteral, BooleanLiteral, DurationLiteral,
                TimeLiteral, RegexLiteral]


# --- sources ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Measurement:
    """``m``, ``rp.m``, ``db.rp.m``, ``db..m`` or a regex in the last place (``/cpu.*/``).
    Exactly one of ``name`` and ``regex`` is set."""
    name: Optional[str] = None
    database: Optional[str] = None
    retention_policy: Optional[str] = None
    regex: Optional[str] = None

    def __str__(self):
        last = quote_regex(self.regex) if self.regex is not None else quote_ident(self.name)
        if self.database is not None:
            rp = quote_ident(self.retention_policy) if self.retention_policy else ""
            return f"{quote_ident(self.database)}.{rp}.{last}"
        if self.retention_policy is not None:
            return f"{quote_ident(self.retention_policy)}.{last}"
        return last


@dataclass(frozen=True, slots=True)
class SubQuery:
    statement: "SelectStatement"

    def __str__(self):
        return f"({self.statement})"


@dataclass(frozen=True, slots=True)
class Join:
    """Our extension: ``cpu INNER JOIN mem ON host, region``; chains nest to the left."""
    kind: str  # "inner" | "full" | "left"
    left: "Source"
    right: "Source"
    on_tags: tuple

    def __str__(self):
        return f"{self.left} {self.kind.upper()} JOIN {self.right} ON {_idents(self.on_tags)}"


Source = Union[Measurement, SubQuery, Join]


# --- SELECT -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Field:
    expr: Expr
    alias: Optional[str] = None

    def __str__(self):
        return f"{self.expr} AS {quote_ident(self.alias)}" if self.alias is not None else str(self.expr)


@dataclass(frozen=True, slots=True)
class Fill:
    """``fill(null|none|previous|linear|<number>)``; ``value`` is set only for mode "value"."""
    mode: str
    value: Union[int, float, None] = None

    def __str__(self):
        if self.mode != "value":
            return f"fill({self.mode})"
        v = self.value
        if isinstance(v, float):
            return f"fill({'-' if v < 0 else ''}{NumberLiteral(abs(v))})"
        return f"fill({v})"


@dataclass(frozen=True, slots=True)
class Into:
    """``INTO [db.][rp.]measurement``; ``name`` None means ``:MEASUREMENT`` (the source's name)."""
    name: Optional[str] = None
    database: Optional[str] = None
    retention_policy: Optional[str] = None

    def __str__(self):
        last = quote_ident(self.name) if self.name is not None else ":MEASUREMENT"
        if self.database is not None:
            rp = quote_ident(self.retention_policy) if self.retention_policy else ""
            return f"{quote_ident(self.database)}.{rp}.{last}"
        if self.retention_policy is not None:
            return f"{quote_ident(self.retention_policy)}.{last}"
        return last


class Statement:
    __slots__ = ()


def _tail(limit=0, offset=0, slimit=0, soffset=0) -> str:
    out = ""
    if limit:
        out += f" LIMIT {limit}"
    if offset:
        out += f" OFFSET {offset}"
    if slimit:
        out += f" SLIMIT {slimit}"
    if soffset:
        out += f" SOFFSET {soffset}"
    return out


def _on(database) -> str:
    return f" ON {quote_ident(database)}" if database is not None else ""


def _from(sources) -> str:
    return f" FROM {_join(sources)}" if sources else ""


def _where(condition) -> str:
    return f" WHERE {condition}" if condition is not None else ""


@dataclass(frozen=True, slots=True)
class SelectStatement(Statement):
    fields: tuple  # of Field
    sources: tuple  # of Source (one Join, or measurements/subqueries)
    condition: Optional[Expr] = None
    dimensions: tuple = ()  # GROUP BY: Call('time', ...), VarRef, Wildcard, RegexLiteral
    fill: Optional[Fill] = None
    order_desc: bool = False
    limit: int = 0
    offset: int = 0
    slimit: int = 0
    soffset: int = 0
    tz: Optional[str] = None
    into: Optional[Into] = None

    def __str__(self):
        out = "SELECT " + _join(self.fields)
        if self.into is not None:
            out += f" INTO {self.into}"
        out += _from(self.sources) + _where(self.condition)
        if self.dimensions:
            out += " GROUP BY " + _join(self.dimensions)
        if self.fill is not None:
            out += f" {self.fill}"
        if self.order_desc:
            out += " ORDER BY time DESC"
        out += _tail(self.limit, self.offset, self.slimit, self.soffset)
        if self.tz is not None:
            out += f" tz({quote_string(self.tz)})"
        return out


@dataclass(frozen=True, slots=True)
class ExplainStatement(Statement):
    statement: SelectStatement
    analyze: bool = False

    def __str__(self):
        return f"EXPLAIN {'ANALYZE ' if self.analyze else ''}{self.statement}"


# --- SHOW -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ShowDatabases(Statement):
    def __str__(self):
        return "SHOW DATABASES"


@dataclass(frozen=True, slots=True)
class ShowMeasurements(Statement):
    database: Optional[str] = None
    with_measurement: Optional[Measurement] = None  # WITH MEASUREMENT = name | =~ /re/
    condition: Optional[Expr] = None
    limit: int = 0
    offset: int = 0

    def __str__(self):
        out = "SHOW MEASUREMENTS" + _on(self.database)
        m = self.with_measurement
        if m is not None:
            out += f" WITH MEASUREMENT =~ {quote_regex(m.regex)}" if m.regex is not None \
                else f" WITH MEASUREMENT = {quote_ident(m.name)}"
        return out + _where(self.condition) + _tail(self.limit, self.offset)


@dataclass(frozen=True, slots=True)
class ShowSeries(Statement):
    database: Optional[str] = None
    sources: tuple = ()
    condition: Optional[Expr] = None
    limit: int = 0
    offset: int = 0

    def __str__(self):
        return ("SHOW SERIES" + _on(self.database) + _from(self.sources) + _where(self.condition)
                + _tail(self.limit, self.offset))


@dataclass(frozen=True, slots=True)
class ShowTagKeys(Statement):
    database: Optional[str] = None
    sources: tuple = ()
    condition: Optional[Expr] = None
    limit: int = 0
    offset: int = 0
    slimit: int = 0
    soffset: int = 0

    def __str__(self):
        return ("SHOW TAG KEYS" + _on(self.database) + _from(self.sources) + _where(self.condition)
                + _tail(self.limit, self.offset, self.slimit, self.soffset))


def _with_key(op, keys, regex) -> str:
    if op in ("=~", "!~"):
        return f" WITH KEY {op} {quote_regex(regex)}"
    if op == "IN":
        return f" WITH KEY IN ({_idents(keys)})"
    return f" WITH KEY {op} {quote_ident(keys[0])}"


@dataclass(frozen=True, slots=True)
class ShowTagValues(Statement):
    """``WITH KEY`` op is one of = != =~ !~ IN; ``keys`` holds the name(s), ``key_regex`` the
    pattern for the regex operators."""
    key_op: str
    keys: tuple = ()
    key_regex: Optional[str] = None
    database: Optional[str] = None
    sources: tuple = ()
    condition: Optional[Expr] = None
    limit: int = 0
    offset: int = 0

    def __str__(self):
        return ("SHOW TAG VALUES" + _on(self.database) + _from(self.sources)
                + _with_key(self.key_op, self.keys, self.key_regex) + _where(self.condition)
                + _tail(self.limit, self.offset))


@dataclass(frozen=True, slots=True)
class ShowFieldKeys(Statement):
    database: Optional[str] = None
    sources: tuple = ()
    limit: int = 0
    offset: int = 0

    def __str__(self):
        return "SHOW FIELD KEYS" + _on(self.database) + _from(self.sources) + _tail(self.limit, self.offset)


@dataclass(frozen=True, slots=True)
class ShowRetentionPolicies(Statement):
    database: Optional[str] = None

    def __str__(self):
        return "SHOW RETENTION POLICIES" + _on(self.database)


CARDINALITY_KINDS = ("series", "measurement", "tag key", "tag values", "field key")


@dataclass(frozen=True, slots=True)
class ShowCardinality(Statement):
    """``SHOW {SERIES|MEASUREMENT|TAG KEY|TAG VALUES|FIELD KEY} [EXACT] CARDINALITY ...``."""
    kind: str  # one of CARDINALITY_KINDS
    exact: bool = False
    database: Optional[str] = None
    sources: tuple = ()
    key_op: Optional[str] = None  # TAG VALUES only
    keys: tuple = ()
    key_regex: Optional[str] = None
    condition: Optional[Expr] = None
    dimensions: tuple = ()
    limit: int = 0
    offset: int = 0

    def __str__(self):
        out = f"SHOW {self.kind.upper()} {'EXACT ' if self.exact else ''}CARDINALITY"
        out += _on(self.database) + _from(self.sources)
        if self.key_op is not None:
            out += _with_key(self.key_op, self.keys, self.key_regex)
        out += _where(self.condition)
        if self.dimensions:
            out += " GROUP BY " + _join(self.dimensions)
        return out + _tail(self.limit, self.offset)


@dataclass(frozen=True, slots=True)
class ShowContinuousQueries(Statement):
    def __str__(self):
        return "SHOW CONTINUOUS QUERIES"


@dataclass(frozen=True, slots=True)
class ShowQueries(Statement):
    def __str__(self):
        return "SHOW QUERIES"


@dataclass(frozen=True, slots=True)
class ShowSubscriptions(Statement):
    def __str__(self):
        return "SHOW SUBSCRIPTIONS"


@dataclass(frozen=True, slots=True)
class ShowUsers(Statement):
    def __str__(self):
        return "SHOW USERS"


@dataclass(frozen=True, slots=True)
class ShowGrants(Statement):
    user: str

    def __str__(self):
        return f"SHOW GRANTS FOR {quote_ident(self.user)}"


@dataclass(frozen=True, slots=True)
class ShowShards(Statement):
    def __str__(self):
        return "SHOW SHARDS"


@dataclass(frozen=True, slots=True)
class ShowShardGroups(Statement):
    def __str__(self):
        return "SHOW SHARD GROUPS"


@dataclass(frozen=True, slots=True)
class ShowStats(Statement):
    module: Optional[str] = None

    def __str__(self):
        return "SHOW STATS" + (f" FOR {quote_string(self.module)}" if self.module is not None else "")


@dataclass(frozen=True, slots=True)
class ShowDiagnostics(Statement):
    module: Optional[str] = None

    def __str__(self):
        return "SHOW DIAGNOSTICS" + (f" FOR {quote_string(self.module)}" if self.module is not None else "")


# --- database management ----------------------------------------------------------------------

def _rp_duration(ns: int) -> str:
    return "INF" if ns == 0 else format_duration(ns)


@dataclass(frozen=True, slots=True)
class CreateDatabase(Statement):
    """``WITH`` options set the default retention policy; durations in ns, 0 = INF."""
    name: str
    rp_duration: Optional[int] = None
    rp_replication: Optional[int] = None
    rp_shard_duration: Optional[int] = None
    rp_name: Optional[str] = None

    def __str__(self):
        opts = ""
        if self.rp_duration is not None:
            opts += f" DURATION {_rp_duration(self.rp_duration)}"
        if self.rp_replication is not None:
            opts += f" REPLICATION {self.rp_replication}"
        if self.rp_shard_duration is not None:
            opts += f" SHARD DURATION {_rp_duration(self.rp_shard_duration)}"
        if self.rp_name is not None:
            opts += f" NAME {quote_ident(self.rp_name)}"
        return f"CREATE DATABASE {quote_ident(self.name)}" + (f" WITH{opts}" if opts else "")


@dataclass(frozen=True, slots=True)
class DropDatabase(Statement):
    name: str

    def __str__(self):
        return f"DROP DATABASE {quote_ident(self.name)}"


@dataclass(frozen=True, slots=True)
class CreateRetentionPolicy(Statement):
    name: str
    database: str
    duration: int  # ns, 0 = INF
    replication: int
    shard_duration: Optional[int] = None
    default: bool = False

    def __str__(self):
        out = (f"CREATE RETENTION POLICY {quote_ident(self.name)} ON {quote_ident(self.database)}"
               f" DURATION {_rp_duration(self.duration)} REPLICATION {self.replication}")
        if self.shard_duration is not None:
            out += f" SHARD DURATION {_rp_duration(self.shard_duration)}"
        return out + (" DEFAULT" if self.default else "")


@dataclass(frozen=True, slots=True)
class AlterRetentionPolicy(Statement):
    name: str
    database: str
    duration: Optional[int] = None
    replication: Optional[int] = None
    shard_duration: Optional[int] = None
    default: bool = False

    def __str__(self):
        out = f"ALTER RETENTION POLICY {quote_ident(self.name)} ON {quote_ident(self.database)}"
        if self.duration is not None:
            out += f" DURATION {_rp_duration(self.duration)}"
        if self.replication is not None:
            out += f" REPLICATION {self.replication}"
        if self.shard_duration is not None:
            out += f" SHARD DURATION {_rp_duration(self.shard_duration)}"
        return out + (" DEFAULT" if self.default else "")


@dataclass(frozen=True, slots=True)
class DropRetentionPolicy(Statement):
    name: str
    database: str

    def __str__(self):
        return f"DROP RETENTION POLICY {quote_ident(self.name)} ON {quote_ident(self.database)}"


@dataclass(frozen=True, slots=True)
class DeleteStatement(Statement):
    sources: tuple = ()
    condition: Optional[Expr] = None

    def __str__(self):
        return "DELETE" + _from(self.sources) + _where(self.condition)


@dataclass(frozen=True, slots=True)
class DropSeries(Statement):
    sources: tuple = ()
    condition: Optional[Expr] = None

    def __str__(self):
        return "DROP SERIES" + _from(self.sources) + _where(self.condition)


@dataclass(frozen=True, slots=True)
class DropMeasurement(Statement):
    name: str

    def __str__(self):
        return f"DROP MEASUREMENT {quote_ident(self.name)}"


@dataclass(frozen=True, slots=True)
class DropShard(Statement):
    id: int

    def __str__(self):
        return f"DROP SHARD {self.id}"


@dataclass(frozen=True, slots=True)
class KillQuery(Statement):
    id: int
    host: Optional[str] = None

    def __str__(self):
        return f"KILL QUERY {self.id}" + (f" ON {quote_ident(self.host)}" if self.host is not None else "")


@dataclass(frozen=True, slots=True)
class CreateContinuousQuery(Statement):
    name: str
    database: str
    select: SelectStatement
    resample_every: Optional[int] = None
    resample_for: Optional[int] = None

    def __str__(self):
        out = f"CREATE CONTINUOUS QUERY {quote_ident(self.name)} ON {quote_ident(self.database)}"
        if self.resample_every is not None or self.resample_for is not None:
            out += " RESAMPLE"
            if self.resample_every is not None:
                out += f" EVERY {format_duration(self.resample_every)}"
            if self.resample_for is not None:
                out += f" FOR {format_duration(self.resample_for)}"
        return out + f" BEGIN {self.select} END"


@dataclass(frozen=True, slots=True)
class DropContinuousQuery(Statement):
    name: str
    database: str

    def __str__(self):
        return f"DROP CONTINUOUS QUERY {quote_ident(self.name)} ON {quote_ident(self.database)}"


@dataclass(frozen=True, slots=True)
class CreateSubscription(Statement):
    name: str
    database: str
    retention_policy: str
    mode: str  # "ALL" | "ANY"
    destinations: tuple

    def __str__(self):
        return (f"CREATE SUBSCRIPTION {quote_ident(self.name)} ON {quote_ident(self.database)}."
                f"{quote_ident(self.retention_policy)} DESTINATIONS {self.mode} "
                + ", ".join(quote_string(d) for d in self.destinations))


@dataclass(frozen=True, slots=True)
class DropSubscription(Statement):
    name: str
    database: str
    retention_policy: str

    def __str__(self):
        return (f"DROP SUBSCRIPTION {quote_ident(self.name)} ON {quote_ident(self.database)}."
                f"{quote_ident(self.retention_policy)}")


# --- users (parsed so we can answer clearly; ChronosDB uses API keys instead) -----------------

@dataclass(frozen=True, slots=True)
class CreateUser(Statement):
    name: str
    password: str
    admin: bool = False

    def __str__(self):
        return (f"CREATE USER {quote_ident(self.name)} WITH PASSWORD {quote_string(self.password)}"
                + (" WITH ALL PRIVILEGES" if self.admin else ""))


@dataclass(frozen=True, slots=True)
class DropUser(Statement):
    name: str

    def __str__(self):
        return f"DROP USER {quote_ident(self.name)}"


@dataclass(frozen=True, slots=True)
class SetPassword(Statement):
    user: str
    password: str

    def __str__(self):
        return f"SET PASSWORD FOR {quote_ident(self.user)} = {quote_string(self.password)}"


@dataclass(frozen=True, slots=True)
class Grant(Statement):
    """``privilege`` is READ, WRITE or ALL; ``database`` None means the admin grant."""
    privilege: str
    user: str
    database: Optional[str] = None

    def __str__(self):
        if self.database is None:
            return f"GRANT ALL PRIVILEGES TO {quote_ident(self.user)}"
        return f"GRANT {self.privilege} ON {quote_ident(self.database)} TO {quote_ident(self.user)}"


@dataclass(frozen=True, slots=True)
class Revoke(Statement):
    privilege: str
    user: str
    database: Optional[str] = None

    def __str__(self):
        if self.database is None:
            return f"REVOKE ALL PRIVILEGES FROM {quote_ident(self.user)}"
        return f"REVOKE {self.privilege} ON {quote_ident(self.database)} FROM {quote_ident(self.user)}"


def render(statements) -> str:
    """A list of statements as one query text."""
    return "; ".join(str(s) for s in statements)


__all__ = sorted(
    [n for n, v in list(globals().items()) if isinstance(v, type) and v.__module__ == __name__]
    + ["Literal", "Source", "KEYWORDS", "PRECEDENCE", "COMPARISON_OPS", "CARDINALITY_KINDS",
       "quote_ident", "quote_string", "quote_regex", "render"])
