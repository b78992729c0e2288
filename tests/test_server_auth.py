"""The auth matrix: every endpoint x every kind of key x every way of sending it."""
from __future__ import annotations

import json

import pytest

FORMS = ("token", "bearer", "basic", "param")
KEYS = ("none", "read", "write", "readwrite", "other", "revoked", "admin", "wrong")

# endpoint name -> (method, path, body, {key kind: expected status})
A, U, F = 200, 401, 403
MATRIX = {
    "ping":       ("GET", "/ping", None, dict.fromkeys(KEYS, 204)),
    "health":     ("GET", "/health", None, dict.fromkeys(KEYS, 200)),
    "write":      ("POST", "/write?db=db", b"m v=1 1",
                   {"none": U, "read": F, "write": 204, "readwrite": 204, "other": F, "revoked": U, "admin": 204, "wrong": U}),
    "show_rp":    ("POST", "/query?q=SHOW+RETENTION+POLICIES+ON+db", None,
                   {"none": U, "read": A, "write": F, "readwrite": A, "other": F, "revoked": U, "admin": A, "wrong": U}),
    "show_dbs":   ("GET", "/query?q=SHOW+DATABASES", None,
                   {"none": U, "read": A, "write": A, "readwrite": A, "other": A, "revoked": U, "admin": A, "wrong": U}),
    "create_db":  ("POST", "/query?q=CREATE+DATABASE+made", None,
                   {"none": U, "read": F, "write": F, "readwrite": F, "other": F, "revoked": U, "admin": A, "wrong": U}),
    "metrics":    ("GET", "/metrics", None,
                   {"none": U, "read": A, "write": A, "readwrite": A, "other": A, "revoked": U, "admin": A, "wrong": U}),
    "keys_list":  ("GET", "/api/keys", None,
                   {"none": U, "read": F, "write": F, "readwrite": F, "other": F, "revoked": U, "admin": A, "wrong": U}),
    "keys_create": ("POST", "/api/keys", b'{"database": "db", "scope": "read"}',
                    {"none": U, "read": F, "write": F, "readwrite": F, "other": F, "revoked": U, "admin": 201, "wrong": U}),
}


@pytest.fixture(scope="module")
def authed(tmp_path_factory):
    from serverproc import ServerProcess

    s = ServerProcess(str(tmp_path_factory.mktemp("auth") / "data"), auth=True).start()
    try:
        assert s.admin_key and s.admin_key.startswith("cdb_")
        for db in ("db", "db2"):
            st, doc = s.query(f"CREATE DATABASE {db}")
            assert st == 200 and "error" not in doc["results"][0], doc
        keys = {"admin": s.admin_key, "wrong": "cdb_" + "x" * 43, "none": None}
        for scope in ("read", "write", "readwrite"):
            st, doc = s.json("POST", "/api/keys", json.dumps({"database": "db", "scope": scope}).encode())
            assert st == 201, doc
            keys[scope] = doc["key"]
        st, doc = s.json("POST", "/api/keys", b'{"database": "db2", "scope": "readwrite"}')
        keys["other"] = doc["key"]
        st, doc = s.json("POST", "/api/keys", b'{"database": "db", "scope": "readwrite"}')
        keys["revoked"] = doc["key"]
        assert s.request("DELETE", f"/api/keys/{doc['id']}")[0] == 204
        s.keys = keys
        yield s
    finally:
        s.kill()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_auth_matrix(authed, endpoint, form):
    method, path, body, expected = MATRIX[endpoint]
    got = {}
    for kind in KEYS:
        st, h, b = authed.request(method, path, body, key=authed.keys[kind], form=form)
        got[kind] = st
        if st in (401, 403):
            assert json.loads(b)["error"], b
        if st == 401:
            assert "www-authenticate" in h
    assert got == expected


def test_key_listing_never_shows_keys(authed):
    st, h, b = authed.request("GET", "/api/keys")
    text = b.decode()
    assert st == 200
    for k in authed.keys.values():
        if k:
            assert k not in text
    listed = json.loads(b)["keys"]
    assert {k["scope"] for k in listed} >= {"admin", "read", "write", "readwrite"}


def test_show_databases_lists_only_readable(authed):
    st, doc = authed.json("GET", "/query?q=SHOW+DATABASES", key=authed.keys["read"])
    names = [v[0] for v in doc["results"][0]["series"][0]["values"]]
    assert names == ["db"]


def test_revoke_unknown_key_is_404(authed):
    st, h, b = authed.request("DELETE", "/api/keys/000000000000")
    assert st == 404 and "not found" in json.loads(b)["error"]


def test_bad_key_requests_are_400(authed):
    for body in (b"not json", b"[]", b'{"database": "db", "scope": "everything"}', b'{"scope": "read"}'):
        st, h, b = authed.request("POST", "/api/keys", body)
        assert st == 400, (body, b)
    st, h, b = authed.request("POST", "/api/keys", b'{"database": "nope", "scope": "read"}')
    assert st == 404


def test_admin_key_file_is_private(authed):
    import os
    import stat

    mode = stat.S_IMODE(os.stat(os.path.join(authed.data_dir, "admin.key")).st_mode)
    assert mode == 0o600
    assert authed.admin_key in authed.output()  # printed once at first start
    with open(os.path.join(authed.data_dir, "keys.cbor"), "rb") as f:
        raw = f.read()
    for k in authed.keys.values():
        if k:
            assert k.encode() not in raw
