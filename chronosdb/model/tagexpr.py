"""Tag expressions: the WHERE-clause predicates over a series' tags.

The query layer builds these small immutable values; the series index evaluates them against its
postings (``SeriesIndex.match``), and the pubsub matcher can evaluate them against one series' tag
mapping (``expr.matches(tags)``), which is also the brute-force reference the index is tested
against.

Semantics follow InfluxDB 1.x, where a missing tag reads as the empty string:

* ``TagEquals(k, b"")``      series WITHOUT tag ``k``;
* ``TagEquals(k, v)``        series whose ``k`` is ``v``;
* ``TagNotEquals(k, v)``     the complement of ``TagEquals(k, v)`` within the measurement, so it
  includes series without ``k`` (and ``TagNotEquals(k, b"")`` is "has tag ``k``");
* ``TagRegex(k, p)``         ``p`` searches (unanchored, like Go's ``MatchString``) the value of
  ``k``, or ``""`` when the series has no ``k``;
* ``TagNotRegex(k, p)``      its complement;
* ``And`` / ``Or``           intersection / union.

Keys and values are bytes; patterns are ``str`` and are matched against values decoded as UTF-8
(undecodable bytes become U+FFFD). A pattern is compiled once, when the expression is built.

Regex safety: Python's ``re`` backtracks, so a pattern such as ``(a+)+$`` can take exponential
time on a crafted value and hang a query thread. ``TagRegex`` therefore refuses, with a
``ValueError`` naming the pattern, patterns that are longer than ``MAX_PATTERN_LENGTH``, contain a
backreference (Go's RE2, which InfluxDB uses, has none either), nest a repeat inside an unbounded
repeat (``(a+)+``, ``(a*)*``, ``(a?)+``, ``(a{1,9})*``; a fixed ``{n}`` is fine), put an ambiguous alternation under an unbounded
repeat (``(a|a)*``, ``(a|ab)+``: branches that may begin with the same character or be empty), or
have more than ``MAX_UNBOUNDED_REPEATS`` unbounded repeats in total (``.*.*.*...`` backtracks
polynomially with a high degree). What remains backtracks at most polynomially with a small
degree in the value length, and tag values are short.
"""
from __future__ import annotations

import re
import re._constants as _sre_c
import re._parser as _sre_p
from typing import Mapping, Union

MAX_PATTERN_LENGTH = 1024  # far above any pattern seen in dashboards, far below a DoS payload
MAX_UNBOUNDED_REPEATS = 6  # ".*a.*b.*c.*" is common; more is a smell and a cost

_REPEATS = (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, getattr(_sre_c, "POSSESSIVE_REPEAT", None))


def _as_bytes(v, what: str) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be bytes or str, not {type(v).__name__}")


