"""The claims of the Raft paper (Ongaro & Ousterhout, 2014), one test per claim or section.

Each test drives RawNodes by hand through a ScriptedCluster (a message queue we deliver from,
partitions, simulated disks) and checks the property the paper states. The safety monitor of
the simulator also runs after every delivery round in these tests, via ``c.check()``.
"""

import random

import pytest

from chronosdb.cluster.raft.core import Config, RawNode
from chronosdb.cluster.raft.types import (
    ConfState, Entry, HardState, Message, MsgType, RaftError, Role)
from tests.raft import elect, make_cluster, raft

PLAIN = dict(pre_vote=False, check_quorum=False)    # the paper's algorithm, no extensions


def entries_of(c, i):
    return [(e.index, e.term, e.data) for e in raft(c, i).log.entries]


# ---- §5.1 terms ----------------------------------------------------------------------------

def test_5_1_a_server_seeing_a_higher_term_adopts_it_and_steps_down():
    c = make_cluster(3, **PLAIN)
    elect(c, 1)
    r1 = raft(c, 1)
    r1.step(Message(MsgType.APPEND, 2, 1, term=r1.term + 5))
    assert r1.role == Role.FOLLOWER and r1.term == 6 and r1.leader_id == 2


def test_5_1_requests_with_a_stale_term_are_rejected():
    c = make_cluster(3, **PLAIN)
    elect(c, 1)
    c.isolate = None
    r2 = raft(c, 2)
    before = entries_of(c, 2)
    r2.step(Message(MsgType.APPEND, 3, 2, term=0, index=1, log_term=1,
                    entries=(Entry(0, 2, data=b"stale"),)))
    assert entries_of(c, 2) == before and r2.term == 1


# ---- §5.2 leader election -------------------------------------------------------------------

def test_5_2_a_follower_that_hears_nothing_starts_an_election_within_two_timeouts():
    c = make_cluster(3, **PLAIN)
    r = raft(c, 1)
    for _ in range(2 * r.cfg.election_tick):
        r.tick()
    assert r.role == Role.CANDIDATE and r.term == 1 and r.vote == 1
    rd = r.ready()
    assert rd.hard_state == HardState(1, 1, 0)     # the vote for itself is persisted
    assert sorted(m.to for m in rd.messages if m.type == MsgType.VOTE) == [2, 3]


def test_5_2_election_timeouts_are_randomized_in_one_to_two_timeouts():
    seen = set()
    for seed in range(40):
        r = RawNode(Config(1, random.Random(seed), **PLAIN), conf=ConfState((1, 2, 3)))
        ticks = 0
        while r.role == Role.FOLLOWER:
            r.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) > 3


def test_5_2_a_candidate_wins_with_votes_from_a_majority():
    c = make_cluster(5, **PLAIN)
    c.run_command("partition 1 2 3 | 4 5")
    raft(c, 1).campaign()
    c.deliver()
    assert raft(c, 1).role == Role.LEADER


def test_5_2_a_candidate_without_a_majority_does_not_win():
    c = make_cluster(5, **PLAIN)
    c.run_command("partition 1 2 | 3 4 5")
    raft(c, 1).campaign()
    c.deliver()
    assert raft(c, 1).role == Role.CANDIDATE


def test_5_2_each_server_votes_for_at_most_one_candidate_per_term():
    c = make_cluster(3, **PLAIN)
    r3 = raft(c, 3)
    r3.step(Message(MsgType.VOTE, 1, 3, term=1))
    r3.step(Message(MsgType.VOTE, 2, 3, term=1))
    resp = [m for m in r3.ready().messages if m.type == MsgType.VOTE_RESP]
    assert [(m.to, m.reject) for m in resp] == [(1, False), (2, True)]


def test_5_2_the_vote_survives_a_restart():
    c = make_cluster(3, **PLAIN)
    raft(c, 3).step(Message(MsgType.VOTE, 1, 3, term=1))
    c.process_ready()                       # persisted, then the grant is sent
    c.run_command("restart 3")
    r3 = raft(c, 3)
    assert (r3.term, r3.vote) == (1, 1)
    r3.step(Message(MsgType.VOTE, 2, 3, term=1))
    assert [m.reject for m in r3.ready().messages] == [True]


def test_5_2_a_candidate_returns_to_follower_when_a_leader_of_its_term_appends():
    c = make_cluster(3, **PLAIN)
    r2 = raft(c, 2)
    r2.campaign()
    c.queue.clear()
    assert r2.role == Role.CANDIDATE
    r2.step(Message(MsgType.APPEND, 3, 2, term=r2.term, index=0, log_term=0))
    assert r2.role == Role.FOLLOWER and r2.leader_id == 3


def test_5_2_election_safety_at_most_one_leader_per_term_under_split_votes():
    # Everyone times out together many times over; the monitor records every leader per term.
    for seed in range(20):
        c = make_cluster(5, seed=seed, **PLAIN)
        for _ in range(60):
            c.tick(sorted(c.nodes))
            c.deliver(rounds=1)
            c.check()
        assert not c.violations, c.violations
        assert len(c.monitor.leader_of_term) >= 1


