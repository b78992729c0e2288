"""The thesis extensions the core implements: pre-vote (§9.6), check-quorum and the leader
lease (§6.2, §6.4), ReadIndex (§6.4), leadership transfer (§3.10), log compaction with
InstallSnapshot (§5), single-server membership changes and learners (§4), plus the value types'
wire form and the errors for bad input.
"""

import random

import pytest

from chronosdb.cluster.raft.core import Config, RawNode
from chronosdb.cluster.raft.types import (
    ConfChange, ConfChangeKind, ConfState, Entry, EntryKind, Message, MsgType, NotLeader,
    RaftError, Role, Snapshot, message_from_wire, message_to_wire)
from tests.raft import elect, make_cluster, raft


def ticks(c, ids, n):
    for _ in range(n):
        c.tick(ids)
        c.deliver()


# ---- pre-vote -------------------------------------------------------------------------------

@pytest.mark.parametrize("pre_vote", [True, False])
def test_prevote_a_partitioned_node_does_not_inflate_terms_or_disrupt_the_leader(pre_vote):
    c = make_cluster(3, pre_vote=pre_vote, check_quorum=False)
    elect(c, 1)
    c.run_command("isolate 3")
    ticks(c, [3], 50)                   # 3 keeps timing out alone
    c.run_command("heal")
    ticks(c, [1, 2, 3], 25)
    if pre_vote:
        assert raft(c, 3).term == 1 and raft(c, 1).role == Role.LEADER
    else:
        assert raft(c, 3).term > 1 and raft(c, 1).term > 1     # the old leader was deposed


def test_prevote_a_pre_candidate_with_a_stale_log_is_refused():
    c = make_cluster(3, pre_vote=True, check_quorum=False)
    elect(c, 1)
    c.run_command("isolate 3")
    raft(c, 1).propose(b"x")
    c.deliver()
    c.run_command("crash 1")
    c.run_command("heal")
    raft(c, 3).campaign()
    c.deliver()
    # refused (or ignored by 2, which heard from 1 recently): no term bump either way
    assert raft(c, 3).role != Role.LEADER and raft(c, 3).term == 1 and raft(c, 2).term == 1


# ---- check-quorum and the lease -------------------------------------------------------------

def test_check_quorum_an_isolated_leader_steps_down_after_an_election_timeout():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("isolate 1")
    r1 = raft(c, 1)
    for _ in range(r1.cfg.election_tick * 2):
        c.tick([1])
    assert r1.role == Role.FOLLOWER and r1.leader_id == 0
    assert r1.term == 1                 # it stepped down on its own, no new term needed


def test_check_quorum_followers_in_lease_ignore_a_disruptive_vote():
    c = make_cluster(3, pre_vote=False)
    elect(c, 1)
    r2 = raft(c, 2)
    r2.step(Message(MsgType.VOTE, 3, 2, term=5, index=9, log_term=9))
    assert r2.term == 1 and r2.leader_id == 1 and not r2.ready().messages


def test_lease_read_ok_only_while_a_quorum_recently_acknowledged():
    c = make_cluster(3)
    elect(c, 1)
    r1 = raft(c, 1)
    assert not r1.lease_read_ok()       # no heartbeat round acknowledged yet
    ticks(c, [1], 1)
    assert r1.lease_read_ok()
    c.run_command("isolate 1")
    for _ in range(r1.cfg.election_tick):
        c.tick([1])
    assert not r1.lease_read_ok()
    assert not raft(c, 2).lease_read_ok()   # never on a follower


# ---- ReadIndex --------------------------------------------------------------------------------

def test_read_index_on_the_leader_waits_for_a_heartbeat_quorum():
    c = make_cluster(3)
    elect(c, 1)
    r1 = raft(c, 1)
    r1.read_index(b"r1")
    c.process_ready()
    assert c.nodes[1].read_states == []     # not before a quorum confirmed leadership
    c.deliver()
    assert [(rs.index, rs.context) for rs in c.nodes[1].read_states] == [(1, b"r1")]


def test_read_index_from_a_follower_is_forwarded_and_answered_with_the_leader_commit():
    c = make_cluster(3)
    elect(c, 1)
    raft(c, 1).propose(b"x")
    c.deliver()
    raft(c, 3).read_index(b"f")
    c.deliver()
    assert [(rs.index, rs.context) for rs in c.nodes[3].read_states] == [(2, b"f")]


