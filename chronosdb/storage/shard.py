"""A shard: the points of one database + retention policy inside one shard-group time range.

A shard is a WAL, a write cache, immutable segment files, tombstones and a manifest::

    write  ──► type check ──► WAL append (group commit, fsync) ──► cache (in WAL order)
    snapshot: freeze cache + rotate WAL ──► segment file (level 1) ──► manifest ──► drop old WAL
    compact:  planner ──► k-way merge of segment files (tombstones applied) ──► manifest swap
    delete:   tombstone (segments) + WAL delete record + cache, at once

``manifest.cbor`` is the truth about which segment files are live: a file is written, fsynced and
renamed first, then the manifest is rewritten atomically, and only then are inputs or WAL
segments removed. On open, segment files the manifest does not name are leftovers of a crash and
are deleted.

Concurrency: writers hold the shard's lock *shared* from their WAL append until their cache
apply, so many writers share one fsync (group commit). Snapshots and deletes take it
*exclusive*, briefly, so a WAL rotation never splits a write between "in the old segment" and
"not in the frozen cache". Cache applies happen in WAL order (the ordinal ``Wal.append``
returns), so what readers see before a crash is exactly what WAL replay rebuilds after one.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

import cbor2
import numpy as np
from pyroaring import BitMap64

from chronosdb.ext.merge import gather_index, merge_runs, tombstone_keep
from chronosdb.model.batch import WriteBatch
from chronosdb.model.errors import BackPressure, ChronosError, FieldTypeConflict
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage import filenames
from chronosdb.storage.cache import Cache
from chronosdb.storage.compaction.planner import CompactionPolicy, SegmentMeta, plan
from chronosdb.storage.locks import RWLock
from chronosdb.storage.segment import SegmentReader, SegmentWriter
from chronosdb.storage.tombstones import Tombstone, Tombstones
from chronosdb.storage.wal import records
from chronosdb.storage.wal.log import Wal

log = logging.getLogger("chronosdb.shard")


@dataclass
class ShardOptions:
    wal_fsync: str = "always"
    wal_segment_bytes: int = 64 << 20
    # Snapshot the cache to a segment file once it holds this much (12 MiB ~ 750k values).
    # Under HTTP ingest the snapshot thread competes for the GIL with the request workers, and
    # RSS grows by about twice what the cache accounts (frozen copy, per-chunk numpy objects,
    # in-flight request buffers). Measured with bench/bench_ingest.py, 2 clients, TSBS data:
    # 32/256 MiB limits peaked at 207-228 MiB RSS; 16/48 at 213-221; 12/32 at 178-189 MiB with
    # 3.2-3.5M values/s; 8/24 at 164-176 MiB but only 2.5M values/s.
    cache_snapshot_bytes: int = 12 << 20
    # Writers wait (back-pressure) while the live cache holds more than this, i.e. when
    # snapshots cannot keep up, instead of letting memory grow.
    cache_max_bytes: int = 32 << 20
    # Seconds without writes after which a shard snapshots its cache / fully compacts its files.
    snapshot_cold_seconds: float = 30.0
    compact_cold_seconds: float = 300.0
    compaction: CompactionPolicy = field(default_factory=CompactionPolicy)


@dataclass
class WriteOutcome:
    written: int = 0
    dropped: int = 0
    errors: list = field(default_factory=list)

    def merge(self, other: "WriteOutcome") -> None:
        self.written += other.written
        self.dropped += other.dropped
        self.errors.extend(other.errors)


class SegmentHandle:
    """A live segment file with a reference count: readers pin it; the last one closes it.

    Files are mmapped when opened, so unlinking a replaced file is safe while a reader still
    holds it; the count only decides when the mapping is released.
    """

    __slots__ = ("reader", "generation", "level", "name", "_refs", "_retired", "_lock")

    def __init__(self, reader: SegmentReader):
        self.reader = reader
        self.generation = reader.generation
        self.level = reader.level
        self.name = os.path.basename(reader.path)
        self._refs = 1  # the shard's own reference
        self._retired = False
        self._lock = threading.Lock()

    def acquire(self) -> "SegmentHandle":
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            close = self._refs == 0
        if close:
            self.reader.close()

    def meta(self) -> SegmentMeta:
        r = self.reader
        return SegmentMeta(self.generation, self.level, r.size_bytes, r.min_time, r.max_time, r.n_values)


class Shard:
    def __init__(self, path: str, shard_id: int, start: int, end: int, options: ShardOptions,
                 resolve_keys):
        """Open (or create) the shard at ``path``.

        ``resolve_keys(keys) -> uint64 ids`` maps series keys to ids through the database's
        series index; WAL replay needs it because WAL records carry keys, not ids.
        """
        self.path = path
        self.shard_id, self.start, self.end = shard_id, start, end
        self.options = options
        os.makedirs(path, exist_ok=True)
        filenames.remove_temp_files(path)
        self._rw = RWLock()
        self._state_lock = threading.RLock()   # segments list, manifest, field types
        self._apply_cond = threading.Condition()
        self._applied = 0                       # WAL ordinal of the last write applied to the cache
        self._failed: Exception | None = None
        self.cache = Cache()
        self.frozen: list[tuple[int, Cache]] = []   # (generation being written, frozen cache)
        self.fields: dict[tuple[bytes, bytes], FieldType] = {}
        self.segments: list[SegmentHandle] = []
        self.next_generation = 1
        self.last_write = time.monotonic()
        self.compacting: set[int] = set()
        self._snapshot_lock = threading.Lock()
        self._compact_lock = threading.Lock()
        self._load_manifest()
        self.tombstones = Tombstones(path)
        self.wal = Wal(os.path.join(path, filenames.WAL_DIR), fsync=options.wal_fsync,
                       segment_bytes=options.wal_segment_bytes)
        self._replay(resolve_keys)

    # -- manifest ----------------------------------------------------------------------------
    def _load_manifest(self) -> None:
        mpath = os.path.join(self.path, filenames.MANIFEST)
        live: list[str] = []
        if os.path.exists(mpath):
            with open(mpath, "rb") as f:
                doc = cbor2.load(f)
            self.next_generation = doc["next_generation"]
            live = doc["segments"]
            self.fields = {(m, f): FieldType(t) for m, f, t in doc["fields"]}
        for name in os.listdir(self.path):
            if filenames.SEGMENT_RE.match(name) and name not in live:
                os.unlink(os.path.join(self.path, name))  # a crash left it before the manifest
        for name in live:
            self.segments.append(SegmentHandle(SegmentReader(os.path.join(self.path, name))))
        self.segments.sort(key=lambda h: h.generation)
        if not os.path.exists(mpath):
            self._save_manifest()

    def _save_manifest(self) -> None:
        doc = {
            "version": 1,
            "shard_id": self.shard_id, "start": self.start, "end": self.end,
            "next_generation": self.next_generation,
            "segments": [h.name for h in self.segments],
            "fields": [[m, f, int(t)] for (m, f), t in sorted(self.fields.items())],
        }
        filenames.atomic_write(os.path.join(self.path, filenames.MANIFEST), cbor2.dumps(doc))

    # -- WAL replay --------------------------------------------------------------------------
    def _replay(self, resolve_keys) -> None:
        n = 0
        for _seq, rec in self.wal.replay_records():
            if isinstance(rec, WriteBatch):
                sids = resolve_keys(rec.keys)
                for col in rec.columns:
                    self.cache.append_column(sids, col.name, col.ftype, col.series, col.times, col.values)
            else:
                self.cache.delete(rec.series_ids, rec.min_time, rec.max_time)
            n += 1
        if n:
            log.info("shard %d: replayed %d WAL records (%d values in cache)",
                     self.shard_id, n, self.cache.n_values)

    # -- writes ------------------------------------------------------------------------------
    def check_types(self, batch: WriteBatch, meas_ids: np.ndarray, meas_names: list[bytes]):
        """Drop points whose field type conflicts with this shard's; record new fields.

        Returns (kept batch, dropped count, errors, new (measurement, field, type) list). The
        check is per distinct measurement of a column, never per point.
        """
        cols, errors, dropped, new_fields = [], [], 0, []
        with self._state_lock:
            pending: dict[tuple[bytes, bytes], FieldType] = {}
            for col in batch.columns:
                point_meas = meas_ids[col.series]
                bad = []
                for mi in np.unique(point_meas).tolist():
                    key = (meas_names[mi], col.name)
                    have = self.fields.get(key) or pending.get(key)
                    if have is None:
                        pending[key] = col.ftype
                        new_fields.append((key[0], key[1], col.ftype))
                    elif have is not col.ftype:
                        bad.append(mi)
                        errors.append(FieldTypeConflict(key[0], key[1], col.ftype, have))
                if bad:
                    keep = np.flatnonzero(~np.isin(point_meas, bad))
                    dropped += len(col) - len(keep)
                    if len(keep):
                        cols.append(col.take(keep))
                else:
                    cols.append(col)
            if new_fields:
                self.fields.update(pending)
                self._save_manifest()
        return WriteBatch(batch.keys, cols), dropped, errors, new_fields

    def write(self, batch: WriteBatch, sids: np.ndarray, meas_ids: np.ndarray,
              meas_names: list[bytes]) -> tuple[WriteOutcome, list]:
        """Write a batch whose points all fall inside this shard. Returns once durable."""
        self._wait_for_room()
        batch, dropped, errors, new_fields = self.check_types(batch, meas_ids, meas_names)
        out = WriteOutcome(batch.n_values, dropped, errors)
        if not batch.columns:
            return out, new_fields
        rtype, payload = records.encode_record(batch)
        with self._rw.shared():
            try:
                ordinal = self.wal.append_ordinal(rtype, payload)
            except Exception as e:
                self._fail(e)
                raise
            self._apply_in_order(ordinal, lambda: self._apply(batch, sids))
        self.last_write = time.monotonic()
        return out, new_fields

    def _apply(self, batch: WriteBatch, sids: np.ndarray) -> None:
        for col in batch.columns:
            self.cache.append_column(sids, col.name, col.ftype, col.series, col.times, col.values)

    def _apply_in_order(self, ordinal: int, fn) -> None:
        with self._apply_cond:
            while self._applied != ordinal - 1:
                if self._failed is not None:
                    raise ChronosError(f"shard {self.shard_id} failed: {self._failed}")
                self._apply_cond.wait()
            try:
                fn()
            finally:
                self._applied = ordinal
                self._apply_cond.notify_all()

    def _fail(self, e: Exception) -> None:
        with self._apply_cond:
            self._failed = e
            self._apply_cond.notify_all()

    def _wait_for_room(self) -> None:
        deadline = time.monotonic() + 60.0
        while self.cache.nbytes > self.options.cache_max_bytes:
            if time.monotonic() > deadline:
                raise BackPressure(f"shard {self.shard_id}: write cache full, snapshots are behind")
            time.sleep(0.005)

    # -- deletes -----------------------------------------------------------------------------
    def delete(self, sids: BitMap64, min_time: int, max_time: int) -> None:
        """Hide the points of ``sids`` in [min_time, max_time] now; compaction reclaims them."""
        if not sids:
            return
        with self._rw.exclusive():
            with self._state_lock:
                if self.segments or self.frozen:
                    self.tombstones.add(Tombstone(BitMap64(sids), min_time, max_time,
                                                  self.next_generation - 1))
            ids = np.fromiter(sids, dtype=np.uint64, count=len(sids))
            rtype, payload = records.encode_record(records.DeleteRecord(ids, min_time, max_time))
            ordinal = self.wal.append_ordinal(rtype, payload)
            def apply():
                self.cache.delete(ids, min_time, max_time)
                for _g, c in self.frozen:
                    c.delete(ids, min_time, max_time)
            self._apply_in_order(ordinal, apply)

    def forget_measurement(self, measurement: bytes) -> None:
        """Forget the field types of a dropped measurement, so it may come back with others."""
        with self._state_lock:
            gone = [k for k in self.fields if k[0] == measurement]
            for k in gone:
                del self.fields[k]
            if gone:
                self._save_manifest()

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, before_write=None) -> bool:
        """Write the cache to a level-1 segment file. Returns False when there was nothing."""
        with self._snapshot_lock:
            with self._rw.exclusive():
                if not self.cache.entries:
                    return False
                closed_seq = self.wal.rotate()
                with self._state_lock:
                    gen = self.next_generation
                    self.next_generation += 1
                    frozen, self.cache = self.cache, Cache()
                    self.frozen.append((gen, frozen))
            if before_write is not None:
                before_write()  # the engine fsyncs the series index: files reference its ids
            path = os.path.join(self.path, filenames.segment_file(gen, 1))
            writer = SegmentWriter(path, gen, 1)
            try:
                for sid, fname, ftype, t, v in frozen.sorted_items():
                    writer.add(sid, fname, ftype, t, v)
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            handle = SegmentHandle(SegmentReader(path))
            with self._state_lock:
                self.segments.append(handle)
                self.segments.sort(key=lambda h: h.generation)
                self.frozen = [(g, c) for g, c in self.frozen if g != gen]
                self._save_manifest()
            self.wal.remove_through(closed_seq)
            return True

    # -- compaction --------------------------------------------------------------------------
    def plan_compactions(self, full: bool = False):
        with self._state_lock:
            metas = [h.meta() for h in self.segments]
        cold = full or (time.monotonic() - self.last_write > self.options.compact_cold_seconds)
        return plan(metas, in_progress=set(self.compacting), has_tombstones=bool(self.tombstones),
                    cold=cold, policy=self.options.compaction)

    def compact(self, full: bool = False) -> int:
        """Run every compaction the planner asks for now. Returns how many ran.

        Compactions of one shard run one at a time: the planner will not plan a full
        compaction while files are being compacted, so an explicit full compaction waits for
        the background one instead of quietly doing less."""
        ran = 0
        with self._compact_lock:
            for group in self.plan_compactions(full):
                self._run_compaction(group.inputs, group.output_level)
                ran += 1
        return ran

    def _run_compaction(self, generations, level: int) -> None:
        gens = set(generations)
        with self._state_lock:
            inputs = [h.acquire() for h in self.segments if h.generation in gens]
            self.compacting |= gens
            tombs = self.tombstones.snapshot()
            covers_all = len(inputs) == len(self.segments) and not self.frozen
        try:
            out_gen = max(h.generation for h in inputs)
            path = os.path.join(self.path, filenames.segment_file(out_gen, level))
            writer = SegmentWriter(path, out_gen, level)
            try:
                for sid, fname, ftype in _merged_keys(inputs):
                    col = _merge_key(inputs, sid, fname, ftype, tombs)
                    if col is not None and len(col[0]):
                        writer.add(sid, fname, ftype, col[0], col[1])
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            handle = SegmentHandle(SegmentReader(path))
            with self._state_lock:
                replaced = [h for h in self.segments if h.generation in gens]
                self.segments = [h for h in self.segments if h.generation not in gens]
                self.segments.append(handle)
                self.segments.sort(key=lambda h: h.generation)
                self._save_manifest()
                for h in replaced:
                    if h.name != handle.name:
                        os.unlink(os.path.join(self.path, h.name))
                    h.release()  # the shard's own reference
                filenames.fsync_dir(self.path)
                if covers_all and tombs:
                    # Every file that existed when these tombstones were read has now been
                    # rewritten without their points: they have nothing left to hide.
                    self.tombstones.drop_applied(tombs)
        finally:
            for h in inputs:
                h.release()
            with self._state_lock:
                self.compacting -= gens

    # -- reads -------------------------------------------------------------------------------
    def view(self) -> "ShardView":
        from chronosdb.storage.shard_read import ShardView

        with self._state_lock:
            segs = [h.acquire() for h in self.segments]
            caches = [c for _g, c in self.frozen] + [self.cache]
            tombs = self.tombstones.snapshot()
        return ShardView(self, segs, caches, tombs)

    def field_type(self, measurement: bytes, fname: bytes) -> FieldType | None:
        return self.fields.get((measurement, fname))

    # -- stats and lifecycle -----------------------------------------------------------------
    def stats(self) -> dict:
        with self._state_lock:
            return {
                "shard_id": self.shard_id, "start": self.start, "end": self.end,
                "segments": len(self.segments),
                "segment_bytes": sum(h.reader.size_bytes for h in self.segments),
                "cache_bytes": self.cache.nbytes + sum(c.nbytes for _g, c in self.frozen),
                "cache_values": self.cache.n_values,
                "wal_bytes": self.wal.size_bytes(),
                "tombstones": len(self.tombstones.items),
            }

    def close(self) -> None:
        self.wal.close()
        with self._state_lock:
            for h in self.segments:
                h.release()
            self.segments = []


def _merged_keys(inputs: list[SegmentHandle]):
    """Distinct (series id, field, type) over the inputs, sorted."""
    keys = {}
    for h in inputs:
        for sid, fname, ftype in h.reader.entries():
            keys.setdefault((sid, fname), ftype)
    for (sid, fname), ftype in sorted(keys.items()):
        yield sid, fname, ftype


def _merge_key(inputs: list[SegmentHandle], sid: int, fname: bytes, ftype: FieldType, tombs):
    runs_t, runs_v = [], []
    for h in inputs:  # oldest generation first: merge_runs lets the newest win
        col = h.reader.read(sid, fname)
        if col is None:
            continue
        t, v = col
        if tombs:
            rs = [(x.min_time, x.max_time) for x in tombs
                  if h.generation <= x.max_generation and sid in x.series]
            if rs:
                keep = tombstone_keep(t, np.array(rs, dtype=np.int64))
                t, v = t[keep], (v.take(keep) if isinstance(v, StringArray) else v[keep])
        runs_t.append(t)
        runs_v.append(v)
    return merge_columns(ftype, runs_t, runs_v)


def merge_columns(ftype: FieldType, runs_t: list, runs_v: list):
    """Merge sorted runs (oldest first), newest value winning on equal times."""
    if not runs_t:
        return None
    if len(runs_t) == 1:
        return runs_t[0], runs_v[0]
    times, src, pos = merge_runs(runs_t)
    gidx = gather_index(np.array([len(t) for t in runs_t], dtype=np.int64), src, pos)
    if ftype is FieldType.STRING:
        return times, StringArray.concat(runs_v).take(gidx)
    return times, np.concatenate(runs_v)[gidx]
