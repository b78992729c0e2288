"""The InfluxQL grammar (pyparsing) and the actions that build ``ast`` nodes from it.

The whole grammar lives in this one module. Layout, top down: a query is statements separated by
``;`` (a trailing one allowed); each statement starts with a keyword that picks its production;
expressions are five levels of left-associative binary operators (OR < AND < comparisons <
``+ - | ^`` < ``* / % &``) over unary minus over primaries. Keywords are case-insensitive,
identifiers case-sensitive; ``--`` and ``/* */`` comments count as whitespace.

Error reporting: after every keyword that commits to a production we use pyparsing's ``-``
(no backtracking past this point), so a failure is reported where it happened instead of as
"expected end of text" at the start of the clause. Grammar elements carry InfluxDB-style names
("identifier", "identifier, string, number, bool") and ``ParseError`` renders
``found X, expected Y at line L, char C`` like InfluxDB 1.x.

Literal sites: the statement cache (``cache.py``) must know which AST node each literal token of
the text became, so during a parse the literal actions record ``id(node) -> (offset, raw text,
node)`` (also used to point a bad time literal's error at the string itself).

The recording is module state, so cold parses are serialised by a lock (the cache keeps them rare).
"""
from __future__ import annotations

import re
import threading

import pyparsing as pp
from pyparsing import CaselessKeyword, Forward, Literal, Opt, Regex, StringEnd, Suppress, ZeroOrMore

from chronosdb.ext.qlex import rfc3339_ns
from chronosdb.model.errors import BadRequest

from . import ast
from .durations import DURATION_PATTERN, INT64_MAX, parse_duration, parse_time

# No packrat: measured on the TSBS and Grafana queries it makes a cold parse ~1.6x slower (this
# grammar rarely re-parses the same text at the same place), and it is process-wide pyparsing
# state. bench/bench_parser.py prints both figures.


class ParseError(BadRequest, ValueError):
    """A query that does not parse. ``str(e)`` reads like InfluxDB 1.x:
    ``found FROM, expected identifier, string, number, bool at line 1, char 8``."""

    def __init__(self, message: str, line: int, column: int, found: str = "", expected: str = ""):
        super().__init__(f"{message} at line {line}, char {column}")
        self.line, self.column, self.found, self.expected = line, column, found, expected
        self.reason = message


# --- lexical patterns, shared with the cache's tokenizer --------------------------------------

STRING_PATTERN = r"'(?:[^'\\\n]|\\.)*'"
QUOTED_IDENT_PATTERN = r'"(?:[^"\\\n]|\\.)*"'
BARE_IDENT_PATTERN = r"[^\W\d]\w*"
FLOAT_PATTERN = r"\d+\.\d*|\.\d+"
INTEGER_PATTERN = r"\d+"
REGEX_PATTERN = r"/(?:[^/\\\n]|\\.)*/"

_ESCAPES = {"n": "\n", "\\": "\\", "'": "'", '"': '"'}
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def unescape(body: str) -> str:
    """Undo the escapes of a quoted string or identifier body (``\\n \\\\ \\' \\"``)."""
    if "\\" not in body:
        return body

    def one(m):
        c = m.group(1)
        if c not in _ESCAPES:
            raise ValueError(f"bad escape: \\{c}")
        return _ESCAPES[c]

    return _ESCAPE_RE.sub(one, body)


def integer_value(raw: str) -> int:
    v = int(raw)
    if v > INT64_MAX:
        raise ValueError(f"integer out of range: {raw}")
    return v


# Literal constructors: the grammar's actions and the cache's re-binding use the same ones, so a
# literal bound into a cached template is exactly the node a cold parse would build.
def make_integer(raw: str) -> ast.IntegerLiteral:
    return ast.IntegerLiteral(integer_value(raw))


def make_number(raw: str) -> ast.NumberLiteral:
    return ast.NumberLiteral(float(raw))


def make_duration(raw: str) -> ast.DurationLiteral:
    return ast.DurationLiteral(parse_duration(raw))


def make_string(raw: str) -> ast.StringLiteral:
    return ast.StringLiteral(unescape(raw[1:-1]))


def make_time(raw: str) -> ast.TimeLiteral:
    text = unescape(raw[1:-1])
    ns = rfc3339_ns(text)      # the common forms in C; None: parse_time answers or raises
    return ast.TimeLiteral(parse_time(text) if ns is None else ns, text)


# --- literal-site recording (see module docstring) --------------------------------------------

_recording: dict | None = None
_lock = threading.Lock()


def _record(loc: int, raw: str, node) -> None:
    if _recording is not None:
        _recording[id(node)] = (loc, raw, node)


