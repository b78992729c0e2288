"""The per-database series index: series key <-> 64-bit series id, and tag postings.

Layout in memory. Every series has a *local id*, its position in three growable arrays: ``_sids``
(uint64, local -> series id, 0 once dropped), ``_koff`` (int64 key offsets) and ``_kblob`` (the
canonical keys, back to back). Local ids are dense, so the postings are 32-bit roaring bitmaps
(``pyroaring.BitMap``) over local ids, which compress far better than 64-bit bitmaps over hashed
ids; the public API converts to ``BitMap64`` of series ids at the edge. Local ids are private:
they are renumbered by each compaction and never appear in the log.

Finding a series by id uses a sorted copy of the ids (``_base_sids``/``_base_locals``, binary
searched with numpy) plus a dict of ids created since it was last rebuilt (``_recent``), so a
reopened index of a million series holds no per-series Python object. Finding a series by key
hashes the key (xxh3-64: the id it would have) and compares the stored key; the few keys whose id
is not their hash (a collision was probed past) are in the small dict ``_probed``, consulted first.

Tag postings per measurement are ``TagColumn``s: the frozen sorted arrays a snapshot was loaded
from (``snapshot.FrozenColumn``) under a dict of values changed since (``extra``). A value in
``extra`` overrides its frozen posting; ``None`` there means "no series any more".

Persistence: ``<db>/index/series-<seq>.snap`` (a compaction's snapshot, see snapshot.py) and
``series-<seq>.log`` (records appended after it, framed by log.py, meaning encoded here). Every
mutation is appended to the log before it is applied in memory, so a failed write changes
nothing. Formats: docs/format/index.md.
"""
from __future__ import annotations

import os
import struct
import threading

import numpy as np
from pyroaring import BitMap, BitMap64

from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import key_hash, parse_key
from chronosdb.model.tagexpr import And, Or, TagEquals, TagExpr, TagNotEquals, TagNotRegex, TagRegex
from chronosdb.storage import filenames
from chronosdb.storage.index import snapshot as snapfmt
from chronosdb.storage.index.log import LogWriter, read_records
from chronosdb.storage.index.snapshot import FrozenColumn, MeasurementSnapshot, Snapshot

ID_MASK = (1 << 64) - 1
MAX_LOCAL = (1 << 32) - 1  # local ids are 32-bit: at most ~4.29e9 series per database
# Rebuild the sorted id copy when the recent dict outgrows this, or a quarter of the sorted copy:
# amortised O(log n) sorts per series, and the dict stays small next to the arrays.
RECENT_MERGE_MIN = 65536
DEFAULT_AUTO_COMPACT_BYTES = 32 << 20  # ~190k TSBS series: replaying that much log takes ~1.5 s

# log record types (first payload byte)
REC_SERIES_ADDED = 1
REC_SERIES_DROPPED = 2
REC_FIELDS_ADDED = 3
REC_MEASUREMENT_DROPPED = 4

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ADDED_ENTRY = struct.Struct("<QI")


