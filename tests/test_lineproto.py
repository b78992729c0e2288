"""The line-protocol parser (chronosdb.ext.lineproto) against its twin and the InfluxDB reference.

Differential: hypothesis-built bodies (every escape, every type, valid and invalid lines mixed),
byte soups over the characters the grammar turns on, and seeded mutations of valid bodies go
through both the Cython parser and chronosdb.ext.lineproto_ref; the two ParseResults must be
identical (keys, columns, arrays bit for bit, error tuples). Conformance: hand-written cases from
the InfluxDB 1.x line protocol reference pin the behaviour the server relies on.
"""
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronosdb.ext import lineproto, lineproto_ref
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key, parse_key
from chronosdb.model.strings import StringArray

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def snapshot(res):
    """Everything a ParseResult says, as plain comparable values (floats as their bits)."""
    cols = []
    for c in res.batch.columns:
        if isinstance(c.values, StringArray):
            vals = ("str", c.values.offsets.tolist(), c.values.data)
        elif c.values.dtype == np.float64:
            vals = ("f64", c.values.view(np.int64).tolist())
        else:
            vals = (str(c.values.dtype), c.values.tolist())
        assert c.series.dtype == np.int32 and c.times.dtype == np.int64
        cols.append((c.name, int(c.ftype), c.series.tolist(), c.times.tolist(), vals))
    return res.batch.keys, cols, res.n_lines, res.errors


def both(body, precision="ns", default_time=0):
    fast = lineproto.parse(body, precision, default_time)
    ref = lineproto_ref.parse(body, precision, default_time)
    assert snapshot(fast) == snapshot(ref), body
    fast.batch.validate()
    return fast


def points(res):
    """(key, field, ftype, time, value) per point, in column order."""
    out = []
    for c in res.batch.columns:
        vals = c.values.to_list() if isinstance(c.values, StringArray) else c.values.tolist()
        for s, t, v in zip(c.series.tolist(), c.times.tolist(), vals):
            out.append((res.batch.keys[s], c.name, c.ftype, t, v))
    return out


def one(line, **kw):
    """The single point/field of a one-line body, or the error reason."""
    res = both(line, **kw)
    if res.errors:
        assert len(res.errors) == 1 and res.n_lines == 0
        return res.errors[0][2]
    return points(res)


def reason(line, **kw):
    res = both(line, **kw)
    assert res.n_lines == 0 and len(res.errors) == 1, res.errors
    return res.errors[0][2]


# ---------------------------------------------------------------------------------------------
# hypothesis strategies
# ---------------------------------------------------------------------------------------------

NAME_CHARS = "ab_Z09,= \\\"#.-\té"
names = st.text(alphabet=NAME_CHARS, min_size=0, max_size=6)


def esc(s: str, specials: str, p_raw: bool) -> str:
    if p_raw:  # sometimes leave specials unescaped: makes invalid (or differently split) lines
        return s
    return "".join("\\" + ch if ch in specials else ch for ch in s)


GOOD_BOOLS = ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
BAD_VALUES = ["tru", "yes", "fALSE", "1u", "NaN", "-inf", "+1", "1.2.3", "1i2", "-", ".", "0x10",
              "1_0", '"unclosed', '"a"b', "", '"x\\"', "e5", "1e", "1e+"]


@st.composite
def field_values(draw, good):
    kind = draw(st.integers(0, 9 if good else 11))
    if kind == 0:
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == 1:
        mant = draw(st.from_regex(r"-?([0-9]{1,25}(\.[0-9]{0,25})?|\.[0-9]{1,25})", fullmatch=True))
        exps = ["", "e5", "E-3", "e+300", "e-330", "e-400", "e22", "e-22", "e23"]
        return mant + draw(st.sampled_from(exps + ([] if good else ["e309", "e999"])))
    if kind == 2:
        lo, hi = (I64_MIN, I64_MAX) if good else (I64_MIN - 3, I64_MAX + 3)
        return f"{draw(st.integers(lo, hi))}i"
    if kind == 3:
        return draw(st.sampled_from(GOOD_BOOLS))
    if kind in (4, 5, 6):
        s = draw(st.text(alphabet='ab ,="\\\né\n', max_size=8))
        if good or draw(st.booleans()):
            s = s.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if kind in (7, 8, 9):
        return str(draw(st.integers(-10**6, 10**6)))
    return draw(st.sampled_from(BAD_VALUES))


