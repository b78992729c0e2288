"""SeriesIndex: ids, postings, tag expressions vs brute force, persistence, collisions, damage."""
import os
import threading

import numpy as np
import pytest
from pyroaring import BitMap64

from chronosdb.model.errors import CorruptionError
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import key_hash, make_key
from chronosdb.model.tagexpr import And, Or, TagEquals, TagNotEquals, TagNotRegex, TagRegex
from chronosdb.storage import filenames
from chronosdb.storage.index import SeriesIndex
from chronosdb.storage.index import log as index_log
from chronosdb.storage.index import series_index as si_mod
from chronosdb.storage.index.series_index import split_key

TAG_KEYS = [b"a", b"b", b"c"]
TAG_VALUES = [b"x", b"y", b"z", b"xy", b"q\xc3\xa9"]


def random_series(rng, count, measurements=(b"m", b"n")):
    """Distinct random keys: each tag present with probability 2/3, values from a small set."""
    out = {}
    while len(out) < count:
        meas = measurements[int(rng.integers(len(measurements)))]
        tags = {k: TAG_VALUES[int(rng.integers(len(TAG_VALUES)))] for k in TAG_KEYS if rng.random() < 0.67}
        tags[b"id"] = str(int(rng.integers(1 << 30))).encode()  # keeps keys mostly distinct
        key = make_key(meas, tags)
        out[key] = (meas, tags)
    return out


def random_expr(rng, depth=0):
    kind = int(rng.integers(6 if depth < 2 else 4))
    k = TAG_KEYS[int(rng.integers(len(TAG_KEYS)))]
    v = ([b""] + TAG_VALUES + [b"absent"])[int(rng.integers(len(TAG_VALUES) + 2))]
    pat = ["^x", "y$", "^$", "x*", "^(x|z)$", "é", "^q", "nomatch"][int(rng.integers(8))]
    if kind == 0:
        return TagEquals(k, v)
    if kind == 1:
        return TagNotEquals(k, v)
    if kind == 2:
        return TagRegex(k, pat)
    if kind == 3:
        return TagNotRegex(k, pat)
    if kind == 4:
        return And(random_expr(rng, depth + 1), random_expr(rng, depth + 1))
    return Or(random_expr(rng, depth + 1), random_expr(rng, depth + 1))


def brute_match(series, ids, meas, expr):
    return {ids[k] for k, (m, tags) in series.items() if m == meas and (expr is None or expr.matches(tags))}


def check_against_brute_force(ix, series, ids, rng, rounds=60):
    for meas in (b"m", b"n", b"nothing"):
        assert set(ix.match(meas, None)) == brute_match(series, ids, meas, None)
        assert ix.match_ids(meas, None).tolist() == sorted(brute_match(series, ids, meas, None))
        for _ in range(rounds):
            e = random_expr(rng)
            assert set(ix.match(meas, e)) == brute_match(series, ids, meas, e), e
            got_ids, got_keys = ix.match_keys(meas, e)
            assert got_ids.tolist() == sorted(brute_match(series, ids, meas, e)), e
            assert got_keys == ix.keys_of(got_ids), e
            assert ix.match_ids(meas, e).tolist() == got_ids.tolist(), e
    # metadata against brute force too
    for meas in (b"m", b"n"):
        mine = {k: v for k, v in series.items() if v[0] == meas}
        assert ix.tag_keys(meas) == sorted({t for _, tags in mine.values() for t in tags})
        for t in TAG_KEYS:
            assert ix.tag_values(meas, t) == sorted({tags[t] for _, tags in mine.values() if t in tags})
            for v in TAG_VALUES:
                want = {ids[k] for k, (_, tags) in mine.items() if tags.get(t) == v}
                assert set(ix.tag_value_ids(meas, t, v)) == want
    assert ix.measurements() == sorted({m for m, _ in series.values()})
    assert ix.series_count() == len(series)
    assert set(ix.all_series_ids()) == set(ids[k] for k in series)


@pytest.fixture
def d(tmp_path):
    return str(tmp_path / "index")


