"""The TSBS devops cpu-only generator (bench/tsbs.py) and the peer harness (bench/peers.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from bench import peers, tsbs
from chronosdb.model.serieskey import make_key, parse_key

START_2016_NS = 1451606400 * 10**9


@pytest.fixture(scope="module")
def small():
    return tsbs.devops_cpu(hosts=7, duration_s=600, seed=5)


# -- the data set ---------------------------------------------------------------------------

def test_same_seed_same_data_other_seed_other_data():
    a = tsbs.devops_cpu(hosts=5, duration_s=300, seed=42)
    b = tsbs.devops_cpu(hosts=5, duration_s=300, seed=42)
    c = tsbs.devops_cpu(hosts=5, duration_s=300, seed=43)
    assert np.array_equal(a.values, b.values) and a.tags == b.tags and a.keys == b.keys
    assert not np.array_equal(a.values, c.values)
    assert list(tsbs.line_protocol_bodies(a, 7)) == list(tsbs.line_protocol_bodies(b, 7))


def test_default_set_is_100_hosts_24h_at_10s():
    d = tsbs.devops_cpu()
    assert d.hosts == 100 and len(d.keys) == 100 and len(d.tags) == 100
    assert d.times.dtype == np.int64 and d.times.shape == (8640,)
    assert d.times[0] == START_2016_NS
    assert np.all(np.diff(d.times) == 10 * 10**9)
    assert d.values.dtype == np.float64 and d.values.shape == (100, 10, 8640)
    assert d.n_values == 8_640_000


def test_shapes_follow_arguments():
    d = tsbs.devops_cpu(hosts=3, start="2020-02-29T12:00:00Z", interval_s=60, duration_s=3600)
    assert d.values.shape == (3, len(tsbs.FIELDS), 60)
    assert d.times[0] == 1582977600 * 10**9
    assert d.times[-1] - d.times[0] == 59 * 60 * 10**9
    assert d.n_values == 3 * 10 * 60 and d.n_lines == 180


def test_values_are_two_decimal_and_in_range(small):
    v = small.values
    assert v.min() >= 0.0 and v.max() <= 100.0
    assert np.array_equal(np.round(v * 100) / 100, v)


def test_values_walk_with_unit_steps():
    d = tsbs.devops_cpu(hosts=20, duration_s=3600, seed=9)
    steps = np.diff(d.values, axis=2)
    inside = (d.values[:, :, 1:] > 1) & (d.values[:, :, 1:] < 99) & (d.values[:, :, :-1] > 1) & (d.values[:, :, :-1] < 99)
    # Away from the clamps a step is N(0, 1) rounded to cents: seeded, so this is deterministic.
    assert 0.9 < steps[inside].std() < 1.1
    assert abs(steps[inside].mean()) < 0.1


def test_tags_are_complete_and_from_tsbs_sets(small):
    for h, (tags, key) in enumerate(zip(small.tags, small.keys)):
        assert list(tags) == tsbs.TAG_KEYS
        assert tags["hostname"] == f"host_{h}"
        assert tags["datacenter"] in tsbs.REGIONS[tags["region"]]
        assert 0 <= int(tags["rack"]) < 100 and 0 <= int(tags["service"]) < 20
        assert tags["service_version"] in ("0", "1")
        assert tags["os"] in tsbs.OS_CHOICES and tags["arch"] in tsbs.ARCH_CHOICES
        assert tags["team"] in tsbs.TEAM_CHOICES
        assert tags["service_environment"] in tsbs.ENVIRONMENT_CHOICES
        assert key == make_key("cpu", tags)


def test_tags_cover_the_value_sets():
    d = tsbs.devops_cpu(hosts=400, duration_s=10)
    assert {t["region"] for t in d.tags} == set(tsbs.REGIONS)
    assert {t["team"] for t in d.tags} == set(tsbs.TEAM_CHOICES)
    assert {t["service_environment"] for t in d.tags} == set(tsbs.ENVIRONMENT_CHOICES)


@pytest.mark.parametrize("kwargs", [dict(hosts=0), dict(interval_s=0), dict(duration_s=-1),
                                    dict(start="yesterday")])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        tsbs.devops_cpu(**kwargs)


def test_bad_batch_size_raises(small):
    with pytest.raises(ValueError):
        next(tsbs.write_batches(small, 0))
    with pytest.raises(ValueError):
        next(tsbs.line_protocol_bodies(small, -1))


# -- write batches and line protocol describe the same points ---------------------------------

def _batch_points(batch):
    """{(key, field, time): value} of a WriteBatch."""
    out = {}
    for col in batch.columns:
        for s, t, v in zip(col.series.tolist(), col.times.tolist(), col.values.tolist()):
            out[(batch.keys[s], col.name.decode(), t)] = v
    return out


def _parse_line(line: bytes):
    """A test-side line protocol reader for this data set (no escapes occur in it)."""
    series, fields, ts = line.split(b" ")
    meas, *tag_pairs = series.split(b",")
    tags = dict(p.split(b"=") for p in tag_pairs)
    values = {}
    for kv in fields.split(b","):
        k, v = kv.split(b"=")
        values[k.decode()] = v
    return make_key(meas, tags), list(tags), values, int(ts)


@pytest.mark.parametrize("lines_per_batch", [3, 7, 20, 1000])
def test_batches_and_bodies_hold_the_same_points(small, lines_per_batch):
    batches = list(tsbs.write_batches(small, lines_per_batch))
    bodies = list(tsbs.line_protocol_bodies(small, lines_per_batch))
    assert len(batches) == len(bodies) == -(-small.n_lines // lines_per_batch)
    for batch, body in zip(batches, bodies):
        assert [c.name.decode() for c in batch.columns] == tsbs.FIELDS
        batch.validate()
        want = _batch_points(batch)
        got = {}
        lines = body.split(b"\n")
        assert lines[-1] == b""  # every line ends with a newline
        for line in lines[:-1]:
            key, tag_order, values, ts = _parse_line(line)
            assert [k.decode() for k in tag_order] == tsbs.TAG_KEYS  # TSBS tag order on the wire
            assert list(values) == tsbs.FIELDS
            for name, text in values.items():
                # Printed in its 2-decimal form: no exponent, no float noise.
                assert b"e" not in text and len(text.partition(b".")[2]) <= 2
                got[(key, name, ts)] = float(text)
        assert got == want


def test_lines_are_time_major_in_tsbs_order(small):
    body = b"".join(tsbs.line_protocol_bodies(small, 5000))
    parsed = [_parse_line(line) for line in body.splitlines()]
    assert len(parsed) == small.n_lines
    for i, (key, _order, _values, ts) in enumerate(parsed):
        assert ts == small.times[i // small.hosts]
        assert key == small.keys[i % small.hosts]


def test_write_batches_rebuild_the_value_cube(small):
    cube = np.full_like(small.values, np.nan)
    t_index = {int(t): i for i, t in enumerate(small.times)}
    host_index = {k: h for h, k in enumerate(small.keys)}
    n = 0
    for batch in tsbs.write_batches(small, 11):
        hosts = np.array([host_index[k] for k in batch.keys])
        for f, col in enumerate(batch.columns):
            ti = np.array([t_index[t] for t in col.times.tolist()])
            cube[hosts[col.series], f, ti] = col.values
        n += batch.n_values
    assert n == small.n_values
    assert np.array_equal(cube, small.values)


def test_small_batches_carry_only_the_keys_they_touch(small):
    batches = list(tsbs.write_batches(small, 3))
    assert batches[0].keys == small.keys[:3]
    # Lines 6..8 of 7 hosts wrap around: hosts 6, 0, 1 at two different times.
    wrap = batches[2]
    assert wrap.keys == [small.keys[0], small.keys[1], small.keys[6]]
    col = wrap.columns[0]
    assert [wrap.keys[s] for s in col.series] == [small.keys[6], small.keys[0], small.keys[1]]
    assert col.times.tolist() == [small.times[0], small.times[1], small.times[1]]
    assert all(parse_key(k)[0] == b"cpu" for k in wrap.keys)


# -- the harness ---------------------------------------------------------------------------

def test_free_port_is_bindable():
    import socket

    port = peers.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_load_to_a_closed_port_raises():
    url = f"http://127.0.0.1:{peers.free_port()}/write?db=bench"  # nobody listens there
    with pytest.raises(peers.PeerError, match="connect"):
        peers.load(url, [b"cpu v=1 1"] * 4, workers=2)


def test_load_rejects_non_http_urls():
    with pytest.raises(ValueError):
        peers.load("ftp://127.0.0.1/write", [b"x"])


def test_tree_bytes_counts_allocated_blocks(tmp_path):
    (tmp_path / "dense").write_bytes(os.urandom(10_000))
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(50 * 2**20)  # 50 MiB apparent size, nothing allocated
    n = peers.tree_bytes(tmp_path)
    assert n % 512 == 0 and 10_000 <= n < 2**20
    assert peers.tree_bytes(tmp_path / "missing") == 0


needs_vm = pytest.mark.skipif(not os.access(peers.VICTORIA_METRICS, os.X_OK),
                              reason=f"VictoriaMetrics binary {peers.VICTORIA_METRICS} not installed")
needs_influx = pytest.mark.skipif(not os.access(peers.INFLUXD, os.X_OK),
                                  reason=f"InfluxDB binary {peers.INFLUXD} not installed")


@needs_vm
def test_victoriametrics_load_and_count():
    d = tsbs.devops_cpu(hosts=4, duration_s=1800, seed=1)
    bodies = list(tsbs.line_protocol_bodies(d, 50))
    vm = peers.VictoriaMetrics()
    root = vm.root
    try:
        vm.start()
        pid = vm.pid
        result = peers.load(vm, bodies, workers=2, n_values=d.n_values)
        assert result["bodies"] == len(bodies) and result["seconds"] > 0
        assert result["values_per_s"] == pytest.approx(d.n_values / result["seconds"])
        vm.force_flush()
        assert vm.export_count('{__name__=~"cpu_.*"}') == d.n_values
        end_s = int(d.times[-1] // 10**9) + 1
        out = vm.query('sum(count_over_time({__name__="cpu_usage_user", db="bench"}[1h]))', time=end_s)
        assert float(out["data"]["result"][0]["value"][1]) == d.n_lines
        assert vm.cpu_seconds() > 0 and vm.peak_rss_bytes() > 2**20 and vm.disk_bytes() > 0
        vm.flush_and_compact(timeout=60)
        m = vm.metrics()
        assert m["vm_active_merges"] == 0 and m["vm_pending_rows"] == 0
        assert vm.disk_breakdown(3).get("data/small/2016_01", 0) > 0  # the month partition of 2016-01
        assert vm.export_count('{__name__=~"cpu_.*"}') == d.n_values
        # A write to a path VM does not serve is an error the load reports, not a silent pass.
        with pytest.raises(peers.PeerError):
            peers.load(f"{vm.base_url}/no/such/path", bodies[:2], workers=1)
    finally:
        vm.stop()
    # stop() signalled and reaped our child (no zombie left) and removed its temp dir.
    assert vm.proc is None and not os.path.exists(f"/proc/{pid}")
    assert not root.exists()


@needs_influx
def test_influxdb_load_and_count():
    d = tsbs.devops_cpu(hosts=3, duration_s=600, seed=2)
    bodies = list(tsbs.line_protocol_bodies(d, 40))
    with peers.InfluxDB() as influx:
        conf = influx.config_path.read_text()
        assert f"127.0.0.1:{influx.http_port}" in conf and "store-enabled = false" in conf
        peers.load(influx.write_url(), bodies, workers=2)
        out = influx.query("SELECT count(usage_idle) FROM cpu")
        assert out["results"][0]["series"][0]["values"][0][1] == d.n_lines
        out = influx.query("SHOW TAG VALUES WITH KEY = hostname")
        assert sorted(v[1] for v in out["results"][0]["series"][0]["values"]) == sorted(
            t["hostname"] for t in d.tags)
        # Not the bench database the harness created, so no _internal or others.
        dbs = influx.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
        assert [db[0] for db in dbs] == ["bench"]
        with pytest.raises(peers.PeerError):
            influx.query("SELEC nonsense")
        # Settled: the cold shard was snapshotted (WAL empty) and compacted into TSM files.
        influx.flush_and_compact(timeout=60)
        wal = influx.data_dir / "wal"
        assert sum(p.stat().st_size for p in wal.rglob("*.wal")) == 0
        tsm = list((influx.data_dir / "data" / "bench").rglob("*.tsm"))
        assert tsm and sum(p.stat().st_size for p in tsm) > 0
        out = influx.query("SELECT count(usage_idle) FROM cpu")
        assert out["results"][0]["series"][0]["values"][0][1] == d.n_lines
