"""Write-ahead log: framing, typed records, group commit, torn tails, corruption, crash safety."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage import filenames
from chronosdb.storage.wal import DELETE, WRITE, DeleteRecord, Wal, decode_record, encode_record
from chronosdb.storage.wal import log as wal_log
from chronosdb.storage.wal import segment


# ---- helpers -------------------------------------------------------------------------------

def seg_path(d, seq):
    return os.path.join(d, filenames.wal_segment(seq))


def payloads(wal):
    return [p for _, _, p in wal.replay()]


def numbered(i: int, size: int = 40) -> bytes:
    """A distinct, checkable payload; a repeated pattern so bigger ones get compressed."""
    return (b"rec-%06d|" % i) * max(1, size // 11)


def assert_batches_equal(a: WriteBatch, b: WriteBatch):
    assert a.keys == b.keys
    assert len(a.columns) == len(b.columns)
    for x, y in zip(a.columns, b.columns):
        assert x.name == y.name and x.ftype is y.ftype
        assert np.array_equal(x.series, y.series) and x.series.dtype == y.series.dtype
        assert np.array_equal(x.times, y.times) and x.times.dtype == y.times.dtype
        if x.ftype is FieldType.STRING:
            assert x.values == y.values
        else:
            assert x.values.dtype == y.values.dtype
            assert np.array_equal(x.values, y.values, equal_nan=x.ftype is FieldType.FLOAT)


def random_batch(rng: np.random.Generator, n_keys: int, n_cols: int, n_points: int) -> WriteBatch:
    keys = [b"m%d,host=h%d" % (i % 3, i) for i in range(n_keys)]
    cols = []
    for c in range(n_cols):
        ftype = FieldType(int(rng.integers(1, 5)))
        n = int(rng.integers(0, n_points + 1)) if n_keys else 0
        series = rng.integers(0, max(n_keys, 1), n).astype(np.int32)
        times = rng.integers(-(1 << 62), 1 << 62, n)
        if ftype is FieldType.FLOAT:
            values = rng.standard_normal(n)
            values[rng.random(n) < 0.1] = np.nan
        elif ftype is FieldType.INTEGER:
            values = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)
        elif ftype is FieldType.BOOLEAN:
            values = rng.integers(0, 2, n).astype(np.uint8)
        else:
            lens = rng.integers(0, 12, n)
            offsets = np.zeros(n + 1, dtype=np.int64)
            offsets[1:] = np.cumsum(lens)
            values = StringArray(offsets, rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8).tobytes())
        cols.append(FieldColumn(b"f%d" % c, ftype, series, times, values))
    return WriteBatch(keys, cols)


# ---- records -------------------------------------------------------------------------------

def test_write_record_roundtrip_all_types_and_empty_columns():
    batch = WriteBatch.from_points([
        ("cpu,host=a", "usage", FieldType.FLOAT, 1, 0.5),
        ("cpu,host=b", "usage", FieldType.FLOAT, 2, -1e300),
        ("cpu,host=a", "count", FieldType.INTEGER, 3, -(1 << 63)),
        ("cpu,host=a", "up", FieldType.BOOLEAN, 4, True),
        ("cpu,host=b", "up", FieldType.BOOLEAN, 5, False),
        ("cpu,host=b", "msg", FieldType.STRING, 6, "héllo, \"world\""),
        ("cpu,host=a", "msg", FieldType.STRING, 7, ""),
    ])
    batch.columns.append(FieldColumn(b"nothing", FieldType.FLOAT, [], [], []))
    batch.columns.append(FieldColumn(b"nostr", FieldType.STRING, [], [], StringArray.from_list([])))
    rtype, payload = encode_record(batch)
    assert rtype == WRITE and isinstance(payload, bytes)
    back = decode_record(rtype, payload)
    assert isinstance(back, WriteBatch)
    assert_batches_equal(batch, back)
    assert back.columns[2].values.tolist() == [1, 0]
    assert back.columns[3].values.to_list() == ["héllo, \"world\"".encode(), b""]


def test_empty_batch_roundtrip():
    back = decode_record(*encode_record(WriteBatch([], [])))
    assert back.keys == [] and back.columns == []


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_keys=st.integers(0, 6), n_cols=st.integers(0, 5),
       n_points=st.integers(0, 60))
def test_write_record_roundtrip_random(seed, n_keys, n_cols, n_points):
    batch = random_batch(np.random.default_rng(seed), n_keys, n_cols, n_points)
    assert_batches_equal(batch, decode_record(*encode_record(batch)))


def test_decoded_arrays_are_views_not_per_point_objects():
    batch = random_batch(np.random.default_rng(1), 3, 3, 50)
    back = decode_record(*encode_record(batch))
    for c in back.columns:
        assert isinstance(c.times, np.ndarray) and c.times.dtype == np.int64


def test_delete_record_roundtrip_and_validation():
    rec = DeleteRecord(np.array([1, 2**64 - 1, 7], dtype=np.uint64), -5, 10**18)
    rtype, payload = encode_record(rec)
    assert rtype == DELETE
    back = decode_record(rtype, payload)
    assert back == rec and back.series_ids.dtype == np.uint64
    empty = decode_record(*encode_record(DeleteRecord(np.array([], dtype=np.uint64), 0, 0)))
    assert empty.series_ids.size == 0 and (empty.min_time, empty.max_time) == (0, 0)
    with pytest.raises(ValueError, match="min_time"):
        DeleteRecord(np.array([1], dtype=np.uint64), 10, 9)
    with pytest.raises(ValueError, match="negative"):
        DeleteRecord(np.array([-1]), 0, 1)
    with pytest.raises(ValueError, match="int64"):
        DeleteRecord(np.array([1], dtype=np.uint64), 0, 1 << 63)


def test_decode_rejects_malformed_payloads():
    _, payload = encode_record(WriteBatch.from_points([("m", "f", 1, 1, 1.0)]))
    with pytest.raises(ValueError, match="not CBOR|malformed"):
        decode_record(WRITE, payload[:-3])
    with pytest.raises(ValueError, match="unknown WAL record type"):
        decode_record(99, payload)
    with pytest.raises(ValueError):
        decode_record(DELETE, payload)
    with pytest.raises(TypeError):
        encode_record({"not": "a record"})


# ---- framing -------------------------------------------------------------------------------

def test_frame_compresses_only_when_it_pays():
    small = segment.frame_record(1, b"abc")
    assert len(small) == segment.HEADER_SIZE + 3
    repetitive = segment.frame_record(1, b"a" * 5000)
    assert len(repetitive) < 200
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    raw = segment.frame_record(1, noise)
    assert len(raw) == segment.HEADER_SIZE + 5000  # incompressible: stored raw
    for frame_bytes, want in ((small, b"abc"), (repetitive, b"a" * 5000), (raw, noise)):
        scan = segment.scan_segment(frame_bytes, "x", tail_may_be_torn=False)
        assert [f.payload() for f in scan.frames] == [want]


def test_frame_rejects_bad_type():
    for bad in (0, 256, -1, "1"):
        with pytest.raises(ValueError, match="record type"):
            segment.frame_record(bad, b"x")


# ---- the Wal: order, rotation, removal -------------------------------------------------------

def test_replay_order_across_rollover_and_rotation(tmp_path):
    d = str(tmp_path / "wal")
    wal = Wal(d, segment_bytes=300)
    seqs = []
    for i in range(30):
        seqs.append(wal.append(1, numbered(i)))
        if i == 12:
            closed = wal.rotate()
            assert closed == seqs[-1] and wal.current_seq == closed + 1
    assert seqs == sorted(seqs) and len(set(seqs)) > 3  # rolled over several times
    got = list(wal.replay())
    assert [p for _, _, p in got] == [numbered(i) for i in range(30)]
    assert [s for s, _, _ in got] == seqs
    assert wal.segments() == sorted(set(seqs))
    assert wal.size_bytes() == sum(os.path.getsize(seg_path(d, s)) for s in wal.segments())
    for s in wal.segments()[:-1]:
        assert os.path.getsize(seg_path(d, s)) <= 300
    wal.close()

    reopened = Wal(d, segment_bytes=300)
    assert reopened.current_seq == seqs[-1] + 1  # never appends to an old segment
    assert payloads(reopened) == [numbered(i) for i in range(30)]
    reopened.close()


def test_batch_and_delete_conveniences_replay_decoded(tmp_path):
    batch = random_batch(np.random.default_rng(7), 4, 4, 100)
    rec = DeleteRecord(np.array([3, 4], dtype=np.uint64), 0, 99)
    with Wal(str(tmp_path)) as wal:
        s1 = wal.append_batch(batch)
        s2 = wal.append_delete(rec)
        got = list(wal.replay_records())
    assert [s for s, _ in got] == [s1, s2]
    assert_batches_equal(batch, got[0][1])
    assert got[1][1] == rec


def test_oversized_record_gets_its_own_segment(tmp_path):
    with Wal(str(tmp_path), segment_bytes=100) as wal:
        a = wal.append(1, b"small")
        big = np.random.default_rng(3).integers(0, 256, 1000, dtype=np.uint8).tobytes()
        b = wal.append(1, big)
        c = wal.append(1, b"after")
        assert a < b < c
        assert payloads(wal) == [b"small", big, b"after"]


def test_remove_through(tmp_path):
    d = str(tmp_path)
    wal = Wal(d)
    wal.append(1, b"one")
    first = wal.rotate()
    wal.append(1, b"two")
    second = wal.rotate()
    wal.append(1, b"three")
    with pytest.raises(ValueError, match="open"):
        wal.remove_through(wal.current_seq)
    wal.remove_through(first)
    assert not os.path.exists(seg_path(d, first))
    assert payloads(wal) == [b"two", b"three"]
    wal.remove_through(second)
    assert wal.segments() == [second + 1]
    assert payloads(wal) == [b"three"]
    wal.close()
    wal = Wal(d)
    assert wal.current_seq == second + 2  # numbering continues, never restarts
    assert payloads(wal) == [b"three"]
    wal.close()


def test_open_removes_temp_files_and_rejects_bad_arguments(tmp_path):
    d = str(tmp_path)
    open(os.path.join(d, "00000009.wal.tmp"), "wb").write(b"junk")
    Wal(d).close()
    assert not any(n.endswith(".tmp") for n in os.listdir(d))
    with pytest.raises(ValueError, match="fsync"):
        Wal(d, fsync="sometimes")
    with pytest.raises(ValueError, match="segment_bytes"):
        Wal(d, segment_bytes=0)
    wal = Wal(d)
    wal.close()
    with pytest.raises(ValueError, match="closed"):
        wal.append(1, b"x")


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
def test_fsync_modes(tmp_path, mode):
    wal = Wal(str(tmp_path), fsync=mode, batch_interval=0.01)
    base = wal.fsync_count  # creating the first segment fsyncs the directory
    for i in range(20):
        wal.append(1, numbered(i))
    if mode == "always":
        assert wal.fsync_count >= base + 1
    if mode == "none":
        assert wal.fsync_count == base
    wal.close()  # close fsyncs in every mode
    wal = Wal(str(tmp_path), fsync=mode)
    assert payloads(wal) == [numbered(i) for i in range(20)]
    wal.close()


def test_batch_mode_background_fsync_runs(tmp_path, monkeypatch):
    synced = threading.Event()

    def fsync(fd):
        os.fsync(fd)
        synced.set()

    monkeypatch.setattr(wal_log, "_fsync", fsync)
    wal = Wal(str(tmp_path), fsync="batch", batch_interval=0.01)
    synced.clear()
    wal.append(1, b"x")
    assert synced.wait(30)  # the background thread, not the append, fsynced
    wal.close()


# ---- group commit --------------------------------------------------------------------------

def test_group_commit_shares_fsyncs_between_threads(tmp_path, monkeypatch):
    # Model a disk whose fsync takes a while (tmp dirs can make it nearly free), so that writers
    # pile up behind a running flush the way they do on real storage.
    def slow_fsync(fd):
        os.fsync(fd)
        time.sleep(0.003)

    monkeypatch.setattr(wal_log, "_fsync", slow_fsync)
    wal = Wal(str(tmp_path))
    base = wal.fsync_count
    n_threads, per_thread = 16, 25
    start = threading.Barrier(n_threads)
    errors = []

    def writer(t):
        try:
            start.wait()
            for i in range(per_thread):
                wal.append(1, b"t%02d-%04d" % (t, i))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    total = n_threads * per_thread
    used = wal.fsync_count - base
    assert 1 <= used <= total // 4, f"{used} fsyncs for {total} appends: no grouping"
    got = payloads(wal)
    assert sorted(got) == sorted(b"t%02d-%04d" % (t, i) for t in range(n_threads) for i in range(per_thread))
    for t in range(n_threads):  # each thread's records stay in its own order
        mine = [p for p in got if p.startswith(b"t%02d-" % t)]
        assert mine == sorted(mine)
    wal.close()


def test_failed_fsync_stops_the_wal(tmp_path, monkeypatch):
    wal = Wal(str(tmp_path))

    def broken(fd):
        raise OSError(5, "EIO")

    monkeypatch.setattr(wal_log, "_fsync", broken)
    with pytest.raises(OSError, match="EIO"):
        wal.append(1, b"x")
    with pytest.raises(OSError, match="stopped"):
        wal.append(1, b"y")
    monkeypatch.undo()
    wal.close()


# ---- torn tails ----------------------------------------------------------------------------

def _write_two_segments(d, n_last=5, size=60):
    wal = Wal(d)
    for i in range(3):
        wal.append(1, numbered(i, size))
    wal.rotate()
    for i in range(3, 3 + n_last):
        wal.append(1, numbered(i, size))
    last = wal.current_seq
    wal.close()
    return last


def test_torn_tail_at_every_offset_of_last_record(tmp_path):
    src = str(tmp_path / "src")
    last = _write_two_segments(src)
    path = seg_path(src, last)
    full = open(path, "rb").read()
    frames = segment.scan_segment(full, path, False).frames
    last_start = frames[-1].offset
    want = [numbered(i, 60) for i in range(7)]  # all but the final record
    work = str(tmp_path / "work")
    for cut in range(last_start, len(full)):
        for zeros in (0, 37):
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(src, work)
            with open(seg_path(work, last), "wb") as f:
                f.write(full[:cut] + bytes(zeros))
            wal = Wal(work)
            assert os.path.getsize(seg_path(work, last)) == last_start, (cut, zeros)
            assert wal.truncated_tail is not None or (cut == last_start and zeros == 0)
            assert payloads(wal) == want, (cut, zeros)
            wal.append(1, b"later")
            wal.close()
            wal = Wal(work)
            assert payloads(wal) == want + [b"later"]
            wal.close()


def test_zero_filled_tail_after_complete_records_is_torn(tmp_path):
    d = str(tmp_path)
    last = _write_two_segments(d)
    with open(seg_path(d, last), "ab") as f:
        f.write(bytes(8192))
    wal = Wal(d)
    assert payloads(wal) == [numbered(i, 60) for i in range(8)]
    wal.close()


def test_bit_flip_in_final_record_of_last_segment_is_treated_as_torn(tmp_path):
    # Indistinguishable from a torn write: documented as the one record that can be dropped.
    d = str(tmp_path)
    last = _write_two_segments(d)
    path = seg_path(d, last)
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x10
    open(path, "wb").write(bytes(data))
    wal = Wal(d)
    assert payloads(wal) == [numbered(i, 60) for i in range(7)]
    wal.close()


# ---- corruption ----------------------------------------------------------------------------

def _flip(path, offset, bit=0x04):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= bit
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("where", ["header", "length", "payload"])
def test_bit_flip_in_earlier_segment_raises_naming_file_and_offset(tmp_path, where):
    d = str(tmp_path)
    _write_two_segments(d)
    first = seg_path(d, 1)
    frames = segment.scan_segment(open(first, "rb").read(), first, False).frames
    victim = frames[1]
    delta = {"header": 3, "length": 9, "payload": segment.HEADER_SIZE + 5}[where]
    _flip(first, victim.offset + delta)
    with pytest.raises(CorruptionError) as ei:
        Wal(d)
    assert ei.value.path == first and ei.value.offset == victim.offset
    assert first in str(ei.value) and str(victim.offset) in str(ei.value)


@pytest.mark.parametrize("delta", [0, 2, 9, 17, segment.HEADER_SIZE + 1])
def test_bit_flip_mid_last_segment_followed_by_valid_records_raises(tmp_path, delta):
    d = str(tmp_path)
    last = _write_two_segments(d, n_last=5)
    path = seg_path(d, last)
    size_before = os.path.getsize(path)
    frames = segment.scan_segment(open(path, "rb").read(), path, False).frames
    victim = frames[2]
    _flip(path, victim.offset + delta, bit=0x40)
    with pytest.raises(CorruptionError) as ei:
        Wal(d)
    assert ei.value.path == path and ei.value.offset == victim.offset
    assert "not a torn tail" in ei.value.what
    assert os.path.getsize(path) == size_before  # nothing was truncated away


def test_length_flip_pointing_past_eof_does_not_hide_later_records(tmp_path):
    d = str(tmp_path)
    last = _write_two_segments(d, n_last=5)
    path = seg_path(d, last)
    frames = segment.scan_segment(open(path, "rb").read(), path, False).frames
    _flip(path, frames[1].offset + 10, bit=0x01)  # stored length += 64 KiB: runs past EOF
    with pytest.raises(CorruptionError) as ei:
        Wal(d)
    assert ei.value.offset == frames[1].offset


def test_replay_detects_corruption_after_open(tmp_path):
    d = str(tmp_path)
    wal = Wal(d)
    for i in range(4):
        wal.append(1, numbered(i))
    path = seg_path(d, wal.current_seq)
    frames = segment.scan_segment(open(path, "rb").read(), path, False).frames
    _flip(path, frames[3].offset + segment.HEADER_SIZE)
    with pytest.raises(CorruptionError) as ei:
        list(wal.replay())
    assert ei.value.offset == frames[3].offset
    wal.close()


# ---- crash safety --------------------------------------------------------------------------

_CRASH_CHILD = textwrap.dedent("""
    import sys, threading
    from chronosdb.storage.wal import Wal
    run = int(sys.argv[2])
    wal = Wal(sys.argv[1], segment_bytes=4096)
    lock = threading.Lock()
    def writer(t):
        i = 0
        while True:
            payload = b"%d-%d-%d|" % (run, t, i) + bytes(100 + (i * 37) % 500)
            seq = wal.append(1, payload)
            with lock:  # printed only after append returned: an acknowledgement
                sys.stdout.write("%d-%d-%d %d\\n" % (run, t, i, seq))
                sys.stdout.flush()
            i += 1
    for t in range(4):
        threading.Thread(target=writer, args=(t,), daemon=True).start()
    threading.Event().wait()
