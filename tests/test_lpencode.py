"""chronosdb.ext.lpencode: encode -> the server's parser gives the batch back; Cython == Python twin.

Batches are seeded random with hostile names (unicode, escapes, spaces, commas, equals signs,
quotes, backslashes, tabs) and values at the edges of their types. A name line protocol cannot
carry must be refused by both implementations, with ValueError.
"""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from chronosdb.ext import lineproto, lpencode, lpencode_ref
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.model.strings import StringArray

HOSTILE = ["a", "b", "Z", "0", " ", ",", "=", '"', "\\", "é", "漢", "😀", "'", "#", "\t", "\r", "-", "."]
TIME_MIN = -(2**63) + 2
TIME_MAX = 2**63 - 2


def rand_name(rng: random.Random, hostile: bool = True, safe: bool = False) -> str:
    """A name; ``safe`` retries until line protocol can carry it in any place on a line."""
    alphabet = HOSTILE if hostile else ["a", "b", "c", "x", "y"]
    while True:
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        if not safe:
            return name
        try:
            lpencode_ref.wire_measurement(name.encode())
            lpencode_ref.wire_field_key(name.encode())
            return name
        except ValueError:
            continue


def rand_float(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.2:
        return rng.choice([0.0, -0.0, 1.0, -1.5, 0.1, 1e21, 1e-7, 1e-6, 123456789012345680.0,
                           5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 1e20, 0.3])
    if r < 0.5:
        return round(rng.uniform(-1000, 1000), rng.randint(0, 6))
    while True:  # any finite double, from random bits
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if np.isfinite(x):
            return x


def rand_value(rng: random.Random, ftype: FieldType):
    if ftype is FieldType.FLOAT:
        return rand_float(rng)
    if ftype is FieldType.INTEGER:
        return rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-(10**12), 10**12)])
    if ftype is FieldType.BOOLEAN:
        return rng.randint(0, 1)
    return "".join(rng.choice(HOSTILE + ["\n", "x y"]) for _ in range(rng.randint(0, 8)))


def rand_batch(rng: random.Random, hostile: bool = True) -> WriteBatch:
    """Mostly names line protocol can carry; one batch in five may hold one it cannot."""
    safe = rng.random() < 0.8
    keys = []
    for _ in range(rng.randint(1, 5)):
        tags = {rand_name(rng, hostile, safe): rand_name(rng, hostile, safe)
                for _ in range(rng.randint(0, 3))}
        try:
            k = make_key(rand_name(rng, hostile, safe), tags)
        except ValueError:
            continue
        if k not in keys:
            keys.append(k)
    if not keys:
        keys = [b"m"]
    points = []
    times = [rng.choice([TIME_MIN, TIME_MAX, 0, -1]) if rng.random() < 0.1
             else rng.randint(-(10**15), 10**15) for _ in range(4)]
    for _ in range(rng.randint(1, 4)):
        fname = rand_name(rng, hostile, safe)
        ftype = rng.choice(list(FieldType))
        for _ in range(rng.randint(1, 12)):
            points.append((rng.choice(keys), fname, ftype, rng.choice(times), rand_value(rng, ftype)))
    batch = WriteBatch.from_points(points)
    batch.keys = keys + [k for k in batch.keys if k not in keys]  # include keys without points
    # from_points interned keys in its own order: re-point the columns at our list.
    pos = {k: i for i, k in enumerate(batch.keys)}
    order = list(dict.fromkeys(p[0] for p in points))
    remap = np.array([pos[k] for k in order], dtype=np.int32)
    for c in batch.columns:
        c.series = remap[c.series]
    return batch


def value_id(ftype: FieldType, v):
    if ftype is FieldType.FLOAT:
        return struct.pack("<d", float(v))  # bit pattern: -0.0 differs from 0.0
    if ftype is FieldType.STRING:
        return bytes(v)
    return int(v)


def as_points(batch: WriteBatch) -> dict:
    """{(key, field, time): (type, value)} with the engine's rule: the later entry wins."""
    out = {}
    for c in batch.columns:
        vals = c.values.to_list() if isinstance(c.values, StringArray) else c.values
        for s, t, v in zip(c.series.tolist(), c.times.tolist(), vals):
            out[(batch.keys[s], c.name, t)] = (c.ftype, value_id(c.ftype, v))
    return out


def encodable(batch: WriteBatch) -> bool:
    try:
        lpencode_ref.batch_wire_parts(batch)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("seed", range(300))
def test_round_trip_and_twin_agree(seed):
    rng = random.Random(seed)
    batch = rand_batch(rng, hostile=seed % 4 != 0)
    if not encodable(batch):
        with pytest.raises(ValueError):
            lpencode.encode_batch(batch)
        return
    body = lpencode.encode_batch(batch)
    assert body == lpencode_ref.encode_batch(batch)
    parsed = lineproto.parse(body)
    assert parsed.errors == []
    assert as_points(parsed.batch) == as_points(batch)
    # One line per (series, time) of the batch.
    assert parsed.n_lines == len({(k, t) for (k, _, t) in as_points(batch)})


