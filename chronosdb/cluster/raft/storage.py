"""Durable Raft state in one directory: the log with the hard state, and the latest snapshot.

Layout (docs/format/raft-log.md has the byte diagrams)::

    <dir>/raft.log        append-only; records framed exactly like WAL records
                          (chronosdb.storage.wal.segment), each one SAVE record per save() call:
                          cbor [hard_state | [], [entry, ...]]
    <dir>/raft.snapshot   one SNAPSHOT record, replaced atomically (temp file, fsync, rename)

Why the hard state rides in the log file rather than a file of its own: Raft needs the hard state
and the entries of one Ready durable *together* (a vote and the log it was based on, a term and
the entries of that term). One record per save() and one fsync make that atomic: a crash leaves
either the whole save or, as a torn tail, none of it. It also keeps a save at one fsync instead
of three (write + rename + directory). The latest hard state is the last one in the file.

Appends are O(entries). Two rarer operations rewrite the whole log file atomically (new file,
fsync, rename, fsync the directory): replacing a stored suffix (a follower whose log diverged
from the leader's), and dropping a prefix covered by a snapshot. The rewritten file starts with
one SAVE record holding the current hard state and every entry kept, so no hard state is ever
lost by truncation.

Recovery follows the WAL's rule (docs/format/wal.md): bad bytes in raft.log after which no
valid record starts are a torn tail of the last save and are truncated; any other bad record
raises CorruptionError naming the file and offset. raft.snapshot is written atomically, so any
bad byte there is corruption.
"""

from __future__ import annotations

import os
from typing import Sequence

import cbor2

from chronosdb.cluster.raft.types import ConfState, Entry, EntryKind, HardState, Snapshot
from chronosdb.model.errors import CorruptionError
from chronosdb.storage.filenames import atomic_write
from chronosdb.storage.wal.segment import frame_record, scan_segment

__all__ = ["RaftStorage", "LOG_FILE", "SNAPSHOT_FILE"]

LOG_FILE = "raft.log"
SNAPSHOT_FILE = "raft.snapshot"

# Record types, chosen apart from the WAL's (1 WRITE, 2 DELETE) so a misplaced file is obvious.
RECORD_SAVE = 16
RECORD_SNAPSHOT = 17


def _entry_wire(e: Entry) -> list:
    return [e.index, e.term, int(e.kind), e.data]


def _hs_wire(hs: HardState | None) -> list:
    return [] if hs is None else [hs.term, hs.vote, hs.commit]