@st.composite
def lines(draw):
    good = draw(st.integers(0, 9)) < 7      # most lines are valid, the rest anything goes
    nm = st.text(alphabet=NAME_CHARS, min_size=1 if good else 0, max_size=6)
    if good:  # a literal backslash before an escapable byte or at the end has no spelling
        nm = nm.map(lambda s: s.replace("\\", "\\b"))
    raw = not good and draw(st.booleans())
    meas = esc(draw(nm), ", ", raw) or "m"
    if good and meas[0] in " #\t":
        meas = "m" + meas
    tags = draw(st.lists(st.tuples(nm, nm), max_size=5, unique_by=lambda kv: kv[0] if good else None))
    if not good and tags and draw(st.booleans()):
        tags.append(tags[0])  # a duplicate tag key
    key = meas + "".join(f",{esc(k, ',= ', raw)}={esc(v, ',= ', raw)}" for k, v in tags)
    nf = draw(st.integers(1 if good else 0, 20))
    fkeys = draw(st.lists(st.sampled_from(["f", "g", "v a", "x=y", "c,d", "h\\", "é"]),
                          min_size=nf, max_size=nf))
    if good:
        fkeys = [k.replace("\\", "\\b") for k in fkeys]
    fields = ",".join(f"{esc(k, ',= ', raw)}={draw(field_values(good))}" for k in fkeys)
    good_ts = ["", " 0", " 1451606400000000000", " -5", " 3  ", " \t7", " -9223372036854775806",
               " 99999999999"]
    bad_ts = [" 9223372036854775807", " 9223372036854775808", " 12a", " 1 2", "\t7"]
    ts = draw(st.sampled_from(good_ts + ([] if good else bad_ts)))
    lead = draw(st.sampled_from(["", " ", "\t "]))
    sep = draw(st.sampled_from([" ", "  ", " \t"]))
    return f"{lead}{key}{sep}{fields}{ts}"


@st.composite
def bodies(draw):
    parts = draw(st.lists(st.one_of(lines(), st.sampled_from(["", "# comment \"x", "   ", "\r"])),
                          max_size=8))
    ends = [draw(st.sampled_from(["\n", "\r\n", "\n\n"])) for _ in parts]
    body = "".join(p + e for p, e in zip(parts, ends))
    if draw(st.booleans()):
        body = body.rstrip("\n")
    return body.encode()


SOUP = b'ab,= "\\\n\r\t#.-019eEitfTFu\xc3\xa9\xff'
soups = st.lists(st.sampled_from([bytes([c]) for c in SOUP]), max_size=80).map(b"".join)


# ---------------------------------------------------------------------------------------------
# differential
# ---------------------------------------------------------------------------------------------

@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.sampled_from(["ns", "u", "ms", "s", "m", "h"]),
       st.integers(I64_MIN, I64_MAX))
def test_differential_generated_bodies(body, precision, default_time):
    both(body, precision, default_time)


@settings(max_examples=1000, deadline=None)
@given(soups)
def test_differential_byte_soup(body):
    both(body)


def test_differential_mutated_bodies():
    rng = np.random.default_rng(20240501)
    base = (
        b'cpu,host=a,region=eu\\ west usage=1.5,idle=2i,ok=t,msg="hi \\"x\\", y=1" 1000\n'
        b"cpu,region=b,host=a usage=0.25,n=-3i 2000\r\n"
        b"# comment\n\n"
        b'web\\,x,z\\=1=q\\ r s="multi\nline",t=FALSE\n'
        b"disk,path=/var free=1e3,used=.5 3\n"
    )
    for _ in range(1500):
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 6))):
            op = int(rng.integers(0, 4))
            pos = int(rng.integers(0, len(b) + 1))
            if op == 0 and pos < len(b):
                b[pos] = int(rng.choice(list(SOUP)))          # flip to a syntax byte
            elif op == 1 and pos < len(b):
                b[pos] = int(rng.integers(0, 256))            # flip to any byte
            elif op == 2:
                b.insert(pos, int(rng.choice(list(SOUP))))    # insert
            else:
                del b[pos:]                                   # truncate
        both(bytes(b), str(rng.choice(["ns", "s"])), int(rng.integers(-10**9, 10**9)))


