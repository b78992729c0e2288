"""Flipped bits and truncation in every kind of file are detected, never silently read."""
import os

import numpy as np
import pytest

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.storage import filenames
from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions

T0 = 1_451_606_400 * 10**9


def batch(n=3000, base=0):
    t = T0 + (base + np.arange(n, dtype=np.int64)) * 10**9
    v = np.round(np.random.default_rng(base).random(n) * 100, 2)
    return WriteBatch([b"cpu,host=a"], [FieldColumn(b"v", FieldType.FLOAT, np.zeros(n, np.int32), t, v)])


def make(tmp_path, snapshot: bool):
    d = str(tmp_path / "data")
    e = Engine(d, EngineOptions(background=False))
    e.create_database("db")
    e.write("db", batch())
    if snapshot:
        e.snapshot_all()
        e.write("db", batch(10, base=5000))
    shard_dir = e.shards("db")[0].path
    e.close()
    return d, shard_dir


def read_all(d):
    e = Engine(d, EngineOptions(background=False))
    try:
        r = StorageReader(e)
        sid = int(e.index("db").ids_for_keys([b"cpu,host=a"], create=False)[0])
        return r.scan("db", sid, b"v")
    finally:
        e.close()


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def test_flipped_bit_in_a_segment_block_is_detected(tmp_path):
    d, sd = make(tmp_path, snapshot=True)
    (seg,) = [n for n in os.listdir(sd) if n.endswith(".seg")]
    flip(os.path.join(sd, seg), 40)  # inside the first block
    with pytest.raises(CorruptionError) as e:
        read_all(d)
    assert seg in str(e.value)


def test_truncated_segment_file_is_detected(tmp_path):
    d, sd = make(tmp_path, snapshot=True)
    (seg,) = [n for n in os.listdir(sd) if n.endswith(".seg")]
    p = os.path.join(sd, seg)
    os.truncate(p, os.path.getsize(p) - 7)
    with pytest.raises(CorruptionError) as e:
        read_all(d)
    assert seg in str(e.value)


def test_flipped_bit_in_an_earlier_wal_record_stops_the_open(tmp_path):
    d = str(tmp_path / "data")
    e = Engine(d, EngineOptions(background=False))
    e.create_database("db")
    e.write("db", batch(500))
    e.write("db", batch(500, base=1000))
    wal_dir = os.path.join(e.shards("db")[0].path, filenames.WAL_DIR)
    e.close()
    seg = sorted(n for n in os.listdir(wal_dir) if os.path.getsize(os.path.join(wal_dir, n)))[0]
    flip(os.path.join(wal_dir, seg), 30)  # inside the first of two records
    with pytest.raises(CorruptionError) as err:
        read_all(d)
    assert seg in str(err.value) and "offset" in str(err.value)


def test_torn_wal_tail_keeps_every_earlier_write(tmp_path):
    d = str(tmp_path / "data")
    e = Engine(d, EngineOptions(background=False))
    e.create_database("db")
    e.write("db", batch(500))
    e.write("db", batch(500, base=1000))
    wal_dir = os.path.join(e.shards("db")[0].path, filenames.WAL_DIR)
    e.close()
    seg = sorted(n for n in os.listdir(wal_dir) if os.path.getsize(os.path.join(wal_dir, n)))[-1]
    p = os.path.join(wal_dir, seg)
    os.truncate(p, os.path.getsize(p) - 5)  # the second record was torn mid-write
    t, _ = read_all(d)
    assert len(t) == 500


def test_corrupt_index_log_is_detected(tmp_path):
    d, _ = make(tmp_path, snapshot=False)
    idx_dir = os.path.join(d, "db", filenames.INDEX_DIR)
    logs = [n for n in os.listdir(idx_dir) if filenames.INDEX_LOG_RE.match(n)]
    p = os.path.join(idx_dir, sorted(logs)[-1])
    # Append a second series so the damaged record is not the tail.
    e = Engine(d, EngineOptions(background=False))
    e.write("db", WriteBatch([b"cpu,host=b"], [FieldColumn(b"v", FieldType.FLOAT, np.zeros(1, np.int32),
                                                         np.array([T0]), np.array([1.0]))]))
    e.close()
    logs = [n for n in os.listdir(idx_dir) if filenames.INDEX_LOG_RE.match(n)]
    p = os.path.join(idx_dir, sorted(logs)[-1])
    flip(p, 12)
    with pytest.raises(CorruptionError):
        read_all(d)


def test_corrupt_tombstone_record_is_detected(tmp_path):
    d, sd = make(tmp_path, snapshot=True)
    e = Engine(d, EngineOptions(background=False))
    e.delete("db", [b"cpu"], None, T0, T0 + 10 * 10**9)
    e.delete("db", [b"cpu"], None, T0 + 20 * 10**9, T0 + 30 * 10**9)
    e.close()
    flip(os.path.join(sd, filenames.TOMBSTONES), 10)
    with pytest.raises(CorruptionError) as err:
        read_all(d)
    assert filenames.TOMBSTONES in str(err.value)
