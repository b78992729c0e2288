"""A written batch as line protocol bytes, for forwarding to subscribers.

``encode_batch(batch) -> bytes`` uses the Cython encoder ``chronosdb.ext.lpencode`` when it is
built, else ``encode_batch_numpy`` below. The numpy version writes one line per field value
(``<series key> <field>=<value> <time>``): valid line protocol that a receiver merges back into
points (same series and time: fields are merged, last write wins field by field). Every step is a
numpy pass over a whole column (gather keys, format numbers, concatenate); only string field
values are sliced out one by one (a StringArray has no vectorized escape) — the Cython encoder
is the fast path for those.

Floats are written by numpy's shortest round-trip formatting (``0.1``, ``1e+20``), so a
receiver parses back the identical float64.
"""
from __future__ import annotations

import numpy as np

from chronosdb.model.batch import WriteBatch
from chronosdb.model.fieldtype import FieldType

try:  # the Cython encoder, when another module provides it
    from chronosdb.ext.lpencode import encode_batch as _native_encode  # type: ignore
except ImportError:  # pragma: no cover - depends on the build
    _native_encode = None

_FIELD_KEY_ESCAPES = ((b"\\", b"\\\\"), (b",", b"\\,"), (b"=", b"\\="), (b" ", b"\\ "))


def escape_field_key(name: bytes) -> bytes:
    for a, b in _FIELD_KEY_ESCAPES:
        name = name.replace(a, b)
    return name


def _values_text(col) -> np.ndarray:
    v = col.values
    if col.ftype is FieldType.FLOAT:
        return v.astype("S32")
    if col.ftype is FieldType.INTEGER:
        return np.char.add(v.astype("S21"), b"i")
    if col.ftype is FieldType.BOOLEAN:
        return np.where(v != 0, np.bytes_(b"true"), np.bytes_(b"false"))
    raw = np.array(v.to_list(), dtype=object)
    if len(raw):
        raw = np.array(raw.tolist(), dtype=bytes)
        raw = np.char.replace(np.char.replace(raw, b"\\", b"\\\\"), b'"', b'\\"')
    else:
        raw = np.zeros(0, dtype="S1")
    return np.char.add(np.char.add(b'"', raw), b'"')


def encode_batch_numpy(batch: WriteBatch) -> bytes:
    if not batch.columns:
        return b""
    keys = np.array(batch.keys, dtype=bytes)
    parts = []
    for col in batch.columns:
        if not len(col):
            continue
        head = np.char.add(keys[col.series], b" " + escape_field_key(col.name) + b"=")
        line = np.char.add(np.char.add(head, _values_text(col)), b" ")
        line = np.char.add(line, col.times.astype("S20"))
        parts.append(b"\n".join(line.tolist()))
    return b"\n".join(parts) + b"\n" if parts else b""


def encode_batch(batch: WriteBatch) -> bytes:
    if _native_encode is not None:
        return _native_encode(batch)
    return encode_batch_numpy(batch)
