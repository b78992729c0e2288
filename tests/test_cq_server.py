"""Continuous queries in a real ``chronosdb serve``: the scheduler runs a short-interval CQ on its
own, the runs show in SHOW STATS and /metrics, and after the server was stopped for three
windows the restarted server catches the missed windows up.

Data is written up front with timestamps covering the coming seconds, so the test only waits
(polling with a deadline) for the server's own clock to pass window boundaries.
"""
from __future__ import annotations

import time

S = 1_000_000_000
WINDOW = 1 * S


def _wait_for(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(interval)  # polling a real server's progress; the deadline bounds it


def _write_points(srv, start, seconds, per_second=4):
    lines = []
    for i in range(seconds * per_second):
        t = start + i * (S // per_second)
        lines.append(f"cpu,host=h{i % 2} value={i % 7}.5 {t}")
    status, _h, body = srv.write("\n".join(lines).encode())
    assert status == 204, body


def _series_rows(doc):
    res = doc["results"][0]
    assert "error" not in res, res
    return res.get("series", [])


def _epoch(srv, q):
    from urllib.parse import urlencode

    return srv.json("POST", "/query?" + urlencode({"q": q, "db": "db", "epoch": "ns"}))


def test_a_short_interval_cq_runs_on_its_own_and_catches_up_after_a_restart(start_server, tmp_path):
    data_dir = str(tmp_path / "data")
    srv = start_server(data_dir=data_dir)
    assert srv.query("CREATE DATABASE db")[1]["results"][0] == {"statement_id": 0}
    start = (time.time_ns() // S) * S
    # From two seconds ago to 58 s ahead: more than the test takes even on a loaded machine (a
    # window past the data would never get a row, and the catch-up check below waits for rows).
    data_end = start + 58 * S
    _write_points(srv, start - 2 * S, 60)
    _st, doc = srv.query("CREATE CONTINUOUS QUERY c1s ON db BEGIN SELECT mean(value) INTO cpu_1s FROM cpu "
                         "GROUP BY time(1s), host END")
    assert doc["results"][0] == {"statement_id": 0}, doc
    # A new CQ's first window is the one its creation falls in (no work for windows already
    # closed): on a loaded machine the creation can land a second or more after ``start``, so
    # the windows checked below begin at the second the CREATE had certainly happened in.
    first_window = (time.time_ns() // S) * S

    def windows():
        _st, d = _epoch(srv, "SELECT mean, host FROM cpu_1s")
        return {(h, t): m for s in _series_rows(d) for t, m, h in s["values"]}

    first = _wait_for(lambda: len({t for _h, t in windows()}) >= 2 and windows())
    assert all(t % WINDOW == 0 for _h, t in first)

    _st, stats = srv.query("SHOW STATS FOR 'cq'")
    (row,) = stats["results"][0]["series"]
    assert row["tags"] == {"database": "db", "name": "c1s"}
    values = dict(zip(row["columns"], row["values"][0]))
    assert values["queryOk"] >= 2 and values["queryFail"] == 0 and values["pointsWritten"] >= 4
    _st, _h, body = srv.request("GET", "/metrics")
    assert 'chronosdb_cq_runs_total{cq="c1s",database="db"}' in body.decode()

    # Down for (at least) three windows, then restarted on the same data dir.
    assert srv.stop() == 0
    stopped_at = time.time_ns()
    _wait_for(lambda: time.time_ns() >= stopped_at + 3 * WINDOW + WINDOW // 2, timeout=10)
    srv2 = start_server(data_dir=data_dir)
    restarted_at = time.time_ns()
    srv = srv2

    # Every window up to the restart, both hosts: a CQ run writes its series one after another,
    # so a read in between sees one host's row of the newest window without the other's.
    last = min((restarted_at // S) * S, data_end)

    def caught_up():
        got = windows()
        return all((h, t) in got for h in ("h0", "h1") for t in range(first_window, last, S)) and got

    got = _wait_for(caught_up)
    want = _hand_means_ns(srv, first_window, last)
    assert {k: got[k] for k in want} == want
    assert srv.query("SHOW CONTINUOUS QUERIES")[1]["results"][0]["series"][0]["values"] == [[
        "c1s", "CREATE CONTINUOUS QUERY c1s ON db BEGIN SELECT mean(value) INTO db.autogen.cpu_1s "
               "FROM db.autogen.cpu GROUP BY time(1s), host END"]]


def _hand_means_ns(srv, start, end):
    _st, doc = _epoch(srv, f"SELECT mean(value) FROM cpu WHERE time >= {start} AND time < {end} "
                           "GROUP BY time(1s), host fill(none)")
    return {(s["tags"]["host"], t): v for s in _series_rows(doc) for t, v in s["values"]}


def test_cq_statements_need_an_admin_key(start_server):
    srv = start_server()
    srv.query("CREATE DATABASE db")
    status, doc = srv.json("POST", "/api/keys", b'{"database": "db", "scope": "readwrite"}')
    assert status in (200, 201), doc
    key = doc.get("key") or doc.get("token")
    status, doc = srv.query("CREATE CONTINUOUS QUERY c ON db BEGIN SELECT count(value) INTO n FROM cpu "
                            "GROUP BY time(1m) END", key=key)
    assert status == 403, doc
    status, doc = srv.query("SHOW CONTINUOUS QUERIES", key=key)
    assert status == 200 and doc["results"][0]["series"] == [{"name": "db", "columns": ["name", "query"]}]