# ---- §5.3 log replication -------------------------------------------------------------------

def test_5_3_the_leader_commits_an_entry_once_a_majority_stores_it_and_all_apply_it():
    c = make_cluster(5, **PLAIN)
    elect(c, 1)
    c.run_command("partition 1 2 3 | 4 5")
    raft(c, 1).propose(b"x")
    c.deliver()
    assert raft(c, 1).commit_index == 2
    c.run_command("heal")
    c.tick([1], 1)
    c.deliver()
    for i in c.nodes:
        assert c.nodes[i].applied[-1] == (2, 1, b"x")


def test_5_3_no_commit_without_a_majority():
    c = make_cluster(5, **PLAIN)
    elect(c, 1)
    c.run_command("partition 1 2 | 3 4 5")
    raft(c, 1).propose(b"x")
    c.deliver()
    assert raft(c, 1).commit_index == 1 and raft(c, 1).last_index == 2


# Figure 7: a leader of term 8 and followers (a)..(f) whose logs are missing entries, have
# extra uncommitted ones, or both. The leader must bring every one of them to its own log.
FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIG7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_5_3_figure7_the_leader_forces_followers_logs_to_match_its_own(case):
    c = make_cluster(2, **PLAIN)
    c.set_log(1, FIG7_LEADER, term=7)
    c.set_log(2, FIG7_FOLLOWERS[case], term=7)
    r1 = raft(c, 1)
    r1.campaign()           # term 8; the follower's log is never more up to date here...
    c.deliver()
    if r1.role != Role.LEADER:      # ...except (c)/(d), which is longer: it refuses, fine
        assert case in ("c", "d")
        return
    c.tick([1], 1)
    c.deliver()
    assert entries_of(c, 2) == entries_of(c, 1)
    assert raft(c, 2).commit_index == r1.commit_index == len(FIG7_LEADER) + 1
    assert not c.violations


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_5_3_leader_append_only_the_leader_never_overwrites_its_own_log(case):
    c = make_cluster(3, **PLAIN)
    c.set_log(1, FIG7_LEADER, term=7)
    c.set_log(2, FIG7_FOLLOWERS[case], term=7)
    c.set_log(3, [1, 1, 1], term=7)
    r1 = raft(c, 1)
    r1.campaign()
    c.deliver()
    assert r1.role == Role.LEADER
    before = entries_of(c, 1)
    c.tick([1], 3)
    c.deliver()
    assert entries_of(c, 1)[:len(before)] == before


def test_5_3_log_matching_an_append_is_refused_when_the_previous_entry_differs():
    c = make_cluster(2, **PLAIN)
    c.set_log(2, [1, 1, 2], term=2)
    r2 = raft(c, 2)
    r2.step(Message(MsgType.APPEND, 1, 2, term=3, index=3, log_term=3,
                    entries=(Entry(3, 4),)))
    (resp,) = r2.ready().messages
    assert resp.reject and resp.index == 3
    assert resp.reject_hint == 3 and resp.log_term == 2      # skip back past term 2 at once
    assert r2.last_index == 3


def test_5_3_a_conflicting_suffix_is_replaced_and_handed_out_again_for_the_disk():
    c = make_cluster(2, **PLAIN)
    c.set_log(2, [1, 1, 2, 2], term=2)
    r2 = raft(c, 2)
    r2.step(Message(MsgType.APPEND, 1, 2, term=3, index=2, log_term=1,
                    entries=(Entry(3, 3, data=b"new"),)))
    rd = r2.ready()
    assert [(e.index, e.term) for e in rd.entries] == [(3, 3)]
    assert [(e.index, e.term) for e in r2.log.entries] == [(1, 1), (2, 1), (3, 3)]
    c.nodes[2].disk.persist(rd)
    r2.advance(rd)
    assert [(e.index, e.term) for e in c.nodes[2].disk.entries] == [(1, 1), (2, 1), (3, 3)]


# ---- §5.4.1 election restriction ------------------------------------------------------------

def test_5_4_1_a_voter_denies_a_candidate_whose_log_is_less_up_to_date():
    c = make_cluster(3, **PLAIN)
    c.set_log(1, [1, 1], term=2)
    c.set_log(2, [1, 1, 2], term=2)
    c.set_log(3, [1, 2], term=2)
    raft(c, 1).campaign()
    c.deliver()
    assert raft(c, 1).role != Role.LEADER           # 2 and 3 both have a later last term
    c.run_command("partition 2 3 | 1")
    raft(c, 3).campaign()
    c.deliver()
    assert raft(c, 3).role != Role.LEADER           # 2 has a longer log of the same term
    raft(c, 2).campaign()
    c.deliver()
    assert raft(c, 2).role == Role.LEADER


