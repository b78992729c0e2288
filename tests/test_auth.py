"""API keys and authorization: storage, verification, credential parsing, the scope matrix."""
from __future__ import annotations

import base64
import hmac
import os
import stat
import threading

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronosdb.auth import (
    ACTIONS,
    Authorizer,
    Forbidden,
    KeyInfo,
    KeyRequestError,
    KeyStore,
    Principal,
    Unauthorized,
    credentials_from,
)
from chronosdb.auth import keys as keys_module
from chronosdb.model.errors import ChronosError, CorruptionError


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "keys.cbor")


@pytest.fixture
def store(store_path):
    return KeyStore(store_path)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- keys: create, list, verify, revoke, persistence ----------------------------------------------

def test_create_verify_list_revoke_roundtrip(store):
    info, key = store.create("db1", "readwrite", "grafana")
    assert key.startswith("cdb_") and len(key) >= 4 + 22  # >= 128 bits of base64
    assert len(info.key_id) == 12 and int(info.key_id, 16) >= 0
    assert (info.database, info.scope, info.description) == ("db1", "readwrite", "grafana")
    assert store.verify(key) == info
    assert store.verify(key + "x") is None
    assert store.verify("cdb_" + "A" * 43) is None
    assert store.list() == [info] and store.list("db1") == [info] and store.list("db2") == []
    assert store.get(info.key_id) == info
    assert store.revoke(info.key_id) is True
    assert store.verify(key) is None
    assert store.revoke(info.key_id) is False
    assert store.list() == []


def test_keys_are_distinct_and_random(store):
    made = [store.create("db", "read") for _ in range(20)]
    assert len({k for _, k in made}) == 20
    assert len({i.key_id for i, _ in made}) == 20


def test_list_never_shows_keys_or_hashes(store):
    info, key = store.create("db", "write")
    shown = repr(store.list()) + repr([i.to_dict() for i in store.list()])
    assert key not in shown and key[4:] not in shown
    assert keys_module.digest_of(key).hex() not in shown
    assert set(info.to_dict()) == {"id", "database", "scope", "created_ns", "description"}


def test_persistence_across_reopen(store_path):
    clock = iter(range(1000, 2000))
    a = KeyStore(store_path, now_ns=lambda: next(clock))
    i1, k1 = a.create("db1", "read", "one")
    i2, k2 = a.create("db2", "write")
    i3, k3 = a.create("db2", "readwrite")
    a.revoke(i3.key_id)
    b = KeyStore(store_path)
    assert b.list() == [i1, i2]
    assert b.verify(k1) == i1 and b.verify(k2) == i2 and b.verify(k3) is None
    assert [i.created_ns for i in b.list()] == [1000, 1001]


def test_store_file_never_contains_plaintext_and_is_0600(store_path):
    old = os.umask(0)       # even with no umask help the file must stay private
    try:
        s = KeyStore(store_path)
        made = [s.create(db, sc, "d") for db in ("a", "b") for sc in ("read", "write", "readwrite")]
        admin = s.ensure_admin_key(os.path.join(os.path.dirname(store_path), "admin.key"))
    finally:
        os.umask(old)
    raw = open(store_path, "rb").read()
    for _, key in made:
        assert key.encode() not in raw and key[4:].encode() not in raw
        assert keys_module.digest_of(key) in raw          # stored: the hash
    assert admin.encode() not in raw
    assert mode_of(store_path) == 0o600
    assert not os.path.exists(store_path + ".tmp")


def test_store_temp_file_is_private_from_creation(store_path, monkeypatch):
    """atomic_write's temp file must already be 0600 when it is opened for the data."""
    seen = []
    real_atomic_write = keys_module.filenames.atomic_write

    def spy(path, data):
        seen.append(mode_of(path + ".tmp"))
        real_atomic_write(path, data)

    monkeypatch.setattr(keys_module.filenames, "atomic_write", spy)
    old = os.umask(0)
    try:
        KeyStore(store_path).create("db", "read")
    finally:
        os.umask(old)
    assert seen == [0o600]


def test_scope_validation(store):
    for db, scope in [("db", "admin"), ("db", "all"), ("db", ""), ("db", "READ"),
                      (None, "read"), (None, "readwrite"), ("", "read"), ("a\nb", "read")]:
        with pytest.raises(ValueError) as e:
            store.create(db, scope)
        assert isinstance(e.value, ChronosError) and e.value.status == 400
    assert store.list() == []


