"""The Raft state machine, pure and I/O-free: messages, ticks and proposals in; a Ready out.

``RawNode`` is the whole consensus algorithm of Ongaro & Ousterhout's paper and thesis, shaped
like etcd-io/raft's RawNode: it never touches a socket, a file, a clock or global randomness.
Time is ``tick()`` calls; randomness is ``config.rng``; the network is ``step(message)``; the
disk is whatever the caller does with ``ready()``. That is what lets a seeded simulation drive
many nodes in one process and replay any failure exactly.

The driver loop (see docs/raft.md)::

    while True:
        feed ticks, received messages and proposals into node.tick()/step()/propose()
        if node.has_ready():
            rd = node.ready()
            persist rd.hard_state, rd.snapshot, rd.entries   (fsync)    # before sending!
            send rd.messages
            restore rd.snapshot, apply rd.committed_entries, serve rd.read_states
            node.advance(rd)

Roles: FOLLOWER, PRE_CANDIDATE (pre-vote, thesis §9.6: ask whether we *could* win before
bumping the term, so a partitioned node cannot disrupt a healthy cluster when it returns),
CANDIDATE, LEADER, LEARNER (a non-voting member). The dispatch is ``step`` (term rules common
to all roles) then ``_step_leader`` / ``_step_candidate`` / ``_step_follower``.

Invariants the core relies on and checks: a committed entry is never truncated (RaftLog raises);
the leader counts its own log toward a quorum only once it is durable (after advance), so a
commit always means a durable majority; entries are committed only by counting replicas of an
entry from the leader's current term (§5.4.2, Figure 8); a Ready is acknowledged exactly once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from chronosdb.cluster.raft.log import RaftLog
from chronosdb.cluster.raft.progress import (
    Progress, ProgressState, committed_index, quorum_size)
from chronosdb.cluster.raft.types import (
    ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, HardState, Message, MsgType,
    NotLeader, RaftError, Ready, ReadState, Role, Snapshot, SoftState)

__all__ = ["Config", "RawNode", "NotLeader", "RaftError"]

# A vote request carrying this context comes from a leadership transfer (TIMEOUT_NOW): voters
# grant it even inside their leader lease, because the current leader asked for it (§3.10).
CAMPAIGN_TRANSFER = b"transfer"


@dataclass
class Config:
    id: int
    rng: random.Random
    election_tick: int = 10         # followers wait [election_tick, 2*election_tick) ticks
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_msg: int = 64
    max_inflight: int = 256
    # TEST-ONLY FAULT INJECTION. Commits entries of earlier terms by counting replicas, which
    # the paper's Figure 8 shows is unsafe. Exists so tests can prove they catch that bug.
    unsafe_commit_prior_terms: bool = False
    # TEST-ONLY FAULT INJECTION. Grants votes without the §5.4.1 "at least as up to date" log
    # check, so a node missing committed entries can become leader.
    unsafe_vote_without_log_check: bool = False

    def __post_init__(self):
        if self.id <= 0:
            raise ValueError(f"raft node id must be a positive int, got {self.id}")
        if self.heartbeat_tick <= 0 or self.election_tick <= self.heartbeat_tick:
            raise ValueError(f"need 0 < heartbeat_tick < election_tick, got "
                             f"{self.heartbeat_tick} and {self.election_tick}")
        if self.max_entries_per_msg <= 0 or self.max_inflight <= 0:
            raise ValueError("max_entries_per_msg and max_inflight must be positive")


class _ReadRequest:
    __slots__ = ("index", "frm", "context", "acks")

    def __init__(self, index: int, frm: int, context: bytes, self_id: int):
        self.index, self.frm, self.context = index, frm, context
        self.acks = {self_id}


class RawNode:
    def __init__(self, config: Config, *, conf: ConfState, hard_state: HardState = HardState(),
                 snapshot: Snapshot | None = None, entries: Sequence[Entry] = (),
                 applied: int = 0):
        self.cfg = config
        self._id = config.id
        self._rng = config.rng
        self.log = RaftLog(snapshot, entries, hard_state.commit, applied)
        self._term = hard_state.term
        self._vote = hard_state.vote
        self._lead = 0
        self._role = Role.FOLLOWER
        self._voters: set[int] = set(conf.voters)
        self._learners: set[int] = set(conf.learners)
        self.prs: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._now = 0                                   # ticks since start (lease clock)
        self._transferee = 0
        self._pending_conf_index = 0
        self._reads: dict[bytes, _ReadRequest] = {}     # insertion order = request order
        self._reads_waiting_commit: list[tuple[int, bytes]] = []
        self._prev_soft = SoftState(0, Role.FOLLOWER)
        self._prev_hard = hard_state
        self._outstanding: Ready | None = None
        self._outstanding_marks: tuple = ()
        self._reset(self._term)
        self._role = self._follower_role()

    # ---- read-only properties ------------------------------------------------------------
    id = property(lambda self: self._id)
    term = property(lambda self: self._term)
    vote = property(lambda self: self._vote)
    leader_id = property(lambda self: self._lead)
    role = property(lambda self: self._role)
    commit_index = property(lambda self: self.log.committed)
    applied_index = property(lambda self: self.log.applied)
    last_index = property(lambda self: self.log.last_index)
    transferee = property(lambda self: self._transferee)

    @property
    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self._voters)), tuple(sorted(self._learners)))

    @property
    def hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self.log.committed)

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self._lead, self._role)

    def _promotable(self) -> bool:
        return self._id in self._voters

    def _follower_role(self) -> Role:
        return Role.LEARNER if self._id in self._learners else Role.FOLLOWER

    # ---- state transitions ---------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = 0
        self._lead = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = self.cfg.election_tick + self._rng.randrange(
            self.cfg.election_tick)
        self._transferee = 0
        self._transfer_this_term = False
        self._votes = {}
        self._reads = {}
        self._reads_waiting_commit = []
        self._pending_conf_index = 0
        last = self.log.last_index
        self.prs = {}
        for n in self._voters | self._learners:
            pr = Progress(last + 1, self.cfg.max_inflight, n in self._learners)
            if n == self._id:
                pr.match = self.log.stable
            self.prs[n] = pr

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self._lead = lead
        self._role = self._follower_role()

    def _become_pre_candidate(self) -> None:
        # Pre-vote changes neither term nor vote: losing it leaves no trace.
        self._role = Role.PRE_CANDIDATE
        self._votes = {}
        self._lead = 0
        self._election_elapsed = 0
        self._randomized_timeout = self.cfg.election_tick + self._rng.randrange(
            self.cfg.election_tick)

    def _become_candidate(self) -> None:
        self._reset(self._term + 1)
        self._vote = self._id
        self._role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._lead = self._id
        self._role = Role.LEADER
        for n, pr in self.prs.items():
            pr.recent_active = True     # a fresh leader gives everyone one timeout to answer
        self.prs[self._id].become_replicate()
        # Any conf change in the log may be uncommitted: allow no new one until it is applied.
        self._pending_conf_index = self.log.last_index
        # The no-op of the new term (§8): commits everything before it and lets reads proceed.
        self._append([Entry(self._term, self.log.last_index + 1, EntryKind.NORMAL, b"")])

    # ---- inputs --------------------------------------------------------------------------
    def tick(self) -> None:
        self._now += 1
        if self._role == Role.LEADER:
            self._tick_leader()
        else:
            self._election_elapsed += 1
            if self._promotable() and self._election_elapsed >= self._randomized_timeout:
                self._election_elapsed = 0
                self._hup(transfer=False)

    def _tick_leader(self) -> None:
        for pr in self.prs.values():
            if pr.state == ProgressState.SNAPSHOT:
                pr.snapshot_ticks += 1
                if pr.snapshot_ticks >= self.cfg.election_tick:
                    pr.become_probe()   # no answer to the snapshot for a timeout: lost; retry
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.cfg.election_tick:
            self._election_elapsed = 0
            if self.cfg.check_quorum:
                if not self._quorum_recently_active():
                    self._become_follower(self._term, 0)     # §6.2: lost touch with a quorum
                    return
                for n, pr in self.prs.items():
                    if n != self._id:
                        pr.recent_active = False
            if self._transferee:
                self._transferee = 0     # the target did not take over in time: give up (§3.10)
        if self._heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def campaign(self) -> None:
        """Start an election now (with a pre-vote round first when enabled)."""
        if self._role != Role.LEADER and self._promotable():
            self._hup(transfer=False)

    def _hup(self, transfer: bool) -> None:
        if self.cfg.pre_vote and not transfer:
            self._campaign_pre()
        else:
            self._campaign_real(transfer)

    def _campaign_pre(self) -> None:
        self._become_pre_candidate()
        self._votes[self._id] = True
        if self._tally() == 1:
            self._campaign_real(False)
            return
        for n in sorted(self._voters):
            if n != self._id:
                self._send(Message(MsgType.PRE_VOTE, self._id, n, self._term + 1,
                                   log_term=self.log.last_term, index=self.log.last_index))

    def _campaign_real(self, transfer: bool) -> None:
        self._become_candidate()
        self._votes[self._id] = True
        if self._tally() == 1:
            self._become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for n in sorted(self._voters):
            if n != self._id:
                self._send(Message(MsgType.VOTE, self._id, n, self._term,
                                   log_term=self.log.last_term, index=self.log.last_index,
                                   context=ctx))

    def _tally(self) -> int:
        """1 = won, -1 = lost, 0 = still open."""
        granted = sum(1 for n, v in self._votes.items() if v and n in self._voters)
        rejected = sum(1 for n, v in self._votes.items() if not v and n in self._voters)
        q = quorum_size(len(self._voters))
        if granted >= q:
            return 1
        if rejected > len(self._voters) - q:
            return -1
        return 0

    def propose(self, data: bytes) -> None:
        self._propose(EntryKind.NORMAL, bytes(data))

    def _propose(self, kind: EntryKind, data: bytes) -> None:
        if self._role != Role.LEADER:
            raise NotLeader(self._lead)
        if self._transferee:
            raise NotLeader(self._lead, f"leadership transfer to {self._transferee} in progress")
        self._append([Entry(self._term, self.log.last_index + 1, kind, data)])
        self._bcast_append()

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose one membership change; refused while another is not yet applied (§4.1)."""
        if self._role != Role.LEADER:
            raise NotLeader(self._lead)
        if self._pending_conf_index > self.log.applied:
            raise RaftError(f"membership change at index {self._pending_conf_index} is not "
                            f"applied yet (applied {self.log.applied}); one change at a time")
        n = cc.node
        if cc.kind == ConfChangeKind.ADD_VOTER and n in self._voters:
            raise RaftError(f"node {n} is already a voter")
        if cc.kind == ConfChangeKind.ADD_LEARNER and (n in self._voters or n in self._learners):
            raise RaftError(f"node {n} is already a member; demoting a voter is not supported")
        if cc.kind == ConfChangeKind.REMOVE:
            if n not in self._voters and n not in self._learners:
                raise RaftError(f"node {n} is not a member")
            if self._voters == {n}:
                raise RaftError(f"cannot remove {n}: it is the last voter")
        self._propose(EntryKind.CONF_CHANGE, cc.encode())
        self._pending_conf_index = self.log.last_index

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Called by the driver when it applies a committed CONF_CHANGE entry. Idempotent."""
        n = cc.node
        if cc.kind == ConfChangeKind.ADD_VOTER:
            self._learners.discard(n)
            self._voters.add(n)
        elif cc.kind == ConfChangeKind.ADD_LEARNER:
            if n not in self._voters:
                self._learners.add(n)
        else:
            self._voters.discard(n)
            self._learners.discard(n)
        added = False
        if n in self._voters or n in self._learners:
            pr = self.prs.get(n)
            if pr is None:
                pr = self.prs[n] = Progress(self.log.last_index + 1, self.cfg.max_inflight)
                pr.recent_active = True
                added = True
                if n == self._id:
                    pr.match = self.log.stable
            pr.is_learner = n in self._learners
        else:
            self.prs.pop(n, None)
            if self._transferee == n:
                self._transferee = 0
        if self._role == Role.LEADER:
            if self._id not in self._voters:
                self._become_follower(self._term, 0)    # removed (or demoted): hand over
            elif self._maybe_commit():
                self._bcast_append()
            elif added and n != self._id:
                self._send_append(n)        # start bringing the new member up to date now
        elif self._role in (Role.FOLLOWER, Role.LEARNER):
            self._role = self._follower_role()
        elif not self._promotable():
            self._become_follower(self._term, self._lead)
        return self.conf_state

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered by a ReadState with this context."""
        context = bytes(context)
        if self._role == Role.LEADER:
            self._leader_read_index(self._id, context)
        elif self._lead:
            self._send(Message(MsgType.READ_INDEX, self._id, self._lead, self._term,
                               context=context))
        else:
            raise NotLeader(0, "no leader known to confirm a read")

    def lease_read_ok(self) -> bool:
        """May the leader serve a read from its applied state without a heartbeat round?

        Weaker than ``read_index``: it trusts that ticks run at the same rate on every node.
        Followers that heard from this leader ignore votes for ``election_tick`` ticks (check
        quorum), so if a quorum echoed a heartbeat sent at tick T, no other leader can exist
        before T + election_tick. One tick of margin is kept for clock skew.
        """
        if self._role != Role.LEADER or not self.cfg.check_quorum or self._transfer_this_term:
            # A transfer lets voters ignore their lease (and a delayed TIMEOUT_NOW may still
            # start a campaign later), so after one the lease proves nothing for this term.
            return False
        if self.log.term(self.log.committed) != self._term:
            return False        # our no-op is not committed: our commit index may be stale
        ticks = [self._now if n == self._id else self.prs[n].lease_tick
                 for n in self._voters if n in self.prs]
        if len(ticks) < len(self._voters):
            return False
        acked = committed_index(ticks)      # newest tick a quorum has echoed (-1: none yet)
        return acked >= 0 and self._now - acked < self.cfg.election_tick - 1

    def transfer_leadership(self, to: int) -> None:
        if to not in self._voters:
            raise RaftError(f"cannot transfer leadership to {to}: not a voter")
        if self._role != Role.LEADER:
            if not self._lead:
                raise NotLeader(0, "no leader known to transfer from")
            self._send(Message(MsgType.TRANSFER_LEADER, self._id, self._lead, self._term,
                               index=to))
            return
        self._leader_transfer(to)

    def _leader_transfer(self, to: int) -> None:
        if to == self._id or self._transferee == to or to not in self._voters:
            return
        self._transferee = to
        self._transfer_this_term = True
        self._election_elapsed = 0      # the transfer gets one election timeout (§3.10)
        pr = self.prs[to]
        if pr.match == self.log.last_index:
            self._send_timeout_now(to)
        else:
            self._send_append(to)

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(MsgType.TIMEOUT_NOW, self._id, to, self._term))

    def compact(self, index: int, data: bytes) -> None:
        """The caller snapshotted its state at applied ``index``: keep it, drop entries <= index.

        The snapshot records the current membership, so call this right after applying up to
        ``index`` (before applying any later membership change).
        """
        self.log.compact(index, bytes(data), self.conf_state)

    # ---- Ready / advance -----------------------------------------------------------------
    def has_ready(self) -> bool:
        lg = self.log
        return bool(self._msgs or self._read_states or lg.pending_snapshot is not None
                    or lg.stable < lg.last_index or lg.committed > lg.applying
                    or self.soft_state != self._prev_soft or self.hard_state != self._prev_hard)

    def ready(self) -> Ready:
        if self._outstanding is not None:
            raise RaftError("ready() called again before advance() of the previous Ready")
        lg = self.log
        soft, hard = self.soft_state, self.hard_state
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            snapshot=lg.pending_snapshot,
            entries=lg.unstable_entries(),
            messages=self._msgs,
            read_states=self._read_states,
        )
        if lg.pending_snapshot is not None:
            lg.applying = max(lg.applying, lg.pending_snapshot.index)
        rd.committed_entries = lg.next_committed()
        if rd.committed_entries:
            lg.applying = rd.committed_entries[-1].index
        self._msgs, self._read_states = [], []
        self._prev_soft, self._prev_hard = soft, hard
        self._outstanding = rd
        last = rd.entries[-1] if rd.entries else None
        self._outstanding_marks = (last.index if last else 0, last.term if last else 0,
                                   lg.applying)
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied everything in ``rd``."""
        if rd is not self._outstanding:
            raise RaftError("advance() must be given the Ready last returned by ready()")
        self._outstanding = None
        lg = self.log
        last_index, last_term, applying = self._outstanding_marks
        if rd.snapshot is not None and lg.pending_snapshot is rd.snapshot:
            lg.pending_snapshot = None
        if last_index:
            lg.stable_to(last_index, last_term)
        lg.applied = max(lg.applied, applying)
        if self._role == Role.LEADER:
            # Our own log counts toward a quorum only once it is durable.
            pr = self.prs.get(self._id)
            if pr is not None and pr.maybe_update(lg.stable) and self._maybe_commit():
                self._bcast_append()
        if self._role == Role.LEADER and self._reads_waiting_commit \
                and lg.term(lg.committed) == self._term:
            self._release_waiting_reads()

    # ---- sending -------------------------------------------------------------------------
    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def _append(self, ents: list[Entry]) -> None:
        self.log.append(ents)
        # The leader's own match moves only when the entries are durable (advance).

    def _bcast_append(self) -> None:
        for n in sorted(self.prs):
            if n != self._id:
                self._send_append(n)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        lg = self.log
        prev = pr.next - 1
        prev_term = lg.term(prev)
        if prev_term is None or pr.next < lg.first_index:
            snap = lg.snapshot
            if snap is None:
                raise AssertionError(f"follower {to} needs index {pr.next} but no snapshot kept")
            pr.become_snapshot(snap.index)
            self._send(Message(MsgType.SNAPSHOT, self._id, to, self._term, snapshot=snap))
            return True
        ents = lg.slice(pr.next, min(lg.last_index + 1, pr.next + self.cfg.max_entries_per_msg))
        if not ents and not send_if_empty:
            return False
        self._send(Message(MsgType.APPEND, self._id, to, self._term, log_term=prev_term,
                           index=prev, entries=tuple(ents), commit=lg.committed))
        pr.sent_entries(ents[-1].index if ents else prev, len(ents))
        return True

    def _bcast_heartbeat(self, context: bytes | None = None) -> None:
        if context is None:
            # Periodic heartbeats carry the newest pending read so a lost round is retried.
            context = next(reversed(self._reads)) if self._reads else b""
        for n in sorted(self.prs):
            if n != self._id:
                pr = self.prs[n]
                self._send(Message(MsgType.HEARTBEAT, self._id, n, self._term,
                                   index=self._now, commit=min(pr.match, self.log.committed),
                                   context=context))

    def _quorum_recently_active(self) -> bool:
        active = sum(1 for n in self._voters
                     if n == self._id or (n in self.prs and self.prs[n].recent_active))
        return active >= quorum_size(len(self._voters))

    def _maybe_commit(self) -> bool:
        matches = [self.prs[n].match for n in self._voters if n in self.prs]
        if len(matches) < len(self._voters) or not matches:
            return False
        mci = committed_index(matches)
        if mci <= self.log.committed:
            return False
        # Figure 8: only an entry of our own term may be committed by counting replicas.
        if self.log.term(mci) != self._term and not self.cfg.unsafe_commit_prior_terms:
            return False
        self.log.commit_to(mci)
        if self._reads_waiting_commit and self.log.term(mci) == self._term:
            self._release_waiting_reads()
        return True

    # ---- read index ----------------------------------------------------------------------
    def _leader_read_index(self, frm: int, context: bytes) -> None:
        if self.log.term(self.log.committed) != self._term:
            # Our commit index may lag the true one until our no-op commits (§6.4 step 1).
            self._reads_waiting_commit.append((frm, context))
            return
        if len(self._voters) == 1:
            self._answer_read(frm, self.log.committed, context)
            return
        if context in self._reads:
            return
        self._reads[context] = _ReadRequest(self.log.committed, frm, context, self._id)
        self._bcast_heartbeat(context)

    def _release_waiting_reads(self) -> None:
        waiting, self._reads_waiting_commit = self._reads_waiting_commit, []
        for frm, ctx in waiting:
            self._leader_read_index(frm, ctx)

    def _answer_read(self, frm: int, index: int, context: bytes) -> None:
        if frm == self._id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, self._id, frm, self._term, index=index,
                               context=context))

    def _read_ack(self, frm: int, context: bytes) -> None:
        req = self._reads.get(context)
        if req is None:
            return
        req.acks.add(frm)
        if sum(1 for n in req.acks if n in self._voters) < quorum_size(len(self._voters)):
            return
        # A quorum confirmed us as leader after every earlier request too: answer them all.
        while self._reads:
            ctx, r = next(iter(self._reads.items()))
            del self._reads[ctx]
            self._answer_read(r.frm, r.index, r.context)
            if ctx == context:
                break

    # ---- step ----------------------------------------------------------------------------
    def step(self, m: Message) -> None:
        t = m.type
        if m.term > self._term:
            if t in (MsgType.VOTE, MsgType.PRE_VOTE):
                # A node that just (re)started may have acked a leader's lease before it
                # crashed, so it too waits one election timeout before voting.
                in_lease = (self.cfg.check_quorum
                            and (self._lead != 0 or self._now < self.cfg.election_tick)
                            and self._election_elapsed < self.cfg.election_tick)
                if in_lease and m.context != CAMPAIGN_TRANSFER:
                    return      # we heard from a live leader recently: do not help depose it
            if t == MsgType.PRE_VOTE or (t == MsgType.PRE_VOTE_RESP and not m.reject):
                pass            # pre-vote terms are hypothetical: adopting them is the point not to
            elif t in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, 0)
        elif m.term < self._term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and t in (MsgType.APPEND,
                                                                      MsgType.HEARTBEAT):
                # A stale leader (e.g. back from a partition) would otherwise never learn of
                # the new term, since pre-vote/lease keep us from ever bumping it (§9.6).
                self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term))
            elif t == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, self._id, m.frm, self._term,
                                   reject=True))
            return

        if t in (MsgType.VOTE, MsgType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self._role == Role.LEADER:
            self._step_leader(m)
        elif self._role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MsgType.PRE_VOTE
        can_vote = (self._vote == m.frm or (self._vote == 0 and self._lead == 0)
                    or (pre and m.term > self._term))
        resp = MsgType.PRE_VOTE_RESP if pre else MsgType.VOTE_RESP
        if can_vote and (self.log.is_up_to_date(m.index, m.log_term)
                         or self.cfg.unsafe_vote_without_log_check):
            # The response carries the request's term so the (pre-)candidate counts it.
            self._send(Message(resp, self._id, m.frm, m.term))
            if not pre:
                self._election_elapsed = 0
                self._vote = m.frm
        else:
            self._send(Message(resp, self._id, m.frm, self._term, reject=True))

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MsgType.READ_INDEX:
            self._leader_read_index(m.frm, m.context)
            return
        if t == MsgType.TRANSFER_LEADER:
            self._leader_transfer(m.index)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == MsgType.APPEND_RESP:
            pr.recent_active = True
            if m.reject:
                hint = m.reject_hint
                if m.log_term > 0:
                    hint = self.log.find_conflict_by_term(hint, m.log_term)
                if pr.maybe_decr_to(m.index, hint):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self._send_append(m.frm)
                return
            old_paused = pr.is_paused()
            if not pr.maybe_update(m.index):
                if pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    self._send_append(m.frm)
                return
            if pr.state == ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
            elif pr.state == ProgressState.REPLICATE:
                pr.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()
            elif old_paused:
                self._send_append(m.frm)
            while pr.next <= self.log.last_index and self._send_append(m.frm, False):
                pass
            if m.frm == self._transferee and pr.match == self.log.last_index:
                self._send_timeout_now(m.frm)
        elif t == MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.lease_tick = max(pr.lease_tick, m.index)
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and len(pr.inflights) >= pr.max_inflight:
                pr.inflights.popleft()
            if pr.match < self.log.last_index:
                self._send_append(m.frm)
            if m.context:
                self._read_ack(m.frm, m.context)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MsgType.APPEND, MsgType.HEARTBEAT, MsgType.SNAPSHOT):
            self._become_follower(m.term, m.frm)    # a leader of our term exists
            self._step_follower(m)
        elif (t == MsgType.VOTE_RESP and self._role == Role.CANDIDATE) or \
                (t == MsgType.PRE_VOTE_RESP and self._role == Role.PRE_CANDIDATE):
            self._votes.setdefault(m.frm, not m.reject)
            r = self._tally()
            if r == 1:
                if self._role == Role.PRE_CANDIDATE:
                    self._campaign_real(False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif r == -1:
                self._become_follower(self._term, 0)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MsgType.APPEND:
            self._election_elapsed = 0
            self._lead = m.frm
            self._handle_append(m)
        elif t == MsgType.HEARTBEAT:
            self._election_elapsed = 0
            self._lead = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index))
            self._send(Message(MsgType.HEARTBEAT_RESP, self._id, m.frm, self._term,
                               index=m.index, context=m.context))
        elif t == MsgType.SNAPSHOT:
            self._election_elapsed = 0
            self._lead = m.frm
            self._handle_snapshot(m)
        elif t == MsgType.TIMEOUT_NOW:
            if self._promotable():
                self._hup(transfer=True)
        elif t == MsgType.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.index, m.context))
        elif t == MsgType.TRANSFER_LEADER:
            if self._lead:
                self._send(Message(MsgType.TRANSFER_LEADER, self._id, self._lead, self._term,
                                   index=m.index))

    def _handle_append(self, m: Message) -> None:
        lg = self.log
        ents = m.entries
        if ents and (ents[0].index != m.index + 1 or ents[-1].index != m.index + len(ents)):
            return      # not a run of entries right after (log_term, index): malformed, drop
        if m.index < lg.committed:
            self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term,
                               index=lg.committed))
            return
        last_new = lg.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term, index=last_new))
            return
        # Reject with a hint: our last index at or before m.index whose term is <= m.log_term,
        # so the leader can skip a whole term of mismatching entries per round trip.
        hint = lg.find_conflict_by_term(min(m.index, lg.last_index), m.log_term)
        self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term, index=m.index,
                           reject=True, reject_hint=hint, log_term=lg.term(hint) or 0))

    def _handle_snapshot(self, m: Message) -> None:
        s = m.snapshot
        lg = self.log
        if s is None or s.index <= lg.committed:
            self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term,
                               index=lg.committed))
            return
        if lg.match_term(s.index, s.term):
            # We already hold that entry: just learn that it is committed. Answer with the
            # commit index, not our last index: entries after it are unverified and may
            # conflict with the leader's, so vouching for them could count them toward a quorum.
            lg.commit_to(s.index)
            self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term,
                               index=lg.committed))
            return
        lg.restore(s)
        self._voters, self._learners = set(s.conf.voters), set(s.conf.learners)
        self.prs = {n: Progress(lg.last_index + 1, self.cfg.max_inflight, n in self._learners)
                    for n in self._voters | self._learners}
        self._role = self._follower_role()
        self._send(Message(MsgType.APPEND_RESP, self._id, m.frm, self._term,
                           index=lg.last_index))