def test_read_index_is_not_answered_by_a_partitioned_leader():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("isolate 1")
    raft(c, 1).read_index(b"stale?")
    c.deliver()
    ticks(c, [1], 3)
    assert c.nodes[1].read_states == []


def test_read_index_waits_until_the_new_leader_commits_in_its_term():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("partition 1 | 2 3")
    r1 = raft(c, 1)
    r1.read_index(b"early")             # the no-op of term 1 is committed: fine
    c.run_command("heal")
    c.deliver()
    assert [rs.context for rs in c.nodes[1].read_states] == [b"early"]
    # a new leader whose no-op is not committed yet must hold reads back
    c2 = make_cluster(3, pre_vote=False, check_quorum=False)
    r = raft(c2, 1)
    r.campaign()
    c2.deliver(rounds=2)                # elected; no-op not yet acknowledged
    assert r.role == Role.LEADER and r.commit_index == 0
    r.read_index(b"wait")
    c2.process_ready()
    assert c2.nodes[1].read_states == []
    c2.deliver()
    assert [(rs.index, rs.context) for rs in c2.nodes[1].read_states] == [(1, b"wait")]


def test_read_index_without_a_known_leader_is_refused():
    c = make_cluster(3)
    with pytest.raises(NotLeader, match="no leader known"):
        raft(c, 2).read_index(b"x")


def test_single_node_read_index_is_answered_at_once():
    c = make_cluster(1)
    raft(c, 1).campaign()
    c.deliver()
    raft(c, 1).read_index(b"solo")
    c.process_ready()
    assert [rs.context for rs in c.nodes[1].read_states] == [b"solo"]


# ---- leadership transfer ----------------------------------------------------------------------

def test_transfer_to_an_up_to_date_follower():
    c = make_cluster(3)
    elect(c, 1)
    raft(c, 1).transfer_leadership(3)
    c.deliver()
    assert raft(c, 3).role == Role.LEADER and raft(c, 1).role == Role.FOLLOWER
    assert raft(c, 3).term == 2


def test_transfer_catches_a_lagging_target_up_first_and_refuses_proposals_meanwhile():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("isolate 3")
    for k in range(5):
        raft(c, 1).propose(f"p{k}".encode())
    c.deliver()
    c.run_command("heal")
    r1 = raft(c, 1)
    r1.transfer_leadership(3)
    with pytest.raises(NotLeader, match="transfer to 3 in progress"):
        r1.propose(b"during")
    c.deliver()
    assert raft(c, 3).role == Role.LEADER
    assert raft(c, 3).log.slice(2, 7) == r1.log.slice(2, 7)


def test_transfer_is_abandoned_after_an_election_timeout():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("crash 3")
    r1 = raft(c, 1)
    r1.transfer_leadership(3)
    assert r1.transferee == 3
    ticks(c, [1, 2], r1.cfg.election_tick)
    assert r1.transferee == 0 and r1.role == Role.LEADER
    r1.propose(b"accepted again")


def test_transfer_requested_on_a_follower_is_forwarded_to_the_leader():
    c = make_cluster(3)
    elect(c, 1)
    raft(c, 2).transfer_leadership(2)
    c.deliver()
    assert raft(c, 2).role == Role.LEADER


def test_transfer_to_a_non_voter_is_refused():
    c = make_cluster(3)
    elect(c, 1)
    with pytest.raises(RaftError, match="not a voter"):
        raft(c, 1).transfer_leadership(9)


# ---- compaction and InstallSnapshot --------------------------------------------------------

def test_compaction_drops_entries_and_a_lagging_follower_gets_a_snapshot():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("crash 3")
    for k in range(6):
        raft(c, 1).propose(f"put|op{k}|k{k}|v{k}".encode())
    c.deliver()
    r1 = raft(c, 1)
    c.nodes[1].compact(r1.applied_index)
    assert r1.log.first_index == r1.applied_index + 1 and r1.log.entries == []
    c.run_command("restart 3")
    ticks(c, [1], 2)
    assert c.nodes[3].raft.log.snap_index == 7
    assert c.nodes[3].kv == c.nodes[1].kv == {f"k{k}": f"v{k}" for k in range(6)}
    assert c.nodes[3].disk.snapshot.index == 7
    raft(c, 1).propose(b"put|after|k|v")
    c.deliver()
    assert c.nodes[3].kv["k"] == "v"


