"""Plain-Python reference twin of chronosdb.ext.codecs.

Same formats (docs/format/codecs.md), same choices, same bytes, written for obviousness rather than
speed: Python ints, one value at a time. Tests run both on the same seeded inputs and require equal
bytes and equal decoded values. Never used on a real read or write path.
"""
from __future__ import annotations

import math
import struct

import lz4.block
import numpy as np

TIMES_PLAIN, TIMES_RLE, TIMES_DOD_RICE, TIMES_DOD_PACKED = 0x01, 0x02, 0x03, 0x04
FLOAT_PLAIN, FLOAT_GORILLA, FLOAT_DECIMAL_RICE, FLOAT_DECIMAL_PACKED = 0x10, 0x11, 0x12, 0x13
INT_PLAIN, INT_RLE, INT_PACKED, INT_SIMPLE8B = 0x20, 0x21, 0x22, 0x23
BOOL_PACKED = 0x30
STRING_PLAIN, STRING_LZ4 = 0x40, 0x41

MAX_COUNT = 1 << 24
MAX_DECIMAL_SCALE = 15
MAX_RICE_K = 56
RICE_ESCAPE = 32
M64 = (1 << 64) - 1
S8B = [(240, 0), (120, 0), (60, 1), (30, 2), (20, 3), (15, 4), (12, 5), (10, 6), (8, 7), (7, 8),
       (6, 10), (5, 12), (4, 15), (3, 20), (2, 30), (1, 60)]


def _bad(what: str, offset: int):
    raise ValueError(f"malformed encoded column: {what} (byte {offset})")


# ---- scalars ----

def zigzag(x: int) -> int:
    """int64 -> uint64: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..."""
    return ((x << 1) ^ (x >> 63)) & M64


def unzigzag(u: int) -> int:
    return (u >> 1) ^ -(u & 1)


def as_i64(u: int) -> int:
    """Wrap any Python int to the int64 range, like C arithmetic on uint64 then a cast."""
    u &= M64
    return u - (1 << 64) if u >> 63 else u


def uvarint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def read_uvarint(b: bytes, pos: int, what: str) -> tuple[int, int]:
    v = shift = 0
    start = pos
    while True:
        if pos >= len(b) or shift > 63 or (shift == 63 and b[pos] > 1):
            _bad(f"truncated or overlong {what} varint", start)
        byte = b[pos]
        pos += 1
        v |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return v, pos
        shift += 7


