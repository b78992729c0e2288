"""SHOW / DELETE / DROP statements against a real Engine, compared with InfluxDB 1.6.7's answers.

Every expected shape below was observed on a real InfluxDB 1.6.7 (bench/peers.InfluxDB, queried
over HTTP with the same data as ``DATA``); the `# 1.6.7:` comments say so where it matters, and
`# ours:` marks the few deliberate differences (docs/influxql-schema.md lists them).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from chronosdb.auth import Forbidden
from chronosdb.model.batch import WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.query import schema
from chronosdb.query.influxql import parse
from chronosdb.query.meta import StatementError
from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions

F, I, B, S = FieldType.FLOAT, FieldType.INTEGER, FieldType.BOOLEAN, FieldType.STRING
S1 = 10**9
NOW = 1_700_000_000 * S1

# The line protocol written to InfluxDB 1.6.7 for the observations:
#   cpu,host=a,region=us usage_user=10,usage_system=5 1000000000
#   cpu,host=b,region=eu usage_user=20,usage_system=7 2000000000
#   cpu,host=c usage_user=30 3000000000
#   mem,host=a free=100i,ok=true 1000000000
#   mem,host=b free=200i,ok=false 2000000000
#   disk,host=a,path=/ status="ok" 1000000000
#   weather temp=3.5 1000000000
DATA = [
    ("cpu,host=a,region=us", "usage_user", F, 1 * S1, 10.0),
    ("cpu,host=a,region=us", "usage_system", F, 1 * S1, 5.0),
    ("cpu,host=b,region=eu", "usage_user", F, 2 * S1, 20.0),
    ("cpu,host=b,region=eu", "usage_system", F, 2 * S1, 7.0),
    ("cpu,host=c", "usage_user", F, 3 * S1, 30.0),
    ("mem,host=a", "free", I, 1 * S1, 100),
    ("mem,host=a", "ok", B, 1 * S1, 1),
    ("mem,host=b", "free", I, 2 * S1, 200),
    ("mem,host=b", "ok", B, 2 * S1, 0),
    ("disk,host=a,path=/", "status", S, 1 * S1, "ok"),
    ("weather", "temp", F, 1 * S1, 3.5),
]


class FakeAuth:
    """Allows what ``allowed`` lists as (action, db) pairs; ``None`` allows everything."""

    def __init__(self, allowed=None):
        self.allowed = allowed
        self.calls = []

    def require(self, action, db):
        self.calls.append((action, db))
        if self.allowed is not None and (action, db) not in self.allowed:
            raise Forbidden(f"key k may not {action} {db}", "k", action, db)

    def can_read(self, db):
        return self.allowed is None or ("read", db) in self.allowed


@pytest.fixture
def engine(tmp_path):
    e = Engine(str(tmp_path / "data"), EngineOptions(background=False))
    e.create_database("bench")
    e.create_database("empty")
    e.write("bench", WriteBatch.from_points(DATA))
    yield e
    e.close()


def q(engine, text, db="bench", auth=None):
    return schema.run(parse(text)[0], engine, db, auth or FakeAuth(), NOW)


def err(engine, text, db="bench"):
    with pytest.raises(StatementError) as info:
        q(engine, text, db)
    return str(info.value)


def values(result):
    return [s["values"] for s in result.get("series", [])]


def named(result):
    return [(s["name"], s["values"]) for s in result.get("series", [])]


# --- SHOW MEASUREMENTS ------------------------------------------------------------------------

def test_show_measurements_shapes(engine):
    assert q(engine, "SHOW MEASUREMENTS") == {"series": [
        {"name": "measurements", "columns": ["name"],
         "values": [["cpu"], ["disk"], ["mem"], ["weather"]]}]}
    assert values(q(engine, "SHOW MEASUREMENTS WITH MEASUREMENT =~ /c.*/")) == [[["cpu"]]]
    assert values(q(engine, "SHOW MEASUREMENTS WITH MEASUREMENT = cpu")) == [[["cpu"]]]
    assert values(q(engine, "SHOW MEASUREMENTS WHERE host = 'a'")) == [[["cpu"], ["disk"], ["mem"]]]
    assert values(q(engine, "SHOW MEASUREMENTS WHERE host = 'a' AND region = 'us'")) == [[["cpu"]]]
    assert values(q(engine, "SHOW MEASUREMENTS WHERE host = 'a' OR region = 'eu'")) == \
        [[["cpu"], ["disk"], ["mem"]]]
    assert values(q(engine, "SHOW MEASUREMENTS LIMIT 2 OFFSET 1")) == [[["disk"], ["mem"]]]
    assert values(q(engine, "SHOW MEASUREMENTS WITH MEASUREMENT =~ /c|m/ WHERE host = 'b'")) == [[["cpu"], ["mem"]]]
    assert q(engine, "SHOW MEASUREMENTS WHERE host = 'zzz'") == {}  # empty: no "series" key
    assert q(engine, "SHOW MEASUREMENTS", db="empty") == {}
    assert q(engine, "SHOW MEASUREMENTS ON nonexist") == {}  # 1.6.7: no error here
    assert values(q(engine, "SHOW MEASUREMENTS ON bench", db=None)) == [[["cpu"], ["disk"], ["mem"], ["weather"]]]


def test_show_measurements_errors(engine):
    assert err(engine, "SHOW MEASUREMENTS", db=None) == "database name required"
    assert err(engine, "SHOW MEASUREMENTS WHERE usage_user > 1") == "invalid tag comparison operator"
    assert err(engine, "SHOW MEASUREMENTS WHERE time > now() - 1h") == \
        "SHOW MEASUREMENTS doesn't support time in WHERE clause"


# --- SHOW SERIES ------------------------------------------------------------------------------

ALL_SERIES = [["cpu,host=a,region=us"], ["cpu,host=b,region=eu"], ["cpu,host=c"],
              ["disk,host=a,path=/"], ["mem,host=a"], ["mem,host=b"], ["weather"]]


def test_show_series_shapes(engine):
    assert q(engine, "SHOW SERIES") == {"series": [{"columns": ["key"], "values": ALL_SERIES}]}
    assert values(q(engine, "SHOW SERIES FROM cpu WHERE region = 'us'")) == [[["cpu,host=a,region=us"]]]
    assert values(q(engine, "SHOW SERIES WHERE region != 'us'")) == \
        [[r for r in ALL_SERIES if r != ["cpu,host=a,region=us"]]]
    assert values(q(engine, "SHOW SERIES WHERE region =~ /u/ OR host = 'a'")) == \
        [[["cpu,host=a,region=us"], ["cpu,host=b,region=eu"], ["disk,host=a,path=/"], ["mem,host=a"]]]
    assert values(q(engine, "SHOW SERIES WHERE region = ''")) == \
        [[["cpu,host=c"], ["disk,host=a,path=/"], ["mem,host=a"], ["mem,host=b"], ["weather"]]]
    assert values(q(engine, "SHOW SERIES LIMIT 2 OFFSET 1")) == [[["cpu,host=b,region=eu"], ["cpu,host=c"]]]
    assert values(q(engine, "SHOW SERIES FROM /c.*/")) == [ALL_SERIES[:3]]
    assert values(q(engine, "SHOW SERIES FROM cpu, mem")) == [ALL_SERIES[:3] + ALL_SERIES[4:6]]
    assert values(q(engine, "SHOW SERIES FROM bench.autogen.cpu")) == [ALL_SERIES[:3]]
    assert values(q(engine, "SHOW SERIES WHERE time > 0")) == [ALL_SERIES]  # 1.6.7 ignores time
    assert q(engine, "SHOW SERIES FROM nonexist") == {}
    assert q(engine, "SHOW SERIES", db="empty") == {}


def test_show_series_errors(engine):
    assert err(engine, "SHOW SERIES ON nonexist") == "database not found: nonexist"
    assert err(engine, "SHOW SERIES", db=None) == "database name required"
    assert err(engine, "SHOW SERIES WHERE usage_user > 1") == "invalid tag comparison operator"
    assert err(engine, "SHOW SERIES WHERE host > 'a'") == "invalid tag comparison operator"
    assert err(engine, "SHOW SERIES WHERE host = 'a' AND usage_user > 1") == "invalid tag comparison operator"


# --- SHOW TAG KEYS / TAG VALUES / FIELD KEYS -------------------------------------------------

def test_show_tag_keys(engine):
    assert q(engine, "SHOW TAG KEYS") == {"series": [
        {"name": "cpu", "columns": ["tagKey"], "values": [["host"], ["region"]]},
        {"name": "disk", "columns": ["tagKey"], "values": [["host"], ["path"]]},
        {"name": "mem", "columns": ["tagKey"], "values": [["host"]]}]}
    assert values(q(engine, "SHOW TAG KEYS FROM cpu")) == [[["host"], ["region"]]]
    r = q(engine, "SHOW TAG KEYS WHERE region = 'eu'")
    assert [(s["name"], s["values"]) for s in r["series"]] == [("cpu", [["host"], ["region"]])]
    # LIMIT/OFFSET apply within each measurement; emptied measurements disappear (1.6.7).
    r = q(engine, "SHOW TAG KEYS LIMIT 1 OFFSET 1")
    assert [(s["name"], s["values"]) for s in r["series"]] == [("cpu", [["region"]]), ("disk", [["path"]])]
    assert values(q(engine, "SHOW TAG KEYS LIMIT 1")) == [[["host"]]] * 3
    # keys of the matching series only (1.6.7: host=c has no region)
    assert named(q(engine, "SHOW TAG KEYS WHERE host = 'c'")) == [("cpu", [["host"]])]
    # 1.6.7 ignores SLIMIT/SOFFSET on SHOW TAG KEYS
    assert q(engine, "SHOW TAG KEYS SLIMIT 1 SOFFSET 1") == q(engine, "SHOW TAG KEYS")
    assert q(engine, "SHOW TAG KEYS FROM weather") == {}
    assert q(engine, "SHOW TAG KEYS", db="empty") == {}
    assert err(engine, "SHOW TAG KEYS ON nonexist") == "database not found: nonexist"


def test_show_tag_values(engine):
    assert q(engine, "SHOW TAG VALUES WITH KEY = host") == {"series": [
        {"name": "cpu", "columns": ["key", "value"], "values": [["host", "a"], ["host", "b"], ["host", "c"]]},
        {"name": "disk", "columns": ["key", "value"], "values": [["host", "a"]]},
        {"name": "mem", "columns": ["key", "value"], "values": [["host", "a"], ["host", "b"]]}]}
    assert named(q(engine, "SHOW TAG VALUES WITH KEY IN (host, region)")) == [
        ("cpu", [["host", "a"], ["host", "b"], ["host", "c"], ["region", "eu"], ["region", "us"]]),
        ("disk", [["host", "a"]]), ("mem", [["host", "a"], ["host", "b"]])]
    assert named(q(engine, "SHOW TAG VALUES WITH KEY =~ /reg.*/")) == [("cpu", [["region", "eu"], ["region", "us"]])]
    for text in ("SHOW TAG VALUES WITH KEY != host", "SHOW TAG VALUES WITH KEY !~ /host/"):
        assert named(q(engine, text)) == [("cpu", [["region", "eu"], ["region", "us"]]), ("disk", [["path", "/"]])]
    assert named(q(engine, "SHOW TAG VALUES FROM cpu WITH KEY = host WHERE region = 'us'")) == [("cpu", [["host", "a"]])]
    assert named(q(engine, "SHOW TAG VALUES WITH KEY = host LIMIT 1 OFFSET 1")) == \
        [("cpu", [["host", "b"]]), ("mem", [["host", "b"]])]
    assert named(q(engine, "SHOW TAG VALUES WITH KEY = host WHERE host =~ /a|b/")) == \
        [("cpu", [["host", "a"], ["host", "b"]]), ("disk", [["host", "a"]]), ("mem", [["host", "a"], ["host", "b"]])]
    assert q(engine, "SHOW TAG VALUES WITH KEY = nothing") == {}
    assert q(engine, "SHOW TAG VALUES FROM cpu WITH KEY = region WHERE host = 'c'") == {}
    assert q(engine, "SHOW TAG VALUES WITH KEY = region WHERE region = ''") == {}
    assert err(engine, "SHOW TAG VALUES ON nonexist WITH KEY = host") == "database not found: nonexist"


def test_show_field_keys(engine):
    assert q(engine, "SHOW FIELD KEYS") == {"series": [
        {"name": "cpu", "columns": ["fieldKey", "fieldType"], "values": [["usage_system", "float"], ["usage_user", "float"]]},
        {"name": "disk", "columns": ["fieldKey", "fieldType"], "values": [["status", "string"]]},
        {"name": "mem", "columns": ["fieldKey", "fieldType"], "values": [["free", "integer"], ["ok", "boolean"]]},
        {"name": "weather", "columns": ["fieldKey", "fieldType"], "values": [["temp", "float"]]}]}
    assert [s["name"] for s in q(engine, "SHOW FIELD KEYS FROM /m.*/")["series"]] == ["mem"]
    assert [s["name"] for s in q(engine, "SHOW FIELD KEYS FROM cpu, mem")["series"]] == ["cpu", "mem"]
    assert values(q(engine, "SHOW FIELD KEYS LIMIT 1")) == \
        [[["usage_system", "float"]], [["status", "string"]], [["free", "integer"]], [["temp", "float"]]]
    assert q(engine, "SHOW FIELD KEYS FROM nonexist") == {}
    # 1.6.7: a field written with different types in different shards is listed once per type
    engine.write("bench", WriteBatch.from_points([("x2", "f", F, S1, 1.0),
                                                  ("x2", "f", S, 2 * 10**18, "s")]))
    assert named(q(engine, "SHOW FIELD KEYS FROM x2")) == [("x2", [["f", "float"], ["f", "string"]])]
    assert q(engine, "SHOW FIELD KEYS", db="empty") == {}
    assert err(engine, "SHOW FIELD KEYS ON nonexist") == "database not found: nonexist"
    assert err(engine, "SHOW FIELD KEYS", db=None) == "database name required"


# --- cardinalities ----------------------------------------------------------------------------

def counts(r):
    return [(s.get("name"), s["columns"], s["values"]) for s in r.get("series", [])]


def test_cardinalities(engine):
    est = lambda n: [(None, ["cardinality estimation"], [[n]])]
    per = lambda *pairs: [(m, ["count"], [[n]]) for m, n in pairs]
    assert counts(q(engine, "SHOW SERIES CARDINALITY")) == est(7)
    assert counts(q(engine, "SHOW SERIES EXACT CARDINALITY")) == per(("cpu", 3), ("disk", 1), ("mem", 2), ("weather", 1))
    assert counts(q(engine, "SHOW SERIES EXACT CARDINALITY LIMIT 1")) == per(("cpu", 3), ("disk", 1), ("mem", 2), ("weather", 1))
    assert counts(q(engine, "SHOW SERIES CARDINALITY FROM cpu")) == per(("cpu", 3))
    assert counts(q(engine, "SHOW SERIES CARDINALITY WHERE host = 'a'")) == per(("cpu", 1), ("disk", 1), ("mem", 1))
    assert counts(q(engine, "SHOW MEASUREMENT CARDINALITY")) == est(4)
    assert counts(q(engine, "SHOW MEASUREMENT EXACT CARDINALITY")) == [(None, ["count"], [[4]])]
    assert counts(q(engine, "SHOW MEASUREMENT CARDINALITY WHERE host = 'a'")) == [(None, ["count"], [[3]])]
    assert counts(q(engine, "SHOW MEASUREMENT CARDINALITY FROM cpu")) == [(None, ["count"], [[1]])]
    tag_keys = per(("cpu", 2), ("disk", 2), ("mem", 1))
    assert counts(q(engine, "SHOW TAG KEY CARDINALITY")) == tag_keys
    assert counts(q(engine, "SHOW TAG KEY EXACT CARDINALITY")) == tag_keys
    assert counts(q(engine, "SHOW TAG KEY EXACT CARDINALITY FROM cpu")) == per(("cpu", 2))
    assert counts(q(engine, "SHOW TAG VALUES CARDINALITY WITH KEY = host")) == per(("cpu", 3), ("disk", 1), ("mem", 2))
    assert counts(q(engine, "SHOW TAG VALUES EXACT CARDINALITY WITH KEY IN (host, region)")) == \
        per(("cpu", 5), ("disk", 1), ("mem", 2))
    assert counts(q(engine, "SHOW TAG VALUES CARDINALITY WITH KEY = host WHERE host = 'a'")) == \
        per(("cpu", 1), ("disk", 1), ("mem", 1))
    fields = per(("cpu", 2), ("disk", 1), ("mem", 2), ("weather", 1))
    assert counts(q(engine, "SHOW FIELD KEY CARDINALITY")) == fields
    assert counts(q(engine, "SHOW FIELD KEY EXACT CARDINALITY FROM cpu")) == per(("cpu", 2))


def test_cardinalities_on_empty_and_missing_databases(engine):
    assert q(engine, "SHOW SERIES CARDINALITY", db="empty") == \
        {"series": [{"columns": ["cardinality estimation"], "values": [[0]]}]}
    assert q(engine, "SHOW MEASUREMENT CARDINALITY ON nonexist") == \
        {"series": [{"columns": ["cardinality estimation"], "values": [[0]]}]}
    for text in ("SHOW SERIES EXACT CARDINALITY", "SHOW MEASUREMENT EXACT CARDINALITY",
                 "SHOW TAG KEY EXACT CARDINALITY", "SHOW FIELD KEY EXACT CARDINALITY"):
        assert q(engine, text, db="empty") == {}
    assert err(engine, "SHOW SERIES EXACT CARDINALITY ON nonexist") == "database not found: nonexist"
    assert err(engine, "SHOW SERIES CARDINALITY", db=None) == "database name required"


# --- shards -----------------------------------------------------------------------------------

# ours: groups start at multiples of the shard duration since the epoch (1970-01-01, a
# Thursday); 1.6.7 aligns 7-day groups to Mondays ("1969-12-29T00:00:00Z").
SHARD_ROW = [1, "bench", "autogen", 1, "1970-01-01T00:00:00Z", "1970-01-08T00:00:00Z",
             "1970-01-08T00:00:00Z", ""]


def test_show_shards_and_groups(engine):
    cols = ["id", "database", "retention_policy", "shard_group", "start_time", "end_time",
            "expiry_time", "owners"]
    # 1.6.7: one series per database; a database without shards has no "values".
    assert q(engine, "SHOW SHARDS") == {"series": [
        {"name": "bench", "columns": cols, "values": [SHARD_ROW]},
        {"name": "empty", "columns": cols}]}
    assert q(engine, "SHOW SHARD GROUPS") == {"series": [
        {"name": "shard groups",
         "columns": ["id", "database", "retention_policy", "start_time", "end_time", "expiry_time"],
         "values": [[1, "bench", "autogen", "1970-01-01T00:00:00Z", "1970-01-08T00:00:00Z",
                     "1970-01-08T00:00:00Z"]]}]}
    assert q(engine, "DROP SHARD 999") == {}  # 1.6.7: unknown id is not an error
    assert q(engine, "DROP SHARD 1") == {}
    assert q(engine, "SHOW SHARDS") == {"series": [{"name": "bench", "columns": cols},
                                                   {"name": "empty", "columns": cols}]}
    assert q(engine, "SHOW SHARD GROUPS") == {"series": [{"name": "shard groups", "columns": [
        "id", "database", "retention_policy", "start_time", "end_time", "expiry_time"]}]}
    assert StorageReader(engine).scan("bench", sid_of(engine, b"weather"), b"temp") is None


def test_shard_expiry_adds_the_policy_duration(engine):
    engine.catalog.create_retention_policy("bench", "week", 7 * 86400 * S1)
    engine.write("bench", WriteBatch.from_points([("cpu,host=a", "v", F, NOW, 1.0)]), rp="week", now=NOW)
    rows = q(engine, "SHOW SHARD GROUPS")["series"][0]["values"]
    week = [r for r in rows if r[2] == "week"][0]
    start, end, expiry = (np.datetime64(x[:-1]) for x in week[3:6])
    assert end - start == np.timedelta64(1, "D") and expiry - end == np.timedelta64(7, "D")


# --- deletes ----------------------------------------------------------------------------------

def sid_of(engine, key: bytes) -> int:
    from chronosdb.model.serieskey import measurement_of
    ids = engine.index("bench").match(measurement_of(key), None)
    keys = engine.index("bench").keys_of(list(ids))
    return [i for i, k in zip(ids, keys) if k == key][0]


def times(engine, sid, field):
    col = StorageReader(engine).scan("bench", sid, field)
    return [] if col is None else col[0].tolist()


def test_delete_errors_worded_as_influxdb(engine):
    # 1.6.7 prefixes "shard 1: " (where it found the problem); we leave the prefix out.
    for text in ("DELETE FROM cpu WHERE usage_user > 10", "DELETE WHERE usage_user > 10",
                 "DELETE FROM cpu WHERE host = 'a' OR usage_user > 1",
                 "DROP SERIES WHERE usage_user > 1"):
        assert err(engine, text) == "fields not supported in WHERE clause during deletion"
    assert err(engine, "DELETE FROM cpu WHERE time > 1 AND time != 5") == "invalid time comparison operator: !="
    assert err(engine, "DROP SERIES FROM cpu WHERE time > 1") == "DROP SERIES doesn't support time in WHERE clause"
    assert err(engine, "DROP SERIES FROM cpu WHERE host = 'zzz' OR time > 0").startswith("invalid time condition")
    for text in ("DELETE FROM cpu", "DROP SERIES FROM cpu WHERE host = 'zzz'", "DROP MEASUREMENT zzz"):
        assert err(engine, text, db=None) == "database not found: "
    assert err(engine, "DELETE FROM cpu", db="nonexist") == "database not found: nonexist"
    # nothing was deleted by the refused statements
    assert values(q(engine, "SHOW SERIES")) == [ALL_SERIES]


def test_delete_by_tag_drops_series_and_hides_data(engine):
    sid_c = sid_of(engine, b"cpu,host=c")
    assert times(engine, sid_c, b"usage_user") == [3 * S1]
    assert q(engine, "DELETE FROM cpu WHERE host = 'c'") == {}
    assert times(engine, sid_c, b"usage_user") == []
    # 1.6.7: a series with no data left disappears from SHOW SERIES
    assert values(q(engine, "SHOW SERIES FROM cpu")) == [[["cpu,host=a,region=us"], ["cpu,host=b,region=eu"]]]
    assert q(engine, "DELETE FROM nonexist") == {}
    assert q(engine, "DELETE WHERE host = 'zzz' AND time > 1") == {}
    assert q(engine, "DELETE FROM cpu WHERE time > 10 AND time < 5") == {}  # empty range: no-op
    assert values(q(engine, "SHOW SERIES")) == [[r for r in ALL_SERIES if r != ["cpu,host=c"]]]


def test_delete_time_range_and_regex_sources(engine):
    a, b = sid_of(engine, b"mem,host=a"), sid_of(engine, b"mem,host=b")
    assert q(engine, "DELETE FROM /m.*/ WHERE time < 1500000000") == {}
    assert times(engine, a, b"free") == [] and times(engine, a, b"ok") == []
    assert times(engine, b, b"free") == [2 * S1]
    cpu_a = sid_of(engine, b"cpu,host=a,region=us")
    assert q(engine, "DELETE FROM cpu WHERE time <= '1970-01-01T00:00:01Z' AND region = 'us'") == {}
    assert times(engine, cpu_a, b"usage_user") == []
    assert times(engine, sid_of(engine, b"cpu,host=c"), b"usage_user") == [3 * S1]


def test_delete_with_tag_order_comparison_as_influxdb_accepts(engine):
    # 1.6.7 accepts `host > 'a'` in deletes (while SHOW refuses it); it deletes hosts b and c.
    assert q(engine, "DELETE FROM cpu WHERE host > 'a' AND time >= 0") == {}
    assert times(engine, sid_of(engine, b"cpu,host=a,region=us"), b"usage_user") == [S1]
    assert times(engine, sid_of(engine, b"cpu,host=b,region=eu"), b"usage_user") == []
    assert times(engine, sid_of(engine, b"cpu,host=c"), b"usage_user") == []
    assert q(engine, "DROP SERIES FROM cpu WHERE host > 'b'") == {}
    assert values(q(engine, "SHOW SERIES FROM cpu")) == [[["cpu,host=a,region=us"], ["cpu,host=b,region=eu"]]]


def test_drop_series_and_measurement(engine):
    assert q(engine, "DROP SERIES FROM cpu WHERE host = 'b'") == {}
    assert values(q(engine, "SHOW SERIES FROM cpu")) == [[["cpu,host=a,region=us"], ["cpu,host=c"]]]
    assert q(engine, "DROP SERIES WHERE host = 'a'") == {}
    assert values(q(engine, "SHOW SERIES")) == [[["cpu,host=c"], ["mem,host=b"], ["weather"]]]
    assert values(q(engine, "SHOW MEASUREMENTS")) == [[["cpu"], ["mem"], ["weather"]]]
    w = sid_of(engine, b"weather")
    assert q(engine, "DROP MEASUREMENT weather") == {}
    assert q(engine, "DROP MEASUREMENT nonexist") == {}
    assert times(engine, w, b"temp") == []
    assert values(q(engine, "SHOW MEASUREMENTS")) == [[["cpu"], ["mem"]]]
    assert [s["name"] for s in q(engine, "SHOW FIELD KEYS")["series"]] == ["cpu", "mem"]


def tree_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def test_delete_then_full_compaction_shrinks_the_data_dir(tmp_path):
    e = Engine(str(tmp_path / "d"), EngineOptions(background=False))
    try:
        e.create_database("bench")
        rng = np.random.default_rng(7)
        n = 200_000
        from chronosdb.model.batch import FieldColumn
        cols = [FieldColumn(b"v", F, np.repeat(np.arange(4, dtype=np.int32), n // 4),
                            np.tile(np.arange(n // 4, dtype=np.int64) * S1, 4), rng.random(n))]
        keys = [f"big,host=h{i}".encode() for i in range(4)]
        e.write("bench", WriteBatch(keys, cols))
        e.compact_all(full=True)
        before = tree_bytes(e.data_dir)
        assert q(e, "DELETE FROM big WHERE host = 'h0' OR host = 'h1' OR host = 'h2'") == {}
        assert q(e, "DELETE FROM big WHERE time >= 25000s") == {}  # half of h3
        e.compact_all(full=True)
        after = tree_bytes(e.data_dir)
        assert after < before * 0.3, (before, after)
        left = StorageReader(e).scan("bench", list(e.index("bench").match(b"big", None))[0], b"v")
        assert len(left[0]) == 25_000 and int(left[0].max()) == 24_999 * S1
    finally:
        e.close()


# --- authorization ----------------------------------------------------------------------------

def test_authorization(engine):
    reader = FakeAuth({("read", "bench")})
    assert values(q(engine, "SHOW MEASUREMENTS", auth=reader))
    for text in ("DELETE FROM cpu", "DROP SERIES FROM cpu", "DROP MEASUREMENT cpu",
                 "SHOW SHARDS", "SHOW SHARD GROUPS", "DROP SHARD 1"):
        with pytest.raises(Forbidden):
            q(engine, text, auth=reader)
    with pytest.raises(Forbidden):
        q(engine, "SHOW SERIES ON other", auth=reader)
    writer = FakeAuth({("write", "bench")})
    with pytest.raises(Forbidden):
        q(engine, "SHOW TAG KEYS", auth=writer)
    assert q(engine, "DROP MEASUREMENT weather", auth=writer) == {}
    assert writer.calls == [("read", "bench"), ("write", "bench")]
    admin = FakeAuth({("admin", None)})
    assert q(engine, "SHOW SHARD GROUPS", auth=admin)["series"][0]["values"]
    # nothing was deleted by the refused statements
    assert values(q(engine, "SHOW MEASUREMENTS")) == [[["cpu"], ["disk"], ["mem"]]]


def test_not_mine_returns_none(engine):
    assert schema.run(parse("SHOW DATABASES")[0], engine, "bench", FakeAuth(), NOW) is None
    assert schema.run(parse("SELECT * FROM cpu")[0], engine, "bench", FakeAuth(), NOW) is None