def test_compaction_beyond_applied_is_refused():
    c = make_cluster(1)
    raft(c, 1).campaign()
    c.deliver()
    with pytest.raises(AssertionError, match="applied index"):
        raft(c, 1).compact(5, b"")


# ---- membership -----------------------------------------------------------------------------

def add_learner(c, leader_id, new_id):
    raft(c, leader_id).propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, new_id))
    c.join(new_id)
    c.deliver()


def test_a_learner_receives_the_log_but_neither_votes_nor_counts_for_commit():
    c = make_cluster(3)
    elect(c, 1)
    add_learner(c, 1, 4)
    r4 = raft(c, 4)
    assert r4.role == Role.LEARNER and raft(c, 1).conf_state.learners == (4,)
    assert r4.commit_index == raft(c, 1).commit_index
    c.run_command("partition 1 4 | 2 3")
    raft(c, 1).propose(b"x")
    c.deliver()
    assert raft(c, 4).last_index == raft(c, 1).last_index
    assert raft(c, 1).commit_index < raft(c, 1).last_index      # 1 + learner is no quorum
    c.run_command("heal")
    for _ in range(40):
        r4.tick()
    assert r4.role == Role.LEARNER                               # never campaigns


def test_a_learner_is_promoted_by_add_voter_and_then_counts():
    c = make_cluster(3)
    elect(c, 1)
    add_learner(c, 1, 4)
    raft(c, 1).propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, 4))
    c.deliver()
    assert raft(c, 1).conf_state == ConfState((1, 2, 3, 4), ())
    assert raft(c, 4).role == Role.FOLLOWER
    c.run_command("partition 1 2 4 | 3")
    raft(c, 1).propose(b"x")
    c.deliver()
    assert raft(c, 1).commit_index == raft(c, 1).last_index     # 3 of 4


def test_only_one_membership_change_at_a_time():
    c = make_cluster(3)
    elect(c, 1)
    r1 = raft(c, 1)
    r1.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, 4))
    with pytest.raises(RaftError, match="one change at a time"):
        r1.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, 5))
    c.join(4)
    c.deliver()
    r1.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, 5))   # applied: allowed


def test_removing_a_voter_shrinks_the_quorum_and_a_removed_leader_steps_down():
    c = make_cluster(3)
    elect(c, 1)
    raft(c, 1).propose_conf_change(ConfChange(ConfChangeKind.REMOVE, 3))
    c.deliver()
    assert raft(c, 1).conf_state.voters == (1, 2)
    raft(c, 1).propose_conf_change(ConfChange(ConfChangeKind.REMOVE, 1))
    c.deliver()
    assert raft(c, 1).role == Role.FOLLOWER
    assert raft(c, 2).conf_state.voters == (2,)
    raft(c, 2).campaign()
    c.deliver()
    assert raft(c, 2).role == Role.LEADER


@pytest.mark.parametrize("cc,msg", [
    (ConfChange(ConfChangeKind.ADD_VOTER, 2), "already a voter"),
    (ConfChange(ConfChangeKind.ADD_LEARNER, 2), "already a member"),
    (ConfChange(ConfChangeKind.REMOVE, 7), "not a member"),
])
def test_invalid_membership_changes_are_refused(cc, msg):
    c = make_cluster(3)
    elect(c, 1)
    with pytest.raises(RaftError, match=msg):
        raft(c, 1).propose_conf_change(cc)


def test_proposals_on_a_follower_name_the_leader():
    c = make_cluster(3)
    elect(c, 1)
    with pytest.raises(NotLeader) as ei:
        raft(c, 2).propose(b"x")
    assert ei.value.leader_id == 1


# ---- restart from storage -------------------------------------------------------------------

def test_a_node_restarts_from_snapshot_entries_and_hard_state():
    snap = Snapshot(5, 2, ConfState((1, 2, 3)), b"{}")
    ents = [Entry(2, 6), Entry(3, 7, data=b"x")]
    from chronosdb.cluster.raft.types import HardState
    r = RawNode(Config(1, random.Random(1)), conf=snap.conf,
                hard_state=HardState(3, 2, 6), snapshot=snap, entries=ents)
    assert (r.term, r.vote, r.commit_index, r.applied_index, r.last_index) == (3, 2, 6, 5, 7)
    rd = r.ready()
    assert [e.index for e in rd.committed_entries] == [6] and rd.entries == []