def test_verify_uses_compare_digest_on_hits_and_misses(store, monkeypatch):
    _, key = store.create("db", "read")
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    assert store.verify(key) is not None
    assert store.verify("cdb_nope") is None
    assert store.verify("x" * 5000) is None
    assert len(calls) == 3
    assert calls[0] == (keys_module.digest_of(key), keys_module.digest_of(key))
    assert all(len(a) == len(b) == 32 for a, b in calls)  # misses compare full-size digests too


def test_verify_refuses_a_hash_hit_that_compare_digest_rejects(store, monkeypatch):
    """The dict probe alone is not trusted: the constant-time compare decides."""
    _, key = store.create("db", "read")
    monkeypatch.setattr(keys_module.hmac, "compare_digest", lambda a, b: False)
    assert store.verify(key) is None


def test_verify_is_total_over_odd_strings(store):
    for junk in ["", " ", "\udcff", "cdb_\x00", "é" * 100, None, 42, b"cdb_bytes"]:
        assert store.verify(junk) is None


def test_drop_database_revokes_its_keys_only(store):
    i1, k1 = store.create("db1", "read")
    i2, k2 = store.create("db1", "write")
    i3, k3 = store.create("db2", "read")
    assert store.drop_database("db1") == 2
    assert store.verify(k1) is None and store.verify(k2) is None
    assert store.verify(k3) == i3
    assert store.drop_database("db1") == 0
    assert KeyStore(store.path).list() == [i3]


def test_corrupt_store_names_file(store_path):
    with open(store_path, "wb") as f:
        f.write(b"\xff\x00garbage")
    with pytest.raises(CorruptionError) as e:
        KeyStore(store_path)
    assert store_path in str(e.value)
    entry = {"id": "abc", "hash": b"short", "database": "db", "scope": "read", "created_ns": 1}
    with open(store_path, "wb") as f:
        f.write(cbor2.dumps({"version": 1, "keys": [entry]}))
    with pytest.raises(CorruptionError, match="entry 0"):
        KeyStore(store_path)
    with open(store_path, "wb") as f:
        f.write(cbor2.dumps({"version": 1, "keys": []}) + b"\x00")
    with pytest.raises(CorruptionError, match="trailing"):
        KeyStore(store_path)


def test_stale_temp_file_is_removed_on_open(store_path):
    with open(store_path + ".tmp", "wb") as f:
        f.write(b"half a rewrite")
    KeyStore(store_path)
    assert not os.path.exists(store_path + ".tmp")


# -- the admin key --------------------------------------------------------------------------------

def test_admin_key_created_once_0600(tmp_path, monkeypatch):
    store_path, admin_path = str(tmp_path / "keys.cbor"), str(tmp_path / "admin.key")
    opened = []
    real_open = os.open

    def spy_open(path, flags, mode=0o777, *a, **kw):
        opened.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(keys_module.os, "open", spy_open)
    old = os.umask(0)
    try:
        key = KeyStore(store_path).ensure_admin_key(admin_path)
    finally:
        os.umask(old)
    assert key and key.startswith("cdb_")
    assert open(admin_path).read().strip() == key
    assert mode_of(admin_path) == 0o600
    # The secret's file was born 0600 and exclusive: never readable by others, even briefly.
    secret_opens = [o for o in opened if o[0].startswith(admin_path)]
    assert secret_opens and all(m == 0o600 and f & os.O_EXCL for _, f, m in secret_opens)

    again = KeyStore(store_path)
    info = again.verify(key)
    assert info is not None and info.is_admin and info.scope == "admin" and info.database is None
    before = os.stat(admin_path)
    assert again.ensure_admin_key(admin_path) is None
    after = os.stat(admin_path)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert open(admin_path).read().strip() == key


def test_admin_key_replaces_a_stale_file(tmp_path):
    """A leftover admin.key whose key is not in the store (crash before the store was written)."""
    admin_path = str(tmp_path / "admin.key")
    with open(admin_path, "w") as f:
        f.write("cdb_stale\n")
    os.chmod(admin_path, 0o644)
    s = KeyStore(str(tmp_path / "keys.cbor"))
    key = s.ensure_admin_key(admin_path)
    assert open(admin_path).read().strip() == key and mode_of(admin_path) == 0o600
    assert s.verify("cdb_stale") is None