def test_ids_are_key_hashes_and_stable(d):
    keys = [b"cpu,host=a", b"cpu,host=b", b"mem,host=a"]
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys(keys)
        assert ids.dtype == np.uint64
        assert ids.tolist() == [key_hash(k) for k in keys]
        assert ix.ids_for_keys(keys).tolist() == ids.tolist()
        # duplicates within one batch get one id; missing without create gives 0
        again = ix.ids_for_keys([b"cpu,host=c", b"cpu,host=c", b"cpu,host=a"])
        assert again[0] == again[1] == key_hash(b"cpu,host=c") and again[2] == ids[0]
        assert ix.ids_for_keys([b"cpu,host=zz"], create=False).tolist() == [0]
        assert ix.series_count() == 4
        assert ix.key_of(int(ids[2])) == b"mem,host=a"
        assert ix.key_of(12345) is None and ix.key_of(0) is None
        assert ix.keys_of(ids) == keys
        assert ix.keys_of([int(ids[1]), 777]) == [keys[1], None]
        assert ix.keys_of(BitMap64([int(ids[0])])) == [keys[0]]


def test_bad_keys_are_rejected_and_change_nothing(d):
    with SeriesIndex(d) as ix:
        for bad in [b"", b",a=b", b"cpu,a", b"cpu,a=", b"cpu,=x", b"cpu,b=1,a=2", b"cpu,a=1,a=2"]:
            with pytest.raises(ValueError, match="series key"):
                ix.ids_for_keys([b"ok,t=1", bad])
        with pytest.raises(TypeError):
            ix.ids_for_keys(["cpu,a=b"])
        assert ix.series_count() == 0
    assert split_key(make_key(b"c p,u", {b"k=1": b"v,2", b"a b": b"x"})) == (b"c p,u", [(b"a b", b"x"), (b"k=1", b"v,2")])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_match_equals_brute_force_through_log_snapshot_and_mixed(d, seed):
    rng = np.random.default_rng(seed)
    series = random_series(rng, 300)
    keys = list(series)
    ix = SeriesIndex(d)
    first, second = keys[:200], keys[200:]
    ids = dict(zip(first, ix.ids_for_keys(first).tolist()))
    live = {k: series[k] for k in first}
    check_against_brute_force(ix, live, ids, rng)
    ix.close()

    ix = SeriesIndex(d)  # log only
    check_against_brute_force(ix, live, ids, rng, rounds=20)
    ix.compact()          # in-memory state is now the frozen snapshot
    check_against_brute_force(ix, live, ids, rng, rounds=20)
    ids.update(zip(second, ix.ids_for_keys(second).tolist()))  # frozen + extra
    live.update((k, series[k]) for k in second)
    check_against_brute_force(ix, live, ids, rng, rounds=20)
    drop = [k for i, k in enumerate(keys) if i % 7 == 0]
    ix.drop_series([ids[k] for k in drop])
    for k in drop:
        del live[k]
    check_against_brute_force(ix, live, ids, rng)
    ix.close()

    ix = SeriesIndex(d)  # snapshot + log
    check_against_brute_force(ix, live, ids, rng, rounds=20)
    ix.compact()
    ix.close()
    ix = SeriesIndex(d)  # snapshot only, renumbered after the drops
    check_against_brute_force(ix, live, ids, rng, rounds=20)
    assert ix.ids_for_keys(list(live), create=False).tolist() == [ids[k] for k in live]
    assert ix.ids_for_keys(drop, create=False).tolist() == [0] * len(drop)
    ix.close()


def test_recent_lookup_rebuild_keeps_ids(d, monkeypatch):
    monkeypatch.setattr(si_mod, "RECENT_MERGE_MIN", 8)  # force many sorted-copy rebuilds
    keys = [make_key(b"m", {b"h": str(i)}) for i in range(500)]
    with SeriesIndex(d) as ix:
        ids = np.concatenate([ix.ids_for_keys(keys[i:i + 13]) for i in range(0, 500, 13)])
        ix.drop_series(ids[::3])
        again = ix.ids_for_keys(keys, create=False)
        assert (again[::3] == 0).all()
        mask = np.ones(500, bool)
        mask[::3] = False
        assert (again[mask] == ids[mask]).all()
        assert (ix.ids_for_keys(keys) == ids).all()  # re-created series get their hash back


