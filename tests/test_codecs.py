"""Column codecs: the Cython module against its plain-Python twin, edge values, corruption, size.

Every differential test encodes the same input with chronosdb.ext.codecs and codecs_ref, requires
the same bytes, and requires both decoders to give back the input bit for bit.
"""
import mmap
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronosdb.ext import codecs as cx
from chronosdb.ext import codecs_ref as ref

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def fbits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.uint64)


def nan_with_payload(payload: int, sign: int = 0) -> float:
    return struct.unpack("<d", struct.pack("<Q", (sign << 63) | (0x7FF << 52) | payload))[0]


# ---- differential helpers ----

def check_times(t):
    t = np.asarray(t, dtype=np.int64)
    enc = cx.encode_times(t)
    assert enc == ref.encode_times(t)
    assert cx.encoded_count(enc) == len(t) == ref.encoded_count(enc)
    np.testing.assert_array_equal(cx.decode_times(enc), t)
    np.testing.assert_array_equal(ref.decode_times(enc), t)
    return enc


def check_floats(v):
    v = np.asarray(v, dtype=np.float64)
    enc = cx.encode_floats(v)
    assert enc == ref.encode_floats(v)
    assert cx.encoded_count(enc) == len(v)
    np.testing.assert_array_equal(fbits(cx.decode_floats(enc)), fbits(v))
    np.testing.assert_array_equal(fbits(ref.decode_floats(enc)), fbits(v))
    return enc


def check_ints(v):
    v = np.asarray(v, dtype=np.int64)
    enc = cx.encode_ints(v)
    assert enc == ref.encode_ints(v)
    assert cx.encoded_count(enc) == len(v)
    np.testing.assert_array_equal(cx.decode_ints(enc), v)
    np.testing.assert_array_equal(ref.decode_ints(enc), v)
    return enc


def check_bools(v):
    v = np.asarray(v, dtype=np.uint8)
    enc = cx.encode_bools(v)
    assert enc == ref.encode_bools(v)
    np.testing.assert_array_equal(cx.decode_bools(enc), v)
    np.testing.assert_array_equal(ref.decode_bools(enc), v)
    return enc


def check_strings(values):
    raw = [bytes(x) for x in values]
    offsets = np.zeros(len(raw) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in raw]) if raw else []
    data = b"".join(raw)
    enc = cx.encode_strings(offsets, data)
    assert enc == ref.encode_strings(offsets, data)
    for off, d in (cx.decode_strings(enc), ref.decode_strings(enc)):
        np.testing.assert_array_equal(off, offsets)
        assert d == data
    return enc


# ---- strategies ----

SPECIAL_FLOATS = [
    0.0, -0.0, float("inf"), float("-inf"), float("nan"), nan_with_payload(1),
    nan_with_payload(0xDEADBEEF, 1), nan_with_payload((1 << 51) | 7), 5e-324, -5e-324,
    2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e-7, 123456.789,
]


@st.composite
def decimal_columns(draw):
    digits = draw(st.integers(0, 6))
    n = draw(st.integers(0, 200))
    mantissas = draw(st.lists(st.integers(-10**9, 10**9), min_size=n, max_size=n))
    walk = draw(st.booleans())
    if walk and mantissas:
        mantissas = list(np.cumsum(np.array(mantissas) // 1000))
    return [int(m) / 10**digits for m in mantissas]


float_columns = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), max_size=120),
    st.lists(st.sampled_from(SPECIAL_FLOATS), max_size=60),
    decimal_columns(),
    st.lists(st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(-1e6, 1e6).map(lambda x: round(x, 2))),
             max_size=80),
    st.builds(lambda x, n: [x] * n, st.floats(allow_nan=True), st.integers(0, 300)),
)

int_columns = st.one_of(
    st.lists(st.integers(I64_MIN, I64_MAX), max_size=120),
    st.lists(st.integers(-1000, 1000), max_size=400),
    st.lists(st.sampled_from([I64_MIN, I64_MAX, 0, -1, 1]), max_size=60),
    st.builds(lambda x, n: [x] * n, st.integers(I64_MIN, I64_MAX), st.integers(0, 300)),
    st.builds(lambda s, d, n: [(s + i * d + 2**63) % 2**64 - 2**63 for i in range(n)],
              st.integers(I64_MIN, I64_MAX), st.integers(I64_MIN, I64_MAX), st.integers(0, 50)),
    st.lists(st.integers(0, 1), max_size=1000),
)


