"""Series keys: ``measurement,tk1=tv1,tk2=tv2`` in InfluxDB's canonical form.

A series is a measurement plus its sorted tag set. The key escapes, with a backslash, commas and
spaces in the measurement and commas, equals signs and spaces in tag keys and values, exactly as
line protocol does, so a key read from line protocol is already canonical once its tags are
sorted. Tags are sorted by key bytes; a tag with an empty value is not part of a series (InfluxDB
drops it too).

These functions run once per *series* (not per point): the index and the write path call them for
the distinct keys of a batch only.
"""
from __future__ import annotations

import xxhash

_MEAS_ESCAPES = ((b"\\", b"\\\\"), (b",", b"\\,"), (b" ", b"\\ "))
_TAG_ESCAPES = ((b"\\", b"\\\\"), (b",", b"\\,"), (b"=", b"\\="), (b" ", b"\\ "))


def _escape(raw: bytes, table) -> bytes:
    for a, b in table:
        if a in raw:
            raw = raw.replace(a, b)
    return raw


def _as_bytes(v) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def make_key(measurement, tags=None) -> bytes:
    """Canonical key from a measurement name and a tag mapping (or pairs); sorts the tags."""
    m = _as_bytes(measurement)
    if not m:
        raise ValueError("measurement name must not be empty")
    parts = [_escape(m, _MEAS_ESCAPES)]
    items = tags.items() if isinstance(tags, dict) else (tags or ())
    pairs = sorted((_as_bytes(k), _as_bytes(v)) for k, v in items)
    prev = None
    for k, v in pairs:
        if not k:
            raise ValueError("tag key must not be empty")
        if k == prev:
            raise ValueError(f"duplicate tag key {k.decode(errors='replace')!r}")
        prev = k
        if not v:
            continue
        parts.append(_escape(k, _TAG_ESCAPES) + b"=" + _escape(v, _TAG_ESCAPES))
    return b",".join(parts)


def _split_unescaped(s: bytes, sep: int) -> list[bytes]:
    out, start, i, n = [], 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == 0x5C:  # backslash: skip the escaped byte
            i += 2
            continue
        if c == sep:
            out.append(s[start:i])
            start = i + 1
        i += 1
    out.append(s[start:])
    return out


def _unescape(s: bytes) -> bytes:
    if b"\\" not in s:
        return s
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == 0x5C and i + 1 < n and s[i + 1] in b",= \\":
            out.append(s[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return bytes(out)


def parse_key(key: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Split a canonical key into (measurement, [(tag key, tag value), ...]), unescaped."""
    parts = _split_unescaped(key, 0x2C)
    meas = _unescape(parts[0])
    tags = []
    for p in parts[1:]:
        kv = _split_unescaped(p, 0x3D)
        if len(kv) != 2:
            raise ValueError(f"malformed series key {key!r}")
        tags.append((_unescape(kv[0]), _unescape(kv[1])))
    return meas, tags


def measurement_of(key: bytes) -> bytes:
    return _unescape(_split_unescaped(key, 0x2C)[0])


def key_hash(key: bytes) -> int:
    """The 64-bit hash of a series key (xxh3-64, seed 0): the series id unless it collides."""
    return xxhash.xxh3_64_intdigest(key)