def test_collisions_get_distinct_ids_that_survive_reopen(d, monkeypatch):
    const = 0xDEADBEEF
    monkeypatch.setattr(si_mod, "key_hash", lambda key: const)
    keys = [b"m,h=a", b"m,h=b", b"m,h=c"]
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys(keys[:2]).tolist()
        ids += ix.ids_for_keys(keys[2:]).tolist()
        assert ids == [const, const + 1, const + 2]
        assert ix.ids_for_keys(keys).tolist() == ids
        assert ix.keys_of(ids) == keys
    with SeriesIndex(d) as ix:  # replayed from the log
        assert ix.ids_for_keys(keys, create=False).tolist() == ids
        assert set(ix.match(b"m", TagEquals(b"h", b"b"))) == {const + 1}
        # the owner of the hash slot goes; the probed keys keep their ids and are still found
        ix.drop_series([const])
        assert ix.ids_for_keys(keys[1:], create=False).tolist() == ids[1:]
        # a new colliding key takes the freed slot, never a live id
        assert ix.ids_for_keys([b"m,h=d"]).tolist() == [const]
    for _ in range(2):  # log only, then snapshot only
        with SeriesIndex(d) as ix:
            assert ix.ids_for_keys([b"m,h=d"] + keys, create=False).tolist() == [const, 0] + ids[1:]
            assert ix.keys_of(ids[1:]) == keys[1:]
            ix.compact()


def test_real_hash_after_reopen_still_finds_probed_ids(d, monkeypatch):
    monkeypatch.setattr(si_mod, "key_hash", lambda key: 7)
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys([b"m,h=a", b"m,h=b"]).tolist()
    monkeypatch.undo()
    for _ in range(2):
        with SeriesIndex(d) as ix:
            assert ix.ids_for_keys([b"m,h=a", b"m,h=b"], create=False).tolist() == ids == [7, 8]
            ix.compact()


def test_hash_zero_is_never_an_id(d, monkeypatch):
    monkeypatch.setattr(si_mod, "key_hash", lambda key: 0)
    with SeriesIndex(d) as ix:
        assert ix.ids_for_keys([b"m,h=a", b"m,h=b"]).tolist() == [1, 2]


def test_fields_keep_every_type_and_persist(d):
    with SeriesIndex(d) as ix:
        ix.ids_for_keys([b"cpu,h=a"])
        ix.add_fields(b"cpu", [(b"v", FieldType.FLOAT), (b"n", FieldType.INTEGER)])
        size = ix._log.size
        ix.add_fields(b"cpu", [(b"v", FieldType.FLOAT)])  # idempotent: nothing logged
        assert ix._log.size == size
        ix.add_fields(b"cpu", [(b"v", FieldType.INTEGER)])
        assert ix.field_types(b"cpu") == {b"v": {FieldType.FLOAT, FieldType.INTEGER}, b"n": {FieldType.INTEGER}}
        assert ix.field_types(b"nope") == {}
        with pytest.raises(ValueError, match="field type"):
            ix.add_fields(b"cpu", [(b"x", 99)])
        with pytest.raises(ValueError, match="field name"):
            ix.add_fields(b"cpu", [(b"", FieldType.FLOAT)])
    want = {b"v": {FieldType.FLOAT, FieldType.INTEGER}, b"n": {FieldType.INTEGER}}
    with SeriesIndex(d) as ix:
        assert ix.field_types(b"cpu") == want
        ix.compact()
    with SeriesIndex(d) as ix:
        assert ix.field_types(b"cpu") == want


