"""The C query-string parser answers what urllib.parse.parse_qsl does (every request uses it)."""
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronosdb.ext.urlquery import parse_query_string

ALPHABET = st.sampled_from(list("ab=&+%%%0123456789aAfFgGzZ ;é€\x80\x7f\x00") + ["%2", "%e2%82%ac", "%C3%A9", "%FF"])


def reference(qs: str) -> dict:
    return dict(parse_qsl(qs, keep_blank_values=True))


@settings(max_examples=3000, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_same_as_urllib_on_awkward_strings(qs):
    assert parse_query_string(qs) == reference(qs)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=60), max_size=5))
def test_round_trips_what_urlencode_writes(params):
    qs = urlencode(params)
    assert parse_query_string(qs) == reference(qs) == params


@pytest.mark.parametrize("qs,want", [
    ("", {}), ("&&", {}), ("a", {"a": ""}), ("a=", {"a": ""}), ("=x", {"": "x"}),
    ("a=1&a=2", {"a": "2"}), ("q=SELECT+%2A+FROM+%22cpu%22", {"q": 'SELECT * FROM "cpu"'}),
    ("x=%zz%4", {"x": "%zz%4"}), ("e=%E2%82%AC", {"e": "€"}), ("bad=%FF", {"bad": "\ufffd"}),
])
def test_examples(qs, want):
    assert parse_query_string(qs) == want == reference(qs)


def test_rejects_non_str():
    with pytest.raises(TypeError):
        parse_query_string(b"a=1")
    with pytest.raises(TypeError):
        parse_query_string(None)