@st.composite
def time_columns(draw):
    kind = draw(st.sampled_from(["fixed", "jitter", "gaps", "wild"]))
    n = draw(st.integers(0, 300))
    start = draw(st.integers(-(2**62), 2**62))
    if kind == "fixed":
        step = draw(st.integers(1, 10**12))
        deltas = [step] * n
    elif kind == "jitter":
        step = draw(st.integers(10**6, 10**10))
        deltas = [step + draw(st.integers(-(10**5), 10**5)) for _ in range(n)]
    elif kind == "gaps":
        deltas = draw(st.lists(st.sampled_from([10**9, 10**9, 10**9, 3600 * 10**9, 1]), min_size=n, max_size=n))
    else:
        deltas = draw(st.lists(st.integers(1, 2**40), min_size=n, max_size=n))
    times = [start]
    for d in deltas[1:]:
        if times[-1] + d > I64_MAX:
            break
        times.append(times[-1] + d)
    return times[:n]


# ---- differential properties ----

@SETTINGS
@given(time_columns())
def test_times_match_reference_and_roundtrip(times):
    check_times(times)


@SETTINGS
@given(float_columns)
def test_floats_match_reference_and_roundtrip_bit_exact(values):
    check_floats(values)


@SETTINGS
@given(int_columns)
def test_ints_match_reference_and_roundtrip(values):
    check_ints(values)


@SETTINGS
@given(st.lists(st.integers(0, 1), max_size=300))
def test_bools_match_reference_and_roundtrip(values):
    check_bools(values)


@SETTINGS
@given(st.one_of(st.lists(st.binary(max_size=40), max_size=60),
                 st.lists(st.sampled_from([b"host_1", b"host_22", b"", b"us-west-2"]), max_size=300)))
def test_strings_match_reference_and_roundtrip(values):
    check_strings(values)


@pytest.mark.parametrize("seed", range(6))
def test_seeded_large_columns_match_reference(seed):
    rng = np.random.default_rng(seed)
    n = 1000
    t = 1_600_000_000 * 10**9 + np.cumsum(rng.integers(1, 10**10, n))
    check_times(t)
    check_times(1_600_000_000 * 10**9 + np.arange(n) * 10**10 + rng.integers(0, 1000, n))
    check_floats(np.clip(50 + np.cumsum(rng.normal(size=n)), 0, 100).round(2))
    check_floats(rng.normal(size=n))
    check_floats(np.round(rng.normal(size=n) * 1000, seed % 7))
    check_ints(rng.integers(-(2**40), 2**40, n))
    check_ints(np.cumsum(rng.integers(0, 5, n)))
    check_bools(rng.integers(0, 2, n))


# ---- the encodings chosen ----

def test_fixed_interval_times_are_constant_size():
    small = check_times(np.arange(3, dtype=np.int64) * 10**10 + 1_600_000_000 * 10**9)
    big = check_times(np.arange(1000, dtype=np.int64) * 10**10 + 1_600_000_000 * 10**9)
    assert cx.encoding_of(big) == cx.TYPE_TIMES_RLE
    assert len(small) == len(big) - 1  # only the count varint grows (1 -> 2 bytes)
    assert len(big) <= 20


def test_empty_and_single_values_roundtrip():
    for check in (check_times, check_floats, check_ints, check_bools):
        check([])
        check([1])
    check_strings([])
    check_strings([b"x"])
    check_floats([float("nan")])
    check_times([I64_MIN])
    check_times([I64_MIN, I64_MAX])
    check_ints([I64_MAX])


def test_special_floats_roundtrip_bit_exact():
    check_floats(SPECIAL_FLOATS)
    check_floats([nan_with_payload(p, s) for p in (1, 2, 0xABCDEF, (1 << 52) - 1) for s in (0, 1)])
    check_floats([-0.0] * 10)
    enc = check_floats([0.0, -0.0, 1.5])
    assert cx.encoding_of(enc) != cx.TYPE_FLOAT_DECIMAL_RICE  # -0.0 never takes the decimal path


