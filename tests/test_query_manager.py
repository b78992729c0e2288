"""SHOW QUERIES, KILL QUERY and the query timeout."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import numpy as np

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.query.influxql import parse
from chronosdb.query.manager import QueryManager
from chronosdb.query.statements import QueryContext, execute
from chronosdb.storage.engine import Engine, EngineOptions
from serverproc import ServerProcess


class AllowAll:
    def can_read(self, db):
        return True

    def require(self, action, db):
        pass


def test_kill_stops_a_running_select_between_series(tmp_path):
    e = Engine(str(tmp_path / "d"), EngineOptions(background=False))
    try:
        e.create_database("db")
        keys = [f"m,host=h{i}".encode() for i in range(20)]
        n = 100
        series = np.repeat(np.arange(20, dtype=np.int32), n)
        times = np.tile(np.arange(n, dtype=np.int64), 20)
        e.write("db", WriteBatch(keys, [FieldColumn(b"v", FieldType.FLOAT, series, times, np.ones(20 * n))]))
        mgr = QueryManager()
        running = mgr.start("SELECT v FROM m GROUP BY host", "db")
        calls = []

        def check():
            calls.append(1)
            if len(calls) == 5:      # killed from elsewhere while the query runs
                mgr.kill(running.qid)
            running.check()

        (r,) = execute(parse("SELECT v FROM m GROUP BY host"),
                       QueryContext(e, "db", None, AllowAll(), check_cancel=check, queries=mgr))
        assert r.error == "query killed" and not r.series
        assert [q.qid for q in mgr.list()] == [running.qid]
        mgr.finish(running)
        assert mgr.list() == []
    finally:
        e.close()


def test_show_queries_lists_itself_and_kill_unknown_is_an_error(start_server):
    s = start_server(auth=False)
    assert s.query("CREATE DATABASE db")[0] == 200
    st, doc = s.query("SHOW QUERIES", db="db")
    (series,) = doc["results"][0]["series"]
    assert series["columns"] == ["qid", "query", "database", "duration", "status"]
    assert [r[1] for r in series["values"]] == ["SHOW QUERIES"]
    st, doc = s.query("KILL QUERY 999999")
    assert doc["results"][0]["error"] == "no such query id: 999999"


def test_query_timeout_ends_a_query(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("query-timeout = 0.000001\n")
    s = ServerProcess(str(tmp_path / "data"), auth=False, extra=["--config", str(cfg)]).start()
    try:
        assert s.query("CREATE DATABASE db")[0] == 200
        assert s.write(b"m,host=a v=1 1\nm,host=b v=2 2")[0] == 204
        st, h, b = s.request("GET", "/query?" + urlencode({"q": "SELECT v FROM m GROUP BY host", "db": "db"}))
        assert st == 200 and json.loads(b)["results"][0]["error"] == "query timeout reached"
    finally:
        s.kill()
