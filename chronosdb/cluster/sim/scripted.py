"""A hand-driven cluster for tests and data-driven scenarios: nothing happens unless asked.

Messages wait in one FIFO queue until ``deliver`` is called; ``drop``, ``partition`` and
``heal`` decide which get through; ``tick`` advances one node's clock. ``run_script`` executes
the small command language of tests/raft/testdata/*.txt and returns the transcript:

    add-nodes 3 [pre_vote=false check_quorum=false ...]   nodes 1..3, all voters
    set-log 1 1 1 2 [term=3]   node 1's log gets entries of terms 1,1,2 (restarted from it)
    join 4                     a fresh node with the leader's membership (to add as learner)
    campaign 1 | propose 1 data | propose-conf 1 add-voter|add-learner|remove 4
    transfer 1 2 | read-index 2 ctx | compact 1 [index]
    tick 2 [xN] | tick all [xN]
    deliver [rounds]           deliver queued messages (default: until quiet), printing them
    drop 1->2 | drop all       discard queued messages (of that link)
    partition 1 | 2 3          messages across groups are dropped until heal
    isolate 1 | heal
    crash 3 | restart 3        restart loses whatever the node did not persist
    status [ids] | log 1 | reads 2 | kv 1

After every command the safety monitor (sim.invariants) runs; a broken invariant prints a
"VIOLATION: ..." line into the transcript.
"""

from __future__ import annotations

import shlex

from chronosdb.cluster.raft.types import (
    ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, Message, MsgType, RaftError)
from chronosdb.cluster.sim.invariants import InvariantViolation, SafetyMonitor
from chronosdb.cluster.sim.node import SimNode

__all__ = ["ScriptedCluster", "format_message", "format_entry", "ScriptError"]


class ScriptError(Exception):
    """A scenario line is malformed (the message names the line)."""


def format_entry(e: Entry) -> str:
    s = f"{e.index}@{e.term}"
    if e.kind == EntryKind.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        return s + f":cc({cc.kind.name.lower().replace('_', '-')} {cc.node})"
    return s + (f":{e.data.decode(errors='replace')}" if e.data else "")


def format_message(m: Message) -> str:
    t = m.type
    s = f"{m.frm}->{m.to} {t.name} t{m.term}"
    if t == MsgType.APPEND:
        s += f" prev={m.index}@{m.log_term} commit={m.commit}"
        if m.entries:
            s += " [" + " ".join(format_entry(e) for e in m.entries) + "]"
    elif t == MsgType.APPEND_RESP:
        s += f" index={m.index}"
        if m.reject:
            s += f" REJECT hint={m.reject_hint}@{m.log_term}"
    elif t in (MsgType.VOTE, MsgType.PRE_VOTE):
        s += f" last={m.index}@{m.log_term}" + (f" ctx={m.context.decode()}" if m.context else "")
    elif t in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
        s += " REJECT" if m.reject else " GRANT"
    elif t == MsgType.HEARTBEAT:
        s += f" commit={m.commit}" + (f" ctx={m.context.decode()}" if m.context else "")
    elif t == MsgType.HEARTBEAT_RESP:
        s += f" ctx={m.context.decode()}" if m.context else ""
    elif t == MsgType.SNAPSHOT:
        sn = m.snapshot
        s += f" snap={sn.index}@{sn.term} voters={list(sn.conf.voters)} learners={list(sn.conf.learners)}"
    elif t in (MsgType.READ_INDEX, MsgType.READ_INDEX_RESP):
        s += (f" index={m.index}" if t == MsgType.READ_INDEX_RESP else "") + f" ctx={m.context.decode()}"
    elif t == MsgType.TRANSFER_LEADER:
        s += f" to={m.index}"
    return s


_CC_KINDS = {"add-voter": ConfChangeKind.ADD_VOTER, "add-learner": ConfChangeKind.ADD_LEARNER,
             "remove": ConfChangeKind.REMOVE}


def _parse_value(v: str):
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return int(v)