def test_differential_floats_exact():
    """Decimal spellings of every shape parse to the same double as Python's float()."""
    rng = np.random.default_rng(7)
    toks = []
    for _ in range(3000):
        d = rng.standard_normal() * 10.0 ** int(rng.integers(-320, 309))
        toks.append(repr(float(d)))
        digits = "".join(map(str, rng.integers(0, 10, size=int(rng.integers(1, 30)))))
        cut = int(rng.integers(0, len(digits) + 1))
        toks.append(f"{digits[:cut]}.{digits[cut:]}e{int(rng.integers(-340, 320))}")
        toks.append(f"{rng.integers(0, 10**6)}.{rng.integers(0, 100):02d}")
    toks += ["0", "-0", "-0.0", "1.", ".5", "9007199254740993", "2.2250738585072011e-308",
             "4.9e-324", "2.4e-324", "1.7976931348623157e308", "123456789012345678901234567890"]
    toks = [t for t in toks if math.isfinite(float(t))]   # overflow is an error, tested apart
    body = "".join(f"m v={t} {i}\n" for i, t in enumerate(toks)).encode()
    res = both(body)
    assert res.n_lines == len(toks)
    got = res.batch.columns[0].values
    want = np.array([float(t) for t in toks])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_differential_many_fields_and_tags():
    # more than 16 fields (the hashed duplicate check) and unsorted tags with escapes
    fields = ",".join(f"f{i % 23}={i}i" for i in range(60))
    tags = ",".join(f"t\\ {k}=v\\,{k}" for k in range(30, 0, -1))
    body = f"m,{tags} {fields} 5\nm,{tags} {fields}\n".encode()
    res = both(body, default_time=9)
    assert res.n_lines == 2 and len(res.batch.keys) == 1
    byname = {c.name: c.values.tolist() for c in res.batch.columns}
    assert byname[b"f0"] == [46, 46]       # the last of f0 = 0, 23, 46 wins
    assert len(byname) == 23


# ---------------------------------------------------------------------------------------------
# conformance
# ---------------------------------------------------------------------------------------------

def test_reference_escaping_example():
    line = (b'"measurement\\ with\\ quotes",tag\\ key\\ with\\ spaces=tag\\,value\\,with"commas" '
            b'field_key\\\\\\\\="string field value, only \\" need be escaped" 10')
    res = both(line)
    assert res.batch.keys == [make_key('"measurement with quotes"',
                                       {"tag key with spaces": 'tag,value,with"commas"'})]
    (col,) = res.batch.columns
    assert col.name == b"field_key\\\\\\\\"   # a backslash pair that is not an escape stays
    assert col.values.to_list() == [b'string field value, only " need be escaped']


@pytest.mark.parametrize("line,meas,tags", [
    (b"my\\ meas,t=1 f=1", b"my meas", [(b"t", b"1")]),
    (b"my\\,meas f=1", b"my,meas", []),
    (b"m\\=x f=1", b"m\\=x", []),                      # '=' is not escapable in a measurement
    (b"m,k\\=k=v\\=v f=1", b"m", [(b"k=k", b"v=v")]),
    (b"m,k\\ k=v\\ v f=1", b"m", [(b"k k", b"v v")]),
    (b"m,k=a\\b f=1", b"m", [(b"k", b"a\\b")]),        # other backslashes are literal
    (b"m,k=a\\\\b f=1", b"m", [(b"k", b"a\\\\b")]),
    (b'm,k="q" f=1', b"m", [(b"k", b'"q"')]),
    (b"caf\xc3\xa9,r\xc3\xa9gion=\xc3\xa9t\xc3\xa9 f=1", "café".encode(), [("région".encode(), "été".encode())]),
])
def test_key_escapes(line, meas, tags):
    res = both(line)
    (key,) = res.batch.keys
    assert key == make_key(meas, tags)
    assert parse_key(key) == (meas, tags)


def test_tags_sorted_into_canonical_key():
    res = both(b"cpu,zone=z,host=h\\ 1,app=a v=1 1\ncpu,app=a,host=h\\ 1,zone=z v=2 2\n")
    assert res.batch.keys == [make_key("cpu", {"zone": "z", "host": "h 1", "app": "a"})]
    assert res.batch.keys == [b"cpu,app=a,host=h\\ 1,zone=z"]
    assert res.batch.columns[0].series.tolist() == [0, 0]


