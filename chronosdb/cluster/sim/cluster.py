"""The seeded randomized simulator: a whole Raft cluster, its network, disks and clients.

One ``random.Random(seed)`` decides everything — message loss, duplication, delay (and so
reordering), partitions, crashes, restarts, membership changes, client operations — and each
node's core gets its own Random seeded from it, so a seed replays exactly. Time is a step
counter; every step each live node ticks once, due messages are delivered, Readys handled.

Faults injected (probabilities per step are in ``SimParams``):
  * network: loss, duplication, delays of 1..max_delay steps (so reordering); partitions of
    three shapes — random halves, the leader isolated, a "bridge" node that sees both halves;
  * crash of up to a minority of voters, losing all memory (the disk keeps only what Readys
    said to persist, see disk.MemDisk), and restart from disk;
  * membership: add a learner (a new node id), promote a learner, remove a voter (its process
    is then stopped), one change at a time as the core enforces;
  * compaction every ``compact_every`` applied entries, so lagging nodes need InstallSnapshot.

Checked after every step (``_check_step``), failing with the seed and the step:
  * at most one leader per term (election safety);
  * a committed entry never changes: the first time any node commits index i, (term, data)
    is recorded; every later commit of i anywhere must agree, and every entry any node
    applies must be that recorded entry (state machine safety, "same applied sequence");
  * a new leader's log holds every committed entry it has not compacted (leader completeness);
  * log matching across all pairs of nodes (every ``full_check_every`` steps and at the end).
At the end the network heals, crashed nodes restart, and after a calm period every member must
have applied the same commit (liveness), and the client history — puts, gets (ReadIndex) and
compare-and-sets with call and return times, unknown outcomes for timeouts — must be
linearizable (``chronosdb.cluster.lincheck.check_kv``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
import random

from chronosdb.cluster.raft.types import (
    ConfChange, ConfChangeKind, ConfState, Message, NotLeader, RaftError, Role)
from chronosdb.cluster.sim.invariants import InvariantViolation, SafetyMonitor
from chronosdb.cluster.sim.node import SimNode

try:    # the other engineer's checker; the simulation still checks safety without it
    from chronosdb.cluster.lincheck import (
        CheckBudgetExceeded, Op as LinOp, check_kv as lincheck_check_kv)
except ImportError:     # pragma: no cover
    LinOp = lincheck_check_kv = None
    CheckBudgetExceeded = ()

__all__ = ["SimParams", "SimulationFailure", "Simulation", "run_seed"]

KEYS = ("x", "y", "z")


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, nodes: int, step: int, what: str):
        super().__init__(f"seed {seed} ({nodes} nodes) step {step}: {what}\n  replay: "
                         f"python -m chronosdb.cluster.sim --seed {seed} --nodes {nodes}")
        self.seed, self.nodes, self.step, self.what = seed, nodes, step, what


@dataclass
class SimParams:
    nodes: int = 3
    steps: int = 300
    calm_steps: int = 100           # fault-free tail before the liveness check
    clients: int = 3
    loss: float = 0.05
    dup: float = 0.02
    max_delay: int = 3
    p_crash: float = 0.01
    p_restart: float = 0.08
    p_partition: float = 0.01
    p_heal: float = 0.05
    p_membership: float = 0.02
    p_transfer: float = 0.01
    p_client_op: float = 0.3
    op_timeout: int = 40
    full_check_every: int = 50
    trace: bool = False
    check_linearizable: bool = True
    raft: dict = field(default_factory=lambda: dict(election_tick=10, heartbeat_tick=2))


class _PendingOp:
    __slots__ = ("client", "kind", "key", "arg", "call", "node", "op_id", "deadline",
                 "read_index")

    def __init__(self, client, kind, key, arg, call, node, op_id, deadline):
        self.client, self.kind, self.key, self.arg = client, kind, key, arg
        self.call, self.node, self.op_id, self.deadline = call, node, op_id, deadline
        self.read_index = None


class Simulation:
    def __init__(self, seed: int, params: SimParams | None = None):
        self.seed = seed
        self.p = params or SimParams()
        self.rng = random.Random(seed)
        p = self.p
        ids = list(range(1, p.nodes + 1))
        self.compact_every = self.rng.randrange(8, 40)
        conf = ConfState(tuple(ids), ())
        self.nodes: dict[int, SimNode] = {
            i: SimNode(i, conf, p.raft, self.rng.getrandbits(32), self.compact_every) for i in ids}
        self.next_id = p.nodes + 1
        self.removed: set[int] = set()
        self.in_flight: list[tuple[int, int, Message]] = []   # (due step, seq, message)
        self.seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.now = 0
        self.clock = 0                                      # client event counter
        self.monitor = SafetyMonitor()
        self.history: list = []
        self.pending: dict[int, _PendingOp] = {}
        self.op_seq = 0
        self.trace: list[tuple] = [] if p.trace else None
        self.stats = {"delivered": 0, "crashes": 0, "partitions": 0, "conf_changes": 0,
                      "snapshots_sent": 0, "ops_ok": 0, "ops_unknown": 0,
                      "transfers": 0, "lease_reads": 0, "lincheck_inconclusive": 0}

    @property
    def committed(self) -> dict[int, tuple[int, bytes]]:
        """Every committed entry seen so far: index -> (term, data)."""
        return self.monitor.committed

    # ---- helpers -------------------------------------------------------------------------
    def fail(self, what: str):
        raise SimulationFailure(self.seed, self.p.nodes, self.now, what)

    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    def leader(self) -> SimNode | None:
        best = None
        for n in self.nodes.values():
            r = n.raft
            if r is not None and r.role == Role.LEADER and (best is None or r.term > best.raft.term):
                best = n
        return best

    def voters(self) -> set[int]:
        lead = self.leader()
        src = lead or next(iter(self.alive()), None)
        return set(src.raft.conf_state.voters) if src else set()

    # ---- network -------------------------------------------------------------------------
    def _send_all(self, msgs: list[Message]) -> None:
        rng, p = self.rng, self.p
        for m in msgs:
            if rng.random() < p.loss:
                continue
            copies = 2 if rng.random() < p.dup else 1
            for _ in range(copies):
                self.seq += 1
                self.in_flight.append((self.now + rng.randint(1, p.max_delay), self.seq, m))

    def _handle_readies(self) -> None:
        for i in sorted(self.nodes):
            n = self.nodes[i]
            if n.raft is not None and n.raft.has_ready():
                self._send_all(n.handle_ready())

    def _deliver_due(self) -> None:
        due = [x for x in self.in_flight if x[0] <= self.now]
        if not due:
            return
        self.in_flight = [x for x in self.in_flight if x[0] > self.now]
        self.rng.shuffle(due)
        for _, _, m in due:
            if (m.frm, m.to) in self.blocked:
                continue
            dst = self.nodes.get(m.to)
            if dst is None or dst.raft is None:
                continue
            if self.trace is not None:
                self.trace.append((self.now, int(m.type), m.frm, m.to, m.term, m.index,
                                   len(m.entries), m.commit, m.reject))
            self.stats["delivered"] += 1
            if m.snapshot is not None:
                self.stats["snapshots_sent"] += 1
            dst.raft.step(m)

    # ---- faults --------------------------------------------------------------------------
    def _faults(self) -> None:
        rng, p = self.rng, self.p
        # crash: at most a minority of the current voters down at once
        if rng.random() < p.p_crash:
            voters = self.voters()
            down = [i for i in voters if not self.nodes[i].alive]
            if len(down) < (len(voters) - 1) // 2:
                cands = sorted(i for i, n in self.nodes.items() if n.alive)
                if cands:
                    victim = rng.choice(cands)
                    self.nodes[victim].crash()
                    self.stats["crashes"] += 1
        for i in sorted(self.nodes):
            n = self.nodes[i]
            if not n.alive and i not in self.removed and rng.random() < p.p_restart:
                n.restart()
        if self.blocked:
            if rng.random() < p.p_heal:
                self.blocked = set()
        elif rng.random() < p.p_partition:
            self._partition()
        if rng.random() < p.p_membership:
            self._membership()
        if rng.random() < p.p_transfer:
            lead = self.leader()
            if lead is not None:
                voters = [v for v in lead.raft.conf_state.voters if v != lead.id]
                if voters:
                    lead.raft.transfer_leadership(rng.choice(voters))
                    self.stats["transfers"] += 1

    def _partition(self) -> None:
        rng = self.rng
        ids = sorted(i for i in self.nodes if i not in self.removed)
        kind = rng.randrange(3)
        self.stats["partitions"] += 1
        if kind == 1 and self.leader() is not None:
            a = {self.leader().id}
        else:
            rng.shuffle(ids)
            a = set(ids[:len(ids) // 2])
        b = set(ids) - a
        bridge = rng.choice(sorted(b)) if kind == 2 and len(b) > 1 else None
        for x in a:
            for y in b:
                if y == bridge:
                    continue
                self.blocked.add((x, y))
                self.blocked.add((y, x))

    def _membership(self) -> None:
        lead = self.leader()
        if lead is None:
            return
        rng, r = self.rng, lead.raft
        cs = r.conf_state
        choice = rng.randrange(3)
        try:
            if choice == 0 and len(cs.learners) == 0 and len(self.nodes) < self.p.nodes + 3:
                nid = self.next_id
                r.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, nid))
                self.next_id += 1
                conf = ConfState(cs.voters, tuple(sorted(set(cs.learners) | {nid})))
                self.nodes[nid] = SimNode(nid, conf, self.p.raft, self.rng.getrandbits(32),
                                          self.compact_every)
            elif choice == 1 and cs.learners:
                r.propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, cs.learners[0]))
            elif choice == 2 and len(cs.voters) > 3:
                victim = rng.choice(cs.voters)
                r.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, victim))
            else:
                return
            self.stats["conf_changes"] += 1
        except RaftError:
            pass        # a change is still pending, or a transfer: try again later

    def _reap_removed(self) -> None:
        """Stop the process of a node once some member applied its removal (as an operator
        would after `cluster remove`)."""
        lead = self.leader()
        if lead is None:
            return
        cs = lead.raft.conf_state
        members = set(cs.voters) | set(cs.learners)
        for i, n in self.nodes.items():
            if i not in members and i not in self.removed and lead.raft.applied_index > 0:
                # Only nodes that were members before and are gone now: a just-joined node is
                # a learner in the leader's conf once its ADD_LEARNER applied.
                if self._was_removed(lead, i):
                    self.removed.add(i)
                    n.crash()

    @staticmethod
    def _was_removed(lead: SimNode, i: int) -> bool:
        for _, _, data in reversed(lead.applied):
            if data is not None and len(data) == 9 and data[0] == ConfChangeKind.REMOVE and \
                    int.from_bytes(data[1:], "big") == i:
                return True
        return False

    # ---- clients -------------------------------------------------------------------------
    def _tick_clock(self) -> int:
        self.clock += 1
        return self.clock

    def _clients(self, issue: bool) -> None:
        rng, p = self.rng, self.p
        for c in range(p.clients):
            op = self.pending.get(c)
            if op is not None:
                self._poll(op)
                continue
            if not issue or rng.random() >= p.p_client_op:
                continue
            self._issue(c)

    def _issue(self, c: int) -> None:
        rng = self.rng
        alive = self.alive()
        if not alive:
            return
        # Usually ask the node some node believes is the leader; sometimes any node.
        target = rng.choice(alive)
        if rng.random() < 0.8 and target.raft.leader_id in self.nodes \
                and self.nodes[target.raft.leader_id].alive:
            target = self.nodes[target.raft.leader_id]
        self.op_seq += 1
        op_id = f"{c}.{self.op_seq}"
        key = rng.choice(KEYS)
        roll = rng.random()
        try:
            if roll < 0.4:
                call = self._tick_clock()
                target.raft.propose(f"put|{op_id}|{key}|{op_id}".encode())
                kind, arg = "put", op_id
            elif roll < 0.6:
                expected = rng.choice([None] + [o.arg for o in self.history[-6:]
                                                if o.kind == "put" and o.key == key])
                new = op_id
                call = self._tick_clock()
                target.raft.propose(f"cas|{op_id}|{key}|{expected or ''}|{new}".encode())
                kind, arg = "cas", (expected, new)
            elif roll < 0.8 or not target.raft.lease_read_ok():
                call = self._tick_clock()
                target.raft.read_index(op_id.encode())
                kind, arg = "get", None
            else:
                # Lease read: no round trip, but the state must include everything committed.
                call = self._tick_clock()
                kind, arg = "get", None
                op = _PendingOp(c, kind, key, arg, call, target.id, op_id,
                                self.now + self.p.op_timeout)
                op.read_index = target.raft.commit_index
                self.pending[c] = op
                self.stats["lease_reads"] += 1
                return
        except (NotLeader, RaftError):
            return      # refused at once: nothing happened, nothing to record
        self.pending[c] = _PendingOp(c, kind, key, arg, call, target.id, op_id,
                                     self.now + self.p.op_timeout)

    def _poll(self, op: _PendingOp) -> None:
        node = self.nodes[op.node]
        if node.raft is not None:
            if op.kind == "get":
                if op.read_index is None:
                    for rs in node.read_states:
                        if rs.context == op.op_id.encode():
                            op.read_index = rs.index
                            node.read_states.remove(rs)
                            break
                if op.read_index is not None and node.raft.applied_index >= op.read_index:
                    self._finish(op, node.kv.get(op.key))
                    return
            elif op.op_id in node.results:
                self._finish(op, node.results.pop(op.op_id))
                return
        if self.now >= op.deadline or node.raft is None:
            self._finish(op, None, unknown=True)

    def _finish(self, op: _PendingOp, output, unknown: bool = False) -> None:
        del self.pending[op.client]
        if unknown:
            self.stats["ops_unknown"] += 1
            if op.kind == "get":
                return      # a read that never answered constrains nothing
        else:
            self.stats["ops_ok"] += 1
        ret = None if unknown else self._tick_clock()
        if LinOp is not None:
            self.history.append(LinOp(op.client, op.kind, op.key, op.arg, op.call, ret,
                                      None if unknown else output))

    # ---- invariants ----------------------------------------------------------------------
    def _check_step(self) -> None:
        try:
            self.monitor.check(self.nodes)
        except InvariantViolation as e:
            self.fail(str(e))

    def _check_log_matching(self) -> None:
        try:
            self.monitor.check_log_matching(self.nodes)
        except InvariantViolation as e:
            self.fail(str(e))

    # ---- the run -------------------------------------------------------------------------
    def step(self, faults: bool, clients: bool) -> None:
        self.now += 1
        for i in sorted(self.nodes):
            r = self.nodes[i].raft
            if r is not None:
                r.tick()
        if faults:
            self._faults()
        self._handle_readies()
        self._deliver_due()
        self._handle_readies()
        self._reap_removed()
        self._clients(clients)
        self._handle_readies()
        self._check_step()

    def run(self) -> dict:
        p = self.p
        for s in range(p.steps):
            self.step(faults=True, clients=True)
            if s % p.full_check_every == 0:
                self._check_log_matching()
        # calm: heal, restart everyone still a member, stop issuing ops
        self.blocked = set()
        for i, n in sorted(self.nodes.items()):
            if not n.alive and i not in self.removed:
                n.restart()
        # A healthy network for the liveness check: Raft's liveness needs the broadcast time
        # well below the election timeout, which the faulty phase (3-step delays per hop,
        # i.e. up to 12 steps for pre-vote + vote against 10..20-step timeouts) does not give.
        saved = (p.loss, p.dup, p.max_delay)
        p.loss, p.dup, p.max_delay = 0.0, 0.0, 1
        try:
            for _ in range(p.calm_steps):
                self.step(faults=False, clients=False)
        finally:
            p.loss, p.dup, p.max_delay = saved
        self._check_log_matching()
        self._check_liveness()
        for op in list(self.pending.values()):
            self._finish(op, None, unknown=True)
        if p.check_linearizable and lincheck_check_kv is not None:
            try:
                res = lincheck_check_kv(self.history)
            except CheckBudgetExceeded:
                self.stats["lincheck_inconclusive"] += 1    # too concurrent to decide: no verdict
            else:
                if not res.ok:
                    self.fail("client history is not linearizable:\n" + res.explain())
        return self.stats

    def _check_liveness(self) -> None:
        lead = self.leader()
        if lead is None:
            self.fail("no leader after the calm period")
        cs = lead.raft.conf_state
        for i in set(cs.voters) | set(cs.learners):
            n = self.nodes[i]
            if n.raft is None or n.raft.applied_index != lead.raft.commit_index:
                self.fail(f"after the calm period member {i} has applied "
                          f"{n.raft.applied_index if n.raft else 'nothing (down)'} but the "
                          f"leader committed {lead.raft.commit_index}")

    def trace_digest(self) -> str:
        h = hashlib.blake2b(repr(self.trace).encode(), digest_size=16)
        h.update(repr(sorted(self.monitor.committed.items())).encode())
        return h.hexdigest()


def run_seed(seed: int, nodes: int = 3, **overrides) -> Simulation:
    raft = overrides.pop("raft", None)
    params = SimParams(nodes=nodes, **overrides)
    if raft:
        params.raft = {**params.raft, **raft}
    sim = Simulation(seed, params)
    sim.run()
    return sim