def test_5_4_leader_completeness_a_new_leader_holds_every_committed_entry():
    c = make_cluster(5, **PLAIN)
    elect(c, 1)
    for k in range(3):
        raft(c, 1).propose(f"v{k}".encode())
    c.run_command("partition 1 2 3 | 4 5")
    c.deliver()
    committed = raft(c, 1).commit_index
    assert committed == 4
    c.run_command("partition 1 | 2 3 4 5")
    for candidate in (4, 5, 2):         # 4 and 5 lack the entries: they cannot win
        raft(c, candidate).campaign()
        c.deliver()
    lead = c.leader()
    assert lead.id == 2 and lead.raft.term > 1
    assert [e.data for e in lead.raft.log.entries[1:4]] == [b"v0", b"v1", b"v2"]
    assert not c.violations


# ---- §5.4.2 committing entries from previous terms (Figure 8) -------------------------------

def figure8(unsafe: bool):
    """Figure 8 (c)->(d): S1 leads term 4 and replicates index 2 (term 2) to a majority; then
    S1 fails before its own term's entry spreads, and S5 (last entry 2@3) is elected."""
    c = make_cluster(5, **PLAIN, max_entries_per_msg=1, unsafe_commit_prior_terms=unsafe)
    c.set_log(1, [1, 2], term=3)
    c.set_log(2, [1, 2], term=3)
    c.set_log(3, [1], term=3)
    c.set_log(4, [1], term=3)
    c.set_log(5, [1, 3], term=3)
    c.run_command("partition 1 3 4 | 2 | 5")
    r1 = raft(c, 1)
    r1.campaign()
    for _ in range(20):             # deliver round by round until 2@2 sits on S1, S3, S4
        c.deliver(rounds=1)
        c.check()
        if all(raft(c, i).log.term(2) == 2 for i in (3, 4)):
            break
    c.deliver(rounds=1)             # the acks of index 2 reach S1
    c.check()
    s1_commit = r1.commit_index
    c.run_command("crash 1")        # S1 fails; its term-4 entry reached nobody in time
    c.run_command("heal")
    r5 = raft(c, 5)
    for _ in range(3):
        if r5.role == Role.LEADER:
            break
        r5.campaign()
        c.deliver()
    c.tick([5], 1)
    c.deliver()
    c.check()
    return c, s1_commit


def test_5_4_2_figure8_an_old_term_entry_is_not_committed_by_counting_replicas():
    c, s1_commit = figure8(unsafe=False)
    assert s1_commit < 2            # S1 did not count 2@2 as committed although on 3 of 5
    assert raft(c, 5).role == Role.LEADER       # S5 may legally replace it...
    assert raft(c, 3).log.term(2) == 3          # ...and did
    assert not c.violations


# ---- §5.5 follower and candidate crashes ----------------------------------------------------

def test_5_5_a_restarted_follower_catches_up_and_applies_the_same_sequence():
    c = make_cluster(3, **PLAIN)
    elect(c, 1)
    raft(c, 1).propose(b"a")
    c.deliver()
    c.run_command("crash 3")
    raft(c, 1).propose(b"b")
    raft(c, 1).propose(b"c")
    c.deliver()
    c.run_command("restart 3")
    c.tick([1], 1)
    c.deliver()
    seqs = {i: [d for _, _, d in c.nodes[i].applied if d] for i in (1, 2, 3)}
    assert seqs[1] == [b"a", b"b", b"c"] and seqs[2] == seqs[1]
    assert seqs[3][-3:] == seqs[1]      # 3 replays from its disk after the restart
    assert not c.violations


def test_5_5_what_was_not_persisted_is_lost_in_a_crash():
    c = make_cluster(3, **PLAIN)
    elect(c, 1)
    raft(c, 1).propose(b"lost")
    assert raft(c, 1).last_index == 2
    c.run_command("crash 1")            # the Ready with entry 2 was never persisted
    c.run_command("restart 1")
    assert raft(c, 1).last_index == 1


# ---- the Ready/advance contract -------------------------------------------------------------

def test_ready_must_be_advanced_before_the_next_ready():
    c = make_cluster(3, **PLAIN)
    r = raft(c, 1)
    r.campaign()
    rd = r.ready()
    with pytest.raises(RaftError, match="before advance"):
        r.ready()
    with pytest.raises(RaftError, match="last returned"):
        r.advance(type(rd)())
    r.advance(rd)
    assert not r.has_ready()


def test_a_vote_is_persisted_in_the_same_ready_that_sends_it():
    c = make_cluster(3, **PLAIN)
    r3 = raft(c, 3)
    r3.step(Message(MsgType.VOTE, 1, 3, term=1))
    rd = r3.ready()
    assert rd.hard_state == HardState(1, 1, 0)
    assert [(m.type, m.reject) for m in rd.messages] == [(MsgType.VOTE_RESP, False)]


def test_the_leader_counts_its_own_entry_only_once_durable():
    c = make_cluster(1, **PLAIN)
    r = raft(c, 1)
    r.campaign()
    assert r.role == Role.LEADER and r.last_index == 1 and r.commit_index == 0
    rd = r.ready()
    assert rd.entries and not rd.committed_entries
    r.advance(rd)
    assert r.commit_index == 1
    assert [e.index for e in r.ready().committed_entries] == [1]