def test_series_and_columns_first_seen_order():
    res = both(b"a,t=1 x=1,y=2i 1\nb y=3i 2\na,t=1 x=4,z=t 3\nbad\nc x=\"s\" 4\n")
    assert res.batch.keys == [b"a,t=1", b"b", b"c"]
    assert [(c.name, c.ftype) for c in res.batch.columns] == [
        (b"x", FieldType.FLOAT), (b"y", FieldType.INTEGER), (b"z", FieldType.BOOLEAN),
        (b"x", FieldType.STRING)]
    x = res.batch.columns[0]
    assert x.series.tolist() == [0, 0] and x.times.tolist() == [1, 3] and x.values.tolist() == [1.0, 4.0]
    assert res.n_lines == 4 and res.errors == [(4, b"bad", "missing fields")]


@pytest.mark.parametrize("tok,ftype,value", [
    ("1", FieldType.FLOAT, 1.0), ("1.0", FieldType.FLOAT, 1.0), ("-1.5e-3", FieldType.FLOAT, -1.5e-3),
    (".5", FieldType.FLOAT, 0.5), ("1.", FieldType.FLOAT, 1.0), ("1E+2", FieldType.FLOAT, 100.0),
    ("-0", FieldType.FLOAT, -0.0), ("58.13", FieldType.FLOAT, 58.13),
    ("1i", FieldType.INTEGER, 1), ("-42i", FieldType.INTEGER, -42),
    ("9223372036854775807i", FieldType.INTEGER, I64_MAX),
    ("-9223372036854775808i", FieldType.INTEGER, I64_MIN),
    ("t", FieldType.BOOLEAN, 1), ("T", FieldType.BOOLEAN, 1), ("true", FieldType.BOOLEAN, 1),
    ("True", FieldType.BOOLEAN, 1), ("TRUE", FieldType.BOOLEAN, 1), ("f", FieldType.BOOLEAN, 0),
    ("F", FieldType.BOOLEAN, 0), ("false", FieldType.BOOLEAN, 0), ("False", FieldType.BOOLEAN, 0),
    ("FALSE", FieldType.BOOLEAN, 0),
    ('"a b,c=d"', FieldType.STRING, b"a b,c=d"), ('""', FieldType.STRING, b""),
    ('"q\\"q"', FieldType.STRING, b'q"q'), ('"b\\\\s"', FieldType.STRING, b"b\\s"),
    ('"b\\n"', FieldType.STRING, b"b\\n"), ('"x\ny"', FieldType.STRING, b"x\ny"),
])
def test_field_types(tok, ftype, value):
    [(key, name, got_type, t, v)] = one(f"m v={tok} 7".encode())
    assert (key, name, got_type, t) == (b"m", b"v", ftype, 7)
    if ftype is FieldType.FLOAT:
        assert struct.pack("<d", v) == struct.pack("<d", value)
    else:
        assert v == value


@pytest.mark.parametrize("line,why", [
    (b",t=1 f=1", "missing measurement"),
    (b"m", "missing fields"),
    (b"m,t=1", "missing fields"),
    (b"m,t=1 ", "missing fields"),            # trailing space trimmed
    (b"m,=1 f=1", "missing tag key"),
    (b"m, f=1", "missing tag key"),
    (b"m,t f=1", "missing tag value"),
    (b"m,t= f=1", "missing tag value"),
    (b"m,t=,u=1 f=1", "missing tag value"),
    (b"m,t=a=b f=1", "invalid tag format"),
    (b"m,t=1,t=2 f=1", "duplicate tags"),
    (b"m,u=1,t=2,u=3 f=1", "duplicate tags"),
    (b"m =1", "missing field key"),
    (b"m f=1,=2", "missing field key"),
    (b"m f=", "missing field value"),
    (b"m f=,g=1", "missing field value"),
    (b"m f", "invalid field format"),
    (b"m f=1,g", "invalid field format"),
    (b"m f=1,", "invalid field format"),
    (b'm f="a"b', "invalid field format"),
    (b'm f="abc', "unbalanced quotes"),
    (b"m f=1.2.3", "invalid number"),
    (b"m f=1i2", "invalid number"),
    (b"m f=1.5i", "invalid number"),
    (b"m f=-", "invalid number"),
    (b"m f=1u", "invalid number"),
    (b"m f=1e", "invalid number"),
    (b"m f=NaN", "invalid boolean"),
    (b"m f=-nan", "invalid number"),
    (b"m f=1e309", "invalid float"),
    (b"m f=-1e309", "invalid float"),
    (b"m f=yes", "invalid boolean"),
    (b"m f=tru", "invalid boolean"),
    (b"m f=+1", "invalid boolean"),
    (b"m f=9223372036854775808i", "unable to parse integer 9223372036854775808: value out of range"),
    (b"m f=-9223372036854775809i", "unable to parse integer -9223372036854775809: value out of range"),
    (b"m f=1 12a", "bad timestamp"),
    (b"m f=1 1.5", "bad timestamp"),
    (b"m f=1 9223372036854775808", "bad timestamp"),
    (b"m f=1 -", "bad timestamp"),
    (b"m f=1 1 2", "point is invalid"),
    (b"m f=1 9223372036854775807", lineproto_ref.R_TIME_RANGE),
    (b"m f=1 -9223372036854775807", lineproto_ref.R_TIME_RANGE),
    (b"m,t=\xff f=1", "invalid UTF-8"),
    (b"m f=\"\xed\xa0\x80\"", "invalid UTF-8"),          # a surrogate
    (b"m\xc0\xaf f=1", "invalid UTF-8"),                  # an overlong '/'
])
def test_error_reasons(line, why):
    assert reason(line) == why