def test_last_admin_key_cannot_be_revoked(tmp_path):
    s = KeyStore(str(tmp_path / "keys.cbor"))
    s.ensure_admin_key(str(tmp_path / "admin.key"))
    first = s.list()[0]
    with pytest.raises(KeyRequestError, match="last admin key"):
        s.revoke(first.key_id)
    second, second_key = s.create(None, "admin", "ops")
    assert s.revoke(first.key_id) is True
    assert s.verify(second_key) == second


# -- credentials ----------------------------------------------------------------------------------

def basic(userpass: str) -> str:
    return "Basic " + base64.b64encode(userpass.encode()).decode()


@pytest.mark.parametrize("headers, params, expected", [
    ({"authorization": "Token cdb_abc"}, {}, "cdb_abc"),
    ({"authorization": "token  cdb_abc "}, {}, "cdb_abc"),
    ({"authorization": "Bearer cdb_abc"}, {}, "cdb_abc"),
    ({"authorization": "BEARER cdb_abc"}, {}, "cdb_abc"),
    ({"authorization": basic("alice:cdb_abc")}, {}, "cdb_abc"),
    ({"authorization": basic(":cdb_abc")}, {}, "cdb_abc"),
    ({"authorization": basic("cdb_abc")}, {}, "cdb_abc"),
    ({}, {"u": "alice", "p": "cdb_abc"}, "cdb_abc"),
    ({}, {"p": "cdb_abc"}, "cdb_abc"),
    ({"authorization": "Token cdb_hdr"}, {"p": "cdb_param"}, "cdb_hdr"),  # header wins
    ({}, {}, None),
    ({}, {"u": "alice"}, None),
    ({}, {"p": ""}, None),
    ({"content-type": "text/plain"}, {"db": "x"}, None),
])
def test_credentials_forms(headers, params, expected):
    assert credentials_from(headers, params) == expected


@pytest.mark.parametrize("header", [
    "", "   ", "Token", "Token ", "Bearer", "Token a b", "Digest abc", "cdb_abc",
    "Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"alice:").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:key").decode(), "Basic " + base64.b64encode(b"").decode(),
])
def test_malformed_authorization_is_401(header):
    with pytest.raises(Unauthorized, match="malformed Authorization header") as e:
        credentials_from({"authorization": header}, {"p": "cdb_would_work"})
    assert e.value.status == 401


