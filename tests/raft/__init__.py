"""Tests of the Raft core (chronosdb.cluster.raft) and its simulators (chronosdb.cluster.sim).

Helpers shared by the test files live here: a hand-driven cluster and shortcuts to elect a
leader in it.
"""

from chronosdb.cluster.raft.types import Role
from chronosdb.cluster.sim.scripted import ScriptedCluster


def make_cluster(n: int, seed: int = 0, **cfg) -> ScriptedCluster:
    c = ScriptedCluster(seed)
    c.add_nodes(n, **cfg)
    return c


def elect(c: ScriptedCluster, node_id: int) -> None:
    """Make node_id leader: with check-quorum on, followers first need their lease to lapse."""
    r = c.nodes[node_id].raft
    if r.cfg.check_quorum:
        c.tick([i for i in c.nodes if i != node_id and c.nodes[i].alive],
               r.cfg.election_tick)
        c.queue.clear()     # forget any election those ticks started elsewhere
    r.campaign()
    c.deliver()
    assert r.role == Role.LEADER, c.status_lines()
    assert not c.violations, c.violations


def raft(c: ScriptedCluster, node_id: int):
    return c.nodes[node_id].raft