def test_drop_series_and_measurement_are_persisted(d):
    keys = [b"cpu,h=a,r=1", b"cpu,h=b,r=1", b"mem,h=a"]
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys(keys).tolist()
        ix.add_fields(b"cpu", [(b"v", FieldType.FLOAT)])
        ix.add_fields(b"mem", [(b"f", FieldType.BOOLEAN)])
        ix.drop_series([ids[0], 999])
        assert ix.tag_values(b"cpu", b"h") == [b"b"]
        assert set(ix.series_ids(b"cpu")) == {ids[1]}
        assert ix.drop_measurement(b"mem") == [ids[2]]
        assert ix.drop_measurement(b"mem") == []
        assert ix.measurements() == [b"cpu"] and ix.field_types(b"mem") == {}
        ix.drop_series(BitMap64([ids[1]]))  # the last series of cpu: measurement and fields go
        assert ix.measurements() == [] and ix.field_types(b"cpu") == {}
        assert ix.tag_keys(b"cpu") == [] and ix.series_count() == 0
        assert ix.series_ids(b"cpu") == BitMap64()
        new = ix.ids_for_keys([b"cpu,h=c"]).tolist()
    for _ in range(2):
        with SeriesIndex(d) as ix:
            assert ix.measurements() == [b"cpu"] and ix.series_count() == 1
            assert ix.ids_for_keys(keys, create=False).tolist() == [0, 0, 0]
            assert ix.ids_for_keys([b"cpu,h=c"], create=False).tolist() == new
            assert ix.tag_keys(b"cpu") == [b"h"] and ix.field_types(b"cpu") == {}
            ix.compact()


def test_compaction_leaves_one_snapshot_and_one_log(d):
    with SeriesIndex(d) as ix:
        ix.ids_for_keys([b"m,t=1"])
        ix.compact()
        ix.ids_for_keys([b"m,t=2"])
        ix.compact()
        ix.ids_for_keys([b"m,t=3"])
    assert sorted(os.listdir(d)) == [filenames.index_log(3), filenames.index_snapshot(3)]
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 3


def test_auto_compaction_when_the_log_grows(tmp_path):
    d = str(tmp_path / "ix")
    with SeriesIndex(d, auto_compact_bytes=500) as ix:
        for i in range(40):
            ix.ids_for_keys([make_key(b"m", {b"t": str(i)})])
        assert any(n.endswith(".snap") for n in os.listdir(d))
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 40


def test_leftover_files_of_an_interrupted_compaction(d):
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys([b"m,t=1", b"m,t=2"]).tolist()
        ix.compact()
    # crash after the snapshot's rename, before the new log existed; an old log and a temp remain
    os.unlink(os.path.join(d, filenames.index_log(2)))
    with open(os.path.join(d, filenames.index_log(1)), "wb") as f:
        f.write(b"garbage from an older generation")
    with open(os.path.join(d, filenames.tmp(filenames.index_snapshot(3))), "wb") as f:
        f.write(b"half")
    with SeriesIndex(d) as ix:
        assert ix.ids_for_keys([b"m,t=1", b"m,t=2"], create=False).tolist() == ids
    assert sorted(os.listdir(d)) == [filenames.index_log(2), filenames.index_snapshot(2)]


def _log_path(d):
    return os.path.join(d, filenames.index_log(1))


def _three_records(d):
    with SeriesIndex(d) as ix:
        ix.ids_for_keys([b"m,t=1"])
        ix.ids_for_keys([b"m,t=2"])
        ix.ids_for_keys([b"m,t=3"])
    records, end = index_log.read_records(_log_path(d))
    assert len(records) == 3 and end == os.path.getsize(_log_path(d))
    return [off for off, _ in records]


@pytest.mark.parametrize("cut", [1, 5, 17, 20])
def test_torn_tail_is_truncated_and_appends_continue(d, cut):
    _three_records(d)
    size = os.path.getsize(_log_path(d))
    os.truncate(_log_path(d), size - cut)
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 2
        assert ix.ids_for_keys([b"m,t=3"], create=False).tolist() == [0]
        ix.ids_for_keys([b"m,t=4"])
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 3
        assert ix.ids_for_keys([b"m,t=4"], create=False)[0] != 0


def test_zero_filled_tail_is_a_torn_write(d):
    _three_records(d)
    with open(_log_path(d), "ab") as f:
        f.write(b"\0" * 100)
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 3
    assert os.path.getsize(_log_path(d)) < 100 + index_log.HEADER.size * 3 + 100