def test_restart_with_a_commit_beyond_the_log_is_refused():
    from chronosdb.cluster.raft.types import HardState
    with pytest.raises(AssertionError, match="beyond the last stored index"):
        RawNode(Config(1, random.Random(1)), conf=ConfState((1,)),
                hard_state=HardState(1, 0, 3), entries=[Entry(1, 1)])


# ---- types, wire form, bad input ------------------------------------------------------------

def test_wire_form_round_trips_every_field():
    m = Message(MsgType.SNAPSHOT, 1, 2, 7, log_term=3, index=9,
                entries=(Entry(7, 10, EntryKind.CONF_CHANGE,
                               ConfChange(ConfChangeKind.ADD_VOTER, 4).encode()),),
                commit=8, reject=True, reject_hint=5,
                snapshot=Snapshot(9, 3, ConfState((1, 2), (4,)), b"state"), context=b"c")
    w = message_to_wire(m)
    assert message_from_wire(w) == m
    import cbor2
    assert message_from_wire(cbor2.loads(cbor2.dumps(w))) == m


@pytest.mark.parametrize("bad,msg", [
    ("nope", "must be a list"),
    ([0] * 11, "must have 12 items"),
    ([99, 1, 2, 3, 0, 0, [], 0, 0, 0, [], b""], "type"),
    ([0, -1, 2, 3, 0, 0, [], 0, 0, 0, [], b""], "frm must be a non-negative int"),
    ([0, 1, 2, 3, 0, 0, [[1, 2, 0]], 0, 0, 0, [], b""], "entries\\[0\\] must have 4"),
    ([0, 1, 2, 3, 0, 0, [], 0, 2, 0, [], b""], "reject must be 0 or 1"),
    ([0, 1, 2, 3, 0, 0, [], 0, 0, 0, [1, 2], b""], "snapshot must have 5"),
    ([0, 1, 2, 3, 0, 0, [], 0, 0, 0, [], "text"], "context must be bytes"),
])
def test_malformed_wire_messages_are_rejected_with_the_field_named(bad, msg):
    with pytest.raises(ValueError, match=msg):
        message_from_wire(bad)


def test_conf_change_encoding_and_errors():
    cc = ConfChange(ConfChangeKind.REMOVE, 12345)
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(ValueError, match="9 bytes"):
        ConfChange.decode(b"\x00")
    with pytest.raises(ValueError, match="unknown conf change kind"):
        ConfChange.decode(bytes([9]) + (1).to_bytes(8, "big"))


@pytest.mark.parametrize("kw,msg", [
    (dict(id=0), "positive"),
    (dict(id=1, election_tick=1, heartbeat_tick=1), "heartbeat_tick < election_tick"),
])
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Config(rng=random.Random(0), **kw)


def test_lease_is_not_trusted_for_the_rest_of_a_term_in_which_a_transfer_started():
    c = make_cluster(3)
    elect(c, 1)
    c.run_command("crash 3")
    r1 = raft(c, 1)
    ticks(c, [1], 1)
    assert r1.lease_read_ok()
    r1.transfer_leadership(3)           # the target is down: the transfer will be abandoned
    ticks(c, [1, 2], r1.cfg.election_tick + 2)
    assert r1.role == Role.LEADER and r1.transferee == 0
    assert not r1.lease_read_ok()       # voters may have been told to ignore their lease


def test_an_append_whose_entries_do_not_follow_the_previous_index_is_dropped():
    c = make_cluster(2, pre_vote=False, check_quorum=False)
    r2 = raft(c, 2)
    r2.step(Message(MsgType.APPEND, 1, 2, term=1, index=0, log_term=0,
                    entries=(Entry(1, 1), Entry(1, 3))))
    assert r2.last_index == 0 and not r2.ready().messages


def test_a_snapshot_the_follower_already_holds_is_acknowledged_only_up_to_its_index():
    # The follower has 1@1 2@1 and an extra, unverified 3@1; the leader's snapshot covers 2@1.
    c = make_cluster(2, pre_vote=False, check_quorum=False)
    c.set_log(2, [1, 1, 1], term=1)
    r2 = raft(c, 2)
    snap = Snapshot(2, 1, ConfState((1, 2)), b"{}")
    r2.step(Message(MsgType.SNAPSHOT, 1, 2, term=2, snapshot=snap))
    (resp,) = r2.ready().messages
    assert resp.type == MsgType.APPEND_RESP and not resp.reject
    assert resp.index == 2 and r2.commit_index == 2 and r2.last_index == 3
