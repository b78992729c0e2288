"""The meta cluster in real processes: ``chronosdb serve --node-id/--rpc/--peers/--join``.

One scenario, in steps that each check a claim of docs/cluster.md: three founders elect a
leader; meta writes on the leader and on a follower reach every node (databases in the catalog,
keys that authenticate writes); the leader is SIGKILLed and a new one takes over; writes keep
working; the killed node restarts on its data dir and catches up; a fourth node joins with
--join and catches up from a snapshot; ``chronosdb cluster status`` shows members and leader.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from chronosdb.auth.keys import KeyStore, digest_of
from chronosdb.cluster import meta as m
from chronosdb.cluster.meta import MetaState
from chronosdb.cluster.service import mirror_meta
from chronosdb.server.config import ConfigError, parse_peers
from chronosdb.storage.engine import Engine
from tests.serverproc import ROOT, ServerProcess, free_port

SECRET = "test-cluster-secret"
DEADLINE = 20.0


def explain(procs) -> str:
    """Each process's cluster status and the tail of its log, for a failure message."""
    parts = []
    for p in procs:
        try:
            st = json.dumps(status(p)["node"])
        except Exception as e:      # a killed or wedged node: say so and go on
            st = f"(no status: {e!r})"
        parts.append(f"--- port {p.port}: {st}\n{p.output()[-1500:]}")
    return "\n".join(parts)


def until(fn, what: str, timeout: float = DEADLINE, procs=()):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})\n{explain(procs)}")


def status(p: ServerProcess) -> dict:
    code, doc = p.json("GET", "/api/cluster/status")
    assert code == 200, doc
    return doc


def leader_of(nodes: dict) -> int:
    """The leader id that every given node agrees on, or 0."""
    seen = set()
    for p in nodes.values():
        seen.add(status(p)["node"]["leader"])
    return seen.pop() if len(seen) == 1 and 0 not in seen and next(iter(seen)) in nodes else 0


def databases(p: ServerProcess) -> set[str]:
    code, doc = p.query("SHOW DATABASES")
    assert code == 200
    values = doc["results"][0].get("series", [{}])[0].get("values", [])
    return {v[0] for v in values}


def create_key(p: ServerProcess, db: str) -> str:
    code, doc = p.json("POST", "/api/keys", json.dumps({"database": db, "scope": "readwrite"}).encode())
    assert code == 201, doc
    return doc["key"]


def writes_with(p: ServerProcess, key: str, db: str) -> bool:
    code, _h, _b = p.write(b"m v=1 1", db=db, key=key)
    return code == 204


@pytest.fixture
def cluster(tmp_path):
    procs: list[ServerProcess] = []
    yield tmp_path, procs
    for p in procs:
        p.kill()


def member(tmp_path, procs, nid: int, rpc_port: int, *, peers: str | None = None, join: str | None = None,
           http_port: int | None = None) -> ServerProcess:
    extra = ["--node-id", str(nid), "--rpc", f"127.0.0.1:{rpc_port}", "--cluster-secret", SECRET,
             "--raft-snapshot-every", "8"]
    extra += ["--peers", peers] if peers else ["--join", join]
    p = ServerProcess(str(tmp_path / f"n{nid}"), extra=extra, port=http_port)
    procs.append(p)
    return p.start()


