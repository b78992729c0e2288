"""Which points of a published batch a subscription wants.

A subscription names a database, optionally a retention policy, a measurement (exact name or a
regular expression; neither means every measurement) and a tag predicate (a ``TagExpr``). A
batch holds its distinct series keys once and its points as columns that index those keys, so
matching never looks at a point on its own:

1. per distinct series key: its measurement and tags (parsed once and cached by ``KeyInfo``),
   the measurement test and the tag predicate — giving one bool per *key*;
2. per column: ``key_mask[column.series]`` (one numpy gather) picks the points, and one
   ``take`` copies them out.

The result is a ``WriteBatch`` with the same keys list, so downstream code (the streaming
formatter) keeps working on columns.

The bus avoids even that per subscriber: it wraps the published batch once in a
``SharedBatch`` (parsed keys, points per key, and a memo where the stream formatter keeps the
batch's rows sorted by series then time, built once for every subscriber), finds each distinct
filter's matching *key indices* (``match_keys``: keys are looked up through a per-batch
(measurement, tag, value) index when the filter has an equality term, so ``host = 'h7'`` tests
one key, not every key of the batch), and hands each subscriber a ``MatchedBatch``: the shared
batch plus its key indices. Its columns are cut out only if someone asks for them; the stream
formatter instead takes its series' contiguous slices of the shared rows. Batches the bus held
for a pace tick reach a subscriber together, as one ``MatchedRun`` (see ``broker.Bus.release``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from chronosdb.model import tagexpr as tx
from chronosdb.model.batch import WriteBatch
from chronosdb.model.serieskey import parse_key

# A parsed-key cache bounded so a stream of ever-new series cannot grow it without end; when
# full it is simply cleared (re-parsing is cheap, and the working set refills it at once).
KEY_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class SubscriptionFilter:
    db: str
    rp: str | None = None                  # None: writes to any retention policy
    measurement: bytes | None = None       # exact measurement name
    measurement_regex: str | None = None   # or a pattern (searched, as InfluxQL /re/ is)
    tags: tx.TagExpr | None = None         # None: every series of the measurement

    def __post_init__(self):
        if self.measurement is not None and self.measurement_regex is not None:
            raise ValueError("a subscription names a measurement or a regex, not both")
        if self.measurement_regex is not None:
            tx.check_pattern(self.measurement_regex)

    def __hash__(self):
        # Kept once computed: filters key the bus's and the tick's per-filter caches, and a
        # tag predicate hashes its whole tree each time.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.db, self.rp, self.measurement, self.measurement_regex, self.tags))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def compiled_regex(self):
        return re.compile(self.measurement_regex) if self.measurement_regex is not None else None


class KeyInfo:
    """Series key -> (measurement, {tag key: tag value}) as bytes, parsed once per key."""

    def __init__(self):
        self._cache: dict[bytes, tuple[bytes, dict]] = {}

    def get(self, key: bytes) -> tuple[bytes, dict]:
        info = self._cache.get(key)
        if info is None:
            if len(self._cache) >= KEY_CACHE_LIMIT:
                self._cache.clear()
            m, tags = parse_key(key)
            info = self._cache[key] = (m, dict(tags))
        return info


def equality_term(expr: tx.TagExpr | None) -> tuple[bytes, bytes] | None:
    """A ``key = 'value'`` (non-empty value) that every matching series must satisfy: the
    expression itself or a term of its top-level AND chain. None when there is none."""
    if isinstance(expr, tx.TagEquals):
        return (expr.key, expr.value) if expr.value else None
    if isinstance(expr, tx.And):
        return equality_term(expr.left) or equality_term(expr.right)
    return None


class KeyIndex:
    """Lookups over a list of key infos ((measurement, tags) per key), built lazily: the keys
    of a measurement, the keys with a tag value. What ``match_keys`` reads."""

    def __init__(self, infos: list[tuple[bytes, dict]]):
        self.infos = infos
        self._by_meas: dict[bytes, list[int]] | None = None
        self._by_tag: dict[tuple, list[int]] | None = None

    def keys_of(self, measurement: bytes | None) -> list[int]:
        """Indices of the keys of one measurement (all keys for None)."""
        if measurement is None:
            return list(range(len(self.infos)))
        if self._by_meas is None:
            by: dict[bytes, list[int]] = {}
            for i, (m, _t) in enumerate(self.infos):
                by.setdefault(m, []).append(i)
            self._by_meas = by
        return self._by_meas.get(measurement, [])

    def keys_with(self, measurement: bytes | None, tag: bytes, value: bytes) -> list[int]:
        """Indices of the keys (of ``measurement``, or any) whose ``tag`` is ``value``."""
        if self._by_tag is None:
            by: dict[tuple, list[int]] = {}
            for i, (m, t) in enumerate(self.infos):
                for k, v in t.items():
                    by.setdefault((m, k, v), []).append(i)
                    by.setdefault((None, k, v), []).append(i)
            self._by_tag = by
        return self._by_tag.get((measurement, tag, value), [])


class SharedBatch(KeyIndex):
    """One published batch, with what every subscriber's matching and formatting can share.
    Built on the writer's thread; ``memo`` values are filled lazily by consumers (on the event
    loop or a worker thread: two threads computing the same value at once both get a correct
    one, the last store wins)."""

    def __init__(self, batch: WriteBatch, infos: list[tuple[bytes, dict]]):
        super().__init__(infos)
        self.batch = batch
        self._points_per_key: np.ndarray | None = None
        self._memo: dict = {}
        self.n_values = batch.n_values

    def memo(self, name: str, build):
        v = self._memo.get(name)
        if v is None:
            v = self._memo[name] = build()
        return v

    @property
    def points_per_key(self) -> np.ndarray:
        if self._points_per_key is None:
            n = len(self.batch.keys)
            acc = np.zeros(n, dtype=np.int64)
            for c in self.batch.columns:
                acc += np.bincount(c.series, minlength=n)
            self._points_per_key = acc
        return self._points_per_key


def match_keys(shared: KeyIndex, measurement: bytes | None, regex,
               tags: tx.TagExpr | None) -> np.ndarray:
    """Sorted indices of the keys of ``shared`` (a ``SharedBatch`` or any ``KeyIndex``) that a
    filter selects. Only the keys that can match are tested: those of the measurement, narrowed
    by an equality term when there is one."""
    eq = equality_term(tags)
    cand = shared.keys_with(measurement, *eq) if eq else shared.keys_of(measurement)
    infos = shared.infos
    out = []
    for i in cand:
        m, t = infos[i]
        if regex is not None and regex.search(m.decode("utf-8", "replace")) is None:
            continue
        if tags is not None and not tags.matches(t):
            continue
        out.append(i)
    return np.array(out, dtype=np.int64)


class MatchedBatch(WriteBatch):
    """The part of a published batch one subscriber wants, as key indices into the shared
    batch. A ``WriteBatch`` (same keys list); its columns are cut out on first use only."""

    def __init__(self, shared: SharedBatch, key_idx: np.ndarray, n: int | None = None):
        self.shared = shared
        self.key_idx = key_idx
        self.keys = shared.batch.keys
        self._columns = None
        if n is None:             # the points of those keys (the bus passes them, computed in bulk)
            ppk = shared.points_per_key
            n = int(ppk[key_idx[0]]) if len(key_idx) == 1 else int(ppk[key_idx].sum())
        self._n = n

    @property
    def columns(self):
        if self._columns is None:
            if len(self.key_idx) == len(self.keys):
                self._columns = self.shared.batch.columns
            else:
                mask = np.zeros(len(self.keys), dtype=bool)
                mask[self.key_idx] = True
                part = select_points(self.shared.batch, mask)
                self._columns = part.columns if part is not None else []
        return self._columns

    @property
    def n_values(self) -> int:
        return self._n

    @property
    def held_values(self) -> int:
        """The points a queue keeps alive by holding this part: its whole published batch."""
        return self.shared.n_values

    def compact(self) -> WriteBatch:
        """This part as a plain batch of its own (copied) columns: lets the shared batch go."""
        return WriteBatch(self.keys, list(self.columns))

    def parts(self) -> list:
        return [self]

    def __repr__(self):
        return f"MatchedBatch({len(self.key_idx)} of {len(self.keys)} keys, {self._n} points)"


class MatchedRun:
    """The parts one filter wants of several published batches, queued as *one* item: what the
    bus hands a subscriber when it releases the batches it held for a pace tick
    (``Bus.release``). One object per filter and tick instead of one ``MatchedBatch`` per
    filter and batch; ``parts()`` gives those, in publish order, when a reader needs them."""

    __slots__ = ("shareds", "key_idxs", "counts", "n_values", "held_values", "_parts")

    def __init__(self, shareds: tuple, key_idxs: tuple, counts: tuple):
        self.shareds, self.key_idxs, self.counts = shareds, key_idxs, counts
        self.n_values = sum(counts)
        self.held_values = sum(s.n_values for s in shareds)
        self._parts = None

    def parts(self) -> list:
        """The parts, made once: the subscribers of one filter share the run, and the stream
        formatter shares its work between readers of the *same* part objects."""
        if self._parts is None:
            self._parts = [MatchedBatch(s, k, n) for s, k, n in zip(self.shareds, self.key_idxs, self.counts)]
        return self._parts

    def __repr__(self):
        return f"MatchedRun({len(self.shareds)} batches, {self.n_values} points)"


def key_mask(keys: list[bytes], key_infos: list[tuple[bytes, dict]], measurement: bytes | None,
             regex, tags: tx.TagExpr | None) -> np.ndarray:
    """One bool per key: does this series match? (A Python step per key, never per point.)"""
    out = np.zeros(len(keys), dtype=bool)
    for i, (m, t) in enumerate(key_infos):
        if measurement is not None and m != measurement:
            continue
        if regex is not None and regex.search(m.decode("utf-8", "replace")) is None:
            continue
        if tags is not None and not tags.matches(t):
            continue
        out[i] = True
    return out


def select_points(batch: WriteBatch, mask: np.ndarray) -> WriteBatch | None:
    """The points of ``batch`` whose series ``mask`` selects (None when there are none)."""
    if not mask.any():
        return None
    if mask.all():
        return batch
    cols = []
    for c in batch.columns:
        pm = mask[c.series]
        if pm.all():
            cols.append(c)
        elif pm.any():
            cols.append(c.take(np.flatnonzero(pm)))
    return WriteBatch(batch.keys, cols) if cols else None


def match_batch(batch: WriteBatch, f: SubscriptionFilter, keys: KeyInfo | None = None) -> WriteBatch | None:
    """Everything in one call: the part of ``batch`` that ``f`` wants (ignores db/rp)."""
    keys = keys or KeyInfo()
    infos = [keys.get(k) for k in batch.keys]
    return select_points(batch, key_mask(batch.keys, infos, f.measurement, f.compiled_regex, f.tags))
