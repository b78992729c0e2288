"""The in-memory Raft log: a snapshot, the entries after it, and which of them are not yet durable.

Layout (indices are 1-based; index 0 with term 0 is the empty log's sentinel)::

    [ snapshot (snap_index, snap_term) ][ entries[0] = snap_index+1 ... entries[-1] = last ]
                                         ^ stable: entries <= stable are on the caller's disk
    applied <= applying <= committed <= last

The core hands out everything above ``stable`` (plus a not-yet-persisted snapshot) in a Ready,
and everything in ``(applying, committed]`` to be applied. Acknowledging the Ready (advance)
moves ``stable`` and ``applied``. Truncation by a conflicting append lowers ``stable`` so the
replaced suffix is handed out again; the caller's store then replaces its own suffix.

The log never holds more than it must: ``compact`` drops entries up to an applied index once
the caller has snapshotted the state machine there; the snapshot is kept to send to followers
that fall behind the first index (InstallSnapshot).
"""

from __future__ import annotations

from typing import Sequence

from chronosdb.cluster.raft.types import ConfState, Entry, Snapshot

__all__ = ["RaftLog", "LogInvariantError"]


class LogInvariantError(AssertionError):
    """A change would break a Raft safety invariant (e.g. truncating a committed entry)."""


class RaftLog:
    __slots__ = ("snapshot", "snap_index", "snap_term", "entries", "stable", "committed",
                 "applying", "applied", "pending_snapshot")

    def __init__(self, snapshot: Snapshot | None = None, entries: Sequence[Entry] = (),
                 committed: int = 0, applied: int = 0):
        self.snapshot = snapshot                        # kept to send with InstallSnapshot
        self.snap_index = snapshot.index if snapshot else 0
        self.snap_term = snapshot.term if snapshot else 0
        # Storage may hand back entries the snapshot already covers; only the tail counts.
        self.entries: list[Entry] = [e for e in entries if e.index > self.snap_index]
        for k, e in enumerate(self.entries):
            if e.index != self.snap_index + 1 + k:
                raise LogInvariantError(
                    f"entries given to the log are not contiguous after index {self.snap_index}: "
                    f"position {k} holds index {e.index}")
        self.stable = self.last_index                   # what we were given is on disk
        self.committed = max(committed, self.snap_index)
        if self.committed > self.last_index:
            raise LogInvariantError(
                f"hard state commit {committed} is beyond the last stored index {self.last_index}")
        if applied > self.committed:
            raise LogInvariantError(f"applied index {applied} is beyond the commit index "
                                    f"{self.committed}")
        self.applied = max(applied, self.snap_index)
        self.applying = self.applied
        self.pending_snapshot: Snapshot | None = None   # received, not yet handed out/persisted

    # ---- reading -------------------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self.snap_index + 1

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    def term(self, index: int) -> int | None:
        """The term of ``index``, or None when it is compacted away or beyond the end."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index:
            return None
        return self.entries[index - self.snap_index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (lo must be >= first_index)."""
        off = self.snap_index + 1
        return self.entries[lo - off:hi - off]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: is a log ending at (last_index, last_term) at least as up to date as ours?"""
        return last_term > self.last_term or (last_term == self.last_term
                                              and last_index >= self.last_index)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (for fast back-off)."""
        index = min(index, self.last_index)
        while index > self.snap_index:
            t = self.term(index)
            if t is not None and t <= term:
                break
            index -= 1
        return index

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable - self.snap_index:] if self.stable < self.last_index else []

    def next_committed(self) -> list[Entry]:
        """Committed entries not yet handed out for applying."""
        lo = max(self.applying + 1, self.first_index)
        if lo > self.committed:
            return []
        return self.slice(lo, self.committed + 1)

    # ---- changing ------------------------------------------------------------------------
    def maybe_append(self, prev_index: int, prev_term: int, commit: int,
                     ents: Sequence[Entry]) -> int | None:
        """A leader's AppendEntries: None on mismatch, else the last index it vouches for."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(ents)
        conflict = 0
        for e in ents:
            if e.index <= self.snap_index:
                continue        # covered by our snapshot, so committed and equal
            if self.term(e.index) != e.term:
                conflict = e.index
                break
        if conflict:
            if conflict <= self.committed:
                raise LogInvariantError(
                    f"append would replace committed entry {conflict} (committed {self.committed})")
            self.append(ents[conflict - ents[0].index:])
        self.commit_to(min(commit, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> None:
        if not ents:
            return
        first = ents[0].index
        if first <= self.committed:
            raise LogInvariantError(f"append at {first} would rewrite committed log ({self.committed})")
        if first > self.last_index + 1:
            raise LogInvariantError(f"append at {first} leaves a gap after {self.last_index}")
        del self.entries[first - self.snap_index - 1:]
        self.entries.extend(ents)
        if first <= self.stable:
            self.stable = first - 1     # the stored suffix from `first` on must be replaced

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index:
                raise LogInvariantError(f"commit {index} is beyond the last index {self.last_index}")
            self.committed = index

    def stable_to(self, index: int, term: int) -> None:
        # A truncation between ready() and advance() may have replaced the entry: only mark it
        # durable when the entry at `index` is still the one that was handed out.
        if index > self.stable and self.term(index) == term:
            self.stable = index

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.snapshot = snap
        self.pending_snapshot = snap
        self.snap_index, self.snap_term = snap.index, snap.term
        self.entries = []
        self.stable = snap.index
        self.committed = snap.index

    def compact(self, index: int, data: bytes, conf: ConfState) -> Snapshot:
        """Drop entries <= index (already applied and snapshotted by the caller)."""
        if index <= self.snap_index:
            raise LogInvariantError(f"compact({index}): already compacted up to {self.snap_index}")
        if index > self.applied:
            raise LogInvariantError(f"compact({index}): only entries up to applied index "
                                    f"{self.applied} may be compacted")
        term = self.term(index)
        snap = Snapshot(index, term, conf, data)
        del self.entries[:index - self.snap_index]
        self.snapshot, self.snap_index, self.snap_term = snap, index, term
        return snap