def _derive(old, new) -> None:
    """``new`` replaces ``old`` at the same source site (a string that became a time)."""
    if _recording is not None and id(old) in _recording:
        loc, raw, _ = _recording[id(old)]
        _recording[id(new)] = (loc, raw, new)


def _literal(pattern: str, maker, name: str):
    def action(s, loc, toks):
        raw = toks[0]
        try:
            node = maker(raw)
        except ValueError as e:
            raise pp.ParseFatalException(s, loc, str(e)) from None
        _record(loc, raw, node)
        return node

    return Regex(pattern).set_parse_action(action).set_name(name)


class _Box:
    """Carries a Python tuple through pyparsing's token lists without it being flattened."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


# --- tokens -----------------------------------------------------------------------------------

def K(word: str):
    return CaselessKeyword(word).set_name(word)


def S(word: str):
    """A keyword that commits to a production but yields no token."""
    return Suppress(CaselessKeyword(word)).set_name(word)


def _ident_action(s, loc, toks):
    raw = toks[0]
    if raw[0] == '"':
        try:
            return unescape(raw[1:-1])
        except ValueError as e:
            raise pp.ParseFatalException(s, loc, str(e)) from None
    if raw.upper() in ast.KEYWORDS:
        raise pp.ParseException(s, loc, "Expected identifier")
    return raw


ident = Regex(QUOTED_IDENT_PATTERN + "|" + BARE_IDENT_PATTERN).set_parse_action(_ident_action).set_name("identifier")


def _plain_int(s, loc, toks):
    try:
        return integer_value(toks[0])
    except ValueError as e:
        raise pp.ParseFatalException(s, loc, str(e)) from None


def _plain_duration(s, loc, toks):
    try:
        return parse_duration(toks[0])
    except ValueError as e:
        raise pp.ParseFatalException(s, loc, str(e)) from None


def _plain_string(s, loc, toks):
    try:
        return unescape(toks[0][1:-1])
    except ValueError as e:
        raise pp.ParseFatalException(s, loc, str(e)) from None


int_plain = Regex(INTEGER_PATTERN).set_parse_action(_plain_int).set_name("integer")
duration_plain = Regex(DURATION_PATTERN).set_parse_action(_plain_duration).set_name("duration")
rp_duration = (K("INF").set_parse_action(lambda: 0) | duration_plain).set_name("duration")
string_plain = Regex(STRING_PATTERN).set_parse_action(_plain_string).set_name("string")

LPAR, RPAR, COMMA, DOT = (Suppress(Literal(c).set_name(c)) for c in "(),.")

integer_lit = _literal(INTEGER_PATTERN, make_integer, "integer")
number_lit = _literal(FLOAT_PATTERN, make_number, "number")
duration_lit = _literal(DURATION_PATTERN, make_duration, "duration")
string_lit = _literal(STRING_PATTERN, make_string, "string")
bool_lit = (K("TRUE").set_parse_action(lambda: ast.BooleanLiteral(True))
            | K("FALSE").set_parse_action(lambda: ast.BooleanLiteral(False))).set_name("bool")


def _regex_action(toks):
    return ast.RegexLiteral(toks[0][1:-1].replace("\\/", "/"))


regex_lit = Regex(REGEX_PATTERN).set_parse_action(_regex_action).set_name("regex")
bound_param = (Suppress("$") + ident).set_parse_action(lambda t: ast.BoundParameter(t[0])).set_name("bound parameter")

# --- expressions ------------------------------------------------------------------------------

TYPE_HINTS = ("float", "integer", "unsigned", "string", "boolean", "field", "tag")
type_hint = Regex(r"(?i)(?:" + "|".join(TYPE_HINTS) + r")(?!\w)").set_parse_action(lambda t: t[0].lower()).set_name("data type")
CAST = Suppress(Literal("::"))

expr = Forward().set_name("expression")


def _call_action(t):
    name = t[0].lower()
    args = tuple(t[1:])
    if name == "now" and not args:
        return ast.NowCall()
    return ast.Call(name, args)


func_name = Regex(r"([^\W\d]\w*)(?=\s*\()").set_name("function")
call = (func_name + LPAR - pp.Opt(pp.DelimitedList(expr)) + RPAR).set_parse_action(_call_action)
# Legacy "SELECT DISTINCT host FROM ..." means distinct(host).
distinct_kw = (S("DISTINCT") + ident).set_parse_action(lambda t: ast.Call("distinct", (ast.VarRef(t[0]),)))


def _varref_action(t):
    hint = _g(t, "hint")
    if "qual" in t:
        return ast.VarRef(_g(t, "name"), hint, _g(t, "qual"))
    return ast.VarRef(_g(t, "name"), hint)


varref = (pp.Opt(ident("qual") + DOT) + ident("name") + pp.Opt(CAST - type_hint("hint"))).set_parse_action(_varref_action)
wildcard = (Suppress(Literal("*")) + pp.Opt(CAST - (K("field") | K("tag")))).set_parse_action(
    lambda t: ast.Wildcard(t[0].lower() if t else None))
paren = LPAR + expr + RPAR

primary = (paren | call | distinct_kw | bool_lit | duration_lit | number_lit | integer_lit | string_lit
           | regex_lit | wildcard | bound_param | varref).set_name("identifier, string, number, bool")

unary = Forward()
unary <<= ((Suppress(Literal("-")) + unary).set_parse_action(lambda t: ast.UnaryExpr("-", t[0]))
           | primary).set_name(primary.name)


def _fold(s, loc, t):
    node = t[0]
    for i in range(1, len(t), 2):
        op, rhs = t[i], t[i + 1]
        if op in ast.COMPARISON_OPS:
            node, rhs = _time_operands(s, node, rhs)
        node = ast.BinaryExpr(op, node, rhs)
    return node


def _is_time(e) -> bool:
    return isinstance(e, ast.VarRef) and e.name == "time" and e.type_hint is None


def _to_time(s, e):
    try:
        out = make_time(ast.quote_string(e.value))
    except ValueError as err:
        loc = _recording[id(e)][0] if _recording and id(e) in _recording else 0
        raise pp.ParseFatalException(s, loc, str(err)) from None
    _derive(e, out)
    return out


def _time_operands(s, lhs, rhs):
    """A string compared with ``time`` is a time literal (``time >= '2016-01-01T00:00:00Z'``)."""
    if _is_time(lhs) and isinstance(rhs, ast.StringLiteral):
        return lhs, _to_time(s, rhs)
    if _is_time(rhs) and isinstance(lhs, ast.StringLiteral):
        return _to_time(s, lhs), rhs
    return lhs, rhs


def _level(operand, op):
    # Once an operator is read its right operand is required, so "x = = 3" fails at the second "="
    return (operand + ZeroOrMore(op - operand)).set_parse_action(_fold)


mul_expr = _level(unary, Regex(r"[*/%&]").set_name("operator"))
add_expr = _level(mul_expr, Regex(r"[-+|^]").set_name("operator"))
cmp_expr = _level(add_expr, Regex(r"=~|!~|!=|<>|<=|>=|=|<|>").set_name("operator"))
and_expr = _level(cmp_expr, K("AND"))
or_expr = _level(and_expr, K("OR"))
expr <<= or_expr

# --- sources ----------------------------------------------------------------------------------

last_segment = regex_lit | ident


def _measurement(db=None, rp=None):
    def action(t):
        last = t[-1]
        if isinstance(last, ast.RegexLiteral):
            return ast.Measurement(None, db(t) if db else None, rp(t) if rp else None, last.pattern)
        return ast.Measurement(last, db(t) if db else None, rp(t) if rp else None)
    return action


measurement = (
    (ident + DOT + ident + DOT + last_segment).set_parse_action(_measurement(lambda t: t[0], lambda t: t[1]))
    | (ident + DOT + DOT + last_segment).set_parse_action(_measurement(lambda t: t[0]))
    | (ident + DOT + last_segment).set_parse_action(_measurement(None, lambda t: t[0]))
    | last_segment.copy().add_parse_action(_measurement())
).set_name("identifier")

select_stmt = Forward()
subquery = (LPAR + select_stmt + RPAR).set_parse_action(lambda t: ast.SubQuery(t[0]))
source = (subquery | measurement).set_name("identifier")
ident_list = pp.Group(pp.DelimitedList(ident))
sources = pp.Group(pp.DelimitedList(source))

join_kind = (K("INNER") | K("FULL") | K("LEFT")).set_name("join kind")
join_tail = pp.Group(pp.Opt(join_kind, "INNER") + S("JOIN") - source + S("ON")
                     - ((LPAR + ident_list + RPAR) | ident_list))


def _from_action(t):
    first, rest = t[0], t[1:]
    if rest and isinstance(rest[0], pp.ParseResults) and rest[0] and rest[0][0] in ("INNER", "FULL", "LEFT"):
        node = first
        for kind, right, tags in rest:
            node = ast.Join(kind.lower(), node, right, tuple(tags))
        return _Box((node,))
    return _Box((first, *rest))


from_sources = (source + (pp.OneOrMore(join_tail) | ZeroOrMore(COMMA + source))).set_parse_action(_from_action)

# --- SELECT -----------------------------------------------------------------------------------

field = (expr + pp.Opt(S("AS") - ident)).set_parse_action(lambda t: ast.Field(t[0], t[1] if len(t) > 1 else None))
fields = pp.Group(pp.DelimitedList(field))

into_last = Literal(":MEASUREMENT").set_parse_action(lambda: [None]) | ident
into_target = (
    (ident + DOT + ident + DOT + into_last).set_parse_action(lambda t: ast.Into(t[2], t[0], t[1]))
    | (ident + DOT + DOT + into_last).set_parse_action(lambda t: ast.Into(t[1], t[0]))
    | (ident + DOT + into_last).set_parse_action(lambda t: ast.Into(t[1], None, t[0]))
    | into_last.copy().add_parse_action(lambda t: ast.Into(t[0]))
).set_name("identifier")

signed_number = Regex(r"-?\s*(?:" + FLOAT_PATTERN + "|" + INTEGER_PATTERN + ")").set_name("number")


def _fill_action(s, loc, t):
    arg = t[0]
    if isinstance(arg, str) and arg.lower() in ("null", "none", "previous", "linear"):
        return ast.Fill(arg.lower())
    text = arg.replace(" ", "").replace("\t", "").replace("\n", "")
    value = float(text) if "." in text else int(text)
    return ast.Fill("value", value)


fill_arg = (signed_number | Regex(r"(?i)(?:null|none|previous|linear)(?!\w)")).set_name("null, none, previous, linear, number")
fill_clause = (S("fill") + LPAR - fill_arg - RPAR).set_parse_action(_fill_action)
tz_clause = S("tz") + LPAR - string_plain - RPAR
order_clause = S("ORDER") - S("BY") - (
    (Suppress(Regex(r"(?i)time(?!\w)")) + pp.Opt(K("ASC") | K("DESC"), "ASC")) | K("ASC") | K("DESC")
).set_name("time, ASC, DESC")
dimensions = pp.Group(pp.DelimitedList(expr))
where_clause = S("WHERE") - expr
group_by = S("GROUP") - S("BY") - dimensions


def _clause(keyword):
    return S(keyword) - int_plain


def _select_action(t):
    return ast.SelectStatement(
        fields=_seq(t, "fields"), sources=_g(t, "sources").value, condition=_g(t, "where"),
        dimensions=_seq(t, "dims"), fill=_g(t, "fill"), order_desc=_seq(t, "order")[-1:] == ("DESC",),
        limit=_g(t, "limit", 0), offset=_g(t, "offset", 0), slimit=_g(t, "slimit", 0),
        soffset=_g(t, "soffset", 0), tz=_g(t, "tz"), into=_g(t, "into"))


select_stmt <<= (
    S("SELECT") - fields("fields") + pp.Opt(S("INTO") - into_target("into"))
    - S("FROM") - from_sources("sources") + pp.Opt(where_clause("where"))
    + pp.Opt(group_by("dims")) + pp.Opt(fill_clause("fill")) + pp.Opt(order_clause("order"))
    + pp.Opt(_clause("LIMIT")("limit")) + pp.Opt(_clause("OFFSET")("offset"))
    + pp.Opt(_clause("SLIMIT")("slimit")) + pp.Opt(_clause("SOFFSET")("soffset"))
    + pp.Opt(tz_clause("tz"))
).set_parse_action(_select_action)

# --- SHOW -------------------------------------------------------------------------------------

on_db = S("ON") - ident
from_clause = S("FROM") - sources
limit_offset = pp.Opt(_clause("LIMIT")("limit")) + pp.Opt(_clause("OFFSET")("offset"))


def _with_key_action(t):
    op = t[0]
    if op in ("=~", "!~"):
        return _Box((op, (), t[1].pattern))
    if op.upper() == "IN":
        return _Box(("IN", tuple(t[1]), None))
    return _Box((op, (t[1],), None))


with_key = (S("WITH") - S("KEY") - (
    (Regex(r"=~|!~") - regex_lit) | (Regex(r"!=|<>|=") - ident) | (K("IN") - LPAR - ident_list - RPAR)
).set_name("=, !=, =~, !~, IN")).set_parse_action(_with_key_action)


def _g(t, name, default=None):
    """A named scalar (pyparsing wraps a named And's single token in a list; unwrap it)."""
    if name not in t:
        return default
    v = t[name]
    while isinstance(v, pp.ParseResults):
        v = v[0]
    return v


def _seq(t, name) -> tuple:
    """A named Group as a tuple (unwrapping the list a named And puts around it)."""
    if name not in t:
        return ()
    v = t[name]
    if len(v) == 1 and isinstance(v[0], pp.ParseResults):
        v = v[0]
    return tuple(v)


def _show_measurements(t):
    wm = None
    if "wm_re" in t:
        wm = ast.Measurement(regex=_g(t, "wm_re").pattern)
    elif "wm_name" in t:
        wm = ast.Measurement(_g(t, "wm_name"))
    return ast.ShowMeasurements(_g(t, "db"), wm, _g(t, "where"), _g(t, "limit", 0), _g(t, "offset", 0))


show_measurements = (
    S("MEASUREMENTS") + pp.Opt(on_db("db"))
    + pp.Opt(S("WITH") - S("MEASUREMENT") - (
        (Suppress(Literal("=~")) - regex_lit("wm_re")) | (Suppress(Literal("=")) - ident("wm_name"))
    ).set_name("=, =~"))
    + pp.Opt(where_clause("where")) + limit_offset
).set_parse_action(_show_measurements)

_exact = pp.Opt(K("EXACT")("exact")) + S("CARDINALITY") + pp.Opt(K("EXACT")("exact"))


def _cardinality(kind):
    def action(t):
        key_op, keys, key_re = _g(t, "key").value if "key" in t else (None, (), None)
        return ast.ShowCardinality(
            kind, "exact" in t, _g(t, "db"), _seq(t, "from"), key_op, keys,
            key_re, _g(t, "where"), _seq(t, "dims"), _g(t, "limit", 0),
            _g(t, "offset", 0))
    return action


def _cardinality_tail(kind, with_key_required=False):
    key = with_key("key") if with_key_required else pp.Empty()
    return (_exact + pp.Opt(on_db("db")) + pp.Opt(from_clause("from")) + key + pp.Opt(where_clause("where"))
            + pp.Opt(group_by("dims")) + limit_offset).set_parse_action(_cardinality(kind))


show_series = S("SERIES") - (
    _cardinality_tail("series")
    | (pp.Opt(on_db("db")) + pp.Opt(from_clause("from")) + pp.Opt(where_clause("where")) + limit_offset)
    .set_parse_action(lambda t: ast.ShowSeries(_g(t, "db"), _seq(t, "from"),
                                               _g(t, "where"), _g(t, "limit", 0), _g(t, "offset", 0)))
)
show_measurement_card = S("MEASUREMENT") - _cardinality_tail("measurement")


def _tag_values(t):
    op, keys, key_re = _g(t, "key").value
    return ast.ShowTagValues(op, keys, key_re, _g(t, "db"), _seq(t, "from"),
                             _g(t, "where"), _g(t, "limit", 0), _g(t, "offset", 0))


show_tag = S("TAG") - (
    (S("KEYS") + pp.Opt(on_db("db")) + pp.Opt(from_clause("from")) + pp.Opt(where_clause("where"))
     + limit_offset + pp.Opt(_clause("SLIMIT")("slimit")) + pp.Opt(_clause("SOFFSET")("soffset")))
    .set_parse_action(lambda t: ast.ShowTagKeys(
        _g(t, "db"), _seq(t, "from"), _g(t, "where"), _g(t, "limit", 0),
        _g(t, "offset", 0), _g(t, "slimit", 0), _g(t, "soffset", 0)))
    | (S("KEY") - _cardinality_tail("tag key"))
    | (S("VALUES") - (
        _cardinality_tail("tag values", with_key_required=True)
        | (pp.Opt(on_db("db")) + pp.Opt(from_clause("from")) - with_key("key") + pp.Opt(where_clause("where"))
           + limit_offset).set_parse_action(_tag_values)))
).set_name("KEYS, KEY, VALUES")

show_field = S("FIELD") - (
    (S("KEYS") + pp.Opt(on_db("db")) + pp.Opt(from_clause("from")) + limit_offset)
    .set_parse_action(lambda t: ast.ShowFieldKeys(_g(t, "db"), _seq(t, "from"),
                                                  _g(t, "limit", 0), _g(t, "offset", 0)))
    | (S("KEY") - _cardinality_tail("field key"))
).set_name("KEYS, KEY")


def _const(cls):
    return lambda: cls()


show_stmt = S("SHOW") - (
    K("DATABASES").set_parse_action(_const(ast.ShowDatabases))
    | show_measurements
    | show_measurement_card
    | show_series
    | show_tag
    | show_field
    | (S("RETENTION") - S("POLICIES") + pp.Opt(on_db)).set_parse_action(
        lambda t: ast.ShowRetentionPolicies(t[0] if t else None))
    | (S("CONTINUOUS") - K("QUERIES")).set_parse_action(_const(ast.ShowContinuousQueries))
    | K("QUERIES").set_parse_action(_const(ast.ShowQueries))
    | K("SUBSCRIPTIONS").set_parse_action(_const(ast.ShowSubscriptions))
    | K("USERS").set_parse_action(_const(ast.ShowUsers))
    | (S("GRANTS") - S("FOR") - ident).set_parse_action(lambda t: ast.ShowGrants(t[0]))
    | (S("SHARD") - K("GROUPS")).set_parse_action(_const(ast.ShowShardGroups))
    | K("SHARDS").set_parse_action(_const(ast.ShowShards))
    | (S("STATS") + pp.Opt(S("FOR") - string_plain)).set_parse_action(
        lambda t: ast.ShowStats(t[0] if t else None))
    | (S("DIAGNOSTICS") + pp.Opt(S("FOR") - string_plain)).set_parse_action(
        lambda t: ast.ShowDiagnostics(t[0] if t else None))
).set_name("CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, MEASUREMENT, MEASUREMENTS, QUERIES, "
           "RETENTION, SERIES, SHARD, SHARDS, STATS, SUBSCRIPTIONS, TAG, USERS")

# --- CREATE / ALTER / DROP / DELETE / KILL / GRANT / REVOKE / SET / EXPLAIN --------------------


def _create_database(s, loc, t):
    has_with = "with" in t
    opts = [_g(t, "dur"), _g(t, "repl"), _g(t, "sdur"), _g(t, "rpname")]
    if has_with and all(o is None for o in opts):
        after_with = s.upper().find("WITH", loc) + len("WITH")
        raise pp.ParseFatalException(s, after_with, "Expected DURATION, REPLICATION, SHARD, NAME")
    return ast.CreateDatabase(_g(t, "name"), *opts)


create_database = (
    S("DATABASE") - ident("name") + pp.Opt(
        K("WITH")("with")
        + pp.Opt(S("DURATION") - rp_duration("dur"))
        + pp.Opt(S("REPLICATION") - int_plain("repl"))
        + pp.Opt(S("SHARD") - S("DURATION") - rp_duration("sdur"))
        + pp.Opt(S("NAME") - ident("rpname")))
).set_parse_action(_create_database)

create_rp = (
    S("RETENTION") - S("POLICY") - ident("name") - on_db("db")
    - S("DURATION") - rp_duration("dur") - S("REPLICATION") - int_plain("repl")
    + pp.Opt(S("SHARD") - S("DURATION") - rp_duration("sdur"))
    + pp.Opt(K("DEFAULT")("default"))
).set_parse_action(lambda t: ast.CreateRetentionPolicy(
    _g(t, "name"), _g(t, "db"), _g(t, "dur"), _g(t, "repl"), _g(t, "sdur"), "default" in t))

def _here(name: str):
    """An empty match that yields its own offset (where the next token starts), so an action
    can point an error at a place inside the production."""
    return pp.Empty().set_parse_action(lambda s, loc, t: [loc])(name)


_FROM_AT = re.compile(r"(?i)\bFROM\b")


def cq_group_by_interval(select: ast.SelectStatement) -> int | None:
    """The GROUP BY time() interval of a continuous query's SELECT, or None without one."""
    for d in select.dimensions:
        if isinstance(d, ast.Call) and d.name == "time" and d.args and isinstance(d.args[0], ast.DurationLiteral):
            return d.args[0].ns
    return None


def _create_cq(s, loc, t):
    # InfluxDB 1.x rejects these at parse time (HTTP 400), so we do too. The CQ service repeats
    # the checks (statements may reach it without this parser).
    select = _g(t, "select")
    if select.into is None:
        m = _FROM_AT.search(s, _g(t, "select_at"))
        raise pp.ParseFatalException(s, m.start() if m else _g(t, "select_at"), "found FROM, expected INTO")
    interval = cq_group_by_interval(select)
    if interval is None:
        raise pp.ParseFatalException(s, _g(t, "end_at"), f"found {_found(s, _g(t, 'end_at'))}, expected GROUP BY time(...)")
    every, for_ = _g(t, "every"), _g(t, "for")
    # The interval is checked against FOR here, so the statement cache must not re-bind it:
    # unrecorded, its token is "fixed" (a cached shape is reused only for the same interval).
    if _recording is not None:
        for d in select.dimensions:
            if isinstance(d, ast.Call) and d.name == "time" and d.args:
                _recording.pop(id(d.args[0]), None)
    if for_ is not None and for_ < interval:
        raise pp.ParseFatalException(
            s, _g(t, "for_at", loc), "FOR duration must be >= GROUP BY time duration: must be a minimum of "
            f"{ast.format_duration(interval)}, got {ast.format_duration(for_)}")
    return ast.CreateContinuousQuery(_g(t, "name"), _g(t, "db"), select, every, for_)


resample = S("RESAMPLE") + pp.Opt(S("EVERY") - duration_plain("every")) + pp.Opt(
    S("FOR") - (_here("for_at") + duration_plain("for")).set_name("duration"))
create_cq = (
    S("CONTINUOUS") - S("QUERY") - ident("name") - on_db("db") + pp.Opt(resample)
    - S("BEGIN") - (_here("select_at") + select_stmt("select")).set_name("SELECT")
    - (_here("end_at") + S("END")).set_name("END")
).set_parse_action(_create_cq)

create_subscription = (
    S("SUBSCRIPTION") - ident("name") - S("ON") - ident("db") - DOT - ident("rp")
    - S("DESTINATIONS") - (K("ALL") | K("ANY"))("mode") - pp.Group(pp.DelimitedList(string_plain))("dests")
).set_parse_action(lambda t: ast.CreateSubscription(_g(t, "name"), _g(t, "db"), _g(t, "rp"), _g(t, "mode"), _seq(t, "dests")))

create_user = (
    S("USER") - ident("name") - S("WITH") - S("PASSWORD") - string_plain("pw")
    + pp.Opt(K("WITH") - S("ALL") - S("PRIVILEGES"))("admin")
).set_parse_action(lambda t: ast.CreateUser(_g(t, "name"), _g(t, "pw"), "admin" in t))

create_stmt = S("CREATE") - (
    create_database | create_rp | create_cq | create_subscription | create_user
).set_name("CONTINUOUS, DATABASE, USER, RETENTION, SUBSCRIPTION")


def _alter_rp(s, loc, t):
    opts = {"duration": None, "replication": None, "shard_duration": None, "default": False}
    for kind, value in _seq(t, "opts"):
        opts[kind] = value
    return ast.AlterRetentionPolicy(_g(t, "name"), _g(t, "db"), **opts)


alter_opt = pp.Group(
    (K("DURATION").set_parse_action(lambda: "duration") - rp_duration)
    | (K("REPLICATION").set_parse_action(lambda: "replication") - int_plain)
    | (K("SHARD").set_parse_action(lambda: "shard_duration") - S("DURATION") - rp_duration)
    | K("DEFAULT").set_parse_action(lambda: ["default", True])
).set_name("DURATION, REPLICATION, SHARD, DEFAULT")
alter_stmt = (
    S("ALTER") - S("RETENTION") - S("POLICY") - ident("name") - on_db("db")
    - pp.Group(pp.OneOrMore(alter_opt))("opts")
).set_parse_action(_alter_rp)


def _require_from_or_where(what, keyword):
    def action(s, loc, t):
        if "from" not in t and "where" not in t:
            raise pp.ParseFatalException(s, loc + len(keyword), "Expected FROM, WHERE")
        return what(_seq(t, "from"), _g(t, "where"))
    return action


drop_series = (S("SERIES") + pp.Opt(from_clause("from")) + pp.Opt(where_clause("where"))
               ).set_parse_action(_require_from_or_where(ast.DropSeries, "SERIES"))
drop_stmt = S("DROP") - (
    (S("DATABASE") - ident).set_parse_action(lambda t: ast.DropDatabase(t[0]))
    | (S("RETENTION") - S("POLICY") - ident - on_db).set_parse_action(
        lambda t: ast.DropRetentionPolicy(t[0], t[1]))
    | drop_series
    | (S("MEASUREMENT") - ident).set_parse_action(lambda t: ast.DropMeasurement(t[0]))
    | (S("SHARD") - int_plain).set_parse_action(lambda t: ast.DropShard(t[0]))
    | (S("CONTINUOUS") - S("QUERY") - ident - on_db).set_parse_action(
        lambda t: ast.DropContinuousQuery(t[0], t[1]))
    | (S("SUBSCRIPTION") - ident - S("ON") - ident - DOT - ident).set_parse_action(
        lambda t: ast.DropSubscription(t[0], t[1], t[2]))
    | (S("USER") - ident).set_parse_action(lambda t: ast.DropUser(t[0]))
).set_name("CONTINUOUS, DATABASE, MEASUREMENT, RETENTION, SERIES, SHARD, SUBSCRIPTION, USER")

delete_stmt = (S("DELETE") + pp.Opt(from_clause("from")) + pp.Opt(where_clause("where"))
               ).set_parse_action(_require_from_or_where(ast.DeleteStatement, "DELETE"))

kill_stmt = (S("KILL") - S("QUERY") - int_plain + pp.Opt(on_db)).set_parse_action(
    lambda t: ast.KillQuery(t[0], t[1] if len(t) > 1 else None))

privilege = (K("READ") | K("WRITE") | K("ALL")).set_name("READ, WRITE, ALL")


def _grant(cls, to_word):
    # "ALL [PRIVILEGES] TO user" (the admin grant) is tried first; any other form needs ON db.
    admin = (Suppress(K("ALL")) + pp.Opt(S("PRIVILEGES")) + S(to_word) - ident).set_parse_action(
        lambda t: cls("ALL", t[0]))
    on_database = (privilege + pp.Opt(S("PRIVILEGES")) - on_db - S(to_word) - ident).set_parse_action(
        lambda t: cls(t[0], t[2], t[1]))
    return admin | on_database


grant_stmt = S("GRANT") - _grant(ast.Grant, "TO")
revoke_stmt = S("REVOKE") - _grant(ast.Revoke, "FROM")
set_password = (S("SET") - S("PASSWORD") - S("FOR") - ident - Suppress(Literal("="))
                - string_plain).set_parse_action(lambda t: ast.SetPassword(t[0], t[1]))
explain_stmt = (S("EXPLAIN") + pp.Opt(K("ANALYZE")) - select_stmt).set_parse_action(
    lambda t: ast.ExplainStatement(t[-1], len(t) == 2))

statement = (
    select_stmt | show_stmt | create_stmt | drop_stmt | delete_stmt | explain_stmt | alter_stmt
    | grant_stmt | revoke_stmt | kill_stmt | set_password
).set_name("SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL")

END = StringEnd().set_name(";")
query = (statement + ZeroOrMore(Suppress(Literal(";")) - (StringEnd() | statement).set_name(statement.name))
         + END)
query.ignore(Regex(r"--[^\n]*"))
query.ignore(Regex(r"/\*(?s:.*?)\*/"))


# --- entry points -----------------------------------------------------------------------------

_TOKEN_AT = re.compile(
    r"\s*(?:(" + STRING_PATTERN + "|" + QUOTED_IDENT_PATTERN + "|" + DURATION_PATTERN + "|"
    + FLOAT_PATTERN + "|" + INTEGER_PATTERN + r"|\w+|=~|!~|!=|<>|<=|>=|::|\S))?")


def _found(text: str, loc: int) -> str:
    m = _TOKEN_AT.match(text, loc)
    tok = m.group(1) if m else None
    return tok if tok else "EOF"


def _expected(msg: str) -> str:
    if msg.startswith("Expected "):
        msg = msg[len("Expected "):]
    msg = re.sub(r",?\s*found .*$", "", msg, flags=re.S)
    msg = msg.replace("{", "").replace("}", "").replace(" | ", ", ")
    msg = re.sub(r"'([^']*)'", r"\1", msg)
    msg = re.sub(r"\bend of text\b|\bStringEnd\b", "EOF", msg)
    return msg.strip()


def _to_parse_error(text: str, e: pp.ParseBaseException) -> ParseError:
    loc = min(e.loc, len(text))
    # Report at the token, not at the whitespace before it.
    while loc < len(text) and text[loc].isspace():
        loc += 1
    line = text.count("\n", 0, loc) + 1
    column = loc - (text.rfind("\n", 0, loc) + 1) + 1
    found = _found(text, loc)
    msg = e.msg or ""
    if msg.startswith("Expected") or msg.startswith("found"):
        if msg.startswith("found"):
            return ParseError(msg, line, column, found, "")
        expected = _expected(msg)
        return ParseError(f"found {found}, expected {expected}", line, column, found, expected)
    return ParseError(msg, line, column, found, "")


def _run(text: str) -> list:
    try:
        return list(query.parse_string(text, parse_all=True))
    except pp.ParseBaseException as e:
        raise _to_parse_error(text, e) from None
    except RecursionError:
        raise ParseError("query nests too deeply", 1, 1) from None


def parse_recording(text: str):
    """Cold parse that also returns the literal sites: ``{id(node): (offset, raw, node)}``."""
    if not isinstance(text, str):
        raise TypeError(f"query must be str, not {type(text).__name__}")
    global _recording
    with _lock:
        _recording = {}
        try:
            return _run(text), _recording
        finally:
            _recording = None


def parse_uncached(text: str) -> list:
    """Parse with pyparsing every time (the cache's cold path; tests compare against it)."""
    return parse_recording(text)[0]
