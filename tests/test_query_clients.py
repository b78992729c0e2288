"""What real clients send: Grafana's InfluxDB data source and the influx CLI, plus CSV/chunked."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from urllib.parse import urlencode

import pytest

T0_S = 1451606400  # 2016-01-01T00:00:00Z


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from serverproc import ServerProcess

    s = ServerProcess(str(tmp_path_factory.mktemp("clients") / "data"), auth=False).start()
    try:
        assert s.query("CREATE DATABASE grafana")[0] == 200
        lines = []
        for i in range(360):  # one hour at 10 s, two hosts
            for h, k in (("a", 1.0), ("b", 2.0)):
                lines.append(f"m,host={h} value={i * k},flag={'true' if i % 2 else 'false'} {(T0_S + i * 10) * 10**9}")
        st, _h, b = s.write("\n".join(lines).encode(), db="grafana")
        assert st == 204, b
        yield s
    finally:
        s.kill()


def get(s, q, **params):
    path = "/query?" + urlencode({"q": q, "db": "grafana", **params})
    st, h, b = s.request("GET", path)
    return st, h, b


def test_grafana_time_series_query(loaded):
    lo, hi = T0_S * 1000, (T0_S + 600) * 1000 - 1
    q = (f'SELECT mean("value") FROM "m" WHERE time >= {lo}ms and time <= {hi}ms '
         f'GROUP BY time(1m), "host" fill(null)')
    st, _h, b = get(loaded, q, epoch="ms")
    assert st == 200, b
    doc = json.loads(b)
    series = doc["results"][0]["series"]
    assert [s["tags"] for s in series] == [{"host": "a"}, {"host": "b"}]
    vals = series[0]["values"]
    assert vals[0] == [T0_S * 1000, 2.5]  # mean of 0..5
    assert vals[1] == [(T0_S + 60) * 1000, 8.5]
    assert len(vals) == 10
    assert series[1]["values"][0][1] == 5.0


def test_grafana_editor_show_queries(loaded):
    for q, expect in [
        ("SHOW MEASUREMENTS LIMIT 100", [["m"]]),
        ('SHOW TAG KEYS FROM "m"', [["host"]]),
        ('SHOW TAG VALUES FROM "m" WITH KEY = "host"', [["host", "a"], ["host", "b"]]),
        ('SHOW FIELD KEYS FROM "m"', [["flag", "boolean"], ["value", "float"]]),
        ('SHOW RETENTION POLICIES ON "grafana"', [["autogen", "0s", "168h0m0s", 1, True]]),
    ]:
        st, _h, b = get(loaded, q)
        assert st == 200, b
        assert json.loads(b)["results"][0]["series"][0]["values"] == expect, q


def test_csv_answer(loaded):
    path = "/query?" + urlencode({"q": "SELECT value FROM m WHERE host = 'a' LIMIT 2", "db": "grafana"})
    st, h, b = loaded.request("GET", path, headers={"Accept": "application/csv"})
    assert st == 200 and h["content-type"].startswith("application/csv")
    lines = b.decode().strip().splitlines()
    assert lines[0] == "name,tags,time,value"
    assert lines[1] == f"m,,{T0_S * 10**9},0"
    assert len(lines) == 3


def test_chunked_answer(loaded):
    st, h, b = get(loaded, "SELECT value FROM m WHERE host = 'a'", chunked="true", chunk_size="100")
    assert st == 200
    docs = [json.loads(line) for line in b.decode().splitlines() if line.strip()]
    assert len(docs) == 4  # 360 rows in chunks of 100
    rows = [r for d in docs for r in d["results"][0]["series"][0]["values"]]
    assert len(rows) == 360 and rows[0][1] == 0 and rows[-1][1] == 359
    assert docs[0]["results"][0].get("partial") is True
    assert "partial" not in docs[-1]["results"][0]


def test_statement_errors_and_parse_errors(loaded):
    st, _h, b = get(loaded, "SELECT mean(value), value FROM m")
    assert st == 200
    assert "mixing aggregate and non-aggregate" in json.loads(b)["results"][0]["error"]
    st, _h, b = get(loaded, "SELECT nosuch(value) FROM m")
    assert st == 200 and "undefined function nosuch()" in json.loads(b)["results"][0]["error"]
    st, _h, b = get(loaded, "SELECT FROM m")
    assert st == 400 and json.loads(b)["error"].startswith("error parsing query: ")
    st, _h, b = get(loaded, "SELECT mean(value) FROM m WHERE time > '2016-01-01T00:00:00Z' "
                            "AND time < '2017-01-01T00:00:00Z' GROUP BY time(1ns)")
    assert st == 200 and "max-select-buckets" in json.loads(b)["results"][0]["error"]


@pytest.mark.skipif(shutil.which("influx") is None, reason="the influx CLI (Debian influxdb) is not installed")
def test_influx_cli(loaded):
    """The real influx 1.x CLI: it pings, then sends chunked=true&epoch=ns queries."""
    def run(q, *extra):
        return subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(loaded.port),
                               "-database", "grafana", *extra, "-execute", q],
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")))
    r = run("SHOW DATABASES")
    assert r.returncode == 0, r.stderr
    assert "grafana" in r.stdout
    r = run("SELECT max(value) FROM m WHERE host = 'b'", "-format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"][0]["series"][0]["values"][0][1] == 718.0
    r = run("SELECT count(value) FROM m GROUP BY host", "-format", "csv")
    assert r.returncode == 0, r.stderr
    assert "360" in r.stdout and "host=a" in r.stdout


def test_hostile_regexes_are_refused_at_once(loaded):
    """A pattern a backtracking engine could hang on is refused wherever a query takes one."""
    for q in ["SELECT value FROM /(a+)+$/",
              "SELECT value FROM m WHERE host =~ /(a|a)*b/",
              "SELECT mean(value) FROM m GROUP BY /(x*)*/",
              "SELECT count(/(v+)+z/) FROM m",
              "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(m+)+q/"]:
        st, _h, b = get(loaded, q)
        doc = json.loads(b)
        err = doc.get("error") or doc["results"][0].get("error", "")
        assert "catastrophic backtracking" in err, (q, doc)
