"""The parsed-statement cache: parse each query *shape* once, re-bind its literals after that.

pyparsing costs about a millisecond per query, far too much to spend on every Grafana refresh,
and dashboards send the same few queries again and again with only their time bounds changed.
So one pass lifts the literals out of the text (strings, durations, floats, integers; quoted
identifiers are skipped over so nothing inside them is lifted), and the text with each literal
replaced by a marker of its kind is the *shape key*. The pass is C (``chronosdb.ext.qlex``); its
specification is one regex ``split`` (``shape_of_regex``, below), and a property test holds the
two equal. Literal nodes are built once per raw text (``_LITERALS``). On a miss we parse cold, with
``grammar.parse_recording`` telling us which AST node each literal token became, and keep a
template: a builder that rebuilds just the path from the root to each literal, sharing every
other (immutable) node with the cached tree. On a hit we build the literal nodes with the very
constructors the grammar uses and call the builder; pyparsing never runs.

Why this is exact (a hit equals a cold parse of the same text):

* a token becomes a *slot* only if the cold parse put a literal node of the token's kind at the
  token's offset with the token's exact raw text, and that node is in the final tree; two texts
  with the same key differ only inside such self-delimiting tokens, so the grammar takes the same
  path through both and puts the other value in the same place;
* every other lifted token (a number inside ``LIMIT 10`` or ``fill(0)``, digits a regex literal
  happens to contain, a ``tz('...')`` string) is *fixed*: the template is used only when the new
  text has the same raw text there; otherwise we parse that text cold and cache it by its full
  text, so odd shapes still hit when they repeat exactly;
* building a literal may fail where a cold parse fails (a string compared with ``time`` that is
  not a time, an integer past int64): we then parse cold, which raises the proper ``ParseError``.

Errors are not cached. Texts holding a NUL (our marker character) or longer than
``MAX_TEXT_LENGTH`` bypass the cache.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from operator import itemgetter

from chronosdb.ext.qlex import shape_of  # the lifting below in one C pass (tested equal)

from . import ast
from .grammar import (
    DURATION_PATTERN, FLOAT_PATTERN, INTEGER_PATTERN, QUOTED_IDENT_PATTERN, STRING_PATTERN,
    make_duration, make_integer, make_number, make_string, make_time, parse_recording,
)

MAX_TEXT_LENGTH = 16 * 1024  # dashboards' queries are well under 2 KiB; longer ones are one-offs
DEFAULT_MAXSIZE = 1024  # distinct shapes kept; a busy Grafana server shows a few hundred

# One capturing group around the whole alternation, so ``split`` interleaves text and tokens. A
# number glued to a word, dot or ``$`` (host_1, a.5) is part of that word, not a literal. Quoted
# identifiers are matched only so that nothing inside them is lifted; they stay in the key.
# ``shape_of`` (chronosdb.ext.qlex) lifts exactly what this regex's ``split`` lifts
# (``shape_of_regex``, its specification).
_TOKENS = re.compile(
    "(" + QUOTED_IDENT_PATTERN + "|" + STRING_PATTERN
    + r"|(?<![\w.$])(?:" + DURATION_PATTERN + "|" + FLOAT_PATTERN + "|" + INTEGER_PATTERN + "))"
)
_STRING, _DURATION, _FLOAT, _INTEGER = "s", "d", "f", "i"
# Which node classes a token of each kind may legitimately become, and how to rebuild one.
_MAKERS = {
    (_STRING, ast.StringLiteral): make_string,
    (_STRING, ast.TimeLiteral): make_time,
    (_DURATION, ast.DurationLiteral): make_duration,
    (_FLOAT, ast.NumberLiteral): make_number,
    (_INTEGER, ast.IntegerLiteral): make_integer,
}


def _kind(token: str) -> str:
    if token[0] == "'":
        return _STRING
    if not token[-1].isdigit() and token[-1] != ".":
        return _DURATION
    return _FLOAT if "." in token else _INTEGER


def shape_of_regex(text: str):
    """``(key, raws)``: the text with each literal replaced by NUL + a kind letter, and the
    lifted literals' raw text in order, by one regex split: the specification ``shape_of``
    (one C pass) is tested against."""
    parts = _TOKENS.split(text)
    raws = []
    for i in range(1, len(parts), 2):
        tok = parts[i]
        if tok[0] != '"':
            raws.append(tok)
            parts[i] = "\0" + _kind(tok)
    return "".join(parts), raws


def literal_offsets(text: str) -> list:
    """``[(kind, offset)]`` of the literals ``shape_of`` lifts, in the same order (misses only)."""
    return [(_kind(m.group()), m.start()) for m in _TOKENS.finditer(text) if m.group()[0] != '"']


class _Rebind(Exception):
    """This text cannot use the template; parse it cold."""


def node_builder(node, slot_of):
    """A function ``values -> copy of node`` with slot nodes replaced, or None if ``node`` holds
    no slot (then the node itself is reused: it is immutable)."""
    slot = slot_of.get(id(node))
    if slot is not None:
        return itemgetter(slot)
    if isinstance(node, (tuple, list)):
        items = list(node)
        cls = type(node)
    elif hasattr(node, "__dataclass_fields__"):
        names = tuple(node.__dataclass_fields__)
        items = [getattr(node, n) for n in names]
        cls = type(node)
    else:
        return None
    subs = [(i, b) for i, b in ((i, node_builder(v, slot_of)) for i, v in enumerate(items)) if b is not None]
    if not subs:
        return None
    if cls is tuple or cls is list:
        def build_seq(values, items=items, subs=subs, cls=cls):
            out = list(items)
            for i, b in subs:
                out[i] = b(values)
            return out if cls is list else tuple(out)
        return build_seq

    def build_node(values, items=items, subs=subs, cls=cls):
        args = list(items)
        for i, b in subs:
            args[i] = b(values)
        return cls(*args)
    return build_node


def node_ids(node, out: set) -> None:
    out.add(id(node))
    if isinstance(node, (tuple, list)):
        for v in node:
            node_ids(v, out)
    elif hasattr(node, "__dataclass_fields__"):
        for n in node.__dataclass_fields__:
            node_ids(getattr(node, n), out)


class _Template:
    __slots__ = ("build", "makers", "fixed", "statements", "slot_of", "prepared")

    def __init__(self, statements, text, raws, sites):
        in_tree: set = set()
        node_ids(statements, in_tree)
        by_offset = {}
        for key, (loc, raw, node) in sites.items():
            if key in in_tree:
                by_offset.setdefault(loc, []).append((raw, node))
        slot_of, makers, fixed = {}, [], []
        for i, ((kind, loc), raw) in enumerate(zip(literal_offsets(text), raws)):
            cands = by_offset.get(loc, ())
            maker = None
            if len(cands) == 1 and cands[0][0] == raw:
                node = cands[0][1]
                maker = _MAKERS.get((kind, type(node)))
                if maker is not None:
                    slot_of[id(node)] = i
            makers.append(maker)
            if maker is None:
                fixed.append((i, raw))
        self.build = node_builder(statements, slot_of) or (lambda values, s=statements: list(s))
        self.makers = makers
        self.fixed = tuple(fixed)
        # For a prepared form of this shape (``prepare``): the cold parse and its slots.
        self.statements = statements
        self.slot_of = slot_of
        self.prepared = _UNPREPARED

    def values(self, raws) -> list:
        """The slot values of a text of this shape (None where a token is fixed); _Rebind
        when the text cannot use the template."""
        for i, raw in self.fixed:
            if raws[i] != raw:
                raise _Rebind
        values = []
        for maker, raw in zip(self.makers, raws):
            if maker is None:
                values.append(None)
                continue
            node = _LITERALS.get((maker, raw))
            if node is None:
                try:
                    node = maker(raw)
                except ValueError:
                    raise _Rebind from None
                if len(_LITERALS) >= LITERAL_CACHE_ENTRIES:
                    _LITERALS.clear()
                _LITERALS[(maker, raw)] = node
            values.append(node)
        return values

    def bind(self, raws):
        return self.build(self.values(raws))


_UNPREPARED = object()
# Literal nodes by (maker, raw text), shared by every template: a dashboard's queries repeat their
# tag values, durations and (across the panels of one refresh) time bounds, and a node is
# immutable and depends on its raw text alone. Emptied when full.
LITERAL_CACHE_ENTRIES = 4096
_LITERALS: dict = {}


class StatementCache:
    """An LRU of parsed queries keyed by shape (see module docstring). Thread-safe."""

    def __init__(self, maxsize: int = DEFAULT_MAXSIZE):
        if maxsize < 1:
            raise ValueError(f"cache maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self):
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def _get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _put(self, key, entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def parse(self, text: str) -> list:
        return self.parse_keyed(text)[0]

    def prepared(self, text: str, prepare):
        """``(prepared form, slot values, shape)`` of a text whose shape is cached, without
        building its statements; None when the shape is not cached yet, the text cannot use the
        template (then ``parse_keyed`` answers, errors included), or ``prepare`` declined it.

        ``prepare(statements, slot_of)`` is called once per shape with the cold parse and the
        slot of each literal node (``id(node) -> index``); its result is kept with the template,
        None included."""
        if not isinstance(text, str) or len(text) > MAX_TEXT_LENGTH or "\0" in text:
            return None
        key, raws = shape_of(text)
        entry = self._get(key)
        if entry is None:
            return None
        form = entry.prepared
        if form is _UNPREPARED:
            form = entry.prepared = prepare(entry.statements, entry.slot_of)
        if form is None:
            return None
        try:
            values = entry.values(raws)
        except _Rebind:
            return None
        self.hits += 1
        return form, values, key

    def parse_keyed(self, text: str) -> tuple[list, object]:
        """``(statements, shape)``: the shape is the cache key the text fell under (texts of
        one shape differ only in their literals), or None when the text bypassed the cache."""
        if not isinstance(text, str):
            raise TypeError(f"query must be str, not {type(text).__name__}")
        if len(text) > MAX_TEXT_LENGTH or "\0" in text:
            self.misses += 1
            return parse_recording(text)[0], None
        key, raws = shape_of(text)
        entry = self._get(key)
        if entry is not None:
            try:
                out = entry.bind(raws)
                self.hits += 1
                return out, key
            except _Rebind:
                exact = self._get(("=", text))
                if exact is not None:
                    self.hits += 1
                    return list(exact), ("=", text)
                self.misses += 1
                statements = parse_recording(text)[0]
                self._put(("=", text), tuple(statements))
                return statements, ("=", text)
        self.misses += 1
        statements, sites = parse_recording(text)
        self._put(key, _Template(statements, text, raws, sites))
        return statements, key


default_cache = StatementCache()