def split_key(key: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(measurement, [(tag key, tag value)]) of a canonical key, validated.

    Keys without backslashes (nearly all) take a fast path of two ``bytes.split``; escaped ones go
    through ``serieskey.parse_key``. Raises ValueError naming the key when it is not canonical.
    """
    if not isinstance(key, bytes):
        raise TypeError(f"series key must be bytes, not {type(key).__name__}")
    if b"\\" in key:
        try:
            meas, tags = parse_key(key)
        except ValueError:
            raise ValueError(f"malformed series key {key!r}") from None
    else:
        parts = key.split(b",")
        meas = parts[0]
        tags = []
        for p in parts[1:]:
            kv = p.split(b"=")
            if len(kv) != 2:
                raise ValueError(f"malformed series key {key!r}: tag {p!r} is not key=value")
            tags.append((kv[0], kv[1]))
    if not meas:
        raise ValueError(f"malformed series key {key!r}: empty measurement")
    prev = None
    for k, v in tags:
        if not k or not v:
            raise ValueError(f"malformed series key {key!r}: empty tag key or value")
        if prev is not None and k <= prev:
            raise ValueError(f"series key {key!r} is not canonical: tags must be sorted and unique")
        prev = k
    return meas, tags


class TagColumn:
    """Postings of one (measurement, tag key): value -> local ids.

    A posting is an ``int`` while a value has one series (no bitmap for the many unique values of
    a high-cardinality tag), a ``BitMap`` from two on.
    """

    __slots__ = ("frozen", "extra", "count", "_has")

    def __init__(self, frozen: FrozenColumn = FrozenColumn.EMPTY):
        self.frozen = frozen
        self.extra: dict = {}      # value -> int | BitMap | None (None: no series any more)
        self.count = len(frozen)   # values with at least one series
        self._has = None           # BitMap of every local with this tag, built on first need

    def get(self, value: bytes):
        """The posting of ``value`` (int or BitMap, shared: do not mutate), or None."""
        p = self.extra.get(value, self)
        if p is not self:
            return p
        i = self.frozen.find(value) if len(self.frozen) else -1
        return self.frozen.posting(i) if i >= 0 else None

    def add(self, value: bytes, local: int) -> None:
        p = self.get(value)
        if p is None:
            self.extra[value] = local
            self.count += 1
        elif isinstance(p, int):
            self.extra[value] = BitMap((p, local))
        else:
            if value not in self.extra:
                p = BitMap(p)  # a frozen posting: copy before changing
            p.add(local)
            self.extra[value] = p
        if self._has is not None:
            self._has.add(local)

    def remove(self, value: bytes, local: int) -> None:
        p = self.get(value)
        if p is None:
            return
        if isinstance(p, int):
            if p != local:
                return
            self.extra[value] = None
            self.count -= 1
        else:
            if value not in self.extra:
                p = BitMap(p)
            p.discard(local)
            if len(p) == 1:
                p = p.min()
            elif len(p) == 0:
                p = None
                self.count -= 1
            self.extra[value] = p
        if self._has is not None:
            self._has.discard(local)

    def values(self) -> list[bytes]:
        extra = self.extra
        out = [v for v in self.frozen.values() if v not in extra] if len(self.frozen) else []
        out.extend(v for v, p in extra.items() if p is not None)
        out.sort()
        return out

    def select(self, predicate) -> BitMap:
        """Union of the postings of the values for which ``predicate(value)`` holds; the
        predicate runs once per distinct value."""
        out = BitMap()
        extra = self.extra
        fz = self.frozen
        if len(fz):
            idx = [i for i, v in enumerate(fz.values()) if (not extra or v not in extra) and predicate(v)]
            if idx:
                at = np.array(idx, dtype=np.int64)
                words = fz.post[at]
                out |= BitMap(words[words >= 0].astype(np.uint32))
                for i in at[words < 0].tolist():
                    out |= fz.posting(i)
        for v, p in extra.items():
            if p is not None and predicate(v):
                if isinstance(p, int):
                    out.add(p)
                else:
                    out |= p
        return out

    def has(self) -> BitMap:
        """Every local id with this tag key (shared: do not mutate)."""
        if self._has is None:
            out = BitMap()
            fz = self.frozen
            if len(fz):  # one numpy pass over the posting words, not a call per value
                post = fz.post
                out |= BitMap(post[post >= 0].astype(np.uint32))
                for i in np.flatnonzero(post < 0).tolist():
                    out |= fz.posting(i)
                # A series has one value per tag key, so the frozen locals of values overridden
                # in ``extra`` can be taken out wholesale, and extra's postings put in.
                for v in self.extra:
                    i = fz.find(v)
                    if i >= 0:
                        p = fz.posting(i)
                        if isinstance(p, int):
                            out.discard(p)
                        else:
                            out -= p
            for p in self.extra.values():
                if isinstance(p, int):
                    out.add(p)
                elif p is not None:
                    out |= p
            self._has = out
        return self._has

    def merged_items(self):
        """(value, posting) in value order, frozen and extra merged; empty values skipped."""
        extra = self.extra
        if not len(self.frozen):
            return sorted((v, p) for v, p in extra.items() if p is not None)
        if not extra:
            return self.frozen.items()
        fitems = ((v, p) for v, p in self.frozen.items() if v not in extra)
        eitems = sorted((v, p) for v, p in extra.items() if p is not None)
        return _merge_sorted(fitems, eitems)

    def to_frozen(self, new_local) -> FrozenColumn:
        col = self.frozen if not self.extra else FrozenColumn.from_items(self.merged_items())
        return col if new_local is None else col.remapped(new_local)


def _merge_sorted(a, b):
    b = iter(b)
    nb = next(b, None)
    for item in a:
        while nb is not None and nb[0] < item[0]:
            yield nb
            nb = next(b, None)
        yield item
    while nb is not None:
        yield nb
        nb = next(b, None)


class _Measurement:
    __slots__ = ("all", "columns", "fields", "schema")

    def __init__(self, all_ids: BitMap | None = None, columns: dict | None = None, fields: dict | None = None):
        self.all = all_ids if all_ids is not None else BitMap()
        self.columns: dict[bytes, TagColumn] = columns if columns is not None else {}
        self.fields: dict[bytes, set] = fields if fields is not None else {}
        self.schema = None  # (tag keys, field types) as str, built by SeriesIndex.schema


def _as_id_array(ids) -> np.ndarray:
    if isinstance(ids, (BitMap64, BitMap)):
        return np.frombuffer(ids.to_array(), dtype=np.uint64 if isinstance(ids, BitMap64) else np.uint32).astype(np.uint64)
    if isinstance(ids, np.ndarray):
        return ids.astype(np.uint64, copy=False).ravel()
    if isinstance(ids, int):
        ids = [ids]
    return np.array([int(i) for i in ids], dtype=np.uint64)


class SeriesIndex:
    """Series keys, ids, tag postings and field types of one database. Thread-safe."""

    def __init__(self, directory: str, *, auto_compact_bytes: int | None = DEFAULT_AUTO_COMPACT_BYTES):
        self.directory = directory
        self.auto_compact_bytes = auto_compact_bytes
        self._lock = threading.RLock()
        self._log: LogWriter | None = None
        self._reset_state()
        os.makedirs(directory, exist_ok=True)
        filenames.remove_temp_files(directory)
        self._open()

    # --- state ---------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._n = 0                                    # local ids allocated
        self._live = 0                                 # live series
        self._sids = np.zeros(1024, dtype=np.uint64)   # local -> series id (0: dropped)
        self._koff = np.zeros(1025, dtype=np.int64)    # key offsets into _kblob
        self._kblob = bytearray()
        self._base_sids = np.zeros(0, dtype=np.uint64)  # sorted ids, binary searched
        self._base_locals = np.zeros(0, dtype=np.int64)
        self._recent: dict[int, int] = {}              # id -> local, created since the last sort
        self._probed: dict[bytes, int] = {}            # key -> id, for ids that are not the hash
        self._meas: dict[bytes, _Measurement] = {}

    def _load(self, snap: Snapshot) -> None:
        self._reset_state()
        n = len(snap.sids)
        cap = max(1024, n + n // 4)
        self._sids = np.zeros(cap, dtype=np.uint64)
        self._sids[:n] = snap.sids
        self._koff = np.zeros(cap + 1, dtype=np.int64)
        self._koff[:n + 1] = snap.key_offsets
        self._kblob = bytearray(snap.key_blob)
        self._n = self._live = n
        order = np.argsort(snap.sids, kind="stable")
        self._base_sids = snap.sids[order]
        self._base_locals = order.astype(np.int64)
        for local in snap.probed.tolist():
            self._probed[self._key_at(local)] = int(snap.sids[local])
        for m in snap.measurements:
            cols = {k: TagColumn(c) for k, c in m.columns}
            self._meas[m.name] = _Measurement(m.all, cols, m.fields)

    def _key_at(self, local: int) -> bytes:
        return bytes(self._kblob[self._koff[local]:self._koff[local + 1]])

    def _grow(self, need: int) -> None:
        cap = len(self._sids)
        if need <= cap:
            return
        new = max(need, cap * 2)
        sids = np.zeros(new, dtype=np.uint64)
        sids[:self._n] = self._sids[:self._n]
        koff = np.zeros(new + 1, dtype=np.int64)
        koff[:self._n + 1] = self._koff[:self._n + 1]
        self._sids, self._koff = sids, koff

    def _locals_of(self, sids: np.ndarray) -> np.ndarray:
        """Local id of each series id (-1 when no live series has it); one numpy pass."""
        out = np.full(len(sids), -1, dtype=np.int64)
        base = self._base_sids
        if len(base) and len(sids):
            pos = np.searchsorted(base, sids)
            pos[pos >= len(base)] = 0
            cand = self._base_locals[pos]
            ok = (base[pos] == sids) & (self._sids[cand] == sids)
            out[ok] = cand[ok]
        if self._recent and len(sids):
            get = self._recent.get
            rec = np.fromiter((get(s, -1) for s in sids.tolist()), dtype=np.int64, count=len(sids))
            hit = rec >= 0
            out[hit] = rec[hit]
        return out

    def _local_of(self, sid: int) -> int:
        return int(self._locals_of(np.array([sid], dtype=np.uint64))[0])

    def _maybe_rebuild_lookup(self) -> None:
        if len(self._recent) > max(RECENT_MERGE_MIN, len(self._base_sids) >> 2):
            live = np.flatnonzero(self._sids[:self._n])
            sids = self._sids[live]
            order = np.argsort(sids, kind="stable")
            self._base_sids = sids[order]
            self._base_locals = live[order].astype(np.int64)
            self._recent = {}

    def _to_ids(self, locals_bm: BitMap) -> BitMap64:
        if not locals_bm:
            return BitMap64()
        locs = np.frombuffer(locals_bm.to_array(), dtype=np.uint32)
        return BitMap64(np.sort(self._sids[locs]))

    # --- applying changes (shared by live calls and log replay) --------------------------------

    def _apply_added(self, sid: int, key: bytes, meas: bytes, tags, hashed: int | None = None) -> None:
        local = self._n
        if local > MAX_LOCAL:
            raise OverflowError(f"series index {self.directory} is full ({MAX_LOCAL + 1} series)")
        self._grow(local + 1)
        self._sids[local] = sid
        start = len(self._kblob)
        self._kblob += key
        self._koff[local + 1] = start + len(key)
        self._n += 1
        self._live += 1
        self._recent[sid] = local
        if sid != (key_hash(key) if hashed is None else hashed):
            self._probed[key] = sid
        m = self._meas.get(meas)
        if m is None:
            m = self._meas[meas] = _Measurement()
        m.all.add(local)
        cols = m.columns
        for k, v in tags:
            col = cols.get(k)
            if col is None:
                col = cols[k] = TagColumn()
                m.schema = None
            col.add(v, local)

    def _apply_dropped(self, local: int) -> None:
        sid = int(self._sids[local])
        key = self._key_at(local)
        meas, tags = split_key(key)
        m = self._meas.get(meas)
        if m is not None:
            m.all.discard(local)
            for k, v in tags:
                col = m.columns.get(k)
                if col is not None:
                    col.remove(v, local)
                    if col.count == 0:
                        del m.columns[k]
                        m.schema = None
            if not m.all:
                del self._meas[meas]  # the last series: the measurement and its fields go too
        self._sids[local] = 0
        self._recent.pop(sid, None)
        self._probed.pop(key, None)
        self._live -= 1

    def _apply_fields(self, meas: bytes, fields) -> None:
        m = self._meas.get(meas)
        if m is None:
            m = self._meas[meas] = _Measurement()
        for f, t in fields:
            m.fields.setdefault(f, set()).add(t)
        m.schema = None

    def _apply_drop_measurement(self, meas: bytes) -> list[int]:
        m = self._meas.get(meas)
        if m is None:
            return []
        locs = np.frombuffer(m.all.to_array(), dtype=np.uint32).astype(np.int64)
        sids = self._sids[locs].tolist()
        for local in locs.tolist():
            self._apply_dropped(local)
        self._meas.pop(meas, None)  # a measurement with fields but no series
        return sids

    # --- log records ---------------------------------------------------------------------------

    @staticmethod
    def _rec_added(entries) -> bytes:
        parts = [_U8.pack(REC_SERIES_ADDED), _U32.pack(len(entries))]
        for sid, key in entries:
            parts.append(_ADDED_ENTRY.pack(sid, len(key)))
            parts.append(key)
        return b"".join(parts)

    @staticmethod
    def _rec_dropped(sids: np.ndarray) -> bytes:
        return _U8.pack(REC_SERIES_DROPPED) + _U32.pack(len(sids)) + sids.astype("<u8").tobytes()

    @staticmethod
    def _rec_fields(meas: bytes, fields) -> bytes:
        parts = [_U8.pack(REC_FIELDS_ADDED), _U32.pack(len(meas)), meas, _U32.pack(len(fields))]
        for f, t in fields:
            parts += [_U32.pack(len(f)), f, _U8.pack(int(t))]
        return b"".join(parts)

    @staticmethod
    def _rec_drop_measurement(meas: bytes) -> bytes:
        return _U8.pack(REC_MEASUREMENT_DROPPED) + _U32.pack(len(meas)) + meas

    def _replay(self, path: str, offset: int, payload: bytes) -> None:
        """Apply one log record; damage inside a checksummed record is corruption."""
        def bad(what):
            return CorruptionError(path, offset, what)

        try:
            kind = payload[0]
            if kind == REC_SERIES_ADDED:
                count = _U32.unpack_from(payload, 1)[0]
                off = 5
                entries = []
                for _ in range(count):
                    sid, klen = _ADDED_ENTRY.unpack_from(payload, off)
                    off += _ADDED_ENTRY.size
                    key = payload[off:off + klen]
                    if len(key) != klen:
                        raise bad("series record truncated")
                    off += klen
                    if sid == 0:
                        raise bad("series record with the reserved id 0")
                    entries.append((sid, key))
                # The ids of one record are distinct (assigned together), so one vectorised
                # lookup up front sees the same state as looking each up in turn.
                locs = self._locals_of(np.fromiter((e[0] for e in entries), dtype=np.uint64, count=len(entries)))
                for (sid, key), local in zip(entries, locs.tolist()):
                    if local >= 0:
                        if self._key_at(local) == key:
                            continue  # already applied
                        raise bad(f"series id {sid} assigned to two keys")
                    meas, tags = split_key(key)
                    self._apply_added(sid, key, meas, tags)
                self._maybe_rebuild_lookup()
            elif kind == REC_SERIES_DROPPED:
                count = _U32.unpack_from(payload, 1)[0]
                sids = np.frombuffer(payload, dtype="<u8", count=count, offset=5).astype(np.uint64)
                for local in self._locals_of(sids).tolist():
                    if local >= 0:
                        self._apply_dropped(local)
            elif kind == REC_FIELDS_ADDED:
                mlen = _U32.unpack_from(payload, 1)[0]
                meas = payload[5:5 + mlen]
                off = 5 + mlen
                count = _U32.unpack_from(payload, off)[0]
                off += 4
                fields = []
                for _ in range(count):
                    flen = _U32.unpack_from(payload, off)[0]
                    f = payload[off + 4:off + 4 + flen]
                    off += 4 + flen
                    fields.append((f, FieldType(payload[off])))
                    off += 1
                self._apply_fields(meas, fields)
            elif kind == REC_MEASUREMENT_DROPPED:
                mlen = _U32.unpack_from(payload, 1)[0]
                self._apply_drop_measurement(payload[5:5 + mlen])
            else:
                raise bad(f"unknown index log record type {kind}")
        except CorruptionError:
            raise
        except (struct.error, IndexError, ValueError) as e:
            raise bad(f"malformed index log record: {e}") from None

    def _append(self, payload: bytes) -> None:
        if self._log is None:
            raise ValueError(f"series index {self.directory} is closed")
        self._log.append([payload])

    def _after_append(self) -> None:
        if self.auto_compact_bytes is not None and self._log.size > self.auto_compact_bytes:
            self.compact()

    # --- open / compact ------------------------------------------------------------------------

    def _files(self):
        snaps, logs = {}, {}
        for name in os.listdir(self.directory):
            m = filenames.INDEX_SNAP_RE.match(name)
            if m:
                snaps[int(m.group(1))] = os.path.join(self.directory, name)
            m = filenames.INDEX_LOG_RE.match(name)
            if m:
                logs[int(m.group(1))] = os.path.join(self.directory, name)
        return snaps, logs

    def _open(self) -> None:
        snaps, logs = self._files()
        start = 1
        if snaps:
            start = max(snaps)
            path = snaps[start]
            with open(path, "rb") as f:
                data = f.read()
            self._load(snapfmt.decode(path, data))
        elif logs:
            start = min(logs)
        replay = sorted(s for s in logs if s >= start)
        good_end = None
        for seq in replay:
            records, good_end = read_records(logs[seq])
            for offset, payload in records:
                self._replay(logs[seq], offset, payload)
        self._seq = replay[-1] if replay else start
        self._log = LogWriter(os.path.join(self.directory, filenames.index_log(self._seq)),
                              good_end if replay else None)
        self._remove_older_than(start, snaps, logs)

    def _remove_older_than(self, seq: int, snaps, logs) -> None:
        removed = False
        for files in (snaps, logs):
            for s, path in files.items():
                if s < seq:
                    os.unlink(path)
                    removed = True
        if removed:
            filenames.fsync_dir(self.directory)

    def _build_snapshot(self) -> Snapshot:
        n = self._n
        sids_all = self._sids[:n]
        live = np.flatnonzero(sids_all)
        if len(live) == n:
            new_local = None
            sids = sids_all.copy()
            koff = self._koff[:n + 1].copy()
            blob = bytes(self._kblob)
        else:
            new_local = np.full(max(n, 1), -1, dtype=np.int64)
            new_local[live] = np.arange(len(live), dtype=np.int64)
            sids = sids_all[live]
            st = self._koff[live]
            en = self._koff[live + 1]
            kb = self._kblob
            blob = b"".join(kb[s:e] for s, e in zip(st.tolist(), en.tolist()))
            koff = np.zeros(len(live) + 1, dtype=np.int64)
            np.cumsum(en - st, out=koff[1:])
        probed_locals = []
        for sid in self._probed.values():
            local = self._local_of(sid)
            probed_locals.append(local if new_local is None else int(new_local[local]))
        measurements = []
        for name in sorted(self._meas):
            m = self._meas[name]
            # A measurement may have fields and no series yet (add_fields before ids_for_keys):
            # keep it, or a compaction between the two calls would lose the fields.
            if new_local is None:
                all_ids = m.all
            else:
                arr = new_local[np.frombuffer(m.all.to_array(), dtype=np.uint32)]
                all_ids = BitMap(arr.astype(np.uint32))
            all_ids.run_optimize()
            cols = [(k, m.columns[k].to_frozen(new_local)) for k in sorted(m.columns)]
            measurements.append(MeasurementSnapshot(name, all_ids, {f: set(t) for f, t in m.fields.items()}, cols))
        return Snapshot(sids, koff, blob, np.array(sorted(probed_locals), dtype=np.uint32), measurements)

    # --- public API ----------------------------------------------------------------------------

    def ids_for_keys(self, keys: list[bytes], create: bool = True) -> np.ndarray:
        """The series id of each canonical key (uint64), creating missing series when ``create``;
        0 where a key is missing and ``create`` is False. Duplicate keys get the same id."""
        n = len(keys)
        out = np.zeros(n, dtype=np.uint64)
        if n == 0:
            return out
        for k in keys:
            if not isinstance(k, bytes):
                raise TypeError(f"series key must be bytes, not {type(k).__name__}")
        with self._lock:
            hashes = np.fromiter(map(key_hash, keys), dtype=np.uint64, count=n)
            locs = self._locals_of(hashes)
            found = locs >= 0
            safe = np.where(found, locs, 0)
            st = self._koff[safe].tolist()
            en = self._koff[safe + 1].tolist()
            kb = self._kblob
            probed = self._probed
            missing: dict[bytes, list[int]] = {}
            for i, (k, ok) in enumerate(zip(keys, found.tolist())):
                if probed:
                    sid = probed.get(k)
                    if sid is not None:
                        out[i] = sid
                        continue
                if ok and kb[st[i]:en[i]] == k:
                    out[i] = hashes[i]
                    continue
                missing.setdefault(k, []).append(i)
            if not missing or not create:
                return out
            self._create(missing, out)
        self._after_append()
        return out

    def _create(self, missing: dict[bytes, list[int]], out: np.ndarray) -> None:
        new_keys = list(missing)
        parsed = [split_key(k) for k in new_keys]  # validate the whole batch before changing anything
        if self._n + len(new_keys) > MAX_LOCAL + 1:
            raise OverflowError(f"series index {self.directory} is full ({MAX_LOCAL + 1} series)")
        hashes = np.fromiter(map(key_hash, new_keys), dtype=np.uint64, count=len(new_keys))
        taken = (self._locals_of(hashes) >= 0) | (hashes == 0)
        hlist = hashes.tolist()
        if len(set(hlist)) != len(hlist):
            seen: set[int] = set()
            for i, h in enumerate(hlist):
                if h in seen:
                    taken[i] = True
                seen.add(h)
        assigned = list(hlist)
        if taken.any():
            # Collision (or the reserved hash 0): probe upwards from the hash to the next id that
            # no live series and no earlier key of this batch holds. Deterministic, and the chosen
            # id is logged, so it never changes across restarts.
            batch_ids = {h for h, t in zip(hlist, taken.tolist()) if not t}
            for i in np.flatnonzero(taken).tolist():
                sid = hlist[i]
                while sid == 0 or sid in batch_ids or self._local_of(sid) >= 0:
                    sid = (sid + 1) & ID_MASK
                batch_ids.add(sid)
                assigned[i] = sid
        self._append(self._rec_added(list(zip(assigned, new_keys))))
        for sid, h, key, (meas, tags) in zip(assigned, hlist, new_keys, parsed):
            self._apply_added(sid, key, meas, tags, h)
            for i in missing[key]:
                out[i] = sid
        self._maybe_rebuild_lookup()

    def key_of(self, sid: int) -> bytes | None:
        with self._lock:
            local = self._local_of(int(sid)) if 0 < int(sid) <= ID_MASK else -1
            return self._key_at(local) if local >= 0 else None

    def keys_of(self, ids) -> list[bytes]:
        """Keys of the ids, in order; None for an id with no live series (e.g. just dropped)."""
        arr = _as_id_array(ids)
        with self._lock:
            locs = self._locals_of(arr).tolist()
            koff, kb = self._koff, self._kblob
            return [bytes(kb[koff[l]:koff[l + 1]]) if l >= 0 else None for l in locs]

    def measurements(self) -> list[bytes]:
        with self._lock:
            return sorted(name for name, m in self._meas.items() if m.all)

    def series_ids(self, measurement: bytes) -> BitMap64:
        with self._lock:
            m = self._meas.get(measurement)
            return self._to_ids(m.all) if m is not None else BitMap64()

    def all_series_ids(self) -> BitMap64:
        with self._lock:
            sids = self._sids[:self._n]
            return BitMap64(np.sort(sids[sids != 0]))

    def tag_keys(self, measurement: bytes) -> list[bytes]:
        with self._lock:
            m = self._meas.get(measurement)
            return sorted(k for k, c in m.columns.items() if c.count) if m is not None else []

    def tag_values(self, measurement: bytes, key: bytes) -> list[bytes]:
        with self._lock:
            m = self._meas.get(measurement)
            col = m.columns.get(key) if m is not None else None
            return col.values() if col is not None else []

    def tag_value_ids(self, measurement: bytes, key: bytes, value: bytes) -> BitMap64:
        with self._lock:
            m = self._meas.get(measurement)
            col = m.columns.get(key) if m is not None else None
            p = col.get(value) if col is not None else None
            if p is None:
                return BitMap64()
            return self._to_ids(BitMap((p,)) if isinstance(p, int) else p)

    def match(self, measurement: bytes, expr: TagExpr | None) -> BitMap64:
        """Series of ``measurement`` matching ``expr`` (None: all of them); see tagexpr.py for
        the semantics."""
        with self._lock:
            m = self._meas.get(measurement)
            if m is None or not m.all:
                return BitMap64()
            if expr is None:
                return self._to_ids(m.all)
            return self._to_ids(self._eval(m, expr))

    def match_ids(self, measurement: bytes, expr: TagExpr | None) -> np.ndarray:
        """What ``match`` finds as a sorted uint64 array, without building a 64-bit bitmap
        (queries want the array; one tag value of one series is a single lookup)."""
        with self._lock:
            m = self._meas.get(measurement)
            if m is None or not m.all:
                return np.zeros(0, dtype=np.uint64)
            if type(expr) is TagEquals and expr.value:
                col = m.columns.get(expr.key)
                p = col.get(expr.value) if col is not None else None
                if p is None:
                    return np.zeros(0, dtype=np.uint64)
                if isinstance(p, int):
                    return self._sids[p:p + 1].copy()
                bm = p
            else:
                bm = m.all if expr is None else self._eval(m, expr)
            if not bm:
                return np.zeros(0, dtype=np.uint64)
            return np.sort(self._sids[np.frombuffer(bm.to_array(), dtype=np.uint32)])

    def match_keys(self, measurement: bytes, expr: TagExpr | None) -> tuple[np.ndarray, list[bytes]]:
        """``(ids, keys)``: what ``match`` finds, as sorted uint64 ids, and their keys in the
        same order, in one pass (no id -> local lookup: the postings hold locals)."""
        with self._lock:
            m = self._meas.get(measurement)
            if m is None or not m.all:
                return np.zeros(0, dtype=np.uint64), []
            bm = m.all if expr is None else self._eval(m, expr)
            if not bm:
                return np.zeros(0, dtype=np.uint64), []
            locs = np.frombuffer(bm.to_array(), dtype=np.uint32)
            sids = self._sids[locs]
            if len(sids) > 1:
                order = np.argsort(sids, kind="stable")
                sids, locs = sids[order], locs[order]
            koff, kb = self._koff, self._kblob
            return sids, [bytes(kb[koff[l]:koff[l + 1]]) for l in locs.tolist()]

    def _eval(self, m: _Measurement, expr) -> BitMap:
        """Local ids matching ``expr``; always a fresh bitmap (callers may mutate it)."""
        if isinstance(expr, TagEquals):
            col = m.columns.get(expr.key)
            if not expr.value:
                return m.all - col.has() if col is not None else BitMap(m.all)
            p = col.get(expr.value) if col is not None else None
            if p is None:
                return BitMap()
            return BitMap((p,)) if isinstance(p, int) else BitMap(p)
        if isinstance(expr, TagNotEquals):
            return m.all - self._eval(m, TagEquals(expr.key, expr.value))
        if isinstance(expr, TagRegex):
            return self._eval_regex(m, expr)
        if isinstance(expr, TagNotRegex):
            return m.all - self._eval_regex(m, expr)
        if isinstance(expr, And):
            return self._eval(m, expr.left) & self._eval(m, expr.right)
        if isinstance(expr, Or):
            return self._eval(m, expr.left) | self._eval(m, expr.right)
        raise TypeError(f"not a tag expression: {expr!r}")

    @staticmethod
    def _eval_regex(m: _Measurement, expr) -> BitMap:
        """Series whose value of ``expr.key`` (b"" when absent) the pattern finds a match in;
        the pattern runs once per distinct value."""
        col = m.columns.get(expr.key)
        out = col.select(expr.value_matches) if col is not None else BitMap()
        if expr.value_matches(b""):
            out |= (m.all - col.has()) if col is not None else m.all
        return out

    def add_fields(self, measurement: bytes, fields: list[tuple[bytes, FieldType]]) -> None:
        """Record field types of a measurement; idempotent (only new (field, type) pairs are
        logged). A field may hold several types (written differently in different shards)."""
        if not isinstance(measurement, bytes) or not measurement:
            raise ValueError(f"measurement must be non-empty bytes, not {measurement!r}")
        checked = []
        for f, t in fields:
            if not isinstance(f, bytes) or not f:
                raise ValueError(f"field name must be non-empty bytes, not {f!r}")
            try:
                checked.append((f, FieldType(t)))
            except ValueError:
                raise ValueError(f"unknown field type {t!r} for field {f!r}") from None
        with self._lock:
            m = self._meas.get(measurement)
            have = m.fields if m is not None else {}
            new = []
            for f, t in checked:
                if t not in have.get(f, ()) and (f, t) not in new:
                    new.append((f, t))
            if not new:
                return
            self._append(self._rec_fields(measurement, new))
            self._apply_fields(measurement, new)
        self._after_append()

    def schema(self, measurement: bytes) -> tuple[frozenset, dict]:
        """(tag keys, {field: type}) of a measurement as str, each field with the lowest of its
        types; built once and kept until a tag key or field type comes or goes. Shared: callers
        must not mutate them."""
        with self._lock:
            m = self._meas.get(measurement)
            if m is None:
                return frozenset(), {}
            if m.schema is None:
                m.schema = (frozenset(k.decode() for k, c in m.columns.items() if c.count),
                            {f.decode(): min(t) for f, t in m.fields.items()})
            return m.schema

    def field_types(self, measurement: bytes) -> dict[bytes, set[FieldType]]:
        with self._lock:
            m = self._meas.get(measurement)
            return {f: set(t) for f, t in m.fields.items()} if m is not None else {}

    def drop_series(self, ids) -> None:
        """Remove series from every posting. Unknown ids are ignored. Dropping the last series
        of a measurement removes the measurement and its fields."""
        arr = _as_id_array(ids)
        with self._lock:
            locs = self._locals_of(arr)
            keep = locs >= 0
            if not keep.any():
                return
            locs = np.unique(locs[keep])
            sids = self._sids[locs]
            self._append(self._rec_dropped(sids))
            for local in locs.tolist():
                self._apply_dropped(local)
        self._after_append()

    def drop_measurement(self, measurement: bytes) -> list[int]:
        """Drop every series of a measurement (and its fields); returns the dropped ids."""
        with self._lock:
            if measurement not in self._meas:
                return []
            self._append(self._rec_drop_measurement(measurement))
            out = self._apply_drop_measurement(measurement)
        self._after_append()
        return out

    def series_count(self) -> int:
        with self._lock:
            return self._live

    def sync(self) -> None:
        """fsync the log: call before writing anything that refers to ids handed out."""
        with self._lock:
            if self._log is not None:
                self._log.sync()

    def compact(self) -> None:
        """Write a snapshot of the whole index and start a new, empty log; remove older files."""
        with self._lock:
            if self._log is None:
                raise ValueError(f"series index {self.directory} is closed")
            snap = self._build_snapshot()
            data = snapfmt.encode(snap)
            seq = self._seq + 1
            path = os.path.join(self.directory, filenames.index_snapshot(seq))
            filenames.atomic_write(path, data)
            self._log.close()
            self._log = None
            self._seq = seq
            self._log = LogWriter(os.path.join(self.directory, filenames.index_log(seq)))
            self._log.sync()
            filenames.fsync_dir(self.directory)
            # Continue from exactly what was written: what a reopen would see.
            self._load(snapfmt.decode(path, data))
            snaps, logs = self._files()
            self._remove_older_than(seq, snaps, logs)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
