"""chronosdb.ext.blockscan against its plain-Python twin, and the SegmentReader paths built on it.

Random segments of every field type are written with SegmentWriter; the bulk decoder and the twin
decode the same block runs over the same random [lo, hi] ranges and must agree bit for bit (and
with the points written). Corruption is planted in every block, both as flipped bits (caught by
the checksum) and as consistent-checksum damage (caught by the type, length, count and time
checks), and both implementations must name the same file and block offset.
"""
import mmap

import numpy as np
import pytest

from chronosdb.ext import blockscan, blockscan_ref
from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.storage import filenames
from chronosdb.storage.segment import SegmentReader, SegmentWriter
from chronosdb.storage.segment import layout as L

I64 = np.iinfo(np.int64)
T0 = 1_600_000_000_000_000_000
FIELDS = {b"f": FieldType.FLOAT, b"i": FieldType.INTEGER, b"b": FieldType.BOOLEAN, b"s": FieldType.STRING}


def random_column(rng, ftype, n):
    if ftype == FieldType.FLOAT:
        kind = rng.integers(0, 3)
        v = np.round(rng.normal(50, 20, n), 2) if kind == 0 else rng.normal(0, 1e6, n)
        if kind == 2 and n > 4:
            v[rng.integers(0, n, 4)] = [np.nan, -0.0, np.inf, -np.inf]
        return v
    if ftype == FieldType.INTEGER:
        v = np.cumsum(rng.integers(-5, 6, n)).astype(np.int64)
        if n > 2 and rng.random() < 0.3:
            v[:2] = [I64.min, I64.max]
        return v
    if ftype == FieldType.BOOLEAN:
        return rng.integers(0, 2, n).astype(np.uint8)
    return StringArray.from_list([b"x" * int(rng.integers(0, 6)) + b"%d" % i for i in range(n)])


def random_times(rng, n):
    step = int(rng.choice([1, 10_000_000_000, 0]))
    if step == 0:  # irregular gaps
        return T0 + np.cumsum(rng.integers(1, 10**9, n)).astype(np.int64)
    return T0 + np.arange(n, dtype=np.int64) * step


def write_random_segment(path, rng, n_series=4):
    """A segment with every field type; returns {(sid, field): (ftype, times, values)}."""
    truth = {}
    w = SegmentWriter(path, 1, 0)
    for sid in rng.choice(2**40, n_series, replace=False).tolist():
        for field, ftype in FIELDS.items():
            if rng.random() < 0.2:
                continue
            n = int(rng.choice([1, 2, 999, 1000, 1001, int(rng.integers(1, 4500))]))
            t, v = random_times(rng, n), random_column(rng, ftype, n)
            w.add(sid, field, ftype, t, v)
            truth[(sid, field)] = (ftype, t, v)
    w.finish()
    return truth


def seg_path(tmp_path):
    return str(tmp_path / filenames.segment_file(1, 0))


def assert_same(ftype, got, want):
    (gt, gv), (wt, wv) = got, want
    assert gt.dtype == np.int64 and np.array_equal(gt, wt)
    if ftype == FieldType.STRING:
        assert isinstance(gv, StringArray) and gv.to_list() == wv.to_list()
    else:
        assert gv.dtype == ftype.dtype
        assert np.array_equal(np.asarray(gv).view(np.uint8), np.asarray(wv).view(np.uint8))


def trim_truth(ftype, t, v, lo, hi):
    keep = (t >= lo) & (t <= hi)
    if ftype == FieldType.STRING:
        return t[keep], v.take(np.flatnonzero(keep))
    return t[keep], v[keep]


def random_range(rng, t):
    a, b = int(t[0]), int(t[-1])
    choice = rng.integers(0, 6)
    if choice == 0:
        return int(I64.min), int(I64.max)
    if choice == 1:
        return b + 1, int(I64.max)  # after the data
    if choice == 2:
        return a, a - 1  # empty (lo > hi)
    lo, hi = sorted(rng.integers(a - 5, b + 6, 2).tolist())
    if choice == 3:
        lo = hi = int(rng.choice(t))  # one point
    return lo, hi


def index_columns(r: SegmentReader, sid, field):
    bt = r.blocks(sid, field)
    return bt, (bt.offset, bt.size, bt.count, bt.min_time, bt.max_time)


def open_map(path):
    f = open(path, "rb")
    return f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


