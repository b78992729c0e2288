"""chronosdb.ext.qlex against its specification (qlex_ref: the statement cache's regex lifting
and durations.parse_time)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chronosdb.ext import qlex, qlex_ref
from chronosdb.query.influxql.durations import format_time, parse_time

# Fragments that exercise every branch of the lifting: quotes and escapes (closed, unclosed, a
# newline inside), digits glued to words, dots and $, every duration unit (ms before m, a unit
# followed by a word character), floats in both forms, non-ASCII digits and letters.
FRAGMENTS = ["'", '"', "\\", "\\'", '\\"', "\n", "1", "23", "0", "007", ".", "..", "$", "_", "a",
             "x", "ns", "ms", "m", "s", "u", "µ", "h", "d", "w", "n", " ", "(", ")", "=", ",",
             "٣", "é", "ﬁ", "host_1", "time", ">=", "-", "+", "e5", "'2016-01-01T00:00:00Z'",
             "10m5s", "1.5", ".5", "3.", "1h30m", "SELECT", "/re/"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14))
def test_shape_of_equals_the_regex_lifting(parts):
    text = "".join(parts)
    assert qlex.shape_of(text) == qlex_ref.shape_of(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_shape_of_equals_the_regex_lifting_on_any_text(text):
    assert qlex.shape_of(text) == qlex_ref.shape_of(text)


def test_shape_of_cases():
    q = ("SELECT max(\"usage 1\") FROM cpu WHERE host = 'h\\'1' AND time >= '2016-01-01T00:00:00Z' "
         "AND x > 1.5 AND y < .5 AND z = 3 AND host_1 = a.5 GROUP BY time(1m30s) LIMIT 10")
    key, raws = qlex.shape_of(q)
    assert raws == ["'h\\'1'", "'2016-01-01T00:00:00Z'", "1.5", ".5", "3", "1m30s", "10"]
    assert (key, raws) == qlex_ref.shape_of(q)
    assert qlex.shape_of("") == ("", [])
    # a unit followed by a word character is no duration: the digits alone are the literal
    assert qlex.shape_of("5msx 5ms") == qlex_ref.shape_of("5msx 5ms") == ("\0imsx \0d", ["5", "5ms"])


def _time_text(ns: int, form: int) -> str:
    text = format_time(ns)
    if form == 1:
        return text.replace("T", " ")
    if form == 2:
        return text[:-1] + "+01:30"
    if form == 3:
        return text[:-1] + "z"
    return text


@settings(max_examples=2000, deadline=None)
@given(st.integers(-2**63, 2**63 - 1), st.integers(0, 3))
def test_rfc3339_equals_parse_time(ns, form):
    text = _time_text(ns, form)
    got = qlex.rfc3339_ns(text)
    want = qlex_ref.rfc3339_ns(text)
    assert got == want
    if want is not None and form == 0:
        assert got == ns


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789-:TZz+. ١", max_size=32))
def test_rfc3339_accepts_only_what_parse_time_accepts(text):
    got = qlex.rfc3339_ns(text)
    if got is not None:
        assert got == parse_time(text)


def test_rfc3339_cases():
    assert qlex.rfc3339_ns("2016-01-01") == 1451606400 * 10**9
    assert qlex.rfc3339_ns("2016-02-29T23:59:59.5+02:00") == parse_time("2016-02-29T23:59:59.5+02:00")
    assert qlex.rfc3339_ns("2262-04-11T23:47:16.854775807Z") == 2**63 - 1
    assert qlex.rfc3339_ns("1677-09-21T00:12:43.145224192Z") == -2**63
    # Left to parse_time, which raises or reads them: out of range, bad fields, an offset on a
    # date alone, ten fraction digits, non-ASCII digits.
    for text in ("2262-04-11T23:47:16.854775808Z", "1677-09-21T00:12:43.145224191Z", "2015-02-29",
                 "2016-13-01", "2016-01-01T24:00:00Z", "2016-01-01+01:00", "2016-01-01T00:00:00.1234567891Z",
                 "٢٠١٦-01-01", "2016-01-01T00:00:00.Z", "2016-01-01T00:00"):
        assert qlex.rfc3339_ns(text) is None, text