def f64_bits(v: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def bits_f64(u: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", u))[0]


# ---- bit streams (LSB first) ----

class BitWriter:
    def __init__(self):
        self.acc = 0
        self.n = 0

    def put(self, v: int, n: int):
        assert 0 <= v < (1 << n) or (n == 0 and v == 0)
        self.acc |= v << self.n
        self.n += n

    def rice(self, u: int, k: int):
        q = u >> k
        if q < RICE_ESCAPE:
            self.put(1 << q, q + 1)          # q zeros, then a one
            self.put(u & ((1 << k) - 1), k)
        else:
            self.put(0, RICE_ESCAPE)
            self.put(u, 64)

    def getvalue(self) -> bytes:
        return self.acc.to_bytes((self.n + 7) // 8, "little")


class BitReader:
    """Reads past the end as zeros; check_end() then reports the truncation."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def get(self, n: int) -> int:
        lo, hi = self.pos >> 3, (self.pos + n + 7) >> 3
        chunk = int.from_bytes(self.data[lo:hi], "little")
        self.pos += n
        return (chunk >> ((self.pos - n) & 7)) & ((1 << n) - 1)

    def rice(self, k: int) -> int:
        q = 0
        while q < RICE_ESCAPE and self.get(1) == 0:
            q += 1
        if q == RICE_ESCAPE:
            return self.get(64)
        return (q << k) | self.get(k)

    def check_end(self, offset: int):
        used, have = (self.pos + 7) // 8, len(self.data)
        if used > have:
            _bad("bit stream truncated", offset + have)
        if used < have:
            _bad(f"{have - used} trailing bytes after the bit stream", offset + used)


# ---- unsigned streams: Rice or packed ----

def rice_bits(u: int, k: int) -> int:
    q = u >> k
    return q + 1 + k if q < RICE_ESCAPE else RICE_ESCAPE + 64


def choose_uint_code(u: list[int]) -> tuple[bool, int, int]:
    """(packed, param, bits): Rice with the cheapest k near log2(mean), or packing if no larger."""
    if not u:
        return True, 0, 0
    avg = min(sum(u), M64) // len(u)
    b = avg.bit_length()
    klo, khi = max(0, b - 2), min(MAX_RICE_K, b + 1)
    klo = min(klo, khi)
    costs = {k: sum(rice_bits(x, k) for x in u) for k in range(klo, khi + 1)}
    k = min(costs, key=lambda k: (costs[k], k))
    w = max(u).bit_length()
    if w * len(u) <= costs[k]:
        return True, w, w * len(u)
    return False, k, costs[k]


def write_uints(u: list[int], packed: bool, param: int) -> bytes:
    w = BitWriter()
    for x in u:
        if packed:
            w.put(x, param)
        else:
            w.rice(x, param)
    return w.getvalue()


def read_uints(data: bytes, m: int, packed: bool, param: int, offset: int) -> list[int]:
    r = BitReader(data)
    u = [r.get(param) if packed else r.rice(param) for _ in range(m)]
    r.check_end(offset)
    return u


# ---- header ----

def header(typ: int, count: int) -> bytes:
    return bytes([typ]) + uvarint(count)


def read_header(buf) -> tuple[int, int, int]:
    b = bytes(buf)
    if not b:
        _bad("empty buffer", 0)
    if b[0] not in ENCODING_NAMES:
        _bad(f"unknown encoding type 0x{b[0]:02x}", 0)
    count, pos = read_uvarint(b, 1, "count")
    if count > MAX_COUNT:
        _bad(f"count {count} exceeds the limit {MAX_COUNT}", 1)
    return b[0], count, pos


def encoded_count(buf) -> int:
    return read_header(buf)[1]


def encoding_of(buf) -> int:
    return read_header(buf)[0]


def _u8(b: bytes, pos: int, what: str) -> int:
    if pos >= len(b):
        _bad(f"truncated before {what}", pos)
    return b[pos]


def _family(typ: int, lo: int, hi: int, what: str):
    if not lo <= typ <= hi:
        _bad(f"encoding type 0x{typ:02x} is not a {what} encoding", 0)


def _plain(b: bytes, pos: int, count: int, fmt: str) -> list:
    if len(b) - pos != 8 * count:
        _bad(f"plain values need {8 * count} bytes, have {len(b) - pos}", pos)
    return list(struct.unpack(f"<{count}{fmt}", b[pos:]))


def _end(b: bytes, pos: int):
    if pos != len(b):
        _bad(f"{len(b) - pos} trailing bytes after the column", pos)


# ---- times ----

def encode_times(times) -> bytes:
    t = [int(x) for x in np.asarray(times, dtype=np.int64).reshape(-1)]
    n = len(t)
    for i in range(1, n):
        if t[i] <= t[i - 1]:
            raise ValueError(f"times must be strictly increasing: index {i} ({t[i]}) follows {t[i - 1]}")
    if n == 0:
        return header(TIMES_PLAIN, 0)
    deltas = [(t[i] - t[i - 1]) & M64 for i in range(1, n)]
    first_delta = deltas[0] if deltas else 0
    if all(d == first_delta for d in deltas):
        return header(TIMES_RLE, n) + uvarint(zigzag(t[0])) + uvarint(first_delta)
    u = [zigzag(as_i64(deltas[i] - deltas[i - 1])) for i in range(1, len(deltas))]
    packed, param, bits = choose_uint_code(u)
    dod = (header(TIMES_DOD_PACKED if packed else TIMES_DOD_RICE, n) + uvarint(zigzag(t[0]))
           + uvarint(first_delta) + bytes([param]))
    plain_size = len(header(TIMES_PLAIN, n)) + 8 * n
    if len(dod) + (bits + 7) // 8 <= plain_size:
        return dod + write_uints(u, packed, param)
    return header(TIMES_PLAIN, n) + struct.pack(f"<{n}q", *t)


def decode_times(buf) -> np.ndarray:
    b = bytes(buf)
    typ, count, pos = read_header(b)
    _family(typ, TIMES_PLAIN, TIMES_DOD_PACKED, "times")
    if typ == TIMES_PLAIN:
        return np.array(_plain(b, pos, count, "q"), dtype=np.int64)
    if count == 0:
        _bad("empty column with a non-plain encoding", 0)
    first, pos = read_uvarint(b, pos, "first time")
    delta, pos = read_uvarint(b, pos, "first delta")
    t = unzigzag(first)
    if typ == TIMES_RLE:
        _end(b, pos)
        return np.array([as_i64(t + i * delta) for i in range(count)], dtype=np.int64)
    if count < 2:
        _bad("delta-of-delta times need at least 2 values", 1)
    param = _u8(b, pos, "stream parameter")
    if param > (64 if typ == TIMES_DOD_PACKED else MAX_RICE_K):
        _bad(f"stream parameter {param} out of range", pos)
    u = read_uints(b[pos + 1:], count - 2, typ == TIMES_DOD_PACKED, param, pos + 1)
    out = [t, t + delta]
    for x in u:
        delta += unzigzag(x)
        out.append(out[-1] + delta)
    return np.array([as_i64(x) for x in out], dtype=np.int64)


# ---- floats ----

def decimal_ok(v: float, e: int) -> bool:
    x = v * 10.0 ** e
    if not math.isfinite(x):
        return False
    m = round(x)  # half to even, like C rint()
    return abs(m) <= 2 ** 53 and f64_bits(m / 10.0 ** e) == f64_bits(v)


def decimal_scale(values: list[float]) -> int:
    """The same search as the Cython kernel: raise e as values need it, then verify all."""
    e = 0
    for v in values:
        if not math.isfinite(v) or f64_bits(v) == 1 << 63:
            return -1
        while not decimal_ok(v, e):
            e += 1
            if e > MAX_DECIMAL_SCALE:
                return -1
    while e <= MAX_DECIMAL_SCALE:
        if all(decimal_ok(v, e) for v in values):
            return e
        e += 1
    return -1


def encode_gorilla(values: list[float]) -> bytes:
    w = BitWriter()
    prev = f64_bits(values[0])
    w.put(prev, 64)
    wlead, wtrail = 64, 0  # no window yet
    for v in values[1:]:
        cur = f64_bits(v)
        x, prev = cur ^ prev, cur
        if x == 0:
            w.put(0, 1)
            continue
        lead = min(64 - x.bit_length(), 31)
        trail = (x & -x).bit_length() - 1
        if lead >= wlead and trail >= wtrail:
            w.put(1, 1)
            w.put(0, 1)
            w.put(x >> wtrail, 64 - wlead - wtrail)
        else:
            mlen = 64 - lead - trail
            w.put(1, 1)
            w.put(1, 1)
            w.put(lead, 5)
            w.put(mlen - 1, 6)
            w.put(x >> trail, mlen)
            wlead, wtrail = lead, trail
    return header(FLOAT_GORILLA, len(values)) + w.getvalue()


def encode_floats(values) -> bytes:
    v = [float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
    n = len(v)
    if n == 0:
        return header(FLOAT_PLAIN, 0)
    candidates = []
    e = decimal_scale(v)
    if e >= 0:
        m = [round(x * 10.0 ** e) for x in v]
        u = [zigzag(m[i] - m[i - 1]) for i in range(1, n)]
        packed, param, bits = choose_uint_code(u)
        head = (header(FLOAT_DECIMAL_PACKED if packed else FLOAT_DECIMAL_RICE, n) + bytes([e])
                + uvarint(zigzag(m[0])) + bytes([param]))
        candidates.append(head + write_uints(u, packed, param))
    candidates.append(encode_gorilla(v))
    candidates.append(header(FLOAT_PLAIN, n) + struct.pack(f"<{n}d", *v))
    return min(candidates, key=len)  # min keeps the first of equal sizes: decimal, Gorilla, plain


def decode_floats(buf) -> np.ndarray:
    b = bytes(buf)
    typ, count, pos = read_header(b)
    _family(typ, FLOAT_PLAIN, FLOAT_DECIMAL_PACKED, "float")
    if typ == FLOAT_PLAIN:
        return np.array(_plain(b, pos, count, "Q"), dtype=np.uint64).view(np.float64)
    if count == 0:
        _bad("empty column with a non-plain encoding", 0)
    if typ == FLOAT_GORILLA:
        r = BitReader(b[pos:])
        prev = r.get(64)
        out = [prev]
        wlead, wtrail = 64, 0
        for _ in range(count - 1):
            if r.pos > 8 * (len(b) - pos):
                break
            if r.get(1):
                if r.get(1):
                    lead, mlen = r.get(5), r.get(6) + 1
                    if lead + mlen > 64:
                        _bad("Gorilla window wider than 64 bits", pos + r.pos // 8)
                    wlead, wtrail = lead, 64 - lead - mlen
                elif wlead == 64:
                    _bad("Gorilla window reused before one was set", pos + r.pos // 8)
                prev ^= r.get(64 - wlead - wtrail) << wtrail
            out.append(prev)
        r.check_end(pos)
        return np.array(out, dtype=np.uint64).view(np.float64)
    e = _u8(b, pos, "decimal scale")
    if e > MAX_DECIMAL_SCALE:
        _bad(f"decimal scale {e} out of range", pos)
    first, pos = read_uvarint(b, pos + 1, "first mantissa")
    param = _u8(b, pos, "stream parameter")
    if param > (64 if typ == FLOAT_DECIMAL_PACKED else MAX_RICE_K):
        _bad(f"stream parameter {param} out of range", pos)
    u = read_uints(b[pos + 1:], count - 1, typ == FLOAT_DECIMAL_PACKED, param, pos + 1)
    m = unzigzag(first)
    out = [float(m) / 10.0 ** e]
    for x in u:
        m = as_i64(m + unzigzag(x))
        out.append(float(m) / 10.0 ** e)
    return np.array(out, dtype=np.float64)


# ---- ints ----

def simple8b_words(u: list[int]) -> list[int] | None:
    """Greedy: at each position the first selector whose run of values fits."""
    words, i = [], 0
    while i < len(u):
        for sel, (cnt, bits) in enumerate(S8B):
            if cnt <= len(u) - i and all(x < (1 << bits) for x in u[i:i + cnt]):
                break
        else:
            return None
        word = sel
        for j in range(cnt):
            word |= u[i + j] << (4 + j * bits)
        words.append(word)
        i += cnt
    return words


def encode_ints(values) -> bytes:
    v = [int(x) for x in np.asarray(values, dtype=np.int64).reshape(-1)]
    n = len(v)
    if n == 0:
        return header(INT_PLAIN, 0)
    deltas = [as_i64(v[i] - v[i - 1]) for i in range(1, n)]
    if all(d == (deltas[0] if deltas else 0) for d in deltas):
        return header(INT_RLE, n) + uvarint(zigzag(v[0])) + uvarint(zigzag(deltas[0] if deltas else 0))
    u = [zigzag(d) for d in deltas]
    base = header(INT_PLAIN, n)[1:] + uvarint(zigzag(v[0]))
    w = max(u).bit_length()
    packed = bytes([INT_PACKED]) + base + bytes([w]) + write_uints(u, True, w)
    words = simple8b_words(u)
    plain = header(INT_PLAIN, n) + struct.pack(f"<{n}q", *v)
    best = packed
    if words is not None and 1 + len(base) + 8 * len(words) < len(packed):
        best = bytes([INT_SIMPLE8B]) + base + b"".join(struct.pack("<Q", x) for x in words)
    return plain if len(plain) < len(best) else best


def decode_ints(buf) -> np.ndarray:
    b = bytes(buf)
    typ, count, pos = read_header(b)
    _family(typ, INT_PLAIN, INT_SIMPLE8B, "integer")
    if typ == INT_PLAIN:
        return np.array(_plain(b, pos, count, "q"), dtype=np.int64)
    if count == 0:
        _bad("empty column with a non-plain encoding", 0)
    first, pos = read_uvarint(b, pos, "first value")
    x = unzigzag(first)
    if typ == INT_RLE:
        d, pos = read_uvarint(b, pos, "delta")
        _end(b, pos)
        return np.array([as_i64(x + i * unzigzag(d)) for i in range(count)], dtype=np.int64)
    if typ == INT_PACKED:
        w = _u8(b, pos, "bit width")
        if w > 64:
            _bad(f"bit width {w} out of range", pos)
        u = read_uints(b[pos + 1:], count - 1, True, w, pos + 1)
    else:
        u = []
        while len(u) < count - 1:
            if len(b) - pos < 8:
                _bad("simple8b word truncated", pos)
            word = struct.unpack_from("<Q", b, pos)[0]
            cnt, bits = S8B[word & 15]
            if cnt > count - 1 - len(u):
                _bad(f"simple8b word holds {cnt} values, {count - 1 - len(u)} remain", pos)
            u += [(word >> (4 + j * bits)) & ((1 << bits) - 1) for j in range(cnt)]
            pos += 8
        _end(b, pos)
    out = [x]
    for d in u:
        out.append(as_i64(out[-1] + unzigzag(d)))
    return np.array(out, dtype=np.int64)


# ---- bools ----

def encode_bools(values) -> bytes:
    v = [int(x) for x in np.asarray(values).reshape(-1)]
    for i, x in enumerate(v):
        if x not in (0, 1):
            raise ValueError(f"bools must be 0 or 1: index {i} is {x}")
    packed = bytearray((len(v) + 7) // 8)
    for i, x in enumerate(v):
        packed[i // 8] |= x << (i % 8)
    return header(BOOL_PACKED, len(v)) + bytes(packed)


def decode_bools(buf) -> np.ndarray:
    b = bytes(buf)
    typ, count, pos = read_header(b)
    _family(typ, BOOL_PACKED, BOOL_PACKED, "boolean")
    if len(b) - pos != (count + 7) // 8:
        _bad(f"{count} packed bools need {(count + 7) // 8} bytes, have {len(b) - pos}", pos)
    return np.array([(b[pos + i // 8] >> (i % 8)) & 1 for i in range(count)], dtype=np.uint8)


# ---- strings ----

def encode_strings(offsets, data: bytes) -> bytes:
    off = [int(x) for x in np.asarray(offsets, dtype=np.int64).reshape(-1)]
    data = bytes(data)
    if not off or off[0] != 0 or off[-1] != len(data) or any(b < a for a, b in zip(off, off[1:])):
        raise ValueError("string offsets must start at 0, not decrease, and end at len(data)")
    n = len(off) - 1
    body = b"".join(uvarint(off[i + 1] - off[i]) for i in range(n)) + data
    if body:
        comp = lz4.block.compress(body, store_size=False)
        if len(comp) + len(uvarint(len(body))) < len(body):
            return header(STRING_LZ4, n) + uvarint(len(body)) + comp
    return header(STRING_PLAIN, n) + body


def decode_strings(buf) -> tuple[np.ndarray, bytes]:
    b = bytes(buf)
    typ, count, pos = read_header(b)
    _family(typ, STRING_PLAIN, STRING_LZ4, "string")
    if typ == STRING_PLAIN:
        body = b[pos:]
    else:
        raw_len, start = read_uvarint(b, pos, "uncompressed length")
        if raw_len == 0 or raw_len > 255 * (len(b) - start) + 64 or raw_len > 0x7FFFFFFF:
            _bad(f"implausible uncompressed length {raw_len}", pos)
        try:
            body = lz4.block.decompress(b[start:], uncompressed_size=raw_len)
        except Exception as exc:
            _bad(f"lz4 block does not decompress ({exc})", start)
        if len(body) != raw_len:
            _bad(f"lz4 block gave {len(body)} bytes, header says {raw_len}", start)
    offsets, p = [0], 0
    for i in range(count):
        ln, p = read_uvarint(body, p, f"length of string {i}")
        offsets.append(offsets[-1] + ln)
        if offsets[-1] > len(body):
            _bad(f"string {i} runs past the end of the column", p)
    if len(body) - p != offsets[-1]:
        _bad(f"strings need {offsets[-1]} bytes, have {len(body) - p}", p)
    return np.array(offsets, dtype=np.int64), body[p:]


ENCODING_NAMES = {
    TIMES_PLAIN: "times-plain",
    TIMES_RLE: "times-rle",
    TIMES_DOD_RICE: "times-dod-rice",
    TIMES_DOD_PACKED: "times-dod-packed",
    FLOAT_PLAIN: "float-plain",
    FLOAT_GORILLA: "float-gorilla",
    FLOAT_DECIMAL_RICE: "float-decimal-rice",
    FLOAT_DECIMAL_PACKED: "float-decimal-packed",
    INT_PLAIN: "int-plain",
    INT_RLE: "int-rle",
    INT_PACKED: "int-packed",
    INT_SIMPLE8B: "int-simple8b",
    BOOL_PACKED: "bool-packed",
    STRING_PLAIN: "string-plain",
    STRING_LZ4: "string-lz4",
}
