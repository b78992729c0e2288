"""The storage engine end to end: writes, reads, snapshots, compaction, deletes, retention."""
from __future__ import annotations

import os

import numpy as np
import pytest

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.errors import DatabaseNotFound, FieldTypeConflict
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray
from chronosdb.model.tagexpr import TagEquals
from chronosdb.storage.api import StorageReader
from chronosdb.storage.catalog import NS_PER_DAY, NS_PER_HOUR
from chronosdb.storage.engine import Engine, EngineOptions
from chronosdb.storage.shard import ShardOptions

T0 = 1_451_606_400 * 10**9  # 2016-01-01T00:00:00Z
SEC = 10**9


def opts(**shard):
    return EngineOptions(shard=ShardOptions(**shard), background=False)


@pytest.fixture
def engine(tmp_path):
    e = Engine(str(tmp_path / "data"), opts())
    e.create_database("db")
    yield e
    e.close()


def float_batch(keys, times, values, field=b"value"):
    """One float column: keys[i] / times[i] / values[i] per point."""
    uniq = list(dict.fromkeys(keys))
    idx = np.array([uniq.index(k) for k in keys], dtype=np.int32)
    return WriteBatch(uniq, [FieldColumn(field, FieldType.FLOAT, idx, np.array(times, np.int64),
                                         np.array(values, np.float64))])


def read(engine, db, key, field=b"value", lo=-(2**62), hi=2**62):
    sid = int(engine.index(db).ids_for_keys([key], create=False)[0])
    if not sid:
        return None
    return StorageReader(engine).scan(db, sid, field, lo, hi)


def reopen(engine, path=None):
    path = engine.data_dir
    o = engine.options
    engine.close()
    return Engine(path, o)


K1 = make_key("cpu", {"host": "a", "region": "eu"})
K2 = make_key("cpu", {"host": "b", "region": "us"})


def test_write_then_read_from_cache_snapshot_and_compacted(engine):
    engine.write("db", float_batch([K1] * 5 + [K2] * 3, [T0 + i * SEC for i in range(5)] +
                                   [T0 + i * SEC for i in range(3)], list(range(8))))
    t, v = read(engine, "db", K1)
    assert t.tolist() == [T0 + i * SEC for i in range(5)] and v.tolist() == [0, 1, 2, 3, 4]
    engine.snapshot_all()
    t, v = read(engine, "db", K2)
    assert v.tolist() == [5, 6, 7]
    engine.write("db", float_batch([K1], [T0 + 10 * SEC], [42.5]))
    engine.compact_all(full=True)
    t, v = read(engine, "db", K1)
    assert v.tolist() == [0, 1, 2, 3, 4, 42.5]


def test_unknown_database_is_refused(engine):
    with pytest.raises(DatabaseNotFound) as e:
        engine.write("nope", float_batch([K1], [T0], [1.0]))
    assert e.value.status == 404 and '"nope"' in e.value.message


def test_last_write_wins_field_by_field(engine):
    b1 = WriteBatch.from_points([(K1, "a", 1, T0, 1.0), (K1, "b", 1, T0, 2.0)])
    b2 = WriteBatch.from_points([(K1, "a", 1, T0, 10.0)])  # rewrites a only
    engine.write("db", b1)
    engine.snapshot_all()
    engine.write("db", b2)
    assert read(engine, "db", K1, b"a")[1].tolist() == [10.0]
    assert read(engine, "db", K1, b"b")[1].tolist() == [2.0]
    engine.compact_all(full=True)
    assert read(engine, "db", K1, b"a")[1].tolist() == [10.0]
    assert read(engine, "db", K1, b"b")[1].tolist() == [2.0]
    # Duplicates inside one batch: the later entry wins.
    engine.write("db", float_batch([K2, K2, K2], [T0, T0 + 1, T0], [1.0, 2.0, 3.0]))
    assert read(engine, "db", K2)[1].tolist() == [3.0, 2.0]


