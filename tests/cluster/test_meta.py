"""The meta state machine: command codec, apply sequences, deterministic errors, snapshots."""

import hashlib
import random

import cbor2
import pytest

from chronosdb.cluster.meta import (
    COMMANDS, AddMember, AlterRetentionPolicy, CreateContinuousQuery, CreateDatabase, CreateKey,
    CreateRetentionPolicy, CreateSubscription, DropContinuousQuery, DropDatabase,
    DropRetentionPolicy, DropSubscription, MetaConflict, MetaError, MetaNotFound, MetaState,
    RemoveMember, RevokeKey, decode_command, encode_command,
)

H = hashlib.sha256(b"cdb_secret").digest()
H2 = hashlib.sha256(b"cdb_other").digest()

EXAMPLES = [
    CreateDatabase("db1"),
    CreateRetentionPolicy("db1", "week", 7 * 24 * 3600 * 10**9, 0, 2, True),
    AlterRetentionPolicy("db1", "week", None, 3600 * 10**9, 3, False),
    CreateKey("abc123", H, "db1", "read", 1_700_000_000, "grafana"),
    CreateKey("adm1", H2, None, "admin", 1_700_000_001),
    AddMember(1, "10.0.0.1:8089", "10.0.0.1:8086"),
    AddMember(2, "10.0.0.2:8089", "10.0.0.2:8086"),
    CreateContinuousQuery("db1", "cq1", "CREATE CONTINUOUS QUERY cq1 ON db1 BEGIN SELECT 1 END"),
    CreateSubscription("db1", "week", "s1", "ANY", ("udp://h:9090", "http://h:9091")),
    DropSubscription("db1", "week", "s1"),
    DropContinuousQuery("db1", "cq1"),
    RevokeKey("abc123"),
    RemoveMember(2),
    DropRetentionPolicy("db1", "week"),
    DropDatabase("db1"),
]


def test_every_command_type_round_trips():
    assert {type(c) for c in EXAMPLES} == set(COMMANDS.values())
    for c in EXAMPLES:
        assert decode_command(encode_command(c)) == c


@pytest.mark.parametrize("bad, msg", [
    (b"\xff\x00", "not valid CBOR"),
    (cbor2.dumps({"a": 1}), "list starting with a string tag"),
    (cbor2.dumps(["zz", "x"]), "unknown meta command tag 'zz'"),
    (cbor2.dumps(["db+"]), "needs 1 fields, got 0"),
    (cbor2.dumps(["db+", 5]), "CreateDatabase.name must be str, got int"),
    (cbor2.dumps(["rp+", "d", "r", "1h", 0, 1, False]), "CreateRetentionPolicy.duration must be int"),
    (cbor2.dumps(["rp+", "d", "r", 0, 0, 1, 1]), "default must be bool"),
    (cbor2.dumps(["sub+", "d", "r", "s", "ALL", ["ok", 3]]), r"destinations\[1\] must be str"),
    (cbor2.dumps(["key+", "k", "not-bytes", None, "admin", 1, ""]), "hash must be bytes"),
])
def test_malformed_commands_are_rejected_with_a_clear_message(bad, msg):
    with pytest.raises(ValueError, match=msg):
        decode_command(bad)


def test_encode_rejects_non_commands():
    with pytest.raises(ValueError, match="not a meta command"):
        encode_command("CreateDatabase")


def test_apply_sequence_builds_the_expected_state():
    s = MetaState()
    for c in EXAMPLES[:9]:
        s.apply(c)
    db = s.database("db1")
    assert db.default_rp == "week" and set(db.policies) == {"autogen", "week"}
    week = s.policy("db1", "week")
    assert (week.duration, week.shard_duration, week.replication) == (7 * 24 * 3600 * 10**9, 3600 * 10**9, 3)
    assert week.subscriptions == {"s1": ("ANY", ("udp://h:9090", "http://h:9091"))}
    assert db.continuous_queries["cq1"].startswith("CREATE CONTINUOUS QUERY")
    assert s.key_by_hash(H).key_id == "abc123" and s.keys["adm1"].database is None
    assert [m.node_id for m in s.member_list()] == [1, 2]
    for c in EXAMPLES[9:]:
        s.apply(c)
    assert s.databases == {} and list(s.keys) == ["adm1"] and list(s.members) == [1]
    assert s.version == len(EXAMPLES)


def test_dropping_a_database_drops_its_keys():
    s = MetaState()
    s.apply(CreateDatabase("a"))
    s.apply(CreateKey("k1", H, "a", "write", 1))
    s.apply(DropDatabase("a"))
    assert s.keys == {}


