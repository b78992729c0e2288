"""RaftStorage: round trips, suffix replacement, snapshots, reopen, torn tails, corruption."""

import os

import pytest

from chronosdb.cluster.raft.storage import LOG_FILE, SNAPSHOT_FILE, RaftStorage
from chronosdb.cluster.raft.types import ConfState, Entry, EntryKind, HardState, Snapshot
from chronosdb.model.errors import CorruptionError


def ents(first, last, term=1, tag=b""):
    return [Entry(term, i, EntryKind.NORMAL, tag + b"e%d" % i) for i in range(first, last + 1)]


def reopen(path):
    s = RaftStorage(path)
    return s, s.load()


def test_fresh_directory_loads_empty(tmp_path):
    s, (hs, snap, entries) = reopen(tmp_path / "r")
    assert (hs, snap, entries) == (HardState(), None, [])
    assert s.last_index == 0


def test_round_trip_and_reopen(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 2, 0), ents(1, 3))
    s.save(None, [Entry(1, 4, EntryKind.CONF_CHANGE, b"\x00" + bytes(7) + b"\x05")])
    s.save(HardState(2, 0, 4), [])
    s.close()
    s, (hs, snap, entries) = reopen(tmp_path)
    assert hs == HardState(2, 0, 4) and snap is None
    assert entries == ents(1, 3) + [Entry(1, 4, EntryKind.CONF_CHANGE, b"\x00" + bytes(7) + b"\x05")]
    assert s.last_index == 4 and s.term_at(2) == 1


def test_suffix_replacement_keeps_prefix_and_hard_state(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 1, 2), ents(1, 5))
    s.save(None, ents(3, 4, term=2, tag=b"new"))
    assert s.last_index == 4
    s.save(None, ents(5, 5, term=2))          # appends after a rewrite keep working
    s.close()
    _, (hs, _, entries) = reopen(tmp_path)
    assert hs == HardState(1, 1, 2)
    assert entries == ents(1, 2) + ents(3, 4, term=2, tag=b"new") + ents(5, 5, term=2)


def test_gaps_and_noncontiguous_entries_are_refused(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(None, ents(1, 2))
    with pytest.raises(ValueError, match="gap"):
        s.save(None, ents(4, 4))
    with pytest.raises(ValueError, match="contiguous"):
        s.save(None, [Entry(1, 3), Entry(1, 5)])


def test_compaction_drops_covered_prefix(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 1, 8), ents(1, 10))
    snap = Snapshot(6, 1, ConfState((1, 2, 3)), b"state@6")
    s.compact(snap)
    assert s.term_at(6) == 1 and s.term_at(5) is None
    s.save(None, ents(11, 12))
    s.close()
    s, (hs, got_snap, entries) = reopen(tmp_path)
    assert got_snap == snap and hs == HardState(1, 1, 8)
    assert entries == ents(7, 12)
    with pytest.raises(ValueError, match="not newer"):
        s.compact(Snapshot(5, 1, ConfState((1,)), b""))
    with pytest.raises(ValueError, match="does not match"):
        s.compact(Snapshot(8, 3, ConfState((1,)), b""))
    with pytest.raises(ValueError, match="log ends"):
        s.compact(Snapshot(99, 1, ConfState((1,)), b""))


def test_received_snapshot_replaces_log(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 0, 2), ents(1, 5))
    # A snapshot whose point matches the stored log keeps the entries after it...
    s.save(HardState(1, 0, 3), [], Snapshot(3, 1, ConfState((1, 2)), b"s3"))
    _, (_, _, entries) = reopen(tmp_path)
    assert entries == ents(4, 5)
    # ...one from another history (term differs) replaces the whole log.
    s, _ = reopen(tmp_path)
    s.save(HardState(3, 0, 9), [], Snapshot(9, 3, ConfState((1, 2)), b"s9"))
    s.save(None, ents(10, 11, term=3))
    s.close()
    _, (hs, snap, entries) = reopen(tmp_path)
    assert hs == HardState(3, 0, 9) and snap.index == 9 and snap.data == b"s9"
    assert entries == ents(10, 11, term=3)


def test_crash_between_snapshot_and_log_rewrite_is_recovered(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 0, 4), ents(1, 6))
    s.close()
    log = (tmp_path / LOG_FILE).read_bytes()
    s, _ = reopen(tmp_path)
    s.compact(Snapshot(4, 1, ConfState((1,)), b"s"))
    s.close()
    (tmp_path / LOG_FILE).write_bytes(log)    # as if the rewrite never happened
    _, (hs, snap, entries) = reopen(tmp_path)
    assert snap.index == 4 and entries == ents(5, 6)


def _two_saves(tmp_path):
    s, _ = reopen(tmp_path)
    s.save(HardState(1, 1, 1), ents(1, 3))
    size_before = os.path.getsize(tmp_path / LOG_FILE)
    s.save(HardState(2, 1, 3), ents(4, 5, term=2))
    s.close()
    return size_before, (tmp_path / LOG_FILE).read_bytes()


def test_torn_tail_at_every_byte_of_the_last_record_is_truncated(tmp_path):
    size_before, full = _two_saves(tmp_path)
    for cut in range(size_before, len(full)):
        (tmp_path / LOG_FILE).write_bytes(full[:cut])
        s, (hs, _, entries) = reopen(tmp_path)
        assert hs == HardState(1, 1, 1) and entries == ents(1, 3), cut
        assert os.path.getsize(tmp_path / LOG_FILE) == size_before
        assert (s.truncated_tail is not None) == (cut > size_before)
        s.save(None, ents(4, 4, term=9))      # appending after the repair lands in place
        s.close()
        _, (_, _, entries) = reopen(tmp_path)
        assert entries == ents(1, 3) + ents(4, 4, term=9)
    # A zero-filled tail (file extended, data never written) is a torn tail too.
    (tmp_path / LOG_FILE).write_bytes(full[:size_before] + bytes(40))
    _, (_, _, entries) = reopen(tmp_path)
    assert entries == ents(1, 3)


def test_bit_flips_are_reported_with_file_and_offset(tmp_path):
    size_before, full = _two_saves(tmp_path)
    path = tmp_path / LOG_FILE
    # Any flipped bit in the first record (followed by a valid one) is corruption.
    for off in range(0, size_before, 3):
        bad = bytearray(full)
        bad[off] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(CorruptionError) as ei:
            reopen(tmp_path)
        assert ei.value.path == str(path) and ei.value.offset == 0
    path.write_bytes(full)
    s, _ = reopen(tmp_path)
    s.compact(Snapshot(2, 1, ConfState((1,)), b"snapdata"))
    s.close()
    snap = tmp_path / SNAPSHOT_FILE
    good = snap.read_bytes()
    bad = bytearray(good)
    bad[-3] ^= 1
    snap.write_bytes(bytes(bad))
    with pytest.raises(CorruptionError) as ei:
        reopen(tmp_path)
    assert ei.value.path == str(snap) and "checksum" in str(ei.value)


def test_writing_before_load_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="load"):
        RaftStorage(tmp_path).save(HardState(1), [])