class RaftStorage:
    """The Raft log, hard state and latest snapshot of one node, in directory ``path``.

    Not thread-safe: one caller (the node driver) at a time, which may be a worker thread.
    """

    def __init__(self, path: str):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)
        self.log_path = os.path.join(self.path, LOG_FILE)
        self.snapshot_path = os.path.join(self.path, SNAPSHOT_FILE)
        self.truncated_tail: tuple[int, str] | None = None   # (offset, why) when load() cut a torn tail
        self._file = None
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        self._first = 1            # index of the first stored entry
        self._terms: list[int] = []  # term of each stored entry, from _first on
        self._loaded = False

    # ----------------------------------------------------------------- reading

    @property
    def last_index(self) -> int:
        return self._first + len(self._terms) - 1

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def term_at(self, index: int) -> int | None:
        """Term of the stored entry (or snapshot point) at ``index``; None if not stored."""
        if self._snapshot is not None and index == self._snapshot.index:
            return self._snapshot.term
        if self._first <= index <= self.last_index:
            return self._terms[index - self._first]
        return None

    def load(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        """Read everything back (repairing a torn tail) and open the log for appending.

        Returns the hard state, the snapshot (None if none was taken) and the entries after it.
        """
        self._snapshot = self._read_snapshot()
        hs, entries = self._read_log(repair=True)
        base = self._snapshot.index if self._snapshot is not None else 0
        if self._snapshot is not None and entries:
            # A crash between writing a snapshot and rewriting the log leaves covered entries
            # behind; and if the entry at the snapshot point has another term, the log after
            # it belongs to a divergent history the snapshot replaced.
            at = [e for e in entries if e.index == base]
            if at and at[0].term != self._snapshot.term:
                entries = []
            entries = [e for e in entries if e.index > base]
        if entries and entries[0].index != base + 1:
            raise CorruptionError(self.log_path, 0,
                                  f"log starts at index {entries[0].index} but the snapshot "
                                  f"ends at {base}: entries {base + 1}..{entries[0].index - 1} are missing")
        self._hard_state = hs or HardState()
        self._first = base + 1
        self._terms = [e.term for e in entries]
        self._open_for_append()
        self._loaded = True
        return self._hard_state, self._snapshot, entries

    def _read_snapshot(self) -> Snapshot | None:
        try:
            with open(self.snapshot_path, "rb") as f:
                buf = f.read()
        except FileNotFoundError:
            return None
        scan = scan_segment(buf, self.snapshot_path, tail_may_be_torn=False)
        if len(scan.frames) != 1 or scan.frames[0].record_type != RECORD_SNAPSHOT:
            raise CorruptionError(self.snapshot_path, 0,
                                  f"expected one snapshot record, found {len(scan.frames)} record(s)")
        frame = scan.frames[0]
        try:
            index, term, voters, learners, data = cbor2.loads(frame.payload(self.snapshot_path))
            return Snapshot(int(index), int(term), ConfState(tuple(voters), tuple(learners)), bytes(data))
        except (ValueError, TypeError, cbor2.CBORDecodeError) as e:
            raise CorruptionError(self.snapshot_path, frame.offset, f"malformed snapshot record: {e}") from None

    def _read_log(self, repair: bool) -> tuple[HardState | None, list[Entry]]:
        try:
            with open(self.log_path, "rb") as f:
                buf = f.read()
        except FileNotFoundError:
            return None, []
        scan = scan_segment(buf, self.log_path, tail_may_be_torn=repair)
        if scan.torn:
            with open(self.log_path, "r+b") as f:
                f.truncate(scan.valid_length)
                f.flush()
                os.fsync(f.fileno())
            self.truncated_tail = (scan.valid_length, scan.torn_reason)
        hs: HardState | None = None
        entries: list[Entry] = []
        for frame in scan.frames:
            if frame.record_type != RECORD_SAVE:
                raise CorruptionError(self.log_path, frame.offset,
                                      f"unexpected record type {frame.record_type} in a raft log")
            try:
                hs_w, ents_w = cbor2.loads(frame.payload(self.log_path))
                if hs_w:
                    term, vote, commit = hs_w
                    hs = HardState(int(term), int(vote), int(commit))
                batch = [Entry(int(t), int(i), EntryKind(k), bytes(d)) for i, t, k, d in ents_w]
            except (ValueError, TypeError, cbor2.CBORDecodeError) as e:
                raise CorruptionError(self.log_path, frame.offset, f"malformed save record: {e}") from None
            for e in batch:
                if entries and e.index != entries[-1].index + 1:
                    raise CorruptionError(self.log_path, frame.offset,
                                          f"entry index {e.index} does not follow {entries[-1].index}")
                entries.append(e)
        return hs, entries

    # ----------------------------------------------------------------- writing

    def _open_for_append(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = open(self.log_path, "ab")

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError(f"RaftStorage({self.path!r}): call load() before writing")

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None = None) -> None:
        """Make one Ready's state durable; returns after fsync.

        ``entries`` must be contiguous; entries[0].index may be <= the last stored index, and
        then the stored suffix from there on is replaced. A ``snapshot`` (received from the
        leader) replaces the log up to its index; stored entries after it survive only if the
        entry at the snapshot point has the snapshot's term.
        """
        self._require_loaded()
        entries = list(entries)
        for a, b in zip(entries, entries[1:]):
            if b.index != a.index + 1:
                raise ValueError(f"entries to save are not contiguous: {a.index} then {b.index}")
        hs = hard_state
        if snapshot is not None:
            self._install_snapshot(snapshot, hs, entries)
            return
        if entries:
            first = entries[0].index
            if first < self._first:
                raise ValueError(f"entry {first} is covered by the snapshot at "
                                 f"{self._first - 1}; it cannot be rewritten")
            if first > self.last_index + 1:
                raise ValueError(f"entry {first} leaves a gap after the last stored entry {self.last_index}")
            if first <= self.last_index:
                _, stored = self._read_log(repair=False)
                kept = [e for e in stored if e.index < first]
                self._rewrite(hs or self._hard_state, kept + entries)
                return
        if hs is None and not entries:
            return
        self._file.write(frame_record(RECORD_SAVE, cbor2.dumps([_hs_wire(hs), [_entry_wire(e) for e in entries]])))
        self._file.flush()
        os.fsync(self._file.fileno())
        if hs is not None:
            self._hard_state = hs
        self._terms.extend(e.term for e in entries)

    def _install_snapshot(self, snap: Snapshot, hs: HardState | None, entries: list[Entry]) -> None:
        if entries and entries[0].index != snap.index + 1:
            raise ValueError(f"entries saved with a snapshot at {snap.index} must start at "
                             f"{snap.index + 1}, not {entries[0].index}")
        _, stored = self._read_log(repair=False)
        if self.term_at(snap.index) == snap.term and not entries:
            kept = [e for e in stored if e.index > snap.index]
        else:
            kept = []
        self._write_snapshot(snap)
        self._rewrite(hs or self._hard_state, kept + entries, first=snap.index + 1)

    def compact(self, snapshot: Snapshot) -> None:
        """Store a snapshot the application took of its applied state, and drop the log
        entries it covers. The snapshot point must be a stored entry (or later than the last
        snapshot) with the same term."""
        self._require_loaded()
        if self._snapshot is not None and snapshot.index <= self._snapshot.index:
            raise ValueError(f"snapshot at {snapshot.index} is not newer than the stored one at "
                             f"{self._snapshot.index}")
        if snapshot.index > self.last_index:
            raise ValueError(f"cannot compact to {snapshot.index}: the log ends at {self.last_index}")
        if self.term_at(snapshot.index) != snapshot.term:
            raise ValueError(f"snapshot term {snapshot.term} at index {snapshot.index} does not match "
                             f"the stored entry's term {self.term_at(snapshot.index)}")
        _, stored = self._read_log(repair=False)
        self._write_snapshot(snapshot)
        self._rewrite(self._hard_state, [e for e in stored if e.index > snapshot.index],
                      first=snapshot.index + 1)

    def _write_snapshot(self, snap: Snapshot) -> None:
        body = cbor2.dumps([snap.index, snap.term, list(snap.conf.voters), list(snap.conf.learners), snap.data])
        atomic_write(self.snapshot_path, frame_record(RECORD_SNAPSHOT, body))
        self._snapshot = snap

    def _rewrite(self, hs: HardState, entries: list[Entry], first: int | None = None) -> None:
        """Replace raft.log by one record holding ``hs`` and ``entries`` (atomic)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        atomic_write(self.log_path, frame_record(
            RECORD_SAVE, cbor2.dumps([_hs_wire(hs), [_entry_wire(e) for e in entries]])))
        self._hard_state = hs
        self._first = entries[0].index if entries else (first if first is not None else self._first)
        self._terms = [e.term for e in entries]
        self._open_for_append()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