@settings(max_examples=200, deadline=None)
@given(user=st.text(alphabet=st.characters(blacklist_characters=":", blacklist_categories=("Cs",))),
       key=st.text(min_size=1, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_basic_roundtrip_ignores_user(user, key):
    assert credentials_from({"authorization": basic(f"{user}:{key}")}, {}) == key


# -- authorizer -----------------------------------------------------------------------------------

@pytest.fixture
def authorizer(store):
    return Authorizer(store)


def test_authenticate_each_way_and_failures(store, authorizer):
    info, key = store.create("db", "read")
    for headers, params in [({"authorization": f"Token {key}"}, {}),
                            ({"authorization": f"Bearer {key}"}, {}),
                            ({"authorization": basic(f"u:{key}")}, {}),
                            ({}, {"u": "x", "p": key})]:
        p = authorizer.authenticate(headers, params)
        assert p == Principal(info.key_id, "db", "read", False)
    with pytest.raises(Unauthorized, match="^unable to parse authentication credentials$"):
        authorizer.authenticate({}, {})
    with pytest.raises(Unauthorized, match="^authorization failed$"):
        authorizer.authenticate({"authorization": "Token cdb_unknown"}, {})
    with pytest.raises(Unauthorized, match="malformed"):
        authorizer.authenticate({"authorization": "Token"}, {})


SCOPE_ALLOWS = {"read": {"read"}, "write": {"write"}, "readwrite": {"read", "write"}}


@pytest.mark.parametrize("scope", ["read", "write", "readwrite"])
@pytest.mark.parametrize("action", ["read", "write", "admin"])
@pytest.mark.parametrize("target", ["db1", "db2", None])
def test_scope_action_database_matrix(store, authorizer, scope, action, target):
    info, key = store.create("db1", scope)
    p = authorizer.authenticate({"authorization": f"Token {key}"}, {})
    allowed = target == "db1" and action in SCOPE_ALLOWS[scope]
    assert p.can(action, target) is allowed
    if allowed:
        authorizer.require(p, action, target)
    else:
        with pytest.raises(Forbidden) as e:
            authorizer.require(p, action, target)
        assert e.value.status == 403 and info.key_id in e.value.message
        assert (e.value.key_id, e.value.action, e.value.database) == (info.key_id, action, target)
        if action != "admin" and target is not None:
            assert f'"{target}"' in e.value.message


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("target", ["db1", "db2", None])
def test_admin_may_do_everything(store, authorizer, action, target):
    _, key = store.create(None, "admin")
    p = authorizer.authenticate({"authorization": f"Token {key}"}, {})
    assert p.is_admin and p.can(action, target)
    authorizer.require(p, action, target)


def test_forbidden_messages(store, authorizer):
    info, key = store.create("db1", "read")
    p = authorizer.authenticate({"authorization": f"Token {key}"}, {})
    cases = {("write", "db2"): f'key {info.key_id} may not write to database "db2"',
             ("read", "db2"): f'key {info.key_id} may not read from database "db2"',
             ("write", "db1"): f'key {info.key_id} may not write to database "db1"'}
    for (action, db), msg in cases.items():
        with pytest.raises(Forbidden) as e:
            authorizer.require(p, action, db)
        assert e.value.message == msg
    with pytest.raises(Forbidden, match="admin actions"):
        authorizer.require(p, "admin", None)


def test_unknown_action_is_a_programming_error(store, authorizer):
    _, key = store.create("db", "readwrite")
    p = authorizer.authenticate({"authorization": f"Token {key}"}, {})
    with pytest.raises(ValueError, match="unknown action"):
        p.can("delete", "db")


def test_revoke_takes_effect_immediately(store, authorizer):
    info, key = store.create("db", "readwrite")
    hdr = {"authorization": f"Token {key}"}
    assert authorizer.authenticate(hdr, {}).key_id == info.key_id
    assert authorizer.authenticate(hdr, {}).key_id == info.key_id
    store.revoke(info.key_id)
    with pytest.raises(Unauthorized, match="authorization failed"):
        authorizer.authenticate(hdr, {})
    _, key2 = store.create("db2", "read")
    store.drop_database("db2")
    with pytest.raises(Unauthorized):
        authorizer.authenticate({"authorization": f"Token {key2}"}, {})


def test_disabled_authorizer_allows_everything():
    a = Authorizer(None, enabled=False)
    assert not a.enabled
    for headers, params in [({}, {}), ({"authorization": "Garbage"}, {}), ({}, {"p": "nope"})]:
        p = a.authenticate(headers, params)
        for action in ACTIONS:
            for db in ("db", None):
                assert p.can(action, db)
                a.require(p, action, db)
    a.require(Principal("k", "db1", "read", False), "admin", None)  # --no-auth: nothing refused


def test_enabled_authorizer_needs_a_store():
    with pytest.raises(ValueError):
        Authorizer(None)


def test_errors_are_chronos_errors_with_statuses():
    assert issubclass(Unauthorized, ChronosError) and Unauthorized.status == 401
    assert issubclass(Forbidden, ChronosError) and Forbidden.status == 403
    assert "realm" in Unauthorized.challenge


# -- threads --------------------------------------------------------------------------------------

def test_concurrent_create_verify_revoke(store):
    standing, standing_key = store.create("db0", "read")
    barrier = threading.Barrier(6)
    made: list[tuple[KeyInfo, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def creator(n):
        try:
            barrier.wait()
            for i in range(15):
                info, key = store.create(f"db{n}", "readwrite", f"t{n}-{i}")
                assert store.verify(key) == info
                with lock:
                    made.append((info, key))
                if i % 5 == 0:
                    assert store.revoke(info.key_id)
                    assert store.verify(key) is None
        except BaseException as e:  # surfaced below; a thread's assert would otherwise vanish
            errors.append(e)

    def verifier():
        try:
            barrier.wait()
            for _ in range(300):
                assert store.verify(standing_key) == standing
                assert store.verify("cdb_missing") is None
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=creator, args=(n,)) for n in range(1, 5)]
    threads += [threading.Thread(target=verifier) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    live = [(i, k) for i, k in made if not i.description.endswith(("-0", "-5", "-10"))]
    assert len(made) == 60 and len(live) == 48
    reopened = KeyStore(store.path)
    assert len(reopened.list()) == 49
    for info, key in live:
        assert reopened.verify(key) == info