def test_time_range_reason_names_influx_bounds():
    assert lineproto_ref.R_TIME_RANGE == (
        "time outside range -9223372036854775806 - 9223372036854775806")


def test_max_key_length():
    long_value = "v" * 65520                      # key "m,t=vvv..." is 65524 bytes
    assert one(f"m,t={long_value} abcd=1".encode())[0][1] == b"abcd"   # 65524 + 4 + 4 < 65535
    why = reason(f"m,t={long_value} field_name_xyz=1".encode())
    assert why == f"max key length exceeded: {65524 + 4 + 14} > 65535"


def test_int64_and_time_extremes():
    assert one(b"m f=1i -9223372036854775806")[0][3] == I64_MIN + 2
    assert one(b"m f=1i 9223372036854775806")[0][3] == I64_MAX - 1
    assert one(b"m f=1i 9223372036", precision="s")[0][3] == 9223372036 * 10**9
    assert reason(b"m f=1i 9223372037", precision="s") == lineproto_ref.R_TIME_RANGE
    assert reason(b"m f=1i 2562048", precision="h") == lineproto_ref.R_TIME_RANGE


@pytest.mark.parametrize("precision,mult", [
    ("ns", 1), ("", 1), ("n", 1), ("u", 10**3), ("us", 10**3), ("µ", 10**3), ("ms", 10**6),
    ("s", 10**9), ("m", 60 * 10**9), ("h", 3600 * 10**9),
])
def test_precisions(precision, mult):
    res = both(b"m f=1 3\nm f=2 -2\n", precision)
    assert res.batch.columns[0].times.tolist() == [3 * mult, -2 * mult]


@pytest.mark.parametrize("bad", ["x", "sec", "MS", "N", None, 5])
def test_invalid_precision(bad):
    with pytest.raises(ValueError, match="invalid precision"):
        lineproto.parse(b"m f=1", bad)
    with pytest.raises(ValueError, match="invalid precision"):
        lineproto_ref.parse(b"m f=1", bad)


def test_missing_timestamp_gets_default_time_unscaled():
    res = both(b"m f=1\nm f=2 5\nm f=3   \n", "s", default_time=1_700_000_000_123_456_789)
    assert res.batch.columns[0].times.tolist() == [1_700_000_000_123_456_789, 5 * 10**9,
                                                   1_700_000_000_123_456_789]


def test_default_time_must_fit_int64():
    with pytest.raises(ValueError):
        lineproto.parse(b"m f=1", default_time=2**63)


def test_comments_blank_lines_crlf_whitespace():
    # A tab may follow a separating space, but a tab alone does not end a field value.
    assert reason(b"m f=3\t3") == "invalid number"
    body = (b"# a comment with \"quote and = sign\r\n"
            b"\r\n"
            b"   \t\n"
            b"  \tm,t=1 f=1 1 \t\r\n"
            b"\t# indented comment\n"
            b"m,t=1 f=2 2\r\n"
            b"m,t=1  \t f=3 \t3  \n")
    res = both(body)
    assert res.errors == [] and res.n_lines == 3
    assert res.batch.columns[0].values.tolist() == [1.0, 2.0, 3.0]


