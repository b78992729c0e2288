"""The PyPI ``influxdb`` 1.x client (influxdb-python, test-only dependency ``influxdb>=5.3,<6``)
works against ChronosDB unchanged: the key is its password (Basic auth), the user name is
ignored."""
from __future__ import annotations

import pytest

influxdb = pytest.importorskip("influxdb")

from influxdb import InfluxDBClient  # noqa: E402
from influxdb.exceptions import InfluxDBClientError  # noqa: E402

from serverproc import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("influxpy") / "data")).start()
    yield s
    s.kill()


@pytest.fixture
def client(srv):
    c = InfluxDBClient("127.0.0.1", srv.port, "anyone", srv.admin_key, timeout=10)
    yield c
    c.close()


POINTS = [
    {"measurement": "cpu", "tags": {"host": "server 01", "region": "us,west"},
     "time": 1_600_000_000, "fields": {"value": 0.64, "cores": 8, "ok": True, "note": 'a "b"'}},
    {"measurement": "cpu", "tags": {"host": "server 02", "region": "us,west"},
     "time": 1_600_000_001, "fields": {"value": 0.5, "cores": 4, "ok": False, "note": "c"}},
]


def test_create_write_query_list_drop(client):
    client.create_database("pydb")
    assert {"name": "pydb"} in client.get_list_database()
    assert client.write_points(POINTS, time_precision="s", database="pydb") is True
    rs = client.query("SELECT * FROM cpu", database="pydb", epoch="s")
    got = list(rs.get_points(measurement="cpu"))
    assert got == [
        {"time": 1_600_000_000, "cores": 8, "host": "server 01", "note": 'a "b"', "ok": True,
         "region": "us,west", "value": 0.64},
        {"time": 1_600_000_001, "cores": 4, "host": "server 02", "note": "c", "ok": False,
         "region": "us,west", "value": 0.5},
    ]
    # GROUP BY tags: get_points filters by tags as InfluxDB's answers let it.
    rs = client.query("SELECT value FROM cpu GROUP BY host", database="pydb", epoch="s")
    assert list(rs.get_points(tags={"host": "server 02"})) == [{"time": 1_600_000_001, "value": 0.5}]
    # RFC3339 times when no epoch is asked for.
    rs = client.query("SELECT value FROM cpu", database="pydb")
    assert [p["time"] for p in rs.get_points()] == ["2020-09-13T12:26:40Z", "2020-09-13T12:26:41Z"]
    client.drop_database("pydb")
    assert {"name": "pydb"} not in client.get_list_database()


def test_switch_database_batches_and_gzip(srv):
    c = InfluxDBClient("127.0.0.1", srv.port, "u", srv.admin_key, database="pydb2", gzip=True)
    try:
        c.create_database("pydb2")
        pts = [{"measurement": "m", "tags": {"k": str(i % 3)}, "time": i, "fields": {"v": i}}
               for i in range(1000)]
        assert c.write_points(pts, time_precision="ms", batch_size=300) is True
        rs = c.query("SELECT count(v) FROM m")
        assert list(rs.get_points()) == [{"time": "1970-01-01T00:00:00Z", "count": 1000}]
        c.create_retention_policy("short", "1d", 1, database="pydb2")
        names = [p["name"] for p in c.get_list_retention_policies("pydb2")]
        assert "short" in names and "autogen" in names
    finally:
        c.drop_database("pydb2")
        c.close()


def test_errors_reach_the_influxdb_client(srv, client):
    with pytest.raises(InfluxDBClientError) as e:
        client.write_points([{"measurement": "m", "fields": {"v": 1}}], database="nope")
    assert e.value.code == 404 and "database not found" in str(e.value)
    bad = InfluxDBClient("127.0.0.1", srv.port, "u", "cdb_" + "x" * 43)
    with pytest.raises(InfluxDBClientError) as e:
        bad.get_list_database()
    assert e.value.code == 401
    bad.close()


def test_dataframe_client(srv):
    pd = pytest.importorskip("pandas")
    from influxdb import DataFrameClient

    c = DataFrameClient("127.0.0.1", srv.port, "u", srv.admin_key, database="dfdb")
    try:
        c.create_database("dfdb")
        idx = pd.date_range("2024-01-01", periods=3, freq="min", tz="UTC")
        df = pd.DataFrame({"v": [1.5, 2.5, 3.5], "host": ["a", "b", "a"]}, index=idx)
        c.write_points(df, "dfm", tag_columns=["host"])
        out = c.query("SELECT v FROM dfm")["dfm"]
        assert out["v"].tolist() == [1.5, 2.5, 3.5]
        assert list(out.index) == list(idx)
    finally:
        c.drop_database("dfdb")
        c.close()
