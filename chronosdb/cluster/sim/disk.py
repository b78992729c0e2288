"""A simulated disk for one Raft node: it keeps exactly what Ready said to persist.

The driver contract is "persist hard state, snapshot and entries, then send". The simulated
disk applies those writes from a Ready; a crash throws away the node object and everything in
memory, and a restart rebuilds a RawNode from what the disk holds — so anything the core
handed out but that was never persisted is lost, as on a real machine losing power.

The state machine's snapshot is stored with the log snapshot (they are the same thing here);
the applied state itself is volatile and rebuilt by replaying committed entries after restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chronosdb.cluster.raft.types import ConfState, Entry, HardState, Ready, Snapshot

__all__ = ["MemDisk"]


@dataclass
class MemDisk:
    conf: ConfState                     # membership the node was created with (bootstrap)
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def persist(self, rd: Ready) -> None:
        """The durable part of a Ready, in the order a real store would write it."""
        if rd.snapshot is not None:
            # A snapshot from the leader replaces the whole log (the core dropped it too).
            self.snapshot, self.entries = rd.snapshot, []
        if rd.entries:
            first = rd.entries[0].index
            # Keep entries before `first`; the stored suffix from `first` on is replaced.
            keep = [e for e in self.entries if e.index < first]
            self.entries = keep + list(rd.entries)
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state

    def compact(self, snap: Snapshot) -> None:
        """The node snapshotted its applied state: keep the snapshot, drop what it covers."""
        self.snapshot = snap
        self.entries = [e for e in self.entries if e.index > snap.index]

    def boot_conf(self) -> ConfState:
        return self.snapshot.conf if self.snapshot is not None else self.conf
