"""The asyncio driver of one Raft member: it owns the pure core and does all the I/O around it.

One task, the *loop*, is the only code that touches the core (``RawNode``). Everything else —
transport callbacks, ``propose``, ``read`` — puts a request in the loop's inbox and wakes it, so
the core sees one caller and no step can slip in between ``ready()`` and ``advance()``. Each
turn of the loop:

1. feeds the core: a ``tick()`` per elapsed ``tick_interval``, received messages (``step``),
   queued proposals and read requests;
2. while the core ``has_ready()``: persists hard state, entries and snapshot with
   ``RaftStorage.save`` (fsync, in a worker thread so the event loop keeps serving), *then* sends
   the messages (a vote or an append acknowledgement promises what is on disk), then applies the
   committed entries to the ``MetaState``, resolves the proposals they answer and the reads
   whose index is now applied, and calls ``advance``;
3. every ``snapshot_every`` applied entries, snapshots the ``MetaState`` and compacts both the
   core's log and the storage.

Entries. A NORMAL entry's data is ``cbor [proposer_id, request_id, command_bytes]`` where
``command_bytes`` is ``meta.encode_command(cmd)``; the empty entry is the leader's no-op. The
request id is (a random per-start nonce, a counter), so an entry replayed after a restart can
never resolve a new proposal. Every member applies every entry; only the proposer resolves a
future, with the command's result or its ``MetaError``. CONF_CHANGE entries go to the core's
``apply_conf_change``.

Reads. ``read(linearizable=True)`` runs Raft's ReadIndex (the leader confirms it still leads with
a heartbeat round, answers its commit index; the read is served once this node has applied that
far), so it observes every write acknowledged before it was called, on any member.
``read(linearizable=False)`` is a *stale local read*: this node's applied state as it is now.
A read forwarded to a leader that then lost office is asked again of the next leader.

Membership addresses. Applying ``AddMember``/``RemoveMember`` points the transport at (or away
from) that node's rpc address, so a cluster learns its peers' addresses through the log itself.

Outcome of a proposal that times out is unknown (it may still commit later): ``ProposalTimeout``
says so, and callers that retry must make their commands idempotent or check first.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import deque
from typing import Any

import cbor2

from chronosdb.cluster import meta
from chronosdb.cluster.meta import MetaState
from chronosdb.cluster.raft.core import Config, RawNode
from chronosdb.cluster.raft.storage import RaftStorage
from chronosdb.cluster.raft.types import (
    ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, HardState, Message, NotLeader, RaftError, Role, Snapshot,
    message_from_wire, message_to_wire)
from chronosdb.cluster.transport import Transport
from chronosdb.model.errors import ChronosError

__all__ = ["RaftNode", "ProposalTimeout", "NodeStopped", "NotLeader"]

log = logging.getLogger(__name__)

RAFT_CHANNEL = "raft"   # first item of every transport message this driver sends


class ProposalTimeout(ChronosError, asyncio.TimeoutError):
    """No answer in time. The outcome is unknown: the command may still commit later."""
    status = 503


class NodeStopped(ChronosError):
    status = 503


def _split_address(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class RaftNode:
    """One member of the metadata Raft group.

    ``transport`` must be started already; this node takes over its ``on_message``. ``conf`` is
    the founding membership: on first start (empty storage) a founder writes it into its log as
    committed conf-change entries (see ``_bootstrap_log``); every founder must pass the same
    conf. A node joining an existing cluster passes ``ConfState()`` and learns the membership
    from the leader's log. Once storage holds anything, ``conf`` is ignored. ``state`` must be
    a fresh ``MetaState()``: the node rebuilds it from the snapshot and the log (and replaces
    the object when it restores a snapshot, so always read ``node.state``). ``rng`` seeds
    election timeouts and request nonces.
    """

    def __init__(self, node_id: int, storage: RaftStorage, transport: Transport, state: MetaState,
                 *, conf: ConfState, rng: random.Random, tick_interval: float = 0.1,
                 election_tick: int = 10, heartbeat_tick: int = 1, snapshot_every: int = 1000,
                 propose_timeout: float = 5.0):
        self.id = node_id
        self.storage = storage
        self.transport = transport
        self.state = state
        self.conf = conf
        self.rng = rng
        self.tick_interval = tick_interval
        self.election_tick, self.heartbeat_tick = election_tick, heartbeat_tick
        self.snapshot_every = snapshot_every
        self.propose_timeout = propose_timeout
        self.raw: RawNode | None = None
        self._inbox: deque = deque()          # ("msg", Message) | ("propose", ...) | ...
        self._waker: asyncio.Future | None = None   # the loop sleeps on this between turns
        self._task: asyncio.Task | None = None
        self._nonce = rng.getrandbits(63)
        self._seq = itertools.count(1)
        self._pending: dict[tuple[int, int], asyncio.Future] = {}
        self._pending_conf: dict[bytes, list[asyncio.Future]] = {}
        self._reads: dict[bytes, asyncio.Future] = {}        # context -> future of read index
        self._waiting_apply: list[tuple[int, asyncio.Future]] = []
        self._snapshot_index = 0
        self._leader_seen = 0
        self.snapshots_installed = 0              # snapshots received from a leader
        self._stopped = False
        self.failure: Exception | None = None      # why the driver loop died, if it did
        self._io: asyncio.Future | None = None   # the storage call running in a worker thread
        transport.on_message = self._on_transport_message

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        hs, snap, entries = await asyncio.to_thread(self.storage.load)
        if snap is None and not entries and hs == HardState() and self.conf.voters:
            hs, entries = self._bootstrap_log(self.conf)
            await asyncio.to_thread(self.storage.save, hs, entries)
        # Membership comes from the log (bootstrap entries) or the snapshot, never from memory.
        conf = ConfState()
        applied = 0
        if snap is not None:
            self.state = MetaState.restore(snap.data)
            conf, applied = snap.conf, snap.index
            self._snapshot_index = snap.index
        cfg = Config(id=self.id, rng=self.rng, election_tick=self.election_tick,
                     heartbeat_tick=self.heartbeat_tick)
        self.raw = RawNode(cfg, conf=conf, hard_state=hs, snapshot=snap, entries=entries,
                           applied=applied)
        self._sync_peers()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"raft-node-{self.id}")

    @staticmethod
    def _bootstrap_log(conf: ConfState) -> tuple[HardState, list[Entry]]:
        """The log every founding member starts with: one committed ADD_VOTER (then
        ADD_LEARNER) entry per initial member, at term 1. Being identical on every founder,
        it is a valid shared prefix; a node that joins later replays it like any entry, so
        membership is always a function of the log (as in etcd's bootstrap)."""
        changes = [ConfChange(ConfChangeKind.ADD_VOTER, v) for v in sorted(conf.voters)]
        changes += [ConfChange(ConfChangeKind.ADD_LEARNER, n) for n in sorted(conf.learners)]
        entries = [Entry(1, i, EntryKind.CONF_CHANGE, cc.encode()) for i, cc in enumerate(changes, 1)]
        return HardState(term=1, vote=0, commit=len(entries)), entries

    async def stop(self) -> None:
        """Stop the loop, fail what is pending, close the storage. The transport stays open
        (its owner closes it)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._io is not None and not self._io.done():
            # A save cancelled mid-way still runs in its thread: let it finish before close.
            await asyncio.wait([self._io])
        self._fail_pending(NodeStopped(f"raft node {self.id} stopped"))
        await asyncio.to_thread(self.storage.close)

    # ------------------------------------------------------------------ public API

    async def propose(self, cmd, *, timeout: float | None = None) -> Any:
        """Replicate ``cmd`` (a meta command) and return ``MetaState.apply``'s result once it
        is committed and applied here. Raises NotLeader (with ``leader_id``) on a follower, the
        command's MetaError if it is invalid, or ProposalTimeout (outcome unknown)."""
        data = meta.encode_command(cmd)
        rid = (self._nonce, next(self._seq))
        fut = self._new_future()
        self._pending[rid] = fut
        self._submit(("propose", cbor2.dumps([self.id, list(rid), data]), rid))
        return await self._wait(fut, timeout, f"proposal {type(cmd).__name__}", lambda: self._pending.pop(rid, None))

    async def propose_conf_change(self, cc: ConfChange, *, timeout: float | None = None) -> ConfState:
        """Change the Raft membership (one change at a time); returns the new ConfState once
        the change is applied here."""
        fut = self._new_future()
        key = cc.encode()
        self._pending_conf.setdefault(key, []).append(fut)
        self._submit(("conf", cc, key, fut))
        return await self._wait(fut, timeout, f"membership change {cc}", lambda: self._discard_conf(key, fut))

    async def read(self, linearizable: bool = True, *, timeout: float | None = None) -> MetaState:
        """The metadata, safe to read now. ``linearizable=True``: ReadIndex — reflects every
        command acknowledged before this call, on any member. ``linearizable=False``: a stale
        local read of whatever this node has applied (no network round)."""
        if not linearizable:
            return self.state
        ctx = b"%d:%d:%d" % (self.id, self._nonce, next(self._seq))
        fut = self._new_future()
        self._reads[ctx] = fut
        self._submit(("read", ctx))
        await self._wait(fut, timeout, "linearizable read", lambda: self._reads.pop(ctx, None))
        return self.state

    def status(self) -> dict:
        raw = self.raw
        if raw is None:
            return {"id": self.id, "role": "stopped"}
        cs = raw.conf_state
        out = {
            "id": self.id, "role": "failed" if self.failure else Role(raw.role).name.lower(), "leader": raw.leader_id,
            "term": raw.term, "commit": raw.commit_index, "applied": raw.applied_index,
            "last_index": raw.last_index, "snapshot_index": self._snapshot_index,
            "snapshots_installed": self.snapshots_installed,
            "voters": list(cs.voters), "learners": list(cs.learners),
            "members": [{"id": m.node_id, "rpc": m.rpc_address, "http": m.http_address}
                        for m in self.state.member_list()],
        }
        if raw.role == Role.LEADER:
            out["followers"] = {
                n: {"match": pr.match, "next": pr.next, "lag": raw.last_index - pr.match}
                for n, pr in sorted(raw.prs.items()) if n != self.id}
        return out

    @property
    def is_leader(self) -> bool:
        return self.raw is not None and self.raw.role == Role.LEADER

    @property
    def leader_id(self) -> int:
        return self.raw.leader_id if self.raw is not None else 0

    # ------------------------------------------------------------------ plumbing

    def _new_future(self) -> asyncio.Future:
        if self.failure is not None:
            raise NodeStopped(f"raft node {self.id} failed: {self.failure!r}")
        if self._stopped or self._task is None:
            raise NodeStopped(f"raft node {self.id} is not running")
        return asyncio.get_running_loop().create_future()

    async def _wait(self, fut, timeout, what, forget):
        try:
            return await asyncio.wait_for(fut, timeout if timeout is not None else self.propose_timeout)
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                return fut.result()
            raise ProposalTimeout(f"{what} on node {self.id}: no answer in time; outcome unknown") from None
        finally:
            forget()

    def _discard_conf(self, key, fut):
        futs = self._pending_conf.get(key, [])
        if fut in futs:
            futs.remove(fut)

    def _submit(self, item) -> None:
        self._inbox.append(item)
        self._wake_up()

    def _wake_up(self) -> None:
        if self._waker is not None and not self._waker.done():
            self._waker.set_result(None)

    def _on_transport_message(self, frm: int, obj) -> None:
        if not (isinstance(obj, list) and len(obj) == 2 and obj[0] == RAFT_CHANNEL):
            log.warning("raft node %d: dropping a non-raft message from node %d", self.id, frm)
            return
        try:
            m = message_from_wire(obj[1])
        except ValueError as e:
            log.warning("raft node %d: malformed raft message from node %d: %s", self.id, frm, e)
            return
        if m.to != self.id or m.frm != frm:
            log.warning("raft node %d: message claims %d->%d but came from node %d", self.id, m.frm, m.to, frm)
            return
        self._submit(("msg", m))

    def _sync_peers(self) -> None:
        """Point the transport at every member whose address the metadata knows."""
        for m in self.state.member_list():
            if m.node_id != self.id:
                self.transport.add_peer(m.node_id, _split_address(m.rpc_address))

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # A storage error (disk full, corruption) or a broken core invariant: this member
            # must stop taking part rather than carry on with state it cannot trust.
            log.exception("raft node %d: driver loop failed; the node stops", self.id)
            self.failure = e
            self._fail_pending(NodeStopped(f"raft node {self.id} failed: {e!r}"))

    def _fail_pending(self, err: Exception) -> None:
        for fut in [*self._pending.values(), *self._reads.values(),
                    *(f for _, f in self._waiting_apply),
                    *(f for fs in self._pending_conf.values() for f in fs)]:
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear(), self._reads.clear(), self._waiting_apply.clear(), self._pending_conf.clear()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.tick_interval
        while True:
            delay = next_tick - loop.time()
            if delay > 0 and not self._inbox:
                # A bare future plus a timer, not wait_for(Event.wait()): on Python 3.11,
                # wait_for can swallow a cancellation that races with the inner wait finishing,
                # and stop() would then wait for this task forever.
                self._waker = loop.create_future()
                timer = loop.call_later(delay, self._wake_up)
                try:
                    await self._waker
                finally:
                    timer.cancel()
                    self._waker = None
            now = loop.time()
            if now >= next_tick:
                self.raw.tick()
                next_tick += self.tick_interval
                if now - next_tick > 5 * self.tick_interval:
                    next_tick = now + self.tick_interval   # we were stalled: do not burst ticks
            self._drain_inbox()
            while self.raw.has_ready():
                await self._handle_ready()
                self._drain_inbox()
            await self._maybe_snapshot()

    def _drain_inbox(self) -> None:
        raw = self.raw
        while self._inbox:
            item = self._inbox.popleft()
            kind = item[0]
            try:
                if kind == "msg":
                    raw.step(item[1])
                elif kind == "propose":
                    try:
                        raw.propose(item[1])
                    except NotLeader as e:
                        fut = self._pending.pop(item[2], None)
                        if fut is not None and not fut.done():
                            fut.set_exception(NotLeader(e.leader_id, f"node {self.id} is not the leader"))
                elif kind == "conf":
                    _, cc, key, fut = item
                    try:
                        raw.propose_conf_change(cc)
                    except RaftError as e:   # NotLeader is a RaftError
                        self._discard_conf(key, fut)
                        if not fut.done():
                            fut.set_exception(e)
                elif kind == "read":
                    ctx = item[1]
                    try:
                        raw.read_index(ctx)
                    except NotLeader as e:
                        fut = self._reads.pop(ctx, None)
                        if fut is not None and not fut.done():
                            fut.set_exception(e)
            except RaftError as e:
                log.warning("raft node %d: core refused %s: %s", self.id, kind, e)

    async def _handle_ready(self) -> None:
        raw = self.raw
        rd = raw.ready()
        if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
            await self._storage_call(self.storage.save, rd.hard_state, rd.entries, rd.snapshot)
        for m in rd.messages:
            self.transport.send(m.to, [RAFT_CHANNEL, message_to_wire(m)])
        if rd.snapshot is not None:
            self.state = MetaState.restore(rd.snapshot.data)
            self._snapshot_index = rd.snapshot.index
            self.snapshots_installed += 1
            self._sync_peers()
        applied = None
        for e in rd.committed_entries:
            self._apply_entry(e)
            applied = e.index
        for rs in rd.read_states:
            fut = self._reads.pop(rs.context, None)
            if fut is not None and not fut.done():
                self._waiting_apply.append((rs.index, fut))
        raw.advance(rd)
        if rd.soft_state is not None and rd.soft_state.leader not in (0, self._leader_seen):
            self._leader_seen = rd.soft_state.leader
            self._reissue_reads()
        done_to = raw.applied_index
        if applied is not None:
            done_to = max(done_to, applied)
        if self._waiting_apply:
            still = []
            for index, fut in self._waiting_apply:
                if index <= done_to:
                    if not fut.done():
                        fut.set_result(index)
                else:
                    still.append((index, fut))
            self._waiting_apply = still

    def _reissue_reads(self) -> None:
        """Ask the new leader again for every read still unanswered.

        A ReadIndex request forwarded to a leader that has since lost office is never
        answered. Asking again is safe: any answer is a commit index confirmed *after* the
        read was called, which is all linearizability needs; a late duplicate answer finds
        no future and is ignored."""
        for ctx in list(self._reads):
            try:
                self.raw.read_index(ctx)
            except RaftError:
                break                               # no leader after all: the next change retries

    def _apply_entry(self, e) -> None:
        if e.kind == EntryKind.CONF_CHANGE:
            cc = ConfChange.decode(e.data)
            conf = self.raw.apply_conf_change(cc)
            for fut in self._pending_conf.pop(e.data, []):
                if not fut.done():
                    fut.set_result(conf)
            return
        if not e.data:
            return                                  # the leader's no-op
        try:
            proposer, rid, data = cbor2.loads(e.data)
            cmd = meta.decode_command(data)
        except (ValueError, TypeError, cbor2.CBORDecodeError) as err:
            # Every member decodes the same bytes the same way, so all skip it alike.
            log.error("raft node %d: skipping undecodable entry %d: %s", self.id, e.index, err)
            return
        try:
            result, error = self.state.apply(cmd), None
        except meta.MetaError as err:
            result, error = None, err
        if isinstance(cmd, (meta.AddMember, meta.RemoveMember)) and error is None:
            if isinstance(cmd, meta.AddMember) and cmd.node_id != self.id:
                self.transport.add_peer(cmd.node_id, _split_address(cmd.rpc_address))
            elif isinstance(cmd, meta.RemoveMember) and cmd.node_id != self.id:
                self.transport.remove_peer(cmd.node_id)
        if proposer == self.id:
            fut = self._pending.pop((rid[0], rid[1]), None)
            if fut is not None and not fut.done():
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(result)

    async def _storage_call(self, fn, *args):
        self._io = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        return await asyncio.shield(self._io)

    async def _maybe_snapshot(self) -> None:
        raw = self.raw
        applied = raw.applied_index
        if applied - self._snapshot_index < self.snapshot_every:
            return
        term = self.storage.term_at(applied)
        if term is None:
            return                                  # not durable here yet: try next turn
        data = self.state.snapshot()
        snap = Snapshot(applied, term, raw.conf_state, data)
        raw.compact(applied, data)
        await self._storage_call(self.storage.compact, snap)
        self._snapshot_index = applied