def test_bad_checksum_of_last_record_is_a_torn_write(d):
    offs = _three_records(d)
    with open(_log_path(d), "r+b") as f:
        f.seek(offs[2] + index_log.HEADER.size + 3)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))
    with SeriesIndex(d) as ix:
        assert ix.series_count() == 2


@pytest.mark.parametrize("where", ["payload", "length", "checksum"])
def test_flipped_bit_before_the_tail_is_corruption_naming_file_and_offset(d, where):
    offs = _three_records(d)
    at = {"payload": offs[1] + index_log.HEADER.size + 6, "length": offs[1], "checksum": offs[1] + 9}[where]
    with open(_log_path(d), "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x04]))
    with pytest.raises(CorruptionError) as e:
        SeriesIndex(d)
    assert e.value.path == _log_path(d) and e.value.offset == offs[1]


def test_bad_log_magic_is_corruption(d):
    _three_records(d)
    with open(_log_path(d), "r+b") as f:
        f.write(b"X")
    with pytest.raises(CorruptionError) as e:
        SeriesIndex(d)
    assert e.value.offset == 0


def test_damaged_snapshot_is_corruption(d):
    with SeriesIndex(d) as ix:
        ix.ids_for_keys([make_key(b"m", {b"t": str(i)}) for i in range(50)])
        ix.compact()
    snap = os.path.join(d, filenames.index_snapshot(2))
    data = bytearray(open(snap, "rb").read())
    data[len(data) // 2] ^= 1
    open(snap, "wb").write(bytes(data))
    with pytest.raises(CorruptionError) as e:
        SeriesIndex(d)
    assert e.value.path == snap and "checksum" in e.value.what


def test_snapshot_decoder_names_offsets_of_structural_damage(tmp_path):
    """A structurally wrong body with a valid checksum still fails with file and offset."""
    import struct

    import xxhash

    from chronosdb.storage.index import snapshot as snapfmt

    body = snapfmt.MAGIC + struct.pack("<QQ", 10**12, 0)  # claims a trillion series
    data = body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))
    with pytest.raises(CorruptionError) as e:
        snapfmt.decode("x.snap", data)
    assert e.value.path == "x.snap" and e.value.offset == len(snapfmt.MAGIC) + 16


def test_concurrent_creators_agree_on_ids(d):
    keys = [make_key(b"m", {b"t": str(i)}) for i in range(400)]
    results = []
    with SeriesIndex(d) as ix:
        def worker(seed):
            order = np.random.default_rng(seed).permutation(len(keys))
            got = {}
            for chunk in np.array_split(order, 20):
                ks = [keys[i] for i in chunk]
                got.update(zip(ks, ix.ids_for_keys(ks).tolist()))
            results.append(got)
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ix.series_count() == len(keys)
    assert all(r == results[0] for r in results)
    with SeriesIndex(d) as ix:
        assert dict(zip(keys, ix.ids_for_keys(keys, create=False).tolist())) == results[0]


def test_closed_index_refuses_writes(d):
    ix = SeriesIndex(d)
    ix.close()
    with pytest.raises(ValueError, match="closed"):
        ix.ids_for_keys([b"m,t=1"])


def test_fields_recorded_before_the_first_series_survive_compaction(d):
    with SeriesIndex(d) as ix:
        ix.add_fields(b"cpu", [(b"v", FieldType.STRING)])
        ix.compact()
        assert ix.measurements() == [] and ix.match(b"cpu", None) == BitMap64()
        ids = ix.ids_for_keys([b"cpu,h=a"])
    with SeriesIndex(d) as ix:
        assert ix.field_types(b"cpu") == {b"v": {FieldType.STRING}}
        assert ix.measurements() == [b"cpu"]
        assert ix.drop_measurement(b"cpu") == ids.tolist()
        ix.add_fields(b"gone", [(b"v", FieldType.FLOAT)])
        assert ix.drop_measurement(b"gone") == []
        assert ix.field_types(b"gone") == {} and ix.field_types(b"cpu") == {}
    with SeriesIndex(d) as ix:
        assert ix.field_types(b"gone") == {} and ix.field_types(b"cpu") == {}