def _decode(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


# --- regex vetting ----------------------------------------------------------------------------

def _walk(items):
    """Yield every (op, arg) in a parsed pattern, depth first."""
    for op, arg in items:
        yield op, arg
        for sub in _children(op, arg):
            yield from _walk(sub)


def _children(op, arg):
    if op in _REPEATS:
        return [arg[2]]
    if op is _sre_c.SUBPATTERN:
        return [arg[3]]
    if op is _sre_c.BRANCH:
        return list(arg[1])
    if op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
        return [arg[1]]
    if op is getattr(_sre_c, "ATOMIC_GROUP", None):
        return [arg]
    if op is _sre_c.GROUPREF_EXISTS:
        return [b for b in arg[1:] if b is not None]
    return []


_ANY_FIRST = object()  # "may begin with any character": overlaps everything


def _first_chars(items):
    """The set of characters a sequence may begin with, ``_ANY_FIRST`` when unknown or broad,
    or ``None`` when the sequence may match the empty string (which overlaps too)."""
    for op, arg in items:
        if op is _sre_c.LITERAL:
            return {arg}
        if op in (_sre_c.AT,):  # anchors consume nothing
            continue
        if op is _sre_c.SUBPATTERN:
            return _first_chars(arg[3])
        if op is _sre_c.BRANCH:
            out = set()
            for b in arg[1]:
                f = _first_chars(b)
                if f is None or f is _ANY_FIRST:
                    return f
                out |= f
            return out
        if op in _REPEATS:
            if arg[0] == 0:
                return None
            return _first_chars(arg[2])
        return _ANY_FIRST  # IN, ANY, CATEGORY, NOT_LITERAL, ...: treat as broad
    return None


def _branches_overlap(branches) -> bool:
    seen: set = set()
    for b in branches:
        f = _first_chars(b)
        if f is None or f is _ANY_FIRST or (f & seen):
            return True
        seen |= f
    return False


def check_pattern(pattern: str) -> None:
    """Raise ValueError if ``pattern`` is one a backtracking engine could hang on."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"regex too long ({len(pattern)} > {MAX_PATTERN_LENGTH} characters): /{pattern[:40]}.../")
    try:
        parsed = _sre_p.parse(pattern)
    except re.error as e:
        raise ValueError(f"invalid regex /{pattern}/: {e}") from None
    unbounded = 0
    for op, arg in _walk(list(parsed)):
        if op in (_sre_c.GROUPREF, _sre_c.GROUPREF_EXISTS):
            raise ValueError(f"regex /{pattern}/ uses a backreference, which is not supported")
        if op in _REPEATS and arg[1] is _sre_c.MAXREPEAT:
            unbounded += 1
            body = list(arg[2])
            for inner_op, inner_arg in _walk(body):
                if inner_op in _REPEATS and inner_arg[0] != inner_arg[1]:  # only a fixed {n} is safe
                    raise ValueError(
                        f"regex /{pattern}/ nests a repeat inside an unbounded repeat "
                        "(catastrophic backtracking); rewrite it without the nesting"
                    )
                if inner_op is _sre_c.BRANCH and _branches_overlap(inner_arg[1]):
                    raise ValueError(
                        f"regex /{pattern}/ repeats an alternation whose branches overlap "
                        "(catastrophic backtracking); make the branches start differently"
                    )
    if unbounded > MAX_UNBOUNDED_REPEATS:
        raise ValueError(
            f"regex /{pattern}/ has {unbounded} unbounded repeats (at most {MAX_UNBOUNDED_REPEATS} allowed)"
        )


# --- expressions ------------------------------------------------------------------------------

class TagExpr:
    """Base class. Subclasses are immutable and compare by value."""

    __slots__ = ()

    def matches(self, tags: Mapping[bytes, bytes]) -> bool:  # pragma: no cover - abstract
        """Evaluate against one series' tags (missing tag = b""). The slow, obvious twin of
        ``SeriesIndex.match``."""
        raise NotImplementedError

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self._fields() == other._fields()

    def __hash__(self):
        return hash((type(self).__name__,) + self._fields())

    def __repr__(self):
        return f"{type(self).__name__}{self._fields()!r}"


class _KeyValue(TagExpr):
    __slots__ = ("key", "value")

    def __init__(self, key, value):
        object.__setattr__(self, "key", _as_bytes(key, "tag key"))
        object.__setattr__(self, "value", _as_bytes(value, "tag value"))

    def _fields(self):
        return (self.key, self.value)


class TagEquals(_KeyValue):
    """``key = 'value'``; with an empty value: the series has no such tag."""

    __slots__ = ()

    def matches(self, tags):
        return tags.get(self.key, b"") == self.value


class TagNotEquals(_KeyValue):
    """``key != 'value'``: includes series without the tag (unless value is empty)."""

    __slots__ = ()

    def matches(self, tags):
        return tags.get(self.key, b"") != self.value


class _KeyPattern(TagExpr):
    __slots__ = ("key", "pattern", "regex")

    def __init__(self, key, pattern):
        if isinstance(pattern, (bytes, bytearray)):
            pattern = bytes(pattern).decode()
        if not isinstance(pattern, str):
            raise TypeError(f"regex pattern must be str, not {type(pattern).__name__}")
        check_pattern(pattern)
        object.__setattr__(self, "key", _as_bytes(key, "tag key"))
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "regex", re.compile(pattern))

    def _fields(self):
        return (self.key, self.pattern)

    def value_matches(self, value: bytes) -> bool:
        """Does the pattern find a match in this tag value (b"" for a missing tag)?"""
        return self.regex.search(_decode(value)) is not None


class TagRegex(_KeyPattern):
    """``key =~ /pattern/``: the pattern searches the value ('' when the tag is missing)."""

    __slots__ = ()

    def matches(self, tags):
        return self.value_matches(tags.get(self.key, b""))


class TagNotRegex(_KeyPattern):
    """``key !~ /pattern/``: the negation of ``TagRegex``."""

    __slots__ = ()

    def matches(self, tags):
        return not self.value_matches(tags.get(self.key, b""))


class _Binary(TagExpr):
    __slots__ = ("left", "right")

    def __init__(self, left: TagExpr, right: TagExpr):
        for side in (left, right):
            if not isinstance(side, TagExpr):
                raise TypeError(f"{type(self).__name__} operands must be TagExpr, not {type(side).__name__}")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)

    def _fields(self):
        return (self.left, self.right)


class And(_Binary):
    __slots__ = ()

    def matches(self, tags):
        return self.left.matches(tags) and self.right.matches(tags)


class Or(_Binary):
    __slots__ = ()

    def matches(self, tags):
        return self.left.matches(tags) or self.right.matches(tags)


TagExprType = Union[TagEquals, TagNotEquals, TagRegex, TagNotRegex, And, Or]

__all__ = [
    "TagExpr", "TagEquals", "TagNotEquals", "TagRegex", "TagNotRegex", "And", "Or",
    "check_pattern", "MAX_PATTERN_LENGTH", "MAX_UNBOUNDED_REPEATS",
]