@pytest.mark.parametrize("setup, cmd, err, msg", [
    ([], DropDatabase("nope"), MetaNotFound, 'database not found: "nope"'),
    ([CreateDatabase("a")], CreateDatabase("a"), MetaConflict, "already exists"),
    ([], CreateDatabase("../etc"), MetaError, "invalid database name"),
    ([CreateDatabase("a")], CreateRetentionPolicy("a", "r", 60 * 10**9), MetaError, "at least 1h0m0s"),
    ([CreateDatabase("a")], CreateRetentionPolicy("a", "r", 0, 0, 0), MetaError, "replication factor"),
    ([CreateDatabase("a")], CreateRetentionPolicy("a", "autogen", 0), MetaConflict, "already exists"),
    ([CreateDatabase("a")], AlterRetentionPolicy("a", "x", 0), MetaNotFound, "retention policy not found"),
    ([CreateDatabase("a")], CreateKey("k", H, "a", "admin", 1), MetaError, "invalid scope 'admin'"),
    ([], CreateKey("k", H, None, "read", 1), MetaError, "admin keys take scope 'admin'"),
    ([], CreateKey("k", b"short", None, "admin", 1), MetaError, "32 bytes"),
    ([], CreateKey("k", H, "missing", "read", 1), MetaNotFound, "database not found"),
    ([CreateKey("k", H, None, "admin", 1)], CreateKey("k2", H, None, "admin", 1), MetaConflict, "same hash"),
    ([], RevokeKey("k"), MetaNotFound, "key not found: k"),
    ([], AddMember(1, "nohost", "h:1"), MetaError, "expected host:port"),
    ([AddMember(1, "h:1", "h:2")], AddMember(2, "h:1", "h:3"), MetaConflict, "already used by node 1"),
    ([], RemoveMember(4), MetaNotFound, "node 4 is not a member"),
    ([CreateDatabase("a")], CreateSubscription("a", "autogen", "s", "SOME", ("x",)), MetaError, "ALL or ANY"),
    ([CreateDatabase("a")], DropContinuousQuery("a", "c"), MetaNotFound, "continuous query not found"),
])
def test_invalid_commands_fail_the_same_way_everywhere_and_change_nothing(setup, cmd, err, msg):
    snaps = []
    for _ in range(2):                        # two "nodes"
        s = MetaState()
        for c in setup:
            s.apply(c)
        before = s.snapshot()
        with pytest.raises(err, match=msg) as ei:
            s.apply(decode_command(encode_command(cmd)))
        assert s.snapshot() == before
        snaps.append((str(ei.value), ei.value.status))
    assert snaps[0] == snaps[1]


def random_commands(rng: random.Random, n: int):
    dbs, out = ["d0", "d1", "d2"], []
    for i in range(n):
        db = rng.choice(dbs)
        out.append(rng.choice([
            CreateDatabase(db), DropDatabase(db),
            CreateRetentionPolicy(db, rng.choice("rs"), rng.choice([0, 3600 * 10**9 * 48])),
            AlterRetentionPolicy(db, rng.choice(["r", "autogen"]), None, None, rng.randint(1, 3), rng.random() < .5),
            DropRetentionPolicy(db, rng.choice(["r", "autogen"])),
            CreateKey(f"k{rng.randint(0, 5)}", hashlib.sha256(b"%d" % rng.randint(0, 5)).digest(), db, "read", i),
            RevokeKey(f"k{rng.randint(0, 5)}"),
            AddMember(rng.randint(1, 4), f"h{rng.randint(1, 6)}:1", "h:2"), RemoveMember(rng.randint(1, 4)),
            CreateContinuousQuery(db, rng.choice("ab"), "q"), DropContinuousQuery(db, rng.choice("ab")),
            CreateSubscription(db, "autogen", rng.choice("xy"), "ALL", ("u",)),
            DropSubscription(db, "autogen", rng.choice("xy")),
        ]))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_replicas_agree_and_snapshot_restore_is_exact(seed):
    cmds = [encode_command(c) for c in random_commands(random.Random(seed), 200)]
    a, b = MetaState(), MetaState()
    replicas = [a, b]
    outcomes = []
    for i, raw in enumerate(cmds):
        res = []
        for s in replicas:
            try:
                s.apply(decode_command(raw))
                res.append("ok")
            except MetaError as e:
                res.append(str(e))
        assert len(set(res)) == 1
        outcomes.append(res[0])
        if i == 100:
            # A third replica joins from a snapshot and continues in lockstep.
            c = MetaState.restore(a.snapshot())
            assert c == a and c.snapshot() == a.snapshot()
            replicas.append(c)
    assert a == b == replicas[2] and a.snapshot() == b.snapshot()
    restored = MetaState.restore(a.snapshot())
    assert restored == a and restored.snapshot() == a.snapshot()
    assert "ok" in outcomes and any(o != "ok" for o in outcomes)


def test_restore_rejects_garbage():
    with pytest.raises(ValueError, match="malformed meta snapshot"):
        MetaState.restore(b"\x00\x01")
    with pytest.raises(ValueError, match="version"):
        MetaState.restore(cbor2.dumps({"version": 99}))
