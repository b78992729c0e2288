"""The leader's view of one follower: how much of the log it matches and what to send next.

A follower's progress is in one of three states (the etcd-raft design):

* PROBE — we do not know where the follower's log diverges. Send one append at a time from
  ``next`` and wait for the answer (``probe_sent`` pauses further sends); a rejection moves
  ``next`` back using the follower's hint.
* REPLICATE — the follower is in step: stream appends optimistically (``next`` advances as we
  send), bounded by an in-flight window of ``max_inflight`` messages so a slow follower cannot
  make the leader buffer without limit.
* SNAPSHOT — ``next`` is below the leader's first index: an InstallSnapshot is in flight; stop
  sending appends until the follower reports a match at or beyond ``pending_snapshot``.

``recent_active`` is set whenever the follower answers and cleared every election timeout by the
check-quorum round. ``lease_tick`` is the newest leader tick the follower echoed in a heartbeat
response; a quorum of those bounds the leader lease.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

__all__ = ["ProgressState", "Progress", "quorum_size", "committed_index"]


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot", "inflights",
                 "max_inflight", "recent_active", "lease_tick", "is_learner", "snapshot_ticks")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False):
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights: deque[int] = deque()    # last index of each append in flight
        self.max_inflight = max_inflight
        self.recent_active = False
        self.lease_tick = -1
        self.is_learner = is_learner
        self.snapshot_ticks = 0     # ticks since the InstallSnapshot went out (retry when lost)

    def __repr__(self) -> str:
        return (f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
                f"paused={self.is_paused()})")

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflights.clear()

    def become_snapshot(self, snap_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = snap_index
        self.snapshot_ticks = 0
        self.probe_sent = False
        self.inflights.clear()

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return len(self.inflights) >= self.max_inflight
        return True

    def sent_entries(self, last: int, count: int) -> None:
        """Bookkeeping after sending an append whose last entry is ``last`` (count entries)."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last + 1
                self.inflights.append(last)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, n: int) -> bool:
        """The follower matches up to ``n``: True when that is news."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def free_le(self, index: int) -> None:
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append after ``rejected``: back off. False if stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True


def quorum_size(n_voters: int) -> int:
    return n_voters // 2 + 1


def committed_index(matches: list[int]) -> int:
    """The largest index that a majority of ``matches`` (one per voter) has reached."""
    if not matches:
        return 0
    s = sorted(matches, reverse=True)
    return s[quorum_size(len(s)) - 1]