def test_three_founders_survive_a_leader_kill_and_a_fourth_node_joins(cluster):
    tmp_path, procs = cluster
    rpc = {i: free_port() for i in (1, 2, 3)}
    peers = ",".join(f"{i}=127.0.0.1:{rpc[i]}" for i in (1, 2, 3))
    nodes = {i: member(tmp_path, procs, i, rpc[i], peers=peers) for i in (1, 2, 3)}

    lead = until(lambda: leader_of(nodes), "the founders to agree on a leader", procs=procs)
    # Every founder registers its addresses through the log.
    until(lambda: all(len(status(p)["node"]["members"]) == 3 for p in nodes.values()),
          "all three members registered on every node", procs=procs)
    follower = next(i for i in nodes if i != lead)

    # Meta writes on the leader and on a follower (forwarded) reach every node.
    for via, db in ((nodes[lead], "on_leader"), (nodes[follower], "on_follower")):
        code, doc = via.query(f"CREATE DATABASE {db}")
        assert code == 200 and "error" not in doc["results"][0], doc
        assert db in databases(via)     # read-your-write on the node that took it
    until(lambda: all({"on_leader", "on_follower"} <= databases(p) for p in nodes.values()),
          "both databases on every node", procs=procs)
    key_leader = create_key(nodes[lead], "on_leader")
    key_follower = create_key(nodes[follower], "on_follower")
    for p in nodes.values():
        until(lambda p=p: writes_with(p, key_leader, "on_leader") and writes_with(p, key_follower, "on_follower"),
              f"both keys authenticating writes on node port {p.port}", procs=procs)
    # Errors of the state machine keep their HTTP meaning through forwarding.
    code, doc = nodes[follower].json("POST", "/api/keys", json.dumps({"database": "nope", "scope": "read"}).encode())
    assert code == 404, doc
    # The internal calls refuse a caller without the cluster secret.
    code, _h, body = nodes[lead].request("POST", "/api/cluster/propose", b"{}", key=None)
    assert code == 403, body

    # SIGKILL the leader (our own child process).
    old = lead
    nodes[old].kill()
    survivors = {i: p for i, p in nodes.items() if i != old}
    lead = until(lambda: leader_of(survivors), "a new leader among the survivors", procs=procs)
    assert lead != old
    for p in survivors.values():
        code, doc = p.query(f"CREATE DATABASE after_{p.port}")
        assert code == 200 and "error" not in doc["results"][0], doc
    key_after = create_key(survivors[lead], "on_leader")
    wanted = {f"after_{p.port}" for p in survivors.values()}
    until(lambda: all(wanted <= databases(p) for p in survivors.values()), "new databases on the survivors", procs=procs)

    # The killed node restarts on its data dir (same ports) and catches up.
    back = ServerProcess(nodes[old].data_dir, extra=nodes[old].args[nodes[old].args.index("--node-id"):],
                         port=nodes[old].port)
    procs.append(back)
    back.start()
    nodes[old] = back
    until(lambda: wanted <= databases(back), "the restarted node has the databases created while it was down",
          procs=procs)
    until(lambda: writes_with(back, key_after, "on_leader"), "the key created while it was down works on it", procs=procs)

    # Enough entries for the leader to have snapshotted (every 8), then a fourth node joins.
    for k in range(10):
        code, doc = nodes[lead].query(f"CREATE DATABASE filler{k}")
        assert code == 200 and "error" not in doc["results"][0], doc
    join_port = free_port()
    fourth = member(tmp_path, procs, 4, free_port(), join=f"127.0.0.1:{nodes[follower if follower != old else lead].port}",
                    http_port=join_port)
    until(lambda: 4 in status(nodes[lead])["node"]["voters"], "node 4 promoted to voter", timeout=30, procs=procs)
    all_dbs = databases(nodes[lead])
    until(lambda: databases(fourth) == all_dbs, "node 4 has every database", procs=procs)
    until(lambda: writes_with(fourth, key_follower, "on_follower"), "a key made before it joined works on node 4", procs=procs)
    st4 = status(fourth)["node"]
    assert st4["snapshots_installed"] >= 1, st4      # caught up from the leader's snapshot
    assert len(st4["members"]) == 4

    # The CLI renders the leader's view.
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "chronosdb.cli.main", "cluster", "status",
                          "--host", f"http://127.0.0.1:{nodes[lead].port}", "--key", nodes[lead].admin_key],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"leader: {lead}" in out.stdout
    for i in (1, 2, 3, 4):
        assert any(line.split()[:1] == [str(i)] for line in out.stdout.splitlines()), out.stdout

    # SIGTERM: a member stops cleanly (Raft node, then transport) and the others go on.
    assert fourth.stop() == 0
    code, doc = nodes[lead].query("CREATE DATABASE after_stop")
    assert code == 200 and "error" not in doc["results"][0], doc


def test_single_node_has_no_cluster_status(tmp_path):
    p = ServerProcess(str(tmp_path / "single")).start()
    try:
        code, doc = p.json("GET", "/api/cluster/status")
        assert code == 404 and "single node" in doc["error"]
        code, doc = p.query("CREATE DATABASE d")
        assert code == 200 and "d" in databases(p)
    finally:
        p.stop()


