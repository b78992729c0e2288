"""Tag expressions: values, InfluxDB 1.x semantics on one series, and regex vetting."""
import pytest

from chronosdb.model.tagexpr import (
    MAX_PATTERN_LENGTH,
    And,
    Or,
    TagEquals,
    TagNotEquals,
    TagNotRegex,
    TagRegex,
    check_pattern,
)

HOST_A = {b"host": b"a", b"region": b"us"}
NO_REGION = {b"host": b"b"}


def test_equals_matches_value_and_empty_means_missing():
    assert TagEquals(b"host", b"a").matches(HOST_A)
    assert not TagEquals(b"host", b"a").matches(NO_REGION)
    assert TagEquals(b"region", b"").matches(NO_REGION)
    assert not TagEquals(b"region", b"").matches(HOST_A)


def test_not_equals_includes_series_without_the_tag():
    assert TagNotEquals(b"region", b"us").matches(NO_REGION)
    assert not TagNotEquals(b"region", b"us").matches(HOST_A)
    assert TagNotEquals(b"region", b"").matches(HOST_A)  # "has the tag"
    assert not TagNotEquals(b"region", b"").matches(NO_REGION)


def test_regex_searches_value_and_missing_tag_reads_empty():
    assert TagRegex(b"host", "a").matches(HOST_A)
    assert TagRegex(b"region", "^u").matches(HOST_A)
    assert not TagRegex(b"region", "^u").matches(NO_REGION)
    assert TagRegex(b"region", "^$").matches(NO_REGION)
    assert TagRegex(b"region", "x*").matches(NO_REGION)  # matches the empty string
    assert TagNotRegex(b"region", "^u").matches(NO_REGION)
    assert not TagNotRegex(b"region", "s").matches(HOST_A)


def test_and_or():
    e = Or(And(TagEquals(b"host", b"a"), TagEquals(b"region", b"us")), TagEquals(b"host", b"b"))
    assert e.matches(HOST_A) and e.matches(NO_REGION)
    assert not e.matches({b"host": b"c"})


def test_values_are_immutable_and_compare_by_value():
    e = TagEquals("host", "a")
    assert e == TagEquals(b"host", b"a") and hash(e) == hash(TagEquals(b"host", b"a"))
    assert e != TagNotEquals(b"host", b"a")
    with pytest.raises(AttributeError):
        e.key = b"x"
    r = TagRegex(b"h", "^a")
    assert r == TagRegex(b"h", "^a") and r.regex.pattern == "^a"
    with pytest.raises(AttributeError):
        r.pattern = "b"
    assert And(e, r) == And(TagEquals(b"host", b"a"), TagRegex(b"h", "^a"))
    with pytest.raises(TypeError):
        And(e, "not an expr")


def test_non_utf8_values_do_not_crash_regex():
    assert TagRegex(b"k", "^a").matches({b"k": b"a\xff\xfe"})


@pytest.mark.parametrize("pattern", [
    "(a+)+", "(a*)*", "(a|a)*", "(a|ab)+", "(a{1,9})*", "(a?)+", r"(\w+\s?)+$", "(x+x+)+y",
    "(|a)*", r"(a)\1", ".*.*.*.*.*.*.*x", "a" * (MAX_PATTERN_LENGTH + 1), "(unclosed",
])
def test_pathological_or_invalid_patterns_are_rejected_naming_the_pattern(pattern):
    with pytest.raises(ValueError) as e:
        TagRegex(b"k", pattern)
    assert pattern[:20] in str(e.value)


@pytest.mark.parametrize("pattern", [
    "^host_1", "cpu|mem", "(foo|bar)*", "a+b+c", ".*x.*", r"^(us|eu)-west-[0-9]+$",
    "[a-z]+_[0-9]{1,3}", "(ab)+", "(ab{2})+", "x*", "(?i)^HOST",
])
def test_ordinary_patterns_are_accepted(pattern):
    check_pattern(pattern)
    TagNotRegex(b"k", pattern)