""")


def test_sigkill_loses_no_acknowledged_record(tmp_path):
    d = str(tmp_path / "wal")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    acked: dict[bytes, int] = {}
    for run in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, d, str(run)],
                                stdout=subprocess.PIPE, env=env)
        lines = []
        for line in proc.stdout:  # let it acknowledge a good number of records, then kill it
            lines.append(line)
            if len(lines) >= 150:
                break
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        lines.extend(rest.splitlines(keepends=True))
        for line in lines:
            if line.endswith(b"\n"):  # a cut-off line is a cut-off print, still count it below
                name, seq = line.split()
                acked[name + b"|"] = int(seq)
        assert proc.returncode == -signal.SIGKILL
        wal = Wal(d, segment_bytes=4096)  # recovers (maybe truncating a torn tail)
        present = {p.split(b"|", 1)[0] + b"|": seq for seq, _, p in wal.replay()}
        wal.close()
        assert len(acked) >= 150 * (run + 1)
        for name, seq in acked.items():
            assert present.get(name) == seq, f"acknowledged record {name!r} (segment {seq}) lost"


def test_append_ordinal_is_the_log_order_under_concurrency(tmp_path):
    """Ordinals returned to concurrent appenders are 1..n in exactly the replayed order."""
    import threading as _th

    from chronosdb.storage.wal import Wal as _Wal

    wal = _Wal(str(tmp_path / "w"), fsync="always")
    got: dict[int, bytes] = {}
    lock = _th.Lock()

    def run(t):
        for i in range(50):
            payload = f"{t}-{i}".encode()
            o = wal.append_ordinal(7, payload)
            with lock:
                got[o] = payload

    ts = [_th.Thread(target=run, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wal.close()
    assert sorted(got) == list(range(1, 401))
    replayed = [bytes(p) for _s, _t, p in _Wal(str(tmp_path / "w")).replay()]
    assert replayed == [got[o] for o in range(1, 401)]