def test_duplicate_field_keys_last_wins():
    res = both(b"m a=1,b=2,a=3 1\nm a=1,a=\"s\" 2\n")
    assert points(res) == [(b"m", b"b", FieldType.FLOAT, 1, 2.0), (b"m", b"a", FieldType.FLOAT, 1, 3.0),
                           (b"m", b"a", FieldType.STRING, 2, b"s")]


def test_bad_lines_do_not_stop_the_parse_and_name_their_line():
    body = b'ok f=1 1\nbad\nok f="two\nlines" 2\nm f=1 x\n\nok f=3 3\nm f="never closed\nok f=4 4'
    res = both(body)
    assert res.n_lines == 4
    assert res.errors == [(2, b"bad", "missing fields"), (5, b"m f=1 x", "bad timestamp"),
                          (8, b'm f="never closed', "unbalanced quotes")]
    assert sorted(p[3] for p in points(res)) == [1, 2, 3, 4]


def test_error_line_bytes_capped_at_1kib():
    line = b"m f=" + b"x" * 5000
    (lineno, raw, why) = both(line).errors[0]
    assert (lineno, raw, why) == (1, line[:1024], "invalid boolean")


def test_body_types():
    body = b"m,t=1 f=1i 1\n"
    want = snapshot(lineproto.parse(body))
    assert snapshot(lineproto.parse(bytearray(body))) == want
    assert snapshot(lineproto.parse(memoryview(body))) == want
    assert snapshot(lineproto.parse(memoryview(b"xx" + body)[2:])) == want
    interleaved = bytes(x for c in body for x in (c, 0))
    assert snapshot(lineproto.parse(memoryview(interleaved)[::2])) == want   # strided view
    with pytest.raises(TypeError):
        lineproto.parse("m f=1")
    empty = lineproto.parse(b"")
    assert empty.batch.keys == [] and empty.batch.columns == [] and empty.n_lines == 0


def test_tsbs_devops_lines_match_the_generator():
    from bench.tsbs import devops_cpu, line_protocol_bodies, write_batches

    data = devops_cpu(hosts=7, duration_s=60, interval_s=10, seed=3)
    body = next(line_protocol_bodies(data, lines_per_batch=1000))
    want = next(write_batches(data, lines_per_batch=1000))
    res = both(body)
    assert res.errors == [] and res.n_lines == 7 * 6
    assert sorted(res.batch.keys) == sorted(set(want.keys))
    got = {(p[0], p[1], p[3]): p[4] for p in points(res)}
    for c in want.columns:
        for s, t, v in zip(c.series.tolist(), c.times.tolist(), c.values.tolist()):
            assert got[(want.keys[s], c.name, t)] == v
    assert len(got) == want.n_values


def test_columns_are_typed_arrays():
    """Values arrive as numpy arrays of the column's dtype, strings as one StringArray."""
    res = both(b'm a=1,b=2i,c=t,d="x" 1\nm a=2,b=3i,c=f,d="yz" 2\n')
    dtypes = [c.values.dtype if not isinstance(c.values, StringArray) else "str" for c in res.batch.columns]
    assert dtypes == [np.float64, np.int64, np.uint8, "str"]
    assert res.batch.columns[2].values.tolist() == [1, 0]
    assert res.batch.columns[3].values.offsets.tolist() == [0, 1, 3]
    assert res.batch.columns[3].values.data == b"xyz"


def test_differential_many_series_and_columns():
    """Thousands of distinct keys (the intern tables grow and rehash) and field orders that
    change from line to line (the per-position column cache misses)."""
    rng = np.random.default_rng(99)
    out = []
    for i in range(4000):
        h = int(rng.integers(0, 3000))
        fields = [f"f{int(k)}={int(k)}i" for k in rng.choice(300, size=int(rng.integers(1, 6)), replace=False)]
        out.append(f"m,z=z{h % 7},host=h{h} {','.join(fields)} {i}")
    body = ("\n".join(out)).encode()
    res = both(body)
    assert res.n_lines == 4000 and not res.errors
    assert len(res.batch.keys) == len({line.split(" ")[0] for line in out})