def test_field_type_conflict_names_everything_and_keeps_the_rest(engine):
    engine.write("db", WriteBatch.from_points([(K1, "usage", 1, T0, 1.5)]))
    out = engine.write("db", WriteBatch.from_points([
        (K1, "usage", 2, T0 + SEC, 7),           # int into a float field: rejected
        (K1, "other", 2, T0 + SEC, 9),           # new int field: kept
        (make_key("mem", {"host": "a"}), "usage", 2, T0 + SEC, 3),  # other measurement: kept
    ]))
    assert out.dropped == 1 and out.written == 2
    (err,) = out.errors
    assert isinstance(err, FieldTypeConflict) and err.status == 400
    assert '"usage"' in err.message and '"cpu"' in err.message
    assert "integer" in err.message and "float" in err.message
    assert read(engine, "db", K1, b"usage")[1].tolist() == [1.5]
    assert read(engine, "db", K1, b"other")[1].tolist() == [9]
    types = engine.index("db").field_types(b"cpu")
    assert types[b"usage"] == {FieldType.FLOAT} and types[b"other"] == {FieldType.INTEGER}


def test_all_types_survive_restart(engine, tmp_path):
    pts = [(K1, "f", 1, T0, -0.0), (K1, "f", 1, T0 + 1, float("nan")), (K1, "i", 2, T0, -(2**63)),
           (K1, "b", 3, T0, 1), (K1, "s", 4, T0, "héllo"), (K1, "s", 4, T0 + 1, "")]
    engine.write("db", WriteBatch.from_points(pts))
    e2 = reopen(engine)  # from the WAL
    try:
        f = read(e2, "db", K1, b"f")[1]
        assert np.signbit(f[0]) and np.isnan(f[1])
        assert read(e2, "db", K1, b"i")[1].tolist() == [-(2**63)]
        assert read(e2, "db", K1, b"b")[1].tolist() == [1]
        s = read(e2, "db", K1, b"s")[1]
        assert isinstance(s, StringArray) and s.to_list() == ["héllo".encode(), b""]
        e2.compact_all(full=True)
        e3 = reopen(e2)  # from segment files only
        e2 = e3
        assert read(e3, "db", K1, b"s")[1].to_list() == ["héllo".encode(), b""]
        assert os.listdir(os.path.join(e3.data_dir, "db", "autogen")) != []
    finally:
        e2.close()


def test_wal_is_emptied_after_snapshot(engine):
    engine.write("db", float_batch([K1] * 100, [T0 + i for i in range(100)], np.arange(100.0)))
    assert engine.stats()["wal_bytes"] > 0
    engine.snapshot_all()
    shard = engine.shards("db")[0]
    assert shard.stats()["segments"] == 1
    assert shard.wal.size_bytes() < 100  # only the fresh, empty segment remains


def test_shard_groups_split_by_time(engine):
    times = [T0, T0 + 8 * NS_PER_DAY, T0 + 30 * NS_PER_DAY]
    engine.write("db", float_batch([K1] * 3, times, [1.0, 2.0, 3.0]))
    assert len(engine.shards("db")) == 3
    assert read(engine, "db", K1)[1].tolist() == [1.0, 2.0, 3.0]
    groups = engine.catalog.policy("db", None).shard_groups
    assert all(g.start % (7 * NS_PER_DAY) == 0 for g in groups)


