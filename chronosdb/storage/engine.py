"""The storage engine of one node: databases, their series indexes and shards.

``Engine`` is the composition root of ``chronosdb.storage``: the catalog says which databases,
retention policies and shard groups exist; each database has one ``SeriesIndex``; each shard
group of a policy is one ``Shard``. A background maintenance thread snapshots caches that grew
past their limit or went cold, runs the compactions the planner asks for and enforces retention.

Writes take a columnar ``WriteBatch``: the batch's distinct series keys are resolved to ids
once, the batch is split by shard-group time range with one numpy mask per column, and each
part is written to its shard (type check, WAL, cache). Points older than the policy keeps are
dropped and counted, as InfluxDB does.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap64

from chronosdb.model.batch import WriteBatch
from chronosdb.model.errors import BadRequest, DatabaseNotFound, FieldTypeConflict
from chronosdb.model.serieskey import measurement_of
from chronosdb.storage import filenames
from chronosdb.storage.catalog import Catalog
from chronosdb.storage.index import SeriesIndex
from chronosdb.storage.shard import Shard, ShardOptions, WriteOutcome

log = logging.getLogger("chronosdb.engine")

MIN_TIME = -(2**63) + 2  # InfluxDB's bounds: the two extremes are reserved
MAX_TIME = 2**63 - 2


class RetentionDropped(BadRequest):
    def __init__(self, n: int):
        super().__init__(f"points beyond retention policy dropped={n}")
        self.dropped = n


@dataclass
class EngineOptions:
    shard: ShardOptions = field(default_factory=ShardOptions)
    maintenance_interval: float = 1.0      # seconds between maintenance passes
    background: bool = True                # run the maintenance thread


class Engine:
    def __init__(self, data_dir: str, options: EngineOptions | None = None):
        self.data_dir = os.path.abspath(data_dir)
        self.options = options or EngineOptions()
        os.makedirs(self.data_dir, exist_ok=True)
        filenames.remove_temp_files(self.data_dir)
        self.catalog = Catalog(self.data_dir)
        self._lock = threading.RLock()
        self._indexes: dict[str, SeriesIndex] = {}
        self._shards: dict[int, Shard] = {}
        self._shard_loc: dict[int, tuple[str, str]] = {}
        self._meas_cache: dict[bytes, bytes] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Called as fn(db, rp, stored batch) on the writer's thread after each durable write
        # (the pubsub bus listens here, so every write path publishes). A list copied on
        # change, so writers iterate it without a lock.
        self._write_listeners: tuple = ()
        self.counters = {"values_written": 0, "values_dropped": 0, "snapshots": 0,
                         "compactions": 0, "shards_dropped": 0}
        self._open_all()
        self._threads: list[threading.Thread] = []
        if self.options.background:
            # Snapshots get a thread of their own: a compaction can take seconds, and a cache
            # that waits for it grows past its limit (seen as RSS spikes under ingest).
            for target, name in ((self._snapshotter, "chronosdb-snapshot"),
                                 (self._maintain, "chronosdb-compaction")):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)

    # -- opening -----------------------------------------------------------------------------
    def _open_all(self) -> None:
        for db in self.catalog.databases.values():
            for rp in db.policies.values():
                for g in rp.shard_groups:
                    self._open_shard(db.name, rp.name, g)
        # A database directory no catalog entry names is the leftover of an interrupted drop.
        # Only directories laid out as a database (holding a series index) are removed: other
        # directories beside them (a cluster member's Raft log, an operator's files) are not ours.
        for name in os.listdir(self.data_dir):
            p = os.path.join(self.data_dir, name)
            if (name not in self.catalog.databases and os.path.isdir(p)
                    and os.path.isdir(os.path.join(p, filenames.INDEX_DIR))):
                shutil.rmtree(p)

    def index(self, db: str) -> SeriesIndex:
        with self._lock:
            idx = self._indexes.get(db)
            if idx is None:
                self.catalog.database(db)
                idx = SeriesIndex(os.path.join(self.data_dir, db, filenames.INDEX_DIR))
                self._indexes[db] = idx
            return idx

    def _shard_path(self, db: str, rp: str, shard_id: int) -> str:
        return os.path.join(self.data_dir, db, rp, filenames.shard_dir(shard_id))

    def _open_shard(self, db: str, rp: str, g) -> Shard:
        with self._lock:
            s = self._shards.get(g.shard_id)
            if s is None:
                idx = self.index(db)
                s = Shard(self._shard_path(db, rp, g.shard_id), g.shard_id, g.start, g.end,
                          self.options.shard, lambda keys: idx.ids_for_keys(keys))
                self._shards[g.shard_id] = s
                self._shard_loc[g.shard_id] = (db, rp)
            return s

    # -- DDL ---------------------------------------------------------------------------------
    def create_database(self, name: str) -> bool:
        created = self.catalog.create_database(name)
        self.index(name)
        return created

    def drop_database(self, name: str) -> bool:
        with self._lock:
            info = self.catalog.database(name)
            for rp in info.policies.values():
                for g in rp.shard_groups:
                    self._close_shard(g.shard_id)
            idx = self._indexes.pop(name, None)
            if idx is not None:
                idx.close()
            self.catalog.drop_database(name)
            shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)
            return True

    def drop_retention_policy(self, db: str, rp: str) -> None:
        with self._lock:
            p = self.catalog.policy(db, rp)
            for g in p.shard_groups:
                self._close_shard(g.shard_id)
            self.catalog.drop_retention_policy(db, rp)
            shutil.rmtree(os.path.join(self.data_dir, db, rp), ignore_errors=True)

    def _close_shard(self, shard_id: int) -> None:
        s = self._shards.pop(shard_id, None)
        self._shard_loc.pop(shard_id, None)
        if s is not None:
            s.close()

    def drop_shard(self, db: str, rp: str, shard_id: int) -> None:
        with self._lock:
            self._close_shard(shard_id)
            self.catalog.remove_shard_group(db, rp, shard_id)
            shutil.rmtree(self._shard_path(db, rp, shard_id), ignore_errors=True)
            self.counters["shards_dropped"] += 1

    # -- writes ------------------------------------------------------------------------------
    def _measurements(self, keys: list[bytes]) -> tuple[np.ndarray, list[bytes]]:
        """Per key, the index of its measurement in the returned list (per series, not point)."""
        cache = self._meas_cache
        if len(cache) > 1_000_000:
            cache.clear()
        names: dict[bytes, int] = {}
        ids = np.empty(len(keys), dtype=np.int32)
        for i, k in enumerate(keys):
            m = cache.get(k)
            if m is None:
                m = cache[k] = measurement_of(k)
            ids[i] = names.setdefault(m, len(names))
        return ids, list(names)

    def add_write_listener(self, fn) -> None:
        """Call ``fn(db, rp, batch)`` after every successful write with what was stored."""
        with self._lock:
            self._write_listeners = self._write_listeners + (fn,)

    def remove_write_listener(self, fn) -> None:
        with self._lock:
            self._write_listeners = tuple(f for f in self._write_listeners if f is not fn)

    def _notify_write(self, db: str, rp: str, part: WriteBatch, res: WriteOutcome,
                      meas_ids: np.ndarray, meas_names: list[bytes]) -> None:
        """Tell the listeners what a shard stored: ``part`` minus the field-type conflicts the
        shard refused (one numpy mask per refused column, never a loop per point)."""
        refused = {(e.measurement, e.field, e.got) for e in res.errors
                   if isinstance(e, FieldTypeConflict)}
        if refused:
            cols = []
            for c in part.columns:
                bad = [i for i, m in enumerate(meas_names) if (m, c.name, c.ftype) in refused]
                if bad:
                    keep = np.flatnonzero(~np.isin(meas_ids[c.series], bad))
                    if len(keep):
                        cols.append(c.take(keep))
                else:
                    cols.append(c)
            part = WriteBatch(part.keys, cols)
        if not part.columns:
            return
        for fn in self._write_listeners:
            try:
                fn(db, rp, part)
            except Exception:  # a listener's bug must not fail a write that is already durable
                log.exception("write listener %r failed", fn)

    def write(self, db: str, batch: WriteBatch, rp: str | None = None,
              now: int | None = None) -> WriteOutcome:
        """Write a batch durably. Returns counts and per-field errors (type conflicts, points
        beyond retention); raises DatabaseNotFound / RetentionPolicyNotFound."""
        policy = self.catalog.policy(db, rp)
        batch.validate()
        out = WriteOutcome()
        if not batch.columns or batch.n_values == 0:
            return out
        if policy.duration:
            now = time.time_ns() if now is None else now
            cutoff = now - policy.duration
            kept = batch.select_time(cutoff, MAX_TIME + 1)
            dropped = batch.n_values - kept.n_values
            if dropped:
                out.dropped += dropped
                out.errors.append(RetentionDropped(dropped))
                batch = kept
                if not batch.columns:
                    return out
        for c in batch.columns:
            if len(c) and (int(c.times.min()) < MIN_TIME or int(c.times.max()) > MAX_TIME):
                raise BadRequest("point time out of range")
        idx = self.index(db)
        sids = idx.ids_for_keys(batch.keys)
        meas_ids, meas_names = self._measurements(batch.keys)
        lo, hi = batch.time_bounds()
        t = lo
        while t <= hi:
            g = self.catalog.shard_group_for(db, policy.name, t)
            part = batch if (g.start <= lo and hi < g.end) else batch.select_time(g.start, g.end)
            if part.n_values:
                shard = self._open_shard(db, policy.name, g)
                res, new_fields = shard.write(part, sids, meas_ids, meas_names)
                if new_fields:
                    by_meas: dict[bytes, list] = {}
                    for m, f, ft in new_fields:
                        by_meas.setdefault(m, []).append((f, ft))
                    for m, fl in by_meas.items():
                        idx.add_fields(m, fl)
                out.merge(res)
                if self._write_listeners and res.written:
                    self._notify_write(db, policy.name, part, res, meas_ids, meas_names)
                if shard.cache.nbytes >= self.options.shard.cache_snapshot_bytes:
                    if self._threads:
                        self._wake.set()
                    else:
                        self._snapshot(shard)  # no background threads: the writer snapshots
            if g.end > hi:
                break
            # Jump to the first point at or after the next group (skip empty groups).
            nxt = None
            for c in batch.columns:
                later = c.times[c.times >= g.end]
                if len(later):
                    m = int(later.min())
                    nxt = m if nxt is None else min(nxt, m)
            if nxt is None:
                break
            t = nxt
        self.counters["values_written"] += out.written
        self.counters["values_dropped"] += out.dropped
        return out

    # -- deletes -----------------------------------------------------------------------------
    def shards(self, db: str, rp: str | None = None, min_time: int = MIN_TIME,
               max_time: int = MAX_TIME) -> list[Shard]:
        """Open shards of a policy overlapping the inclusive time range, oldest first."""
        p = self.catalog.policy(db, rp)
        out = []
        for g in p.shard_groups:
            if g.end > min_time and g.start <= max_time:
                out.append(self._open_shard(db, p.name, g))
        return out

    def _all_policy_shards(self, db: str, min_time: int, max_time: int):
        info = self.catalog.database(db)
        for rp in list(info.policies.values()):
            for g in list(rp.shard_groups):
                if g.end > min_time and g.start <= max_time:
                    yield rp.name, g, self._open_shard(db, rp.name, g)

    def delete(self, db: str, measurements: list[bytes] | None = None, expr=None,
               min_time: int = MIN_TIME, max_time: int = MAX_TIME) -> int:
        """Delete points of the matching series in [min_time, max_time] (inclusive), in every
        retention policy. A range covering whole shards with no series filter drops them.
        Returns the number of series affected."""
        idx = self.index(db)
        whole_db = measurements is None and expr is None
        if whole_db:
            sids = idx.all_series_ids()
        else:
            sids = BitMap64()
            for m in (measurements if measurements is not None else idx.measurements()):
                sids |= idx.match(m, expr)
        for rp, g, shard in list(self._all_policy_shards(db, min_time, max_time)):
            if whole_db and min_time <= g.start and max_time >= g.end - 1:
                self.drop_shard(db, rp, g.shard_id)
            elif sids:
                shard.delete(sids, min_time, max_time)
        self._wake.set()
        return len(sids)

    def drop_series(self, db: str, measurements: list[bytes] | None = None, expr=None) -> int:
        """Delete every point of the matching series and remove them from the index."""
        idx = self.index(db)
        sids = BitMap64()
        for m in (measurements if measurements is not None else idx.measurements()):
            sids |= idx.match(m, expr)
        if not sids:
            return 0
        for _rp, _g, shard in list(self._all_policy_shards(db, MIN_TIME, MAX_TIME)):
            shard.delete(sids, MIN_TIME, MAX_TIME)
        idx.drop_series(sids)
        self._wake.set()
        return len(sids)

    def drop_measurement(self, db: str, measurement: bytes) -> int:
        idx = self.index(db)
        sids = idx.series_ids(measurement)
        if sids:
            for _rp, _g, shard in list(self._all_policy_shards(db, MIN_TIME, MAX_TIME)):
                shard.delete(sids, MIN_TIME, MAX_TIME)
                shard.forget_measurement(measurement)
        idx.drop_measurement(measurement)
        self._wake.set()
        return len(sids)

    # -- maintenance -------------------------------------------------------------------------
    def snapshot_all(self) -> int:
        n = 0
        for s in list(self._shards.values()):
            n += self._snapshot(s)
        return n

    def _snapshot(self, shard: Shard) -> bool:
        db = self._shard_loc.get(shard.shard_id, (None,))[0]
        idx = self._indexes.get(db)
        done = shard.snapshot(before_write=idx.sync if idx is not None else None)
        if done:
            self.counters["snapshots"] += 1
        return done

    def compact_all(self, full: bool = False) -> int:
        """Snapshot every cache, then run the compactions planned (``full``: into one file per
        shard, with every tombstone applied). Returns the number of compactions run."""
        self.snapshot_all()
        n = 0
        for s in list(self._shards.values()):
            while True:
                ran = s.compact(full=full)
                n += ran
                if not ran:
                    break
        self.counters["compactions"] += n
        return n

    def enforce_retention(self, now: int | None = None) -> int:
        """Drop shards whose whole time range is older than their policy keeps."""
        now = time.time_ns() if now is None else now
        dropped = 0
        for db in list(self.catalog.databases.values()):
            for rp in list(db.policies.values()):
                if not rp.duration:
                    continue
                for g in list(rp.shard_groups):
                    if g.end <= now - rp.duration:
                        self.drop_shard(db.name, rp.name, g.shard_id)
                        dropped += 1
        return dropped

    def _snapshotter(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.options.maintenance_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.snapshot_pass()
            except Exception:  # keep snapshotting the other shards; the error is in the log
                log.exception("snapshot pass failed")

    def _maintain(self) -> None:
        last_retention = 0.0
        while not self._stop.wait(self.options.maintenance_interval):
            try:
                self.compaction_pass()
                if time.monotonic() - last_retention > 60:
                    self.enforce_retention()
                    last_retention = time.monotonic()
            except Exception:  # keep maintaining the other shards; the error is in the log
                log.exception("maintenance pass failed")

    def snapshot_pass(self) -> None:
        """Snapshot every shard whose cache is over its limit or has gone cold."""
        o = self.options.shard
        for s in list(self._shards.values()):
            if self._stop.is_set():
                return
            idle = time.monotonic() - s.last_write
            if s.cache.nbytes >= o.cache_snapshot_bytes or (
                    s.cache.entries and idle > o.snapshot_cold_seconds):
                self._snapshot(s)

    def compaction_pass(self) -> None:
        for s in list(self._shards.values()):
            if self._stop.is_set():
                return
            self.counters["compactions"] += s.compact()

    def maintenance_pass(self) -> None:
        """One snapshot pass and one compaction pass (what the background threads do)."""
        self.snapshot_pass()
        self.compaction_pass()

    # -- introspection and lifecycle ---------------------------------------------------------
    def stats(self) -> dict:
        shards = [s.stats() for s in list(self._shards.values())]
        return {
            **self.counters,
            "shards": len(shards),
            "segments": sum(s["segments"] for s in shards),
            "cache_bytes": sum(s["cache_bytes"] for s in shards),
            "wal_bytes": sum(s["wal_bytes"] for s in shards),
            "segment_bytes": sum(s["segment_bytes"] for s in shards),
        }

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join()
        with self._lock:
            for s in self._shards.values():
                s.close()
            self._shards.clear()
            for idx in self._indexes.values():
                idx.close()
            self._indexes.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
