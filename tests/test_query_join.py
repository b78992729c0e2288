"""JOIN and merge(): our extensions, against a real server."""
from __future__ import annotations

import pytest

T0 = 1451606400  # 2016-01-01T00:00:00Z
RANGE = "time >= '2016-01-01T00:00:00Z' AND time < '2016-01-01T00:06:00Z'"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from serverproc import ServerProcess

    s = ServerProcess(str(tmp_path_factory.mktemp("join") / "d"), auth=False).start()
    try:
        assert s.query("CREATE DATABASE db")[0] == 200
        lines = []
        for i in range(12):  # every 30 s for 6 minutes
            t = (T0 + i * 30) * 10**9
            for h in ("a", "b"):
                lines.append(f"cpu,host={h} usage={i + (0 if h == 'a' else 100)} {t}")
                if not (h == "b" and i >= 6):  # mem of b stops after 3 minutes
                    lines.append(f"mem,host={h} used={i * 10} {t}")
        assert s.write("\n".join(lines).encode())[0] == 204
        yield s
    finally:
        s.kill()


def q(srv, text):
    st, doc = srv.query(text, db="db")
    assert st == 200, doc
    return doc["results"][0]


def test_inner_join_of_aggregates(srv):
    r = q(srv, f"SELECT mean(cpu.usage) + mean(mem.used) AS load FROM cpu INNER JOIN mem ON host "
               f"WHERE {RANGE} GROUP BY time(1m), host")
    a, b = r["series"]
    assert a["name"] == "cpu_mem" and a["tags"] == {"host": "a"} and a["columns"] == ["time", "load"]
    # minute m holds i = 2m, 2m+1: mean usage 2m+0.5, mean used 10*(2m+0.5)
    assert [v[1] for v in a["values"]] == [11 * (2 * m + 0.5) for m in range(6)]
    assert len(b["values"]) == 3  # b's mem has only three minutes: the inner join keeps those
    assert b["values"][0][1] == 100.5 + 5


def test_full_join_keeps_windows_of_either_side(srv):
    r = q(srv, f"SELECT mean(cpu.usage), mean(mem.used) FROM cpu FULL JOIN mem ON host "
               f"WHERE {RANGE} GROUP BY time(2m), host")
    b = r["series"][1]
    assert b["columns"] == ["time", "mean", "mean_1"]
    assert b["values"][-1][1:] == [109.5, None]


def test_full_join_with_fill(srv):
    r = q(srv, f"SELECT mean(cpu.usage), mean(mem.used) FROM cpu FULL JOIN mem ON host "
               f"WHERE {RANGE} GROUP BY time(2m), host fill(-1)")
    assert r["series"][1]["values"][-1][1:] == [109.5, -1]


def test_raw_left_join_on_timestamps(srv):
    r = q(srv, "SELECT cpu.usage, mem.used FROM cpu LEFT JOIN mem ON host "
               "WHERE host = 'b' AND time >= '2016-01-01T00:02:00Z'")
    (s,) = r["series"]
    assert s["values"][0][1:] == [104, 40]
    assert s["values"][2][1:] == [106, None]  # left rows stay, right side null
    assert len(s["values"]) == 8


def test_condition_on_one_side_filters_the_join(srv):
    r = q(srv, "SELECT cpu.usage * 2 FROM cpu INNER JOIN mem ON host WHERE mem.used > 80")
    (s,) = r["series"]
    assert [v[1] for v in s["values"]] == [18, 20, 22]


def test_join_errors(srv):
    assert "must name exactly one side" in q(srv, "SELECT mean(usage) FROM cpu INNER JOIN mem ON host")["error"]
    assert "not a side" in q(srv, "SELECT mean(disk.x) FROM cpu INNER JOIN mem ON host")["error"]


def test_join_into_writes_a_new_series(srv):
    r = q(srv, f"SELECT mean(cpu.usage) + mean(mem.used) AS load INTO load_1m FROM cpu INNER JOIN mem "
               f"ON host WHERE {RANGE} GROUP BY time(1m), host")
    assert r["series"][0]["values"][0][1] == 9
    r = q(srv, "SELECT count(load) FROM load_1m GROUP BY host")
    assert [s["values"][0][1] for s in r["series"]] == [6, 3]


def test_merge_interleaves_fields(srv):
    srv.write(b"two,host=a x=1 1000000000\ntwo,host=a y=2 1500000000\ntwo,host=a x=3 2000000000\n", db="db")
    r = q(srv, "SELECT merge(x, y) FROM two")
    (s,) = r["series"]
    assert s["columns"] == ["time", "merge"]
    assert [v[1] for v in s["values"]] == [1, 2, 3]