class ScriptedCluster:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.nodes: dict[int, SimNode] = {}
        self.queue: list[Message] = []
        self.groups: list[set[int]] | None = None      # partition; None = fully connected
        self.cfg_kwargs: dict = {}
        self.out: list[str] = []
        self.monitor = SafetyMonitor()
        self.violations: list[str] = []

    # ---- building ------------------------------------------------------------------------
    def add_nodes(self, n: int, compact_every: int = 0, **cfg) -> None:
        self.cfg_kwargs = dict(cfg)
        ids = list(range(len(self.nodes) + 1, len(self.nodes) + n + 1))
        conf = ConfState(tuple(ids), ())
        for i in ids:
            self.nodes[i] = SimNode(i, conf, self.cfg_kwargs, self.seed * 1000 + i, compact_every)

    def join(self, node_id: int, conf: ConfState | None = None) -> SimNode:
        if conf is None:
            lead = self.leader()
            base = lead.raft.conf_state if lead else ConfState()
            conf = ConfState(base.voters, tuple(sorted(set(base.learners) | {node_id})))
        node = SimNode(node_id, conf, self.cfg_kwargs, self.seed * 1000 + node_id)
        self.nodes[node_id] = node
        return node

    def leader(self) -> SimNode | None:
        best = None
        for n in self.nodes.values():
            if n.alive and n.raft.role.name == "LEADER" and (best is None or n.raft.term > best.raft.term):
                best = n
        return best

    # ---- the network ---------------------------------------------------------------------
    def connected(self, a: int, b: int) -> bool:
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    def process_ready(self) -> None:
        for i in sorted(self.nodes):
            node = self.nodes[i]
            if node.alive:
                self.queue.extend(node.handle_ready())

    def deliver_round(self, only_to: int | None = None) -> int:
        self.process_ready()
        batch = [m for m in self.queue if only_to is None or m.to == only_to]
        self.queue = [m for m in self.queue if not (only_to is None or m.to == only_to)]
        for m in batch:
            dst = self.nodes.get(m.to)
            if dst is None or not dst.alive or not self.connected(m.frm, m.to):
                self.out.append(f"{format_message(m)}  (dropped)")
                continue
            self.out.append(format_message(m))
            dst.raft.step(m)
        self.process_ready()
        return len(batch)

    def deliver(self, rounds: int | None = None, only_to: int | None = None) -> None:
        n = 0
        while rounds is None or n < rounds:
            if not self.deliver_round(only_to) and not self.queue:
                break
            n += 1
            if n > 10_000:
                raise ScriptError("deliver did not quiesce after 10000 rounds")

    def tick(self, ids, times: int = 1) -> None:
        for _ in range(times):
            for i in ids:
                if self.nodes[i].alive:
                    self.nodes[i].raft.tick()
        self.process_ready()

    # ---- output --------------------------------------------------------------------------
    def status_lines(self, ids=None) -> list[str]:
        lines = []
        for i in ids or sorted(self.nodes):
            node = self.nodes[i]
            if not node.alive:
                lines.append(f"{i}: CRASHED")
                continue
            r = node.raft
            cs = r.conf_state
            lines.append(f"{i}: {r.role.name} term={r.term} lead={r.leader_id} vote={r.vote} "
                         f"commit={r.commit_index} applied={r.applied_index} last={r.last_index} "
                         f"snap={r.log.snap_index} voters={list(cs.voters)}"
                         + (f" learners={list(cs.learners)}" if cs.learners else ""))
        return lines

    def log_line(self, i: int) -> str:
        r = self.nodes[i].raft
        if r is None:
            return f"{i} log: CRASHED"
        return f"{i} log: " + (" ".join(format_entry(e) for e in r.log.entries) or "(empty)") + \
            (f"  (snapshot {r.log.snap_index}@{r.log.snap_term})" if r.log.snap_index else "")

    # ---- the script language -------------------------------------------------------------
    def run_command(self, line: str) -> list[str]:
        self.out = []
        words = shlex.split(line)
        cmd, args = words[0], words[1:]
        try:
            self._dispatch(cmd, args)
        except RaftError as e:
            self.out.append(f"error: {e}")
        except (ValueError, IndexError, KeyError) as e:
            raise ScriptError(f"bad scenario line {line!r}: {e!r}") from None
        self.check()
        return self.out

    def check(self) -> None:
        """Run the safety monitor; a violation is printed (and kept in ``violations``)."""
        try:
            self.monitor.check(self.nodes)
            self.monitor.check_log_matching(self.nodes)
        except InvariantViolation as e:
            self.violations.append(str(e))
            self.out.append(f"VIOLATION: {e}")
            self.monitor = SafetyMonitor()      # report each problem once, keep going

    def set_log(self, node_id: int, terms: list[int], term: int) -> None:
        """Give a node a log with these entry terms (data "t<term>i<index>") and restart it,
        the way etcd's paper tests build the figures' starting states."""
        from chronosdb.cluster.raft.types import HardState
        n = self.nodes[node_id]
        n.disk.entries = [Entry(t, k + 1, EntryKind.NORMAL, f"t{t}i{k + 1}".encode())
                          for k, t in enumerate(terms)]
        n.disk.hard_state = HardState(term, 0, 0)
        n.disk.snapshot = None
        n.crash()
        n.restart()

    def _dispatch(self, cmd: str, args: list[str]) -> None:
        node = lambda k: self.nodes[int(args[k])]     # noqa: E731
        if cmd == "add-nodes":
            kw = dict(a.split("=", 1) for a in args[1:])
            compact_every = int(kw.pop("compact_every", 0))
            self.add_nodes(int(args[0]), compact_every, **{k: _parse_value(v) for k, v in kw.items()})
        elif cmd == "set-log":
            kw = dict(a.split("=", 1) for a in args[1:] if "=" in a)
            terms = [int(a) for a in args[1:] if "=" not in a]
            self.set_log(int(args[0]), terms, int(kw.get("term", max(terms, default=0))))
        elif cmd == "join":
            self.join(int(args[0]))
        elif cmd == "campaign":
            node(0).raft.campaign()
        elif cmd == "propose":
            node(0).raft.propose(args[1].encode())
        elif cmd == "propose-conf":
            node(0).raft.propose_conf_change(ConfChange(_CC_KINDS[args[1]], int(args[2])))
        elif cmd == "transfer":
            node(0).raft.transfer_leadership(int(args[1]))
        elif cmd == "read-index":
            node(0).raft.read_index(args[1].encode())
        elif cmd == "compact":
            n = node(0)
            n.compact(int(args[1]) if len(args) > 1 else n.raft.applied_index)
            self.out.append(self.log_line(n.id))
        elif cmd == "tick":
            times = int(args[1][1:]) if len(args) > 1 else 1
            ids = sorted(self.nodes) if args[0] == "all" else [int(args[0])]
            self.tick(ids, times)
        elif cmd == "deliver":
            self.deliver(int(args[0]) if args else None)
        elif cmd == "drop":
            self.process_ready()
            if args[0] == "all":
                dropped, self.queue = self.queue, []
            else:
                a, b = (int(x) for x in args[0].split("->"))
                dropped = [m for m in self.queue if m.frm == a and m.to == b]
                self.queue = [m for m in self.queue if not (m.frm == a and m.to == b)]
            self.out.extend(f"{format_message(m)}  (dropped)" for m in dropped)
        elif cmd == "partition":
            groups, cur = [], set()
            for a in args:
                if a == "|":
                    groups.append(cur)
                    cur = set()
                else:
                    cur.add(int(a))
            groups.append(cur)
            rest = set(self.nodes) - set().union(*groups)
            self.groups = groups + ([rest] if rest else [])
        elif cmd == "isolate":
            i = int(args[0])
            self.groups = [{i}, set(self.nodes) - {i}]
        elif cmd == "heal":
            self.groups = None
        elif cmd == "crash":
            node(0).crash()
            self.queue = [m for m in self.queue if m.frm != int(args[0])]
        elif cmd == "restart":
            n = node(0)
            n.crash()
            self.queue = [m for m in self.queue if m.frm != n.id]
            n.restart()
        elif cmd == "status":
            self.out.extend(self.status_lines([int(a) for a in args] or None))
        elif cmd == "log":
            self.out.extend(self.log_line(int(a)) for a in (args or sorted(self.nodes)))
        elif cmd == "reads":
            n = node(0)
            self.out.append(f"{n.id} reads: " + (" ".join(
                f"{rs.context.decode()}@{rs.index}" for rs in n.read_states) or "(none)"))
            n.read_states.clear()
        elif cmd == "kv":
            n = node(0)
            self.out.append(f"{n.id} kv: {dict(sorted(n.kv.items()))} applied={n.raft.applied_index}")
        else:
            raise ValueError(f"unknown command {cmd!r}")


def run_script(text: str, seed: int = 0) -> str:
    """Run a scenario (commands, each followed by its expected output and a '----' line is
    how the files are laid out; here only commands are given) and return the transcript."""
    c = ScriptedCluster(seed)
    out = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            out.append("> " + line)
            out.extend(c.run_command(line))
    return "\n".join(out)