def test_most_random_batches_are_encodable():
    n = sum(encodable(rand_batch(random.Random(s))) for s in range(300))
    assert 150 < n < 300  # the round-trip test above must mostly exercise encoding, not refusals


@pytest.mark.parametrize("precision,unit", [("ns", 1), ("u", 1000), ("ms", 10**6), ("s", 10**9),
                                             ("m", 60 * 10**9), ("h", 3600 * 10**9)])
def test_precision(precision, unit):
    rng = random.Random(unit)
    batch = rand_batch(rng, hostile=False)
    for c in batch.columns:
        c.times = (c.times // unit) * unit
    body = lpencode.encode_batch(batch, precision)
    assert body == lpencode_ref.encode_batch(batch, precision)
    assert as_points(lineproto.parse(body, precision).batch) == as_points(batch)
    if unit > 1:
        batch.columns[0].times[0] += 1
        with pytest.raises(ValueError, match="not a whole number"):
            lpencode.encode_batch(batch, precision)
    with pytest.raises(ValueError, match="invalid precision"):
        lpencode.encode_batch(batch, "weeks")


def test_floats_shortest_round_trip_and_layout():
    rng = random.Random(7)
    xs = [rand_float(rng) for _ in range(3000)] + [1e21, 1e-7, 123e18, 1.5e-6, 2.0**-1074]
    col = FieldColumn(b"x", FieldType.FLOAT, np.zeros(len(xs)), np.arange(len(xs)), np.array(xs))
    batch = WriteBatch([b"m"], [col])
    body = lpencode.encode_batch(batch)
    assert body == lpencode_ref.encode_batch(batch)
    got = lineproto.parse(body).batch.columns[0].values
    assert got.view(np.int64).tolist() == np.array(xs).view(np.int64).tolist()
    # Spot checks of the layout, and that every value is as short as Python's repr.
    for x, text in [(1e21, b"1e21"), (1e20, b"100000000000000000000"), (1e-7, b"1e-7"),
                    (1.5e-6, b"0.0000015"), (0.1, b"0.1"), (-0.0, b"-0"), (0.0, b"0"),
                    (123.456, b"123.456"), (-2.5e300, b"-2.5e300"), (5e-324, b"5e-324")]:
        assert lpencode_ref.format_float(x) == text
        one = WriteBatch([b"m"], [FieldColumn(b"x", FieldType.FLOAT, [0], [1], [x])])
        assert lpencode.encode_batch(one) == b"m x=" + text + b" 1\n"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_floats_refused(bad):
    col = FieldColumn(b"x", FieldType.FLOAT, [0, 0], [1, 2], [1.0, bad])
    batch = WriteBatch([b"cpu,host=a"], [col])
    for enc in (lpencode.encode_batch, lpencode_ref.encode_batch):
        with pytest.raises(ValueError, match=r"field b'x' of series b'cpu,host=a' at time 2"):
            enc(batch)


@pytest.mark.parametrize("key,field", [
    (b"a\\\\,t=v", b"x"),       # measurement ends in a backslash
    (b"m,t=v\\\\", b"x"),       # tag value ends in a backslash
    (b"m,t=a\\\\\\,b", b"x"),   # tag value: backslash before a comma
    (b"m", b"x\\"),             # field key ends in a backslash
    (b"m", b"x\\=y"),           # field key: backslash before '='
    (b"#m", b"x"),              # comment line
    (b"\tm", b"x"),             # trimmed away
    (b"m,t=a\nb", b"x"),        # newline in a name
])
def test_unrepresentable_names_refused(key, field):
    batch = WriteBatch([key], [FieldColumn(field, FieldType.FLOAT, [0], [1], [1.0])])
    for enc in (lpencode.encode_batch, lpencode_ref.encode_batch):
        with pytest.raises(ValueError, match="newline|cannot be written"):
            enc(batch)


def test_backslash_runs_that_survive():
    # Even runs before specials and odd runs before ordinary bytes read back as written.
    names = ["a\\\\,b", "a\\b", "a\\\\", "\\\\ x", "x\\\\=\\y"]
    for n in names:
        key = make_key(n, {n: n})
        batch = WriteBatch([key], [FieldColumn(n.encode(), FieldType.INTEGER, [0], [5], [3])])
        parsed = lineproto.parse(lpencode.encode_batch(batch))
        assert parsed.errors == [] and as_points(parsed.batch) == as_points(batch), n


def test_empty_batch():
    assert lpencode.encode_batch(WriteBatch([b"m"], [])) == b""
    assert lpencode.encode_columns("m", None, np.zeros(0, np.int64), {"x": np.zeros(0)}) == b""


# ---------------------------------------------------------------------------------------------
# encode_columns
# ---------------------------------------------------------------------------------------------

def rand_columns(rng: random.Random, n: int):
    tags = {}
    for _ in range(rng.randint(0, 3)):
        k = rand_name(rng, hostile=False) + str(len(tags))
        if rng.random() < 0.5:
            tags[k] = rand_name(rng, hostile=False)
        else:
            tags[k] = np.array([rng.choice(["a", "b b", "c,=", "", "é"]) for _ in range(n)])
    fields = {
        "f": np.array([rand_float(rng) for _ in range(n)]),
        "i": np.array([rng.randint(-(2**63), 2**63 - 1) for _ in range(n)], dtype=np.int64),
        "b": np.array([rng.random() < 0.5 for _ in range(n)]),
        "s": np.array([rand_value(rng, FieldType.STRING) for _ in range(n)], dtype=object),
        "u": np.arange(n, dtype=np.uint32),
    }
    times = np.array([rng.randint(-(10**9), 10**9) for _ in range(n)], dtype=np.int64)  # seconds
    return tags, times, fields


@pytest.mark.parametrize("seed", range(40))
def test_columns_round_trip_and_twin_agree(seed):
    rng = random.Random(1000 + seed)
    n = rng.randint(1, 60)
    tags, times, fields = rand_columns(rng, n)
    body = lpencode.encode_columns("we ird,m", tags, times, fields, "s")
    assert body == lpencode_ref.encode_columns("we ird,m", tags, times, fields, "s")
    parsed = lineproto.parse(body, "s")
    assert parsed.errors == [] and parsed.n_lines == n
    # Row i is line i: every point, in row order, with its series made from the row's tags.
    for c in parsed.batch.columns:
        name = c.name.decode()
        assert c.times.tolist() == (times * 10**9).tolist()
        src = fields[name]
        if c.ftype is FieldType.FLOAT:
            assert c.values.view(np.int64).tolist() == src.view(np.int64).tolist()
        elif c.ftype is FieldType.STRING:
            assert c.values.to_list() == [s.encode() for s in src]
        else:
            assert c.values.tolist() == src.astype(np.int64).tolist()
    for i in range(n):
        row_tags = {k: (v if isinstance(v, str) else str(v[i])) for k, v in tags.items()}
        want = make_key("we ird,m", row_tags)
        assert parsed.batch.keys[parsed.batch.columns[0].series[i]] == want


def test_columns_nan_skipped_or_refused():
    times = np.array([1, 2, 3])
    fields = {"a": np.array([1.0, np.nan, np.nan]), "b": np.array([np.nan, 2.0, np.nan])}
    for enc in (lpencode.encode_columns, lpencode_ref.encode_columns):
        assert enc("m", {"h": "x"}, times, fields, skip_nan=True) == b"m,h=x a=1 1\nm,h=x b=2 2\n"
        with pytest.raises(ValueError, match=r"field b'b' at row 0 \(time 1\) is nan"):
            enc("m", {"h": "x"}, times, fields)
        with pytest.raises(ValueError, match="inf"):
            enc("m", None, times[:1], {"a": np.array([np.inf])}, skip_nan=True)


def test_columns_bad_input():
    t = np.arange(3)
    with pytest.raises(ValueError, match="field 'x' has 2 values for 3 times"):
        lpencode.encode_columns("m", None, t, {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="tag column 'h' has 2 values for 3 rows"):
        lpencode.encode_columns("m", {"h": np.array(["a", "b"])}, t, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="at least one field"):
        lpencode.encode_columns("m", None, t, {})
    with pytest.raises(ValueError, match="above 2\\*\\*63-1"):
        lpencode.encode_columns("m", None, t[:1], {"x": np.array([2**64 - 1], dtype=np.uint64)})
    with pytest.raises(TypeError, match="no line-protocol type"):
        lpencode.encode_columns("m", None, t, {"x": np.zeros(3, dtype="complex128")})


def test_duplicates_resolve_like_the_engine():
    # Same series+field+time: the later entry of a column wins, and across columns of one name
    # (a type change inside the batch) the later column. Columns sharing a name and type too.
    batch = WriteBatch([b"m", b"m,h=a"], [
        FieldColumn(b"x", FieldType.FLOAT, [0, 0, 1], [1, 1, 1], [1.0, 2.0, 3.0]),
        FieldColumn(b"x", FieldType.FLOAT, [0], [1], [4.0]),
        FieldColumn(b"x", FieldType.INTEGER, [0, 0], [2, 1], [5, 6]),
        FieldColumn(b"y", FieldType.BOOLEAN, [1], [1], [1]),
    ])
    want = b"m x=6i 1\nm x=5i 2\nm,h=a x=3,y=true 1\n"
    assert lpencode.encode_batch(batch) == lpencode_ref.encode_batch(batch) == want
