"""Safety invariants of Raft, checked from outside the nodes (used by both simulators).

``SafetyMonitor.check(nodes)`` is cheap enough to run after every simulated step: it looks only
at what changed since the last call (new commits, newly applied entries, new leaders).

* Election safety: at most one leader per term.
* State machine safety: the first time any node commits index i, (term, data) is recorded;
  every later commit of i on any node, and every entry any node applies, must equal it; each
  node applies indices in order without gaps (a snapshot install may jump forward).
* Leader completeness: a node seen leading a term for the first time holds every committed
  entry it has not compacted.
* Log matching (``check_log_matching``, O(nodes² × log)): if two logs agree on the term at some
  index, they agree on every entry up to it.
"""

from __future__ import annotations

from chronosdb.cluster.raft.types import Role

__all__ = ["InvariantViolation", "SafetyMonitor"]


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold (the message says which and where)."""


class SafetyMonitor:
    def __init__(self):
        self.leader_of_term: dict[int, int] = {}
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, data), first seen
        self.checked_commit: dict[int, int] = {}
        self.checked_applied: dict[int, tuple[int, int]] = {}   # node -> (boot, n checked)
        self.known_leader_terms: dict[int, int] = {}

    def fail(self, what: str):
        raise InvariantViolation(what)

    def check(self, nodes) -> None:
        committed = self.committed
        for i, n in nodes.items():
            r = n.raft
            if r is None:
                continue
            if r.role == Role.LEADER:
                other = self.leader_of_term.setdefault(r.term, i)
                if other != i:
                    self.fail(f"two leaders in term {r.term}: {other} and {i}")
                if self.known_leader_terms.get(i) != r.term:
                    self.known_leader_terms[i] = r.term
                    self._check_leader_complete(n)
            lg = r.log
            lo = max(self.checked_commit.get(i, 0), lg.snap_index)
            for idx in range(lo + 1, lg.committed + 1):
                e = lg.entries[idx - lg.snap_index - 1]
                seen = committed.get(idx)
                if seen is None:
                    committed[idx] = (e.term, e.data)
                elif seen != (e.term, e.data):
                    self.fail(f"node {i} committed {idx}@{e.term} {e.data!r} but "
                              f"{idx}@{seen[0]} {seen[1]!r} was committed before")
            self.checked_commit[i] = lg.committed
            applied = n.applied
            boot, k = self.checked_applied.get(i, (n.boots, 0))
            if boot != n.boots:
                k = 0           # restarted: n.applied starts over from the snapshot
            prev = applied[k - 1][0] if k else None
            for idx, term, data in applied[k:]:
                if term is None:        # a snapshot from the leader was installed
                    if prev is not None and idx <= prev:
                        self.fail(f"node {i} installed snapshot {idx} after applying {prev}")
                    prev = idx
                    continue
                if prev is not None and idx != prev + 1:
                    self.fail(f"node {i} applied {idx} right after {prev}: a gap or a repeat")
                prev = idx
                seen = committed.setdefault(idx, (term, data))   # applied implies committed
                if seen != (term, data):
                    self.fail(f"node {i} applied {idx}@{term} {data!r}, but the committed "
                              f"entry there is {seen[0]}@{seen[1]!r}")
            self.checked_applied[i] = (n.boots, len(applied))
    def _check_leader_complete(self, n: SimNode) -> None:
        lg = n.raft.log
        for idx, (term, data) in self.committed.items():
            if idx <= lg.snap_index:
                continue
            if idx > lg.last_index:
                self.fail(f"leader {n.id} of term {n.raft.term} lacks committed entry {idx}")
            e = lg.entries[idx - lg.snap_index - 1]
            if (e.term, e.data) != (term, data):
                self.fail(f"leader {n.id} of term {n.raft.term} has {idx}@{e.term} but "
                          f"{idx}@{term} is committed")

    def check_log_matching(self, nodes) -> None:
        logs = [(i, n.raft.log) for i, n in sorted(nodes.items()) if n.raft is not None]
        for a in range(len(logs)):
            ia, la = logs[a]
            for b in range(a + 1, len(logs)):
                ib, lb = logs[b]
                lo = max(la.snap_index, lb.snap_index) + 1
                hi = min(la.last_index, lb.last_index)
                # find the highest common index with equal terms; everything below must match
                top = 0
                for idx in range(hi, lo - 1, -1):
                    if la.term(idx) == lb.term(idx):
                        top = idx
                        break
                for idx in range(lo, top + 1):
                    ea = la.entries[idx - la.snap_index - 1]
                    eb = lb.entries[idx - lb.snap_index - 1]
                    if ea != eb:
                        self.fail(f"log matching broken: nodes {ia} and {ib} agree at {top} "
                                  f"but differ at {idx}: {ea} vs {eb}")