def test_tag_key_disappears_with_its_last_series(d):
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys([b"cpu,h=a,r=1", b"cpu,h=b", b"cpu,h=c,z=2"]).tolist()
        ix.compact()  # z's posting is now frozen; r's is dropped from the log after reopen
        ix.drop_series([ids[2]])
        assert ix.tag_keys(b"cpu") == [b"h", b"r"]
    with SeriesIndex(d) as ix:
        ix.drop_series([ids[0]])
        assert ix.tag_keys(b"cpu") == [b"h"] and ix.tag_values(b"cpu", b"r") == []
        assert set(ix.match(b"cpu", TagEquals(b"r", b""))) == {ids[1]}
    with SeriesIndex(d) as ix:
        assert ix.tag_keys(b"cpu") == [b"h"]


def test_dropped_probed_key_is_gone_and_comes_back_with_a_fresh_probe(d, monkeypatch):
    monkeypatch.setattr(si_mod, "key_hash", lambda key: 100)
    with SeriesIndex(d) as ix:
        ids = ix.ids_for_keys([b"m,h=a", b"m,h=b", b"m,h=c"]).tolist()
        assert ids == [100, 101, 102]
        ix.drop_series([101])
        assert ix.ids_for_keys([b"m,h=b"], create=False).tolist() == [0]
        assert ix.key_of(101) is None
        assert ix.ids_for_keys([b"m,h=b"]).tolist() == [101]  # first free id after 100
        ix.drop_series([100, 101])
    with SeriesIndex(d) as ix:
        assert ix.ids_for_keys([b"m,h=a", b"m,h=b", b"m,h=c"], create=False).tolist() == [0, 0, 102]


def test_schema_follows_every_change_of_tag_keys_and_fields(d):
    """``schema`` is kept between calls: it must be rebuilt whenever a tag key or a field type
    comes or goes (the query layer trusts it instead of tag_keys / field_types)."""
    def want(ix, m):
        return (frozenset(k.decode() for k in ix.tag_keys(m)),
                {f.decode(): min(t) for f, t in ix.field_types(m).items()})

    with SeriesIndex(d) as ix:
        assert ix.schema(b"cpu") == (frozenset(), {})
        ids = ix.ids_for_keys([b"cpu,h=a"]).tolist()
        first = ix.schema(b"cpu")
        assert first == (frozenset({"h"}), {}) and ix.schema(b"cpu") is first  # kept
        ix.add_fields(b"cpu", [(b"v", FieldType.INTEGER)])
        assert ix.schema(b"cpu") == want(ix, b"cpu") == (frozenset({"h"}), {"v": FieldType.INTEGER})
        ix.add_fields(b"cpu", [(b"v", FieldType.FLOAT)])  # a second type: the lowest wins
        assert ix.schema(b"cpu")[1] == {"v": FieldType.FLOAT}
        ids += ix.ids_for_keys([b"cpu,h=b,r=1"]).tolist()  # a new tag key
        assert ix.schema(b"cpu") == want(ix, b"cpu") and "r" in ix.schema(b"cpu")[0]
        kept = ix.schema(b"cpu")
        ix.ids_for_keys([b"cpu,h=c,r=2"])                   # new values only: kept as is
        assert ix.schema(b"cpu") is kept
        ix.drop_series([ids[1]])                            # r still has h=c's series
        assert ix.schema(b"cpu") == want(ix, b"cpu") and "r" in ix.schema(b"cpu")[0]
        ix.drop_series(ix.ids_for_keys([b"cpu,h=c,r=2"], create=False))  # the last r: gone
        assert ix.schema(b"cpu") == want(ix, b"cpu") == (frozenset({"h"}), {"v": FieldType.FLOAT})
        ix.drop_measurement(b"cpu")
        assert ix.schema(b"cpu") == (frozenset(), {})
        ix.ids_for_keys([b"cpu,z=1"])
        ix.compact()
        assert ix.schema(b"cpu") == want(ix, b"cpu") == (frozenset({"z"}), {})
    with SeriesIndex(d) as ix:
        assert ix.schema(b"cpu") == (frozenset({"z"}), {})