def test_delete_hides_at_once_and_compaction_reclaims(engine):
    n = 20_000
    keys = [K1] * n + [K2] * n
    times = [T0 + i * SEC for i in range(n)] * 2
    rng = np.random.default_rng(3)
    engine.write("db", float_batch(keys, times, rng.random(2 * n)))
    engine.compact_all(full=True)
    before = engine.stats()["segment_bytes"]
    mid = T0 + (n // 2) * SEC
    engine.delete("db", [b"cpu"], TagEquals(b"host", b"a"), T0, mid - 1)
    t, _ = read(engine, "db", K1)
    assert len(t) == n // 2 and t[0] == mid                 # hidden at once
    assert len(read(engine, "db", K2)[0]) == n               # other series untouched
    engine.write("db", float_batch([K1], [T0], [5.0]))       # a write after the delete survives
    engine.compact_all(full=True)
    t, v = read(engine, "db", K1)
    assert len(t) == n // 2 + 1 and v[0] == 5.0
    after = engine.stats()["segment_bytes"]
    assert after < before * 0.85
    shard = engine.shards("db")[0]
    assert shard.stats()["tombstones"] == 0


def test_delete_survives_restart_and_is_ordered_with_writes(engine):
    engine.write("db", float_batch([K1] * 3, [T0, T0 + 1, T0 + 2], [1.0, 2.0, 3.0]))
    engine.snapshot_all()                                    # some in a segment file
    engine.write("db", float_batch([K1], [T0 + 3], [4.0]))  # some in the cache/WAL
    engine.delete("db", [b"cpu"], None, T0 + 1, T0 + 3)
    engine.write("db", float_batch([K1], [T0 + 2], [9.0]))  # after the delete: stays
    e2 = reopen(engine)
    try:
        assert read(e2, "db", K1)[1].tolist() == [1.0, 9.0]
    finally:
        e2.close()


def test_delete_of_whole_shards_drops_them(engine):
    engine.write("db", float_batch([K1, K1], [T0, T0 + 30 * NS_PER_DAY], [1.0, 2.0]))
    assert len(engine.shards("db")) == 2
    engine.delete("db", None, None, T0 - 10 * NS_PER_DAY, T0 + 10 * NS_PER_DAY)
    assert len(engine.shards("db")) == 1
    assert read(engine, "db", K1)[1].tolist() == [2.0]


def test_drop_series_and_measurement(engine):
    mem = make_key("mem", {"host": "a"})
    engine.write("db", float_batch([K1, K2, mem], [T0, T0, T0], [1.0, 2.0, 3.0]))
    engine.snapshot_all()
    assert engine.drop_series("db", [b"cpu"], TagEquals(b"host", b"a")) == 1
    assert read(engine, "db", K1) is None
    assert read(engine, "db", K2)[1].tolist() == [2.0]
    engine.drop_measurement("db", b"cpu")
    assert engine.index("db").measurements() == [b"mem"]
    # A dropped measurement may come back with another field type.
    out = engine.write("db", WriteBatch.from_points([(K1, "value", 2, T0, 5)]))
    assert not out.errors
    assert read(engine, "db", K1)[1].tolist() == [5]


def test_drop_database(engine):
    engine.write("db", float_batch([K1], [T0], [1.0]))
    engine.drop_database("db")
    assert not os.path.exists(os.path.join(engine.data_dir, "db"))
    with pytest.raises(DatabaseNotFound):
        engine.write("db", float_batch([K1], [T0], [1.0]))


def test_retention_drops_old_points_and_shards(engine):
    engine.catalog.create_retention_policy("db", "short", 2 * NS_PER_HOUR, default=True)
    now = T0 + 10 * NS_PER_DAY
    out = engine.write("db", float_batch([K1, K1], [now - 5 * NS_PER_HOUR, now], [1.0, 2.0]), now=now)
    assert out.written == 1 and out.dropped == 1
    assert "points beyond retention policy dropped=1" in out.errors[0].message
    assert len(engine.shards("db", "short")) == 1
    assert engine.enforce_retention(now=now + 3 * NS_PER_HOUR) == 1
    assert engine.shards("db", "short") == []


def test_read_with_stats_matches_brute_force(engine):
    rng = np.random.default_rng(11)
    n = 5000
    times = T0 + np.sort(rng.choice(400_000, n, replace=False)).astype(np.int64) * SEC  # inside one 7-day shard
    vals = np.round(rng.normal(50, 10, n), 2)
    engine.write("db", float_batch([K1] * n, times, vals))
    engine.compact_all(full=True)
    # Overwrite a few points so some blocks overlap newer data (their stats must not be used).
    engine.write("db", float_batch([K1] * 3, times[[10, 2500, 4000]], [1e6, 1e6, 1e6]))
    vals[[10, 2500, 4000]] = 1e6
    sid = int(engine.index("db").ids_for_keys([K1])[0])
    for lo, hi, every in [(int(times[0]), int(times[-1]), 0), (int(times[100]), int(times[4900]), 0),
                          (int(times[0]), int(times[-1]), 3600 * SEC)]:
        with StorageReader(engine).views("db", None, lo, hi) as views:
            (view,) = views
            stats, rest = view.read_with_stats(sid, b"value", lo, hi, every=every)
        m = (times >= lo) & (times <= hi)
        total_n = (0 if stats is None else int(stats.count.sum())) + (0 if rest is None else len(rest[0]))
        total_sum = (0 if stats is None else float(stats.sum.sum())) + (0 if rest is None else float(rest[1].sum()))
        assert total_n == int(m.sum())
        assert total_sum == pytest.approx(float(vals[m].sum()), rel=1e-12)
        if every:
            assert stats is None or (((stats.min_time - 0) // every) == ((stats.max_time - 0) // every)).all()
        if stats is not None:
            assert stats.max.max() < 1e6  # blocks holding overwritten points were not used


def test_views_are_stable_while_compaction_runs(engine):
    for i in range(4):
        engine.write("db", float_batch([K1] * 100, [T0 + (i * 100 + j) * SEC for j in range(100)],
                                       np.full(100, float(i))))
        engine.snapshot_all()
    reader = StorageReader(engine)
    sid = int(engine.index("db").ids_for_keys([K1])[0])
    with reader.views("db") as views:
        files_before = sorted(os.listdir(engine.shards("db")[0].path))
        engine.compact_all(full=True)
        assert sorted(os.listdir(engine.shards("db")[0].path)) != files_before
        t, v = views[0].scan(sid, b"value")  # the pinned, replaced files still read fine
        assert len(t) == 400 and v[-1] == 3.0
    assert len(read(engine, "db", K1)[0]) == 400


def _du(path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


def test_deleting_half_the_time_range_halves_the_data_dir(tmp_path):
    """The issue's claim: delete half of every series' time range, compact: ~half the bytes."""
    e = Engine(str(tmp_path / "d"), opts())
    try:
        e.create_database("db")
        rng = np.random.default_rng(5)
        n, series = 20_000, 20
        times = T0 + np.arange(n, dtype=np.int64) * 10 * SEC
        for s in range(series):
            key = make_key("cpu", {"host": f"h{s}"})
            vals = np.round(np.clip(50 + np.cumsum(rng.normal(0, 1, n)), 0, 100), 2)
            e.write("db", float_batch([key] * n, times, vals))
        e.compact_all(full=True)
        before = _du(e.data_dir)
        e.delete("db", [b"cpu"], None, int(times[0]), int(times[n // 2 - 1]))
        e.compact_all(full=True)
        after = _du(e.data_dir)
        assert 0.35 < after / before < 0.65, (before, after)
        assert len(read(e, "db", make_key("cpu", {"host": "h3"}))[0]) == n - n // 2
    finally:
        e.close()


def test_open_removes_leftover_database_dirs_but_not_other_directories(tmp_path):
    d = str(tmp_path / "data")
    e = Engine(d, EngineOptions(background=False))
    e.create_database("keep")
    e.create_database("gone")
    for db in ("keep", "gone"):
        e.write(db, WriteBatch([b"m"], [FieldColumn(b"v", FieldType.FLOAT, np.zeros(1, np.int32),
                                                    np.array([1], np.int64), np.array([1.0]))]))
    e.close()
    # "gone" is dropped from the catalog but its directory stays (a drop interrupted by a
    # crash); an operator's directory and a cluster member's Raft log sit beside them
    from chronosdb.storage.catalog import Catalog
    cat = Catalog(d)
    cat.drop_database("gone")
    os.makedirs(os.path.join(d, "meta-raft"))
    with open(os.path.join(d, "meta-raft", "raft.log"), "wb") as f:
        f.write(b"x")
    e = Engine(d, EngineOptions(background=False))
    try:
        assert not os.path.exists(os.path.join(d, "gone"))
        assert os.path.exists(os.path.join(d, "meta-raft", "raft.log"))
        r = StorageReader(e)
        assert "keep" in r.databases()
    finally:
        e.close()