@pytest.mark.parametrize("digits", range(7))
def test_decimal_columns_use_the_decimal_codec(digits):
    rng = np.random.default_rng(digits)
    v = np.round(rng.uniform(-1000, 1000, 500), digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    enc = check_floats(v)
    assert cx.ENCODING_NAMES[cx.encoding_of(enc)].startswith("float-decimal")
    assert enc[1 + len(ref.uvarint(500))] <= digits  # the scale byte


def test_int_extremes_and_huge_jumps():
    check_ints([I64_MIN, I64_MAX, I64_MIN, 0, I64_MAX, -1])
    check_ints([0, 2**62, -(2**62), 5, 5, 5])
    check_times([I64_MIN, 0, I64_MAX])
    check_times([0, 1, 2**62, 2**62 + 1, 2**62 + 3])
    check_floats([0.0, 1e300, -1e300, 1e-300, 3.0])


def test_constant_columns_are_tiny():
    assert len(check_ints([7] * 1000)) <= 8
    assert cx.encoding_of(check_ints(np.arange(1000) * 3)) == cx.TYPE_INT_RLE
    assert len(check_floats([42.5] * 1000)) <= 12
    assert len(check_floats([float("nan")] * 1000)) <= 16 + 1000 // 8


def test_small_ints_use_simple8b_or_packing():
    zeros_then_spikes = [0] * 500 + [1, 0] * 10 + [0] * 400
    enc = check_ints(np.cumsum(zeros_then_spikes))
    assert cx.encoding_of(enc) == cx.TYPE_INT_SIMPLE8B
    assert cx.encoding_of(check_ints(np.random.default_rng(0).integers(0, 8, 1000))) == cx.TYPE_INT_PACKED


def test_random_floats_fall_back_to_plain():
    enc = check_floats(np.random.default_rng(1).normal(size=100))
    assert cx.encoding_of(enc) == cx.TYPE_FLOAT_PLAIN
    assert len(enc) == 2 + 800


def test_repetitive_strings_are_lz4_compressed():
    enc = check_strings([b"us-west-%d" % (i % 3) for i in range(500)])
    assert cx.encoding_of(enc) == cx.TYPE_STRING_LZ4
    assert len(enc) < 500


# ---- the size target (TSBS devops cpu: clamped N(0,1) random walk, 2 decimals, 1000 points) ----

def tsbs_cpu_column(rng, n=1000):
    out = np.empty(n)
    x = rng.uniform(0, 100)
    steps = rng.normal(size=n)
    for i in range(n):
        x = min(100.0, max(0.0, x + steps[i]))
        out[i] = x
    return np.round(out, 2)


def test_tsbs_like_float_column_is_at_most_9_bits_per_value():
    rng = np.random.default_rng(2024)
    total = 0
    for _ in range(10):
        enc = cx.encode_floats(tsbs_cpu_column(rng))
        assert cx.encoding_of(enc) in (cx.TYPE_FLOAT_DECIMAL_RICE, cx.TYPE_FLOAT_DECIMAL_PACKED)
        total += len(enc)
    assert total * 8 / 10_000 <= 9.0


# ---- bad input ----

def test_unsorted_or_duplicate_times_name_the_index():
    with pytest.raises(ValueError, match="index 2"):
        cx.encode_times([1, 2, 2, 3])
    with pytest.raises(ValueError, match="index 3"):
        cx.encode_times([1, 5, 9, 4])
    with pytest.raises(ValueError, match="index 2"):
        ref.encode_times([1, 2, 2, 3])


def test_bools_other_than_0_1_are_rejected():
    with pytest.raises(ValueError, match="index 2"):
        cx.encode_bools(np.array([0, 1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="index 1"):
        cx.encode_bools([0, -1])
    with pytest.raises(ValueError):
        ref.encode_bools([0, 3])


def test_bad_string_offsets_are_rejected():
    with pytest.raises(ValueError):
        cx.encode_strings(np.array([0, 2, 1], dtype=np.int64), b"ab")
    with pytest.raises(ValueError):
        cx.encode_strings(np.array([0, 3], dtype=np.int64), b"ab")
    with pytest.raises(ValueError):
        cx.encode_strings(np.array([1, 2], dtype=np.int64), b"ab")


def test_decoders_reject_other_families_and_garbage_headers():
    enc = cx.encode_floats([1.5, 2.5])
    with pytest.raises(ValueError, match="not a times encoding"):
        cx.decode_times(enc)
    with pytest.raises(ValueError, match="empty buffer"):
        cx.decode_floats(b"")
    with pytest.raises(ValueError, match="unknown encoding type"):
        cx.encoded_count(b"\xff\x01")
    with pytest.raises(ValueError, match="exceeds the limit"):
        cx.decode_ints(b"\x21" + ref.uvarint(1 << 30) + b"\x00\x00")
    with pytest.raises(ValueError, match="trailing"):
        cx.decode_floats(enc + b"\x00")


def _sample_columns():
    rng = np.random.default_rng(7)
    return [
        (cx.decode_times, cx.encode_times(np.arange(50) * 10 + 3)),
        (cx.decode_times, cx.encode_times(np.cumsum(rng.integers(1, 1000, 60)))),
        (cx.decode_times, cx.encode_times(np.cumsum(rng.integers(1, 2**50, 20)))),
        (cx.decode_floats, cx.encode_floats(np.round(rng.normal(size=60) * 100, 2))),
        (cx.decode_floats, cx.encode_floats(np.repeat(rng.normal(size=6), 10))),
        (cx.decode_floats, cx.encode_floats(rng.normal(size=10))),
        (cx.decode_ints, cx.encode_ints(rng.integers(-100, 100, 60))),
        (cx.decode_ints, cx.encode_ints(np.cumsum([0] * 300 + [1] * 5))),
        (cx.decode_ints, cx.encode_ints([3] * 9)),
        (cx.decode_ints, cx.encode_ints(rng.integers(I64_MIN, I64_MAX, 10))),
        (cx.decode_bools, cx.encode_bools(rng.integers(0, 2, 30))),
        (cx.decode_strings, cx.encode_strings(*_strings([b"ab%d" % (i % 4) for i in range(60)]))),
        (cx.decode_strings, cx.encode_strings(*_strings([b"x", b"yz"]))),
    ]


def _strings(values):
    off = np.zeros(len(values) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(v) for v in values])
    return off, b"".join(values)


def test_every_truncated_prefix_raises_value_error():
    for decode, enc in _sample_columns():
        for cut in range(len(enc)):
            with pytest.raises(ValueError):
                decode(enc[:cut])


def test_random_byte_flips_never_crash():
    rng = np.random.default_rng(11)
    twins = {cx.decode_times: ref.decode_times, cx.decode_floats: ref.decode_floats,
             cx.decode_ints: ref.decode_ints, cx.decode_bools: ref.decode_bools}
    for decode, enc in _sample_columns():
        for _ in range(150):
            bad = bytearray(enc)
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(bad)))
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            try:
                got = decode(bytes(bad))
            except ValueError:
                got = None
            # The twin must agree on what garbage means: the same error or the same values.
            if decode in twins and cx.encoded_count(enc) <= 300:
                try:
                    want = twins[decode](bytes(bad))
                except ValueError:
                    want = None
                if got is None or want is None:
                    assert got is None and want is None
                else:
                    np.testing.assert_array_equal(np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8))


def test_decoders_accept_any_contiguous_buffer(tmp_path):
    v = np.round(np.linspace(0, 10, 77), 1)
    enc = cx.encode_floats(v)
    path = tmp_path / "col"
    path.write_bytes(b"pad" + enc)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)[3:]
        for buf in (enc, bytearray(enc), memoryview(enc), np.frombuffer(enc, dtype=np.uint8), view):
            np.testing.assert_array_equal(cx.decode_floats(buf), v)
            assert cx.encoded_count(buf) == 77
        del buf, view


def test_encoding_names_cover_every_type():
    seen = set()
    for _, enc in _sample_columns():
        seen.add(cx.encoding_of(enc))
        assert cx.ENCODING_NAMES[cx.encoding_of(enc)] == ref.ENCODING_NAMES[ref.encoding_of(enc)]
    assert cx.ENCODING_NAMES == ref.ENCODING_NAMES
    assert len(seen) >= 8