def test_cluster_flags_are_checked(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CHRONOSDB_CLUSTER_SECRET", None)
    base = [sys.executable, "-m", "chronosdb.cli.main", "serve", "--data-dir", str(tmp_path / "d")]
    cases = [
        (["--rpc", "127.0.0.1:7001"], "need node-id"),
        (["--node-id", "1"], "needs rpc"),
        (["--node-id", "1", "--rpc", "127.0.0.1:7001", "--peers", "2=127.0.0.1:7002"], "must include this node"),
        (["--node-id", "1", "--rpc", "127.0.0.1:7001"], "shared secret"),
        (["--node-id", "1", "--rpc", "127.0.0.1:7001", "--peers", "x=1"], "ID=HOST:PORT"),
    ]
    for flags, message in cases:
        out = subprocess.run(base + flags, capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 2 and message in out.stderr, (flags, out.stderr)


def test_a_single_node_data_dir_is_not_turned_into_a_member(tmp_path):
    """The mirror would drop databases the (empty) meta state lacks: refuse, name the reason."""
    p = ServerProcess(str(tmp_path / "single")).start()
    try:
        assert p.query("CREATE DATABASE precious")[0] == 200
    finally:
        p.stop()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "chronosdb.cli.main", "serve", "--data-dir", str(tmp_path / "single"),
                          "--http", f"127.0.0.1:{free_port()}", "--node-id", "1", "--rpc", f"127.0.0.1:{free_port()}",
                          "--cluster-secret", SECRET], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "single-node" in out.stderr and "fresh data directory" in out.stderr, out.stderr
    assert os.path.isdir(tmp_path / "single" / "precious")


# ------------------------------------------------------------------ in-process parts

def _meta_state(*cmds) -> MetaState:
    s = MetaState()
    for c in cmds:
        s.apply(c)
    return s


def test_mirror_makes_catalog_and_keys_equal_to_the_meta_state_and_is_idempotent(tmp_path):
    engine = Engine(str(tmp_path / "data"))
    keys = KeyStore(str(tmp_path / "data" / "keys.cbor"))
    try:
        local_admin, _secret = keys.create(None, "admin", "local")
        engine.create_database("stale")                 # not in the meta state: dropped
        secret = "cdb_" + "x" * 43
        state = _meta_state(
            m.CreateDatabase("a"), m.CreateDatabase("b"),
            m.CreateRetentionPolicy("a", "week", 7 * 24 * 3600 * 10**9, 0, 1, True),
            m.CreateKey("k1", digest_of(secret), "a", "read", 123, "d"))
        keep = {local_admin.key_id}
        mirror_meta(state.to_plain(), engine, keys, keep)
        assert set(engine.catalog.databases) == {"a", "b"}
        a = engine.catalog.database("a")
        assert a.default_rp == "week" and set(a.policies) == {"autogen", "week"}
        assert keys.verify(secret).key_id == "k1" and keys.get(local_admin.key_id) is not None
        before = (engine.catalog.databases["a"].policies["week"].duration, [k.key_id for k in keys.list()])
        assert mirror_meta(state.to_plain(), engine, keys, keep) is False     # again: no change
        assert before == (engine.catalog.databases["a"].policies["week"].duration, [k.key_id for k in keys.list()])
        for c in (m.AlterRetentionPolicy("a", "week", 2 * 24 * 3600 * 10**9), m.DropRetentionPolicy("a", "autogen"),
                  m.RevokeKey("k1"), m.DropDatabase("b")):
            state.apply(c)
        assert mirror_meta(state.to_plain(), engine, keys, keep) is True      # a key went away
        assert set(engine.catalog.databases) == {"a"}
        assert set(engine.catalog.database("a").policies) == {"week"}
        assert engine.catalog.database("a").policies["week"].duration == 2 * 24 * 3600 * 10**9
        assert keys.verify(secret) is None and keys.get(local_admin.key_id) is not None
        # A snapshot-restored state (a new object) mirrors to the same result.
        mirror_meta(MetaState.restore(state.snapshot()).to_plain(), engine, keys, keep)
        assert set(engine.catalog.databases) == {"a"}
    finally:
        engine.close()


def test_insert_hashed_is_idempotent_and_refuses_conflicts(tmp_path):
    keys = KeyStore(str(tmp_path / "keys.cbor"))
    h = digest_of("cdb_secret")
    assert keys.insert_hashed("id1", h, "db", "write", 1) is True
    assert keys.insert_hashed("id1", h, "db", "write", 1) is False
    assert keys.verify("cdb_secret").scope == "write"
    with pytest.raises(ValueError, match="another hash"):
        keys.insert_hashed("id1", digest_of("other"), "db", "write", 1)
    with pytest.raises(ValueError, match="another id"):
        keys.insert_hashed("id2", h, "db", "write", 1)
    with pytest.raises(ValueError, match="32 bytes"):
        keys.insert_hashed("id3", b"short", "db", "write", 1)
    # Durable: a reopened store verifies the inserted key.
    assert KeyStore(str(tmp_path / "keys.cbor")).verify("cdb_secret").key_id == "id1"


def test_peers_setting_parses_and_names_mistakes():
    assert parse_peers("1=127.0.0.1:7001, 2=[::1]:7002") == {1: ("127.0.0.1", 7001), 2: ("::1", 7002)}
    for bad, msg in (("1=a:1,1=b:2", "listed twice"), ("0=a:1", "ID=HOST:PORT"), ("1=nohost", "HOST:PORT")):
        with pytest.raises(ConfigError, match=msg):
            parse_peers(bad)
