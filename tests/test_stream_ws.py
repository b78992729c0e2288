"""/ws/stream against a real server subprocess: the same streams as /stream, over WebSocket
(client side framing by wsproto)."""
from __future__ import annotations

import json

import pytest

from test_stream import WsClient, make_key, srv  # noqa: F401  (srv is a module fixture)


def data_event(c, kind="points"):
    return c.wait_for(lambda e: e.get("event") == kind)


def test_points_arrive_as_text_messages(srv):  # noqa: F811
    c = WsClient(srv.port, {"db": "db", "q": "SELECT v FROM w1", "epoch": "ns"}, key=srv.admin_key)
    assert c.status == 101
    try:
        for t in (1, 2, 3):
            assert srv.write(f"w1 v={t * 10} {t}".encode())[0] == 204
        got = []
        while len(got) < 3:
            ev = data_event(c)
            got += ev["data"]["series"][0]["values"]
        assert got == [[1, 10], [2, 20], [3, 30]]
        assert ev["id"] == "3"
    finally:
        c.close()


def test_ping_is_answered_and_heartbeat_pings_arrive(srv):  # noqa: F811
    c = WsClient(srv.port, {"db": "db", "q": "SELECT v FROM w2"}, key=srv.admin_key)
    try:
        c.send_ping()
        c.wait_for(lambda e: e.get("event") == "ping")  # the server's heartbeat ping
        assert srv.write(b"w2 v=1 5")[0] == 204        # still streaming after pings
        assert data_event(c)["data"]["series"][0]["values"][0][1] == 1
    finally:
        c.close()


def test_window_over_websocket(srv):  # noqa: F811
    import time
    c = WsClient(srv.port, {"db": "db", "epoch": "s", "q": "SELECT max(v) FROM w3 GROUP BY time(1s)"},
                 key=srv.admin_key)
    try:
        sec = time.time_ns() // 10**9
        assert srv.write(f"w3 v=7 {sec * 10**9}".encode())[0] == 204
        ev = data_event(c, "window")
        assert ev["data"]["series"][0]["values"] == [[sec, 7]]
    finally:
        c.close()


@pytest.mark.parametrize("case", ["no_key", "bad_key", "write_only", "other_db", "read", "admin"])
def test_auth_matrix(srv, case):  # noqa: F811
    expected = {"no_key": 401, "bad_key": 401, "write_only": 403, "other_db": 403,
                "read": 101, "admin": 101}[case]
    key = {"no_key": None, "bad_key": "cdb_notakey", "admin": srv.admin_key}.get(case)
    if case in ("write_only", "read"):
        key = make_key(srv, "db", "write" if case == "write_only" else "read")[1]
    if case == "other_db":
        key = make_key(srv, "other", "read")[1]
    c = WsClient(srv.port, {"db": "db", "q": "SELECT v FROM m"}, key=key)
    try:
        assert c.status == expected
        if expected != 101:
            assert "error" in c.body
    finally:
        c.close()


def test_key_as_p_parameter(srv):  # noqa: F811
    _id, key = make_key(srv, "db", "read")
    c = WsClient(srv.port, {"db": "db", "q": "SELECT v FROM m", "p": key})
    try:
        assert c.status == 101
    finally:
        c.close()


def test_bad_query_refused_before_upgrade(srv):  # noqa: F811
    c = WsClient(srv.port, {"db": "db", "q": "SELECT mean(v) FROM m"}, key=srv.admin_key)
    assert c.status == 400
    assert "unsupported for streaming" in c.body["error"]
    c.close()


def test_plain_get_is_refused(srv):  # noqa: F811
    st, _h, body = srv.request("GET", "/ws/stream?db=db&q=SELECT+v+FROM+m")
    assert st == 400
    assert "WebSocket" in json.loads(body)["error"]


def test_revoked_key_gets_error_then_close_1008(srv):  # noqa: F811
    key_id, key = make_key(srv, "db", "read")
    c = WsClient(srv.port, {"db": "db", "q": "SELECT v FROM w4"}, key=key)
    try:
        assert c.status == 101
        st, _h, _b = srv.request("DELETE", f"/api/keys/{key_id}")
        assert st in (200, 204)
        ev = data_event(c, "error")
        assert "revoked" in ev["data"]["error"]
        ev = data_event(c, "close")
        assert ev["code"] == 1008
    finally:
        c.close()


def test_bytes_sent_with_the_upgrade_request_are_not_lost(srv):  # noqa: F811
    # A client may send its first frame right behind the upgrade request; the connection is then
    # handed to the stream loop with those bytes, which must still be answered (a ping -> pong).
    import os
    import socket
    import struct
    from urllib.parse import urlencode

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Pong, Request

    client = WSConnection(ConnectionType.CLIENT)
    target = "/ws/stream?" + urlencode({"db": "db", "q": "SELECT v FROM w5", "p": srv.admin_key})
    payload, mask = b"early", os.urandom(4)
    ping = struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(client.send(Request(host="127.0.0.1", target=target)) + ping)
        accepted = pong = None
        while pong is None:
            data = sock.recv(65536)
            assert data, "connection closed before the pong"
            client.receive_data(data)
            for ev in client.events():
                if isinstance(ev, AcceptConnection):
                    accepted = True
                elif isinstance(ev, Pong):
                    pong = ev.payload
        assert accepted and pong == payload
    finally:
        sock.close()