@pytest.mark.parametrize("seed", range(8))
def test_decode_blocks_matches_twin_and_truth(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = seg_path(tmp_path)
    truth = write_random_segment(path, rng)
    f, mm = open_map(path)
    try:
        with SegmentReader(path) as r:
            for (sid, field), (ftype, t, v) in truth.items():
                bt, cols = index_columns(r, sid, field)
                for _ in range(4):
                    lo, hi = random_range(rng, t)
                    # a random contiguous run of blocks, as a range read would choose
                    a = int(rng.integers(0, len(bt)))
                    b = int(rng.integers(a, len(bt))) + 1
                    run = tuple(c[a:b] for c in cols)
                    fast = blockscan.decode_blocks(mm, *run, int(ftype), lo, hi, path=path)
                    slow = blockscan_ref.decode_blocks(mm, *run, int(ftype), lo, hi, path=path)
                    assert_same(ftype, fast, slow)
                    in_run = (t >= bt.min_time[a]) & (t <= bt.max_time[b - 1])
                    vt = v.take(np.flatnonzero(in_run)) if ftype == FieldType.STRING else v[in_run]
                    assert_same(ftype, fast, trim_truth(ftype, t[in_run], vt, lo, hi))
                    # the reader's range read is the truth trimmed
                    assert_same(ftype, r.read(sid, field, lo, hi), trim_truth(ftype, t, v, lo, hi))
                assert_same(ftype, r.read(sid, field), (t, v))
    finally:
        mm.close()
        f.close()


@pytest.mark.parametrize("seed", range(4))
def test_read_blocks_and_scan_rows_match_block_by_block(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    path = seg_path(tmp_path)
    truth = write_random_segment(path, rng, n_series=3)
    f, mm = open_map(path)
    try:
        with SegmentReader(path) as r:
            for (sid, field), (ftype, t, v) in truth.items():
                bt, cols = index_columns(r, sid, field)
                mask = rng.random(len(bt)) < 0.5
                lo, hi = random_range(rng, t)
                # expected: the chosen blocks one by one, each trimmed, concatenated
                parts = [r.read_block(sid, field, i) for i in np.flatnonzero(mask).tolist()]
                if parts:
                    et = np.concatenate([p[0] for p in parts])
                    ev = (StringArray.concat([p[1] for p in parts]) if ftype == FieldType.STRING
                          else np.concatenate([p[1] for p in parts]))
                else:
                    et, ev = blockscan_ref._empty(ftype)
                want = trim_truth(ftype, et, ev, lo, hi)
                assert_same(ftype, r.read_blocks(sid, field, mask, lo, hi), want)
                idx = np.flatnonzero(mask)[::-1]  # order and duplicates do not matter
                assert_same(ftype, r.read_blocks(sid, field, np.concatenate([idx, idx]), lo, hi), want)
                sel = tuple(c[mask] for c in cols)
                assert_same(ftype, blockscan_ref.decode_blocks(mm, *sel, int(ftype), lo, hi), want)
                assert r.read_blocks(sid + 1, field, mask) is None or (sid + 1, field) in truth
    finally:
        mm.close()
        f.close()


def test_entry_lookup_agrees_with_the_entry_list(tmp_path):
    rng = np.random.default_rng(7)
    path = seg_path(tmp_path)
    truth = write_random_segment(path, rng, n_series=6)
    with SegmentReader(path) as r:
        listed = list(r.entries())
        assert {(s, f) for s, f, _ in listed} == set(truth)
        for i, (sid, field, ftype) in enumerate(listed):
            assert r._entry(sid, field) == i
            assert r._entry(np.uint64(sid), field) == i
            assert r.field_type(sid, field) == ftype == truth[(sid, field)][0]
        sid = listed[0][0]
        assert r._entry(sid, b"nope") is None
        assert r._entry(sid, "f") is None  # names are bytes
        assert r._entry(-1, b"f") is None and r._entry(2**64 + sid, b"f") is None
        assert r._entry(sid, [b"f"]) is None  # unhashable
        assert r.read(12345, b"f") is None and r.blocks(12345, b"f") is None
        with pytest.raises(KeyError):
            r.read_block(12345, b"f", 0)


def _rewrite_block(buf: bytearray, off: int, size: int, body: bytes):
    """Replace a block's body keeping its size and a valid checksum (damage the checksum cannot see)."""
    assert len(body) == size - 4
    buf[off:off + size] = body + L.BLOCK_CHECKSUM.pack(L.checksum32(body))


def _both_raise(buf, cols, ftype, path, offset, what=None):
    for impl in (blockscan, blockscan_ref):
        with pytest.raises(CorruptionError) as err:
            impl.decode_blocks(buf, *cols, int(ftype), int(I64.min), int(I64.max), path=path)
        assert err.value.path == path and err.value.offset == offset, impl
        assert path in str(err.value) and str(offset) in str(err.value)
        if what:
            assert what in err.value.what, (impl, err.value.what)


@pytest.mark.parametrize("seed", range(3))
def test_corruption_in_every_block_is_detected_at_its_offset(tmp_path, seed):
    rng = np.random.default_rng(200 + seed)
    path = seg_path(tmp_path)
    truth = write_random_segment(path, rng, n_series=2)
    with open(path, "rb") as f:
        clean = f.read()
    with SegmentReader(path) as r:
        tables = {key: index_columns(r, *key) for key in truth}
    for (sid, field), (bt, cols) in tables.items():
        ftype = truth[(sid, field)][0]
        for i in range(len(bt)):
            off, size = int(bt.offset[i]), int(bt.size[i])
            # a flipped bit anywhere in the block, checksum included
            buf = bytearray(clean)
            buf[off + int(rng.integers(0, size))] ^= 1 << int(rng.integers(0, 8))
            _both_raise(bytes(buf), cols, ftype, path, off, "checksum")
            body = clean[off:off + size - 4]
            # wrong type byte
            buf = bytearray(clean)
            _rewrite_block(buf, off, size, bytes([body[0] % 4 + 1]) + body[1:])
            _both_raise(bytes(buf), cols, ftype, path, off, "type byte")
            # an overlong times length
            buf = bytearray(clean)
            _rewrite_block(buf, off, size, body[:1] + b"\xff" * (len(body) - 1))
            _both_raise(bytes(buf), cols, ftype, path, off, "undecodable")
            # the index disagreeing with the block: count, first time
            for col, delta, what in ((2, 1, "index says"), (3, -1, "disagree")):
                bad = [c.copy() for c in cols]
                bad[col][i] += delta
                _both_raise(clean, bad, ftype, path, off, what)
            # a block running past the end of the buffer
            bad = [c.copy() for c in cols]
            bad[0][i] = len(clean) - 3
            _both_raise(clean, bad, ftype, path, len(clean) - 3, "outside")


def test_reader_detects_flips_and_can_close_after(tmp_path):
    rng = np.random.default_rng(9)
    path = seg_path(tmp_path)
    truth = write_random_segment(path, rng, n_series=1)
    (sid, field), (ftype, t, v) = next(iter(truth.items()))
    with SegmentReader(path) as r:
        bt = r.blocks(sid, field)
    off = int(bt.offset[-1])
    with open(path, "r+b") as f:
        f.seek(off + 1)
        byte = f.read(1)[0]
        f.seek(off + 1)
        f.write(bytes([byte ^ 4]))
    r = SegmentReader(path)
    with pytest.raises(CorruptionError) as err:
        r.read(sid, field)
    assert err.value.offset == off
    with pytest.raises(CorruptionError):
        r.read_blocks(sid, field, [len(bt) - 1])
    if len(bt) > 1:  # blocks before the damaged one are still readable
        got = r.read_blocks(sid, field, np.arange(len(bt) - 1))
        assert len(got[0]) == int(bt.count[:-1].sum())
    r.close()  # the mapping is not pinned by the failed reads (the error is still alive here)
    with pytest.raises(ValueError, match="closed"):
        r.read(sid, field)


def test_bad_arguments_are_rejected(tmp_path):
    path = seg_path(tmp_path)
    truth = write_random_segment(path, np.random.default_rng(11), n_series=1)
    (sid, field), (ftype, t, v) = next(iter(truth.items()))
    with SegmentReader(path) as r:
        bt, cols = index_columns(r, sid, field)
        n = len(bt)
        with pytest.raises(ValueError, match="field type"):
            blockscan.decode_blocks(b"", *cols, 9, 0, 1)
        with pytest.raises(ValueError, match="length"):
            blockscan.decode_blocks(b"", cols[0], cols[1][:0], *cols[2:], int(ftype), 0, 1)
        with pytest.raises(ValueError, match="mask"):
            r.read_blocks(sid, field, np.ones(n + 1, dtype=bool))
        with pytest.raises(IndexError):
            r.read_blocks(sid, field, [n])
        with pytest.raises(ValueError):
            r.read_blocks(sid, field, [0.5])
        empty = r.read_blocks(sid, field, [])
        assert len(empty[0]) == 0 and len(empty[1]) == 0
