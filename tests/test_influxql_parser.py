"""InfluxQL grammar, AST rendering and the parsed-statement cache.

Claims checked: every statement kind parses into its node; operator precedence and
associativity; quoting and escaping; duration and time literals; errors name what was found,
what was expected, line and column (InfluxDB 1.x wording); ``parse(str(ast)) == ast`` on a corpus
and on hypothesis-generated trees; a cache hit equals a cold parse of the same text, shapes never
collide, and the LRU bound holds.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronosdb.model.errors import BadRequest
from chronosdb.query.influxql import ParseError, StatementCache, parse, parse_statement, parse_uncached
from chronosdb.query.influxql import ast as A
from chronosdb.query.influxql.durations import (
    format_duration, format_time, parse_duration, parse_time,
)

V = A.VarRef


def one(text):
    stmts = parse_uncached(text)
    assert len(stmts) == 1
    return stmts[0]


def where(text):
    return one(f"SELECT x FROM m WHERE {text}").condition


def field(text):
    return one(f"SELECT {text} FROM m").fields[0].expr


# --- expressions --------------------------------------------------------------------------------

def test_precedence_mul_over_add_over_comparison_over_and_over_or():
    e = where("a = 1 OR b + 2 * c > 3 AND d")
    assert e == A.BinaryExpr(
        "OR",
        A.BinaryExpr("=", V("a"), A.IntegerLiteral(1)),
        A.BinaryExpr(
            "AND",
            A.BinaryExpr(">", A.BinaryExpr("+", V("b"), A.BinaryExpr("*", A.IntegerLiteral(2), V("c"))),
                         A.IntegerLiteral(3)),
            V("d")))


def test_left_associativity_and_parentheses():
    assert field("a - b - c") == A.BinaryExpr("-", A.BinaryExpr("-", V("a"), V("b")), V("c"))
    assert field("a - (b - c)") == A.BinaryExpr("-", V("a"), A.BinaryExpr("-", V("b"), V("c")))
    assert field("a / b * c % d") == A.BinaryExpr(
        "%", A.BinaryExpr("*", A.BinaryExpr("/", V("a"), V("b")), V("c")), V("d"))
    assert field("(a + b) * c") == A.BinaryExpr("*", A.BinaryExpr("+", V("a"), V("b")), V("c"))
    assert str(field("(a + b) * c")) == "(a + b) * c"
    assert str(field("a - (b - c)")) == "a - (b - c)"
    assert str(field("((a))")) == "a"


def test_unary_minus_binds_tighter_than_binary():
    assert field("-a * b") == A.BinaryExpr("*", A.UnaryExpr("-", V("a")), V("b"))
    assert field("-(a + b)") == A.UnaryExpr("-", A.BinaryExpr("+", V("a"), V("b")))
    assert field("a - -1") == A.BinaryExpr("-", V("a"), A.UnaryExpr("-", A.IntegerLiteral(1)))
    assert str(A.UnaryExpr("-", A.UnaryExpr("-", V("a")))) == "-(-a)"


def test_literals():
    assert field("42") == A.IntegerLiteral(42)
    assert field("1.5") == A.NumberLiteral(1.5)
    assert field(".5") == A.NumberLiteral(0.5)
    assert field("3.") == A.NumberLiteral(3.0)
    assert field("'it\\'s'") == A.StringLiteral("it's")
    assert field("TRUE") == A.BooleanLiteral(True)
    assert field("false") == A.BooleanLiteral(False)
    assert field("/a\\/b.*/") == A.RegexLiteral("a/b.*")
    assert field("$host") == A.BoundParameter("host")
    assert field("now()") == A.NowCall()
    with pytest.raises(ParseError, match="integer out of range"):
        field("9223372036854775808")


def test_comparison_operators():
    for op in ("=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"):
        rhs = "/x/" if "~" in op else "1"
        e = where(f"a {op} {rhs}")
        assert isinstance(e, A.BinaryExpr) and e.op == op


def test_durations():
    for text, ns in [("1ns", 1), ("1u", 1000), ("1µ", 1000), ("1ms", 10**6), ("1s", 10**9),
                     ("1m", 60 * 10**9), ("1h", 3600 * 10**9), ("1d", 86400 * 10**9),
                     ("1w", 7 * 86400 * 10**9), ("1h30m", 5400 * 10**9)]:
        assert field(text) == A.DurationLiteral(ns)
        assert parse_duration(text) == ns
    assert format_duration(5400 * 10**9) == "90m"
    assert format_duration(1500) == "1500ns"
    assert format_duration(0) == "0s"
    with pytest.raises(ValueError):
        parse_duration("1x")
    with pytest.raises(ValueError, match="overflow"):
        parse_duration("99999999999w")


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_duration_format_parse_inverse(ns):
    assert parse_duration(format_duration(ns)) == ns


@given(st.integers(min_value=-2**63, max_value=2**63 - 1))
def test_time_format_parse_inverse(ns):
    assert parse_time(format_time(ns)) == ns


def test_time_literals_in_time_comparisons():
    e = where("time >= '2016-01-01T00:00:00Z' AND '2016-01-01 01:00:00.5' > time")
    assert e.lhs.rhs == A.TimeLiteral(1451606400 * 10**9, "2016-01-01T00:00:00Z")
    assert e.rhs.lhs == A.TimeLiteral(1451610000 * 10**9 + 5 * 10**8, "2016-01-01 01:00:00.5")
    assert parse_time("2016-01-01T02:00:00+02:00") == parse_time("2016-01-01T00:00:00Z")
    assert parse_time("2016-01-01") == 1451606400 * 10**9
    # Not against time: a plain string.
    assert where("host = '2016-01-01'").rhs == A.StringLiteral("2016-01-01")
    assert where("time > now() - 1h") == A.BinaryExpr(
        ">", V("time"), A.BinaryExpr("-", A.NowCall(), A.DurationLiteral(3600 * 10**9)))
    assert where("time > 1700000000000ms").rhs == A.DurationLiteral(1700000000000 * 10**6)
    assert where("time > 1700000000000000000").rhs == A.IntegerLiteral(1700000000000000000)
    with pytest.raises(ParseError, match="invalid time literal") as ei:
        where("time > 'yesterday'")
    assert ei.value.column == 30  # the opening quote


def test_identifiers_quoting_and_case():
    assert field('"my \\"odd\\" field"') == V('my "odd" field')
    assert field('"select"') == V("select")
    assert field("Usage") == V("Usage")  # identifiers keep their case
    assert field("cpu.usage_user") == V("usage_user", None, "cpu")
    assert field('"cpu"."usage user"') == V("usage user", None, "cpu")
    assert field("x::float") == V("x", "float")
    assert field("x::TAG") == V("x", "tag")
    assert field("*::field") == A.Wildcard("field")
    for name in ['my field', 'a"b', "select", "Join", "TRUE", "1abc", "back\\slash", "new\nline", "ümlaut"]:
        assert field(A.quote_ident(name)) == V(name)
    assert A.quote_ident("host") == "host"
    assert A.quote_ident("from") == '"from"'


def test_strings_escapes_and_bad_escape():
    assert where("a = 'x\\\\y\\n\\'z'").rhs == A.StringLiteral("x\\y\n'z")
    with pytest.raises(ParseError, match="bad escape"):
        where("a = 'x\\qy'")
    for s in ["plain", "it's", "back\\slash", "line\nbreak", 'dq"']:
        assert where(f"a = {A.quote_string(s)}").rhs == A.StringLiteral(s)


def test_keywords_case_insensitive_functions_lowercased():
    a = one("select MEAN(x) from m where a = 1 and b = 2 group by TIME(1m) FILL(Previous) order by TIME desc")
    b = one("SELECT mean(x) FROM m WHERE a = 1 AND b = 2 GROUP BY time(1m) fill(previous) ORDER BY time DESC")
    assert a == b


def test_comments_are_whitespace():
    assert one("SELECT x -- the field\nFROM /* the measurement */ m") == one("SELECT x FROM m")


# --- SELECT -------------------------------------------------------------------------------------

def test_select_full():
    s = one("SELECT mean(\"value\") AS v, max(x) INTO db.rp.out FROM db.rp.m WHERE host =~ /web.*/ "
            "GROUP BY time(10s, 5s), host, * fill(0) ORDER BY time DESC LIMIT 5 OFFSET 2 SLIMIT 3 "
            "SOFFSET 1 tz('Europe/Paris')")
    assert s.fields == (A.Field(A.Call("mean", (V("value"),)), "v"), A.Field(A.Call("max", (V("x"),))))
    assert s.into == A.Into("out", "db", "rp")
    assert s.sources == (A.Measurement("m", "db", "rp"),)
    assert s.condition == A.BinaryExpr("=~", V("host"), A.RegexLiteral("web.*"))
    assert s.dimensions == (A.Call("time", (A.DurationLiteral(10 * 10**9), A.DurationLiteral(5 * 10**9))),
                            V("host"), A.Wildcard())
    assert s.fill == A.Fill("value", 0)
    assert (s.order_desc, s.limit, s.offset, s.slimit, s.soffset, s.tz) == (True, 5, 2, 3, 1, "Europe/Paris")


@pytest.mark.parametrize("text, fill", [
    ("fill(null)", A.Fill("null")), ("fill(none)", A.Fill("none")), ("fill(previous)", A.Fill("previous")),
    ("fill(linear)", A.Fill("linear")), ("fill(-1)", A.Fill("value", -1)), ("fill(2.5)", A.Fill("value", 2.5)),
])
def test_fill(text, fill):
    s = one(f"SELECT mean(x) FROM m GROUP BY time(1m) {text}")
    assert s.fill == fill
    assert one(str(s)) == s


def test_functions_any_arguments():
    q = ("SELECT count(distinct(x)), integral(x, 1s), percentile(x, 95), sample(x, 3), top(x, host, 3), "
         "derivative(mean(x), 1s), moving_average(x, 3), elapsed(x, 1ms), pow(x, 2), merge(a, b), "
         "non_negative_derivative(max(x), 10s), holt_winters(first(x), 10, 4) FROM m GROUP BY time(1m)")
    s = one(q)
    assert s.fields[0].expr == A.Call("count", (A.Call("distinct", (V("x"),)),))
    assert s.fields[4].expr == A.Call("top", (V("x"), V("host"), A.IntegerLiteral(3)))
    assert s.fields[9].expr == A.Call("merge", (V("a"), V("b")))
    assert one("SELECT DISTINCT host FROM m").fields[0].expr == A.Call("distinct", (V("host"),))
    assert one(str(s)) == s


def test_sources():
    s = one("SELECT * FROM m, rp.m, db.rp.m, db..m, /cpu.*/, db.rp./re/, (SELECT max(x) FROM n)")
    assert s.sources == (
        A.Measurement("m"), A.Measurement("m", None, "rp"), A.Measurement("m", "db", "rp"),
        A.Measurement("m", "db"), A.Measurement(regex="cpu.*"), A.Measurement(None, "db", "rp", "re"),
        A.SubQuery(one("SELECT max(x) FROM n")))
    assert one(str(s)) == s


def test_into_back_reference():
    s = one("SELECT mean(x) INTO \"db\"..:MEASUREMENT FROM /.*/ GROUP BY time(1h)")
    assert s.into == A.Into(None, "db")
    assert str(s.into) == "db..:MEASUREMENT"
    assert one("SELECT x INTO :MEASUREMENT FROM m").into == A.Into()


def test_join_extension():
    s = one('SELECT cpu.usage_user, "mem"."used" FROM cpu INNER JOIN mem ON host, region WHERE time > now() - 1h')
    assert s.sources == (A.Join("inner", A.Measurement("cpu"), A.Measurement("mem"), ("host", "region")),)
    assert s.fields[1].expr == V("used", None, "mem")
    chain = one("SELECT * FROM a FULL JOIN b ON (h) LEFT JOIN db.rp.c ON h JOIN d ON h").sources[0]
    assert chain == A.Join("inner", A.Join("left", A.Join("full", A.Measurement("a"), A.Measurement("b"), ("h",)),
                                           A.Measurement("c", "db", "rp"), ("h",)), A.Measurement("d"), ("h",))
    assert one(str(s)) == s
    # join words are not reserved
    assert one("SELECT * FROM left").sources == (A.Measurement("left"),)


def test_order_by_asc_is_default():
    assert one("SELECT x FROM m ORDER BY time ASC") == one("SELECT x FROM m")


# --- other statements -----------------------------------------------------------------------------

STATEMENTS = [
    ("SHOW DATABASES", A.ShowDatabases()),
    ("SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /cpu.*/ WHERE host = 'a' LIMIT 2 OFFSET 1",
     A.ShowMeasurements("db", A.Measurement(regex="cpu.*"),
                        A.BinaryExpr("=", V("host"), A.StringLiteral("a")), 2, 1)),
    ("SHOW MEASUREMENTS WITH MEASUREMENT = cpu", A.ShowMeasurements(None, A.Measurement("cpu"))),
    ("SHOW SERIES ON db FROM cpu WHERE host = 'a' LIMIT 10",
     A.ShowSeries("db", (A.Measurement("cpu"),), A.BinaryExpr("=", V("host"), A.StringLiteral("a")), 10)),
    ("SHOW TAG KEYS ON db FROM cpu, mem", A.ShowTagKeys("db", (A.Measurement("cpu"), A.Measurement("mem")))),
    ('SHOW TAG VALUES ON db FROM cpu WITH KEY = "host" WHERE region = \'eu\'',
     A.ShowTagValues("=", ("host",), None, "db", (A.Measurement("cpu"),),
                     A.BinaryExpr("=", V("region"), A.StringLiteral("eu")))),
    ("SHOW TAG VALUES WITH KEY != host", A.ShowTagValues("!=", ("host",))),
    ("SHOW TAG VALUES WITH KEY =~ /h.*/", A.ShowTagValues("=~", (), "h.*")),
    ("SHOW TAG VALUES WITH KEY !~ /h/", A.ShowTagValues("!~", (), "h")),
    ("SHOW TAG VALUES WITH KEY IN (host, region)", A.ShowTagValues("IN", ("host", "region"))),
    ("SHOW FIELD KEYS ON db FROM cpu", A.ShowFieldKeys("db", (A.Measurement("cpu"),))),
    ("SHOW RETENTION POLICIES ON db", A.ShowRetentionPolicies("db")),
    ("SHOW RETENTION POLICIES", A.ShowRetentionPolicies()),
    ("SHOW SERIES CARDINALITY ON db", A.ShowCardinality("series", False, "db")),
    ("SHOW SERIES EXACT CARDINALITY FROM cpu", A.ShowCardinality("series", True, None, (A.Measurement("cpu"),))),
    ("SHOW SERIES CARDINALITY EXACT", A.ShowCardinality("series", True)),
    ("SHOW MEASUREMENT EXACT CARDINALITY", A.ShowCardinality("measurement", True)),
    ("SHOW TAG KEY CARDINALITY", A.ShowCardinality("tag key")),
    ("SHOW FIELD KEY CARDINALITY ON db", A.ShowCardinality("field key", False, "db")),
    ("SHOW TAG VALUES CARDINALITY WITH KEY = host", A.ShowCardinality("tag values", key_op="=", keys=("host",))),
    ("SHOW CONTINUOUS QUERIES", A.ShowContinuousQueries()),
    ("SHOW QUERIES", A.ShowQueries()),
    ("SHOW SUBSCRIPTIONS", A.ShowSubscriptions()),
    ("SHOW USERS", A.ShowUsers()),
    ("SHOW GRANTS FOR bob", A.ShowGrants("bob")),
    ("SHOW SHARDS", A.ShowShards()),
    ("SHOW SHARD GROUPS", A.ShowShardGroups()),
    ("SHOW STATS", A.ShowStats()),
    ("SHOW STATS FOR 'shard'", A.ShowStats("shard")),
    ("SHOW DIAGNOSTICS", A.ShowDiagnostics()),
    ("CREATE DATABASE db", A.CreateDatabase("db")),
    ("CREATE DATABASE db WITH DURATION 30d REPLICATION 2 SHARD DURATION 1d NAME short",
     A.CreateDatabase("db", 30 * 86400 * 10**9, 2, 86400 * 10**9, "short")),
    ("CREATE DATABASE db WITH DURATION INF", A.CreateDatabase("db", 0)),
    ("DROP DATABASE db", A.DropDatabase("db")),
    ("CREATE RETENTION POLICY rp ON db DURATION 1h REPLICATION 1 SHARD DURATION 30m DEFAULT",
     A.CreateRetentionPolicy("rp", "db", 3600 * 10**9, 1, 1800 * 10**9, True)),
    ("CREATE RETENTION POLICY rp ON db DURATION INF REPLICATION 3", A.CreateRetentionPolicy("rp", "db", 0, 3)),
    ("ALTER RETENTION POLICY rp ON db REPLICATION 2 DEFAULT DURATION 2d",
     A.AlterRetentionPolicy("rp", "db", 2 * 86400 * 10**9, 2, None, True)),
    ("DROP RETENTION POLICY rp ON db", A.DropRetentionPolicy("rp", "db")),
    ("DELETE FROM cpu WHERE time < '2020-01-01T00:00:00Z'",
     A.DeleteStatement((A.Measurement("cpu"),), A.BinaryExpr(
         "<", V("time"), A.TimeLiteral(parse_time("2020-01-01T00:00:00Z"), "2020-01-01T00:00:00Z")))),
    ("DELETE FROM /c.*/", A.DeleteStatement((A.Measurement(regex="c.*"),))),
    ("DELETE WHERE host = 'a'", A.DeleteStatement((), A.BinaryExpr("=", V("host"), A.StringLiteral("a")))),
    ("DROP SERIES FROM cpu WHERE host = 'a'",
     A.DropSeries((A.Measurement("cpu"),), A.BinaryExpr("=", V("host"), A.StringLiteral("a")))),
    ("DROP MEASUREMENT cpu", A.DropMeasurement("cpu")),
    ("DROP SHARD 12", A.DropShard(12)),
    ("KILL QUERY 36", A.KillQuery(36)),
    ("KILL QUERY 36 ON node1", A.KillQuery(36, "node1")),
    ("DROP CONTINUOUS QUERY cq ON db", A.DropContinuousQuery("cq", "db")),
    ("CREATE SUBSCRIPTION sub ON db.autogen DESTINATIONS ANY 'udp://a:9090', 'udp://b:9090'",
     A.CreateSubscription("sub", "db", "autogen", "ANY", ("udp://a:9090", "udp://b:9090"))),
    ("DROP SUBSCRIPTION sub ON db.autogen", A.DropSubscription("sub", "db", "autogen")),
    ("CREATE USER bob WITH PASSWORD 'pw' WITH ALL PRIVILEGES", A.CreateUser("bob", "pw", True)),
    ("CREATE USER bob WITH PASSWORD 'pw'", A.CreateUser("bob", "pw")),
    ("DROP USER bob", A.DropUser("bob")),
    ("SET PASSWORD FOR bob = 'new'", A.SetPassword("bob", "new")),
    ("GRANT ALL PRIVILEGES TO bob", A.Grant("ALL", "bob")),
    ("GRANT READ ON db TO bob", A.Grant("READ", "bob", "db")),
    ("REVOKE ALL FROM bob", A.Revoke("ALL", "bob")),
    ("REVOKE WRITE ON db FROM bob", A.Revoke("WRITE", "bob", "db")),
]


@pytest.mark.parametrize("text, node", STATEMENTS, ids=[t for t, _ in STATEMENTS])
def test_statement_kinds(text, node):
    assert one(text) == node
    assert one(str(node)) == node


def test_continuous_query_and_explain():
    cq = one("CREATE CONTINUOUS QUERY cq ON db RESAMPLE EVERY 1h FOR 2h BEGIN "
             "SELECT mean(x) INTO db.rp.:MEASUREMENT FROM /.*/ GROUP BY time(1m), * END")
    assert (cq.name, cq.database, cq.resample_every, cq.resample_for) == ("cq", "db", 3600 * 10**9, 7200 * 10**9)
    assert cq.select.into == A.Into(None, "db", "rp")
    assert one(str(cq)) == cq
    ex = one("EXPLAIN ANALYZE SELECT x FROM m")
    assert ex == A.ExplainStatement(one("SELECT x FROM m"), True)
    assert one("EXPLAIN SELECT x FROM m").analyze is False


def test_several_statements():
    assert parse_uncached("SHOW DATABASES; SHOW USERS;") == [A.ShowDatabases(), A.ShowUsers()]
    assert parse_uncached("SHOW DATABASES ;\n SHOW USERS") == [A.ShowDatabases(), A.ShowUsers()]
    assert parse_statement("SHOW DATABASES;") == A.ShowDatabases()
    with pytest.raises(ParseError):
        parse_statement("SHOW DATABASES; SHOW USERS")


# --- errors -------------------------------------------------------------------------------------

ERRORS = [
    ("SELECT FROM m", "found FROM, expected identifier, string, number, bool at line 1, char 8"),
    ("SELECT * FROM m WHERE", "found EOF, expected identifier, string, number, bool at line 1, char 22"),
    ("SELECT * FROM", "found EOF, expected identifier at line 1, char 14"),
    ("SELEC * FROM m", "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, "
                       "ALTER, SET, KILL at line 1, char 1"),
    ("", "found EOF, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL "
         "at line 1, char 1"),
    ("SELECT * FROM m LIMT 3", "found LIMT, expected ; at line 1, char 17"),
    ("SELECT * FROM m GROUP time(1m)", "found time, expected BY at line 1, char 23"),
    ("SELECT a FROM m WHERE\n  x = = 3", "found =, expected identifier, string, number, bool at line 2, char 7"),
    ("SHOW DATABASES; SELEC x", "found SELEC, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, "
                                "REVOKE, ALTER, SET, KILL at line 1, char 17"),
    ("DROP SERIES", "found EOF, expected FROM, WHERE at line 1, char 12"),
    ("SELECT * FROM m LIMIT x", "found x, expected integer at line 1, char 23"),
    ("CREATE RETENTION POLICY rp ON db REPLICATION 1", "found REPLICATION, expected DURATION at line 1, char 34"),
    ("GRANT READ TO bob", "found TO, expected ON at line 1, char 12"),
    ("CREATE DATABASE db WITH foo", "found foo, expected DURATION, REPLICATION, SHARD, NAME at line 1, char 25"),
    ("SELECT * FROM m fill(maybe)", "found maybe, expected null, none, previous, linear, number at line 1, char 22"),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[t or "<empty>" for t, _ in ERRORS])
def test_errors_name_token_expectation_line_and_column(text, message):
    with pytest.raises(ParseError) as ei:
        parse(text)
    assert str(ei.value) == message
    assert isinstance(ei.value, BadRequest) and isinstance(ei.value, ValueError)
    assert ei.value.status == 400


def test_deep_nesting_is_a_parse_error_not_a_crash():
    with pytest.raises(ParseError):
        parse_uncached("SELECT " + "(" * 3000 + "x" + ")" * 3000 + " FROM m")


def test_non_str_rejected():
    with pytest.raises(TypeError):
        parse(b"SHOW DATABASES")


# --- round trip ---------------------------------------------------------------------------------

CORPUS = [
    'SELECT mean("value") FROM "m" WHERE time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(10s) fill(null)',
    "SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_1') AND time >= '2016-01-01T00:00:00Z' AND time < '2016-01-01T01:00:00Z' GROUP BY time(1m)",
    "SELECT max(usage_user), max(usage_system) FROM cpu WHERE (hostname = 'host_1' OR hostname = 'host_2') AND time >= '2016-01-01T00:00:00Z' GROUP BY time(1h), hostname ORDER BY time DESC LIMIT 5",
    "SELECT * FROM cpu WHERE usage_user > 90.0 AND time >= now() - 1h",
    "SELECT a + b * c - d / 2 % 3, -x, (a | b) & c ^ d FROM m",
    "SELECT \"weird \\\"name\\\"\"::float AS \"my alias\" FROM \"db\".\"rp\".\"meas ure\"",
    "SELECT count(*) FROM /^cpu/ WHERE host !~ /^web-\\/\\d+$/ GROUP BY /reg/, * SLIMIT 3 SOFFSET 1",
    "SELECT x FROM (SELECT mean(y) AS x FROM m GROUP BY time(5m)) WHERE x > 3 tz('America/Chicago')",
    "SHOW TAG VALUES FROM cpu WITH KEY IN (\"host\", region) WHERE time > now() - 1d LIMIT 3 OFFSET 1",
    "SELECT a FROM m WHERE $p = 'v' OR b = true",
]


@pytest.mark.parametrize("text", CORPUS)
def test_round_trip_corpus(text):
    stmts = parse_uncached(text)
    assert parse_uncached(A.render(stmts)) == stmts
    assert parse_uncached(A.render(stmts)) == parse_uncached(A.render(parse_uncached(A.render(stmts))))


NAMES = st.sampled_from(["host", "usage_user", "my field", 'q"uote', "select", "Join", "x1", "ümlaut",
                         "back\\slash", "tag", "value", "_"])
# "time" is left out: a string compared with time becomes a TimeLiteral, covered separately.
TEXT = st.text(alphabet="ab '\\\"\n/xyz-:", max_size=8)
REGEX = st.text(alphabet="abc./ ^$", min_size=1, max_size=6)
FLOATS = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)

leaves = st.one_of(
    st.builds(V, NAMES, st.none() | st.sampled_from(["float", "integer", "unsigned", "string", "boolean", "field", "tag"]),
              st.none() | NAMES),
    st.builds(A.IntegerLiteral, st.integers(min_value=0, max_value=2**63 - 1)),
    st.builds(A.NumberLiteral, FLOATS),
    st.builds(A.StringLiteral, TEXT),
    st.builds(A.BooleanLiteral, st.booleans()),
    st.builds(A.DurationLiteral, st.integers(min_value=0, max_value=2**63 - 1)),
    st.builds(A.RegexLiteral, REGEX),
    st.builds(A.BoundParameter, NAMES),
    st.just(A.NowCall()),
    st.builds(lambda op, ns: A.BinaryExpr(op, V("time"), A.TimeLiteral(ns, format_time(ns))),
              st.sampled_from(["<", ">=", "="]), st.integers(min_value=-2**63, max_value=2**63 - 1)),
)
FUNCS = st.sampled_from(["mean", "count", "top", "percentile", "merge", "derivative", "f_x"])


def _extend(children):
    return st.one_of(
        st.builds(A.BinaryExpr, st.sampled_from(sorted(A.PRECEDENCE)), children, children),
        st.builds(A.UnaryExpr, st.just("-"), children),
        st.builds(A.Call, FUNCS, st.lists(children, max_size=3).map(tuple)),
    )


EXPRS = st.recursive(leaves, _extend, max_leaves=12)
MEASUREMENTS = st.one_of(
    st.builds(A.Measurement, NAMES),
    st.builds(A.Measurement, NAMES, NAMES, st.none() | NAMES),
    st.builds(lambda rp, r: A.Measurement(None, None, rp, r), NAMES, REGEX),
)
SELECTS = st.builds(
    A.SelectStatement,
    fields=st.lists(st.builds(A.Field, EXPRS | st.builds(A.Wildcard, st.none() | st.sampled_from(["field", "tag"])),
                              st.none() | NAMES), min_size=1, max_size=3).map(tuple),
    sources=st.one_of(
        st.lists(MEASUREMENTS, min_size=1, max_size=3).map(tuple),
        st.builds(lambda k, l, r, on: (A.Join(k, l, r, tuple(on)),), st.sampled_from(["inner", "full", "left"]),
                  MEASUREMENTS, MEASUREMENTS, st.lists(NAMES, min_size=1, max_size=2)),
    ),
    condition=st.none() | EXPRS,
    dimensions=st.lists(st.one_of(
        st.builds(lambda d: A.Call("time", (A.DurationLiteral(d),)), st.integers(min_value=1, max_value=10**15)),
        st.builds(V, NAMES), st.just(A.Wildcard()), st.builds(A.RegexLiteral, REGEX)), max_size=3).map(tuple),
    fill=st.none() | st.builds(A.Fill, st.sampled_from(["null", "none", "previous", "linear"]))
    | st.builds(lambda v: A.Fill("value", v), st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6)),
    order_desc=st.booleans(),
    limit=st.integers(0, 100), offset=st.integers(0, 100), slimit=st.integers(0, 5), soffset=st.integers(0, 5),
    tz=st.none() | st.sampled_from(["UTC", "Europe/Paris", "it's"]),
    into=st.none() | st.builds(A.Into, st.none() | NAMES, st.none(), st.none() | NAMES),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRS)
def test_round_trip_expressions(e):
    stmt = A.SelectStatement((A.Field(e),), (A.Measurement("m"),))
    assert parse_uncached(str(stmt)) == [stmt]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SELECTS)
def test_round_trip_select_statements(stmt):
    assert parse_uncached(str(stmt)) == [stmt]


# --- cache --------------------------------------------------------------------------------------

GRAFANA = 'SELECT mean("value") FROM "m" WHERE time >= {a}ms and time <= {b}ms GROUP BY time({g}s) fill(null)'
TSBS = ("SELECT max(usage_user) FROM cpu WHERE (hostname = '{h}') AND time >= '{t1}' AND time < '{t2}' "
        "GROUP BY time({g}m) LIMIT {lim}")


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 2**40), b=st.integers(0, 2**40), g=st.integers(1, 3600),
       h=st.text(alphabet="abh_1'\\", max_size=8), t1=st.integers(0, 2**62), t2=st.integers(-2**62, 2**62),
       lim=st.integers(1, 3))
def test_cache_hit_equals_cold_parse(a, b, g, h, t1, t2, lim):
    cache = _warm_cache()
    q1 = GRAFANA.format(a=a, b=b, g=g)
    q2 = TSBS.format(h=h.replace("\\", "\\\\").replace("'", "\\'"), t1=format_time(t1), t2=format_time(t2), g=g, lim=lim)
    for q in (q1, q2):
        assert cache.parse(q) == parse_uncached(q)


_CACHE = StatementCache(64)


def _warm_cache():
    if not len(_CACHE):
        _CACHE.parse(GRAFANA.format(a=1, b=2, g=3))
        _CACHE.parse(TSBS.format(h="host_0", t1="2016-01-01T00:00:00Z", t2="2016-01-01T01:00:00Z", g=1, lim=1))
    return _CACHE


def test_cache_hits_skip_the_parser_and_results_are_independent():
    cache = StatementCache(8)
    first = cache.parse("SELECT x FROM m WHERE time > 1000 AND host = 'a'")
    second = cache.parse("SELECT x FROM m WHERE time > 2000 AND host = 'b'")
    assert (cache.misses, cache.hits) == (1, 1)
    assert second == parse_uncached("SELECT x FROM m WHERE time > 2000 AND host = 'b'")
    assert first == parse_uncached("SELECT x FROM m WHERE time > 1000 AND host = 'a'")
    second.append("caller's own list")
    assert len(cache.parse("SELECT x FROM m WHERE time > 3000 AND host = 'c'")) == 1


def test_cache_shapes_never_collide():
    cache = StatementCache(64)
    texts = ["SELECT x FROM m WHERE a = 1", "SELECT x FROM m WHERE a = 1.0", "SELECT x FROM m WHERE a = '1'",
             "SELECT x FROM m WHERE a = 1s", "SELECT x FROM m WHERE a = \"1\"", "SELECT x FROM m WHERE a = 2",
             "SELECT x FROM m WHERE a = 2.5", "SELECT x FROM m WHERE a =~ /1/", "SELECT x FROM m WHERE a =~ /2/",
             "SELECT x FROM m WHERE a = 1 LIMIT 1", "SELECT x FROM m WHERE a = 1 LIMIT 2",
             "SELECT x FROM m fill(1)", "SELECT x FROM m fill(2)", "SELECT x FROM m tz('a')", "SELECT x FROM m tz('b')",
             "SELECT x FROM m WHERE time > '2016-01-01'", "SELECT x FROM \"m 1\"", "SELECT x FROM \"m 2\"",
             "SELECT host_1 FROM m", "SELECT host_2 FROM m", "SELECT x FROM m WHERE a = 10",
             "SELECT percentile(x, 5) FROM m", "SELECT percentile(x, 9) FROM m"]
    for _ in range(2):  # second round: every text is answered from the cache (template or exact)
        for t in texts:
            assert cache.parse(t) == parse_uncached(t), t


def test_cache_bad_literal_on_hit_raises_like_a_cold_parse():
    cache = StatementCache(8)
    cache.parse("SELECT x FROM m WHERE time > '2016-01-01T00:00:00Z'")
    with pytest.raises(ParseError, match="invalid time literal"):
        cache.parse("SELECT x FROM m WHERE time > 'not a time'")
    cache.parse("SELECT x FROM m WHERE a > 5")
    with pytest.raises(ParseError, match="integer out of range"):
        cache.parse("SELECT x FROM m WHERE a > 99999999999999999999")
    with pytest.raises(ParseError, match="bad escape"):
        cache.parse("SELECT x FROM m WHERE time > '2016\\q'")


def test_cache_lru_bound():
    cache = StatementCache(3)
    for i in range(10):
        cache.parse(f"SELECT f{i} FROM m")
    assert len(cache) == 3
    misses = cache.misses
    cache.parse("SELECT f9 FROM m")  # most recent: a hit
    assert cache.misses == misses
    cache.parse("SELECT f0 FROM m")  # evicted long ago: a miss
    assert cache.misses == misses + 1
    assert len(cache) == 3
    with pytest.raises(ValueError):
        StatementCache(0)


def test_default_parse_uses_cache_transparently():
    q = "SELECT mean(v) FROM cpu WHERE time > now() - {n}h GROUP BY time(1m)"
    for n in (1, 2, 3, 24):
        assert parse(q.format(n=n)) == parse_uncached(q.format(n=n))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=__import__("datetime").datetime(1, 1, 1), max_value=__import__("datetime").datetime(9999, 12, 31)),
       st.sampled_from(["Z", "+02:00", "-05:30", ""]), st.booleans())
def test_parse_time_matches_datetime(dt, off, space):
    """The integer date arithmetic in parse_time against the standard library."""
    from datetime import datetime, timedelta, timezone
    text = dt.strftime("%Y-%m-%d") if dt.year >= 1000 else f"{dt.year:04d}" + dt.strftime("-%m-%d")
    text += (" " if space else "T") + dt.strftime("%H:%M:%S") + (f".{dt.microsecond:06d}" if dt.microsecond else "") + off
    tz = timezone.utc if off in ("Z", "") else timezone(
        (1 if off[0] == "+" else -1) * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    aware = dt.replace(tzinfo=tz)
    want = (aware - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000
    if -2**63 <= want < 2**63:
        assert parse_time(text) == want
    else:
        with pytest.raises(ValueError, match="out of range"):
            parse_time(text)


def test_parse_time_rejects_impossible_dates():
    for bad in ["2016-02-30", "2015-02-29T00:00:00Z", "2016-13-01", "2016-01-01T24:00:00Z", "2016-01-01T00:60:00Z",
                "2016-1-1", "2016-01-01Z"]:
        with pytest.raises(ValueError):
            parse_time(bad)
    assert parse_time("2016-02-29") == parse_time("2016-03-01") - 86400 * 10**9


_VARIANTS = {
    "i": st.integers(0, 10**20).map(str),
    "f": st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 10**6), st.integers(0, 999)),
    "d": st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**6), st.sampled_from(["ns", "u", "µ", "ms", "s", "m", "h", "d", "w"])),
    "s": st.sampled_from(["'2016-01-01T00:00:00Z'", "'2020-02-29 12:00:00.5'", "'2016-01-01'", "'abc'", "'x\\'y'",
                          "''", "'bad\\q'", "'2016-02-30'", "'9999-12-31T23:59:59Z'"]),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(SELECTS.map(str), st.sampled_from(CORPUS)), st.data())
def test_cache_rebinding_any_literal_equals_cold_parse(text, data):
    """Take a query, then texts of the same shape with every lifted literal replaced by another
    of its kind (including values a cold parse rejects): the cache answers exactly as a cold parse."""
    from chronosdb.query.influxql.cache import _TOKENS, _kind
    cache = StatementCache(4)
    cache.parse(text)
    parts = _TOKENS.split(text)
    for _ in range(3):
        variant = list(parts)
        for i in range(1, len(variant), 2):
            if variant[i][0] != '"':
                variant[i] = data.draw(_VARIANTS[_kind(variant[i])])
        v = "".join(variant)
        try:
            want = parse_uncached(v)
        except ParseError as e:
            with pytest.raises(ParseError) as ei:
                cache.parse(v)
            assert str(ei.value) == str(e)
        else:
            assert cache.parse(v) == want, v
