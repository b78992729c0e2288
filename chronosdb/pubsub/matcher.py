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
