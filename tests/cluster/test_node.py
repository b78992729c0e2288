"""Three RaftNodes in one event loop over real loopback transports and temp directories.

Claims checked: a leader is elected; proposals commit and apply on all members; followers
refuse proposals naming the leader; linearizable reads on a follower see acknowledged writes;
stopping the leader elects another; a restarted member catches up, by log and (after the others
compacted) by snapshot.
"""

import asyncio
import random

import pytest

from chronosdb.cluster.meta import AddMember, CreateDatabase, MetaConflict, MetaState
from chronosdb.cluster.node import NotLeader, RaftNode
from chronosdb.cluster.raft.storage import RaftStorage
from chronosdb.cluster.raft.types import ConfChange, ConfChangeKind, ConfState
from chronosdb.cluster.transport import Transport

IDS = (1, 2, 3)
TICK = 0.02


async def until(pred, timeout=20.0, what="condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Cluster:
    def __init__(self, tmp_path, snapshot_every=1000):
        self.tmp = tmp_path
        self.snapshot_every = snapshot_every
        self.nodes: dict[int, RaftNode] = {}
        self.transports: dict[int, Transport] = {}
        self.ports: dict[int, int] = {}

    async def start_node(self, i, seed=0, conf=ConfState(IDS)):
        t = Transport(i, ("127.0.0.1", self.ports.get(i, 0)), lambda f, o: None,
                      rng=random.Random(i), backoff_initial=0.01, backoff_max=0.1)
        await t.start()
        self.ports[i] = t.address[1]
        self.transports[i] = t
        for j, port in self.ports.items():
            if j != i:
                t.add_peer(j, ("127.0.0.1", port))
                if j in self.transports and j in self.nodes:
                    self.transports[j].add_peer(i, ("127.0.0.1", self.ports[i]))
        n = RaftNode(i, RaftStorage(str(self.tmp / f"n{i}")), t, MetaState(),
                     conf=conf, rng=random.Random(seed * 100 + i), tick_interval=TICK,
                     snapshot_every=self.snapshot_every, propose_timeout=10.0)
        self.nodes[i] = n
        await n.start()
        return n

    async def start(self):
        # Bind every listener first so each node knows all addresses before it runs.
        probes = []
        for i in IDS:      # hold all three at once, or the OS may hand out one port twice
            t = Transport(i, ("127.0.0.1", 0), lambda f, o: None)
            await t.start()
            self.ports[i] = t.address[1]
            probes.append(t)
        for t in probes:
            await t.close()
        for i in IDS:
            await self.start_node(i)

    async def stop_node(self, i):
        await self.nodes.pop(i).stop()
        await self.transports.pop(i).close()

    async def close(self):
        for i in list(self.nodes):
            await self.stop_node(i)

    def leader(self):
        leaders = [n for n in self.nodes.values() if n.is_leader]
        if len(leaders) != 1:
            return None
        lid = leaders[0].id
        # Everyone running agrees on who leads.
        if all(n.leader_id == lid for n in self.nodes.values()):
            return leaders[0]
        return None

    async def propose_anywhere(self, cmd):
        """Propose through whichever node leads now, following NotLeader redirects."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            leader = await until(self.leader, what="a leader")
            try:
                return await leader.propose(cmd)
            except NotLeader:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 50))


def dbs(node):
    return node.state.database_names()


def test_election_replication_failover_and_catch_up_by_log(tmp_path):
    async def main():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await until(c.leader, what="a leader")
            created = await leader.propose(CreateDatabase("db0"))
            assert created.name == "db0"
            await until(lambda: all(dbs(n) == ["db0"] for n in c.nodes.values()),
                        what="db0 applied on all nodes")

            # Invalid commands fail alike on the proposer (the error is the outcome).
            with pytest.raises(MetaConflict, match="already exists"):
                await leader.propose(CreateDatabase("db0"))

            # A follower refuses proposals and names the leader.
            follower = next(n for n in c.nodes.values() if not n.is_leader)
            with pytest.raises(NotLeader) as ei:
                await follower.propose(CreateDatabase("nope"))
            assert ei.value.leader_id == leader.id

            # A linearizable read on a follower sees a write acknowledged just before.
            await leader.propose(CreateDatabase("db1"))
            state = await follower.read(linearizable=True)
            assert "db1" in state.database_names()
            assert (await follower.read(linearizable=False)) is follower.state

            # Stop the leader: the other two elect a new one and keep committing.
            old = leader.id
            await c.stop_node(old)
            new = await until(lambda: (l := c.leader()) and l.id != old and l, what="a new leader")
            await new.propose(CreateDatabase("db2"))
            for k in range(3, 8):
                await c.propose_anywhere(CreateDatabase(f"db{k}"))
            st = new.status()
            assert st["role"] == "leader" and st["followers"][old]["lag"] > 0

            # Restart the old leader from its directory: it catches up from the log.
            back = await c.start_node(old, seed=1)
            want = dbs(new)
            await until(lambda: dbs(back) == want, what="restarted node caught up")
            assert back.storage.snapshot is None and back.snapshots_installed == 0   # by log
            await until(lambda: c.leader() is not None, what="stable leadership")
            await c.propose_anywhere(CreateDatabase("db_after"))
            await until(lambda: all("db_after" in dbs(n) for n in c.nodes.values()),
                        what="all three apply after the restart")
            await until(lambda: len({n.state.snapshot() for n in c.nodes.values()}) == 1,
                        what="identical states")
        finally:
            await c.close()
    run(main())


def test_restarted_node_catches_up_by_snapshot_after_compaction(tmp_path):
    async def main():
        c = Cluster(tmp_path, snapshot_every=5)
        await c.start()
        try:
            leader = await until(c.leader, what="a leader")
            victim = next(i for i in IDS if i != leader.id)
            await leader.propose(CreateDatabase("first"))
            await until(lambda: all("first" in dbs(n) for n in c.nodes.values()), what="first everywhere")
            victim_last = c.nodes[victim].status()["last_index"]
            await c.stop_node(victim)
            for k in range(20):
                await c.propose_anywhere(CreateDatabase(f"d{k}"))
            await c.propose_anywhere(AddMember(victim, f"127.0.0.1:{c.ports[victim]}", "127.0.0.1:1"))
            live = await until(c.leader, what="a leader")
            # The leader compacted past everything the victim has, so only a snapshot can help it.
            await until(lambda: live.status()["snapshot_index"] > victim_last + 1,
                        what="the leader compacted")
            back = await c.start_node(victim, seed=2)
            want = dbs(live)
            await until(lambda: dbs(back) == want, what="restarted node caught up")
            assert back.snapshots_installed >= 1 and back.storage.snapshot is not None
            # ...and it keeps applying new entries afterwards.
            await c.propose_anywhere(CreateDatabase("last"))
            await until(lambda: "last" in dbs(back), what="new entries after the snapshot")
            # Its state is exactly the others' (snapshot + replayed tail == replayed log).
            await until(lambda: len({n.state.snapshot() for n in c.nodes.values()}) == 1,
                        what="identical states")
            assert [m.node_id for m in back.state.member_list()] == [victim]
        finally:
            await c.close()
    run(main())


def test_a_new_node_joins_as_learner_then_voter(tmp_path):
    async def main():
        c = Cluster(tmp_path)
        await c.start()
        try:
            leader = await until(c.leader, what="a leader")
            for k in range(3):
                await leader.propose(CreateDatabase(f"d{k}"))
            # Node 4 starts knowing no membership: it waits to hear from a leader.
            new = await c.start_node(4, conf=ConfState())
            conf = await leader.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, 4))
            assert conf.learners == (4,) and 4 not in conf.voters
            await until(lambda: dbs(new) == ["d0", "d1", "d2"], what="the learner caught up")
            conf = await leader.propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, 4))
            assert conf.voters == (1, 2, 3, 4)
            await until(lambda: new.status()["voters"] == [1, 2, 3, 4], what="node 4 sees itself a voter")
            await leader.propose(CreateDatabase("d3"))
            await until(lambda: "d3" in dbs(new), what="new entries reach node 4")
            # A follower cannot change membership; the error names the leader.
            follower = next(n for n in c.nodes.values() if not n.is_leader)
            with pytest.raises(NotLeader):
                await follower.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, 4))
        finally:
            await c.close()
    run(main())


def test_concurrent_clients_see_a_linearizable_history_across_a_leader_failure(tmp_path):
    """Databases as keys of a key-value store: CreateDatabase is cas(absent -> present),
    DropDatabase is cas(present -> absent), a linearizable read is a get of every key. Four
    clients hit the cluster concurrently while the leader is stopped half-way; the recorded
    history must pass the linearizability checker."""
    from itertools import count

    from chronosdb.cluster.lincheck import Op, check_kv
    from chronosdb.cluster.meta import DropDatabase, MetaError
    from chronosdb.cluster.node import NodeStopped, ProposalTimeout

    async def main():
        c = Cluster(tmp_path)
        await c.start()
        clock = count()
        history = []
        keys = ("ka", "kb")
        killed = asyncio.Event()

        async def client(cid):
            rng = random.Random(cid)
            for _ in range(30):
                live = list(c.nodes.values())
                if not live:
                    return
                leader = c.leader()
                key = rng.choice(keys)
                r = rng.random()
                if r < 0.4:
                    node = rng.choice(live)
                    call = next(clock)
                    try:
                        state = await node.read(timeout=2.0)
                    except (NotLeader, ProposalTimeout, NodeStopped):
                        continue                     # a read without an answer has no effect
                    names = state.database_names()
                    ret = next(clock)
                    for k in keys:
                        history.append(Op(cid, "get", k, None, call, ret, "present" if k in names else None))
                    continue
                node = leader or rng.choice(live)
                create = r < 0.75
                cmd = CreateDatabase(key) if create else DropDatabase(key)
                arg = (None, "present") if create else ("present", None)
                call = next(clock)
                try:
                    await node.propose(cmd, timeout=2.0)
                    history.append(Op(cid, "cas", key, arg, call, next(clock), True))
                except MetaError:
                    history.append(Op(cid, "cas", key, arg, call, next(clock), False))
                except NotLeader:
                    await asyncio.sleep(0.02)        # refused before it entered the log
                except (ProposalTimeout, NodeStopped):
                    history.append(Op(cid, "cas", key, arg, call, None, None))   # unknown
                if cid == 0 and len(history) > 40 and not killed.is_set():
                    killed.set()
                    victim = c.leader()
                    if victim is not None:
                        await c.stop_node(victim.id)

        try:
            await until(c.leader, what="a leader")
            await asyncio.gather(*(client(i) for i in range(4)))
        finally:
            await c.close()
        assert killed.is_set()
        assert sum(1 for op in history if op.kind == "cas" and op.output is True) >= 5
        result = check_kv(history)
        assert result.ok, result.explain()
    run(main())


def test_a_storage_failure_stops_the_node_and_fails_its_callers(tmp_path):
    from chronosdb.cluster.node import NodeStopped

    async def main():
        t = Transport(1, ("127.0.0.1", 0), lambda f, o: None)
        await t.start()
        storage = RaftStorage(str(tmp_path / "solo"))
        n = RaftNode(1, storage, t, MetaState(), conf=ConfState((1,)), rng=random.Random(0),
                     tick_interval=TICK)
        await n.start()
        try:
            await until(lambda: n.is_leader, what="a single voter elects itself")
            await n.propose(CreateDatabase("ok"))

            def disk_full(*a, **k):
                raise OSError(28, "No space left on device")
            storage.save = disk_full
            with pytest.raises(NodeStopped, match="No space left"):
                await n.propose(CreateDatabase("lost"))
            assert n.status()["role"] == "failed"
            with pytest.raises(NodeStopped, match="failed"):
                await n.propose(CreateDatabase("after"))
        finally:
            await n.stop()
            await t.close()
    run(main())
