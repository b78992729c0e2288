"""The narrow read interface the query layer sees of storage.

The query engine never touches shards, caches or segment files directly: it asks this module
which series match (index bitmaps), what their keys, tags and field types are, and for pinned
shard views over a time range. A ``ShardView`` (``storage/shard_read.py``) then yields, per
(series, field), merged column arrays (``scan``) or whole-block aggregates plus the remaining
points (``read_with_stats``). The cluster will implement the same interface over RPC, so the
query engine runs unchanged on one node or many.
"""
from __future__ import annotations

import numpy as np

from chronosdb.storage.engine import MAX_TIME, MIN_TIME, Engine
from chronosdb.storage.shard_read import BlockStats, ShardView, median_block_span

__all__ = ["StorageReader", "ShardView", "BlockStats", "median_block_span"]


class _PinnedViews:
    """The context manager ``StorageReader.views`` returns (a plain class: cheaper than a
    generator-based one, and every query enters one)."""

    __slots__ = ("views",)

    def __init__(self, views: list):
        self.views = views

    def __enter__(self) -> list:
        return self.views

    def __exit__(self, *exc) -> None:
        for v in self.views:
            v.close()


class StorageReader:
    def __init__(self, engine: Engine):
        self._engine = engine

    # -- catalog ---------------------------------------------------------------------------
    def databases(self) -> list[str]:
        return sorted(self._engine.catalog.databases)

    def retention_policies(self, db: str):
        return list(self._engine.catalog.database(db).policies.values())

    def default_retention_policy(self, db: str) -> str:
        return self._engine.catalog.database(db).default_rp

    # -- series index ----------------------------------------------------------------------
    def measurements(self, db: str) -> list[bytes]:
        return self._engine.index(db).measurements()

    def series_ids(self, db: str, measurement: bytes, expr=None) -> np.ndarray:
        """Sorted uint64 ids of the measurement's series matching the tag expression."""
        return self._engine.index(db).match_ids(measurement, expr)

    def matching_series(self, db: str, measurement: bytes, expr=None) -> tuple[np.ndarray, list[bytes]]:
        """``(ids, keys)``: ``series_ids`` and their ``series_keys`` in one index call."""
        return self._engine.index(db).match_keys(measurement, expr)

    def series_keys(self, db: str, ids) -> list[bytes]:
        return self._engine.index(db).keys_of(ids)

    def tag_keys(self, db: str, measurement: bytes) -> list[bytes]:
        return self._engine.index(db).tag_keys(measurement)

    def tag_values(self, db: str, measurement: bytes, key: bytes) -> list[bytes]:
        return self._engine.index(db).tag_values(measurement, key)

    def field_types(self, db: str, measurement: bytes):
        return self._engine.index(db).field_types(measurement)

    def schema(self, db: str, measurement: bytes) -> tuple[frozenset, dict]:
        """(tag keys, {field: type}) as str, a field with several types given its lowest; kept
        by the index between schema changes (shared: do not mutate)."""
        return self._engine.index(db).schema(measurement)

    # -- data ------------------------------------------------------------------------------
    def views(self, db: str, rp: str | None = None, min_time: int = MIN_TIME,
              max_time: int = MAX_TIME) -> "_PinnedViews":
        """``with reader.views(...) as views``: pinned views of the shards overlapping
        [min_time, max_time], oldest first. Reads through them see one consistent state while
        compactions and snapshots run; leaving the block releases them."""
        return _PinnedViews([s.view() for s in self._engine.shards(db, rp, min_time, max_time)])

    def scan(self, db: str, sid: int, field: bytes, min_time: int = MIN_TIME,
             max_time: int = MAX_TIME, rp: str | None = None):
        """(times, values) of one series+field across shards, or None. Convenience over views."""
        parts_t, parts_v = [], []
        with self.views(db, rp, min_time, max_time) as views:
            for v in views:
                col = v.scan(sid, field, min_time, max_time)
                if col is not None and len(col[0]):
                    parts_t.append(col[0])
                    parts_v.append(col[1])
        if not parts_t:
            return None
        if len(parts_t) == 1:
            return parts_t[0], parts_v[0]
        from chronosdb.model.strings import StringArray

        if isinstance(parts_v[0], StringArray):
            return np.concatenate(parts_t), StringArray.concat(parts_v)
        return np.concatenate(parts_t), np.concatenate(parts_v)
