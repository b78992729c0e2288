"""Typed WAL records: what a payload means. Nothing here knows about files or framing.

A payload is a CBOR array whose first element is the envelope version (1). Bulk columns are raw
little-endian byte strings inside it, never a Python object per point: encoding is
``ndarray.tobytes()`` and decoding ``np.frombuffer`` (so decoded arrays are read-only views of
the payload)::

    WRITE  (type 1)  [1, [key, ...], [[name, ftype, n, series i32, times i64, values], ...]]
                     values: n × f64 | n × i64 | n × u8, or [(n+1) × i64 offsets, data] for strings
    DELETE (type 2)  [1, ids u64 bytes, min_time, max_time]      (times inclusive, ns)

docs/format/wal.md has the full description.
"""
from __future__ import annotations

from dataclasses import dataclass

import cbor2
import numpy as np

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray

WRITE = 1
DELETE = 2
RECORD_TYPES = {WRITE: "WRITE", DELETE: "DELETE"}

_ENVELOPE_VERSION = 1
_I32 = np.dtype("<i4")
_I64 = np.dtype("<i8")
_U64 = np.dtype("<u8")
# On-disk dtype of each non-string values column (little-endian whatever the host is).
_VALUE_DTYPES = {
    FieldType.FLOAT: np.dtype("<f8"),
    FieldType.INTEGER: np.dtype("<i8"),
    FieldType.BOOLEAN: np.dtype("u1"),
}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class DeleteRecord:
    """Delete the points of ``series_ids`` with ``min_time <= time <= max_time``.

    Applies to writes logged before it only (replay is in log order). No ids: deletes nothing.
    """

    series_ids: np.ndarray  # uint64 series ids
    min_time: int           # ns, inclusive
    max_time: int           # ns, inclusive

    def __post_init__(self):
        ids = np.asarray(self.series_ids)
        if ids.ndim != 1:
            raise ValueError("DeleteRecord.series_ids must be one-dimensional")
        if ids.size and ids.dtype.kind not in "ui":
            raise ValueError(f"DeleteRecord.series_ids must be integers, got {ids.dtype}")
        if ids.dtype.kind == "i" and ids.size and int(ids.min()) < 0:
            raise ValueError("DeleteRecord.series_ids must not be negative")
        self.series_ids = np.ascontiguousarray(ids, dtype=np.uint64)
        for name in ("min_time", "max_time"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"DeleteRecord.{name} must be an int (ns), got {v!r}")
            if not _INT64_MIN <= int(v) <= _INT64_MAX:
                raise ValueError(f"DeleteRecord.{name} {v} is outside int64")
            setattr(self, name, int(v))
        if self.min_time > self.max_time:
            raise ValueError(f"DeleteRecord: min_time {self.min_time} > max_time {self.max_time}")

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, DeleteRecord)
            and np.array_equal(self.series_ids, other.series_ids)
            and self.min_time == other.min_time
            and self.max_time == other.max_time
        )


# ---- WRITE ---------------------------------------------------------------------------------

def encode_write(batch: WriteBatch) -> bytes:
    """The WRITE payload of a batch (one numpy ``tobytes`` per array, no per-point objects)."""
    if not isinstance(batch, WriteBatch):
        raise TypeError(f"expected a WriteBatch, got {type(batch).__name__}")
    batch.validate()
    columns = []
    for c in batch.columns:
        n = len(c)
        if c.ftype is FieldType.STRING:
            values = [c.values.offsets.astype(_I64, copy=False).tobytes(), bytes(c.values.data)]
        else:
            values = c.values.astype(_VALUE_DTYPES[c.ftype], copy=False).tobytes()
        columns.append([
            bytes(c.name), int(c.ftype), n,
            c.series.astype(_I32, copy=False).tobytes(),
            c.times.astype(_I64, copy=False).tobytes(),
            values,
        ])
    return cbor2.dumps([_ENVELOPE_VERSION, [bytes(k) for k in batch.keys], columns])


def _array(raw, dtype, n: int, what: str) -> np.ndarray:
    if not isinstance(raw, bytes) or len(raw) != n * dtype.itemsize:
        got = len(raw) if isinstance(raw, bytes) else type(raw).__name__
        raise ValueError(f"{what}: expected {n} × {dtype.itemsize} bytes, got {got}")
    return np.frombuffer(raw, dtype=dtype)


def decode_write(payload) -> WriteBatch:
    env = _envelope(payload, "WRITE", 3)
    keys, raw_columns = env[1], env[2]
    if not isinstance(keys, list) or not all(isinstance(k, bytes) for k in keys):
        raise ValueError("malformed WRITE record: keys must be a list of byte strings")
    if not isinstance(raw_columns, list):
        raise ValueError("malformed WRITE record: columns must be a list")
    columns = []
    for i, col in enumerate(raw_columns):
        if not isinstance(col, list) or len(col) != 6:
            raise ValueError(f"malformed WRITE record: column {i} is not a 6-element array")
        name, ftype, n, series, times, values = col
        if not isinstance(name, bytes) or not isinstance(n, int) or n < 0:
            raise ValueError(f"malformed WRITE record: column {i} has a bad name or length")
        try:
            ftype = FieldType(ftype)
        except ValueError:
            raise ValueError(f"malformed WRITE record: column {name!r} has unknown field type {ftype!r}") from None
        what = f"WRITE column {name!r}"
        s = _array(series, _I32, n, what + " series")
        t = _array(times, _I64, n, what + " times")
        if ftype is FieldType.STRING:
            if not isinstance(values, list) or len(values) != 2:
                raise ValueError(f"malformed {what}: string values must be [offsets, data]")
            offsets = _array(values[0], _I64, n + 1, what + " string offsets")
            if not isinstance(values[1], bytes):
                raise ValueError(f"malformed {what}: string data must be a byte string")
            if n and np.any(offsets[1:] < offsets[:-1]):
                raise ValueError(f"malformed {what}: string offsets go backwards")
            v = StringArray(offsets, values[1])
        else:
            v = _array(values, _VALUE_DTYPES[ftype], n, what + " values")
        columns.append(FieldColumn(name, ftype, s, t, v))
    batch = WriteBatch(keys, columns)
    batch.validate()
    return batch


# ---- DELETE --------------------------------------------------------------------------------

def encode_delete(rec: DeleteRecord) -> bytes:
    if not isinstance(rec, DeleteRecord):
        raise TypeError(f"expected a DeleteRecord, got {type(rec).__name__}")
    return cbor2.dumps([
        _ENVELOPE_VERSION, rec.series_ids.astype(_U64, copy=False).tobytes(), rec.min_time, rec.max_time,
    ])


def decode_delete(payload) -> DeleteRecord:
    env = _envelope(payload, "DELETE", 4)
    ids, lo, hi = env[1], env[2], env[3]
    if not isinstance(ids, bytes) or len(ids) % 8:
        raise ValueError("malformed DELETE record: series ids must be a byte string of u64")
    return DeleteRecord(np.frombuffer(ids, dtype=_U64), lo, hi)


# ---- dispatch ------------------------------------------------------------------------------

def _envelope(payload, kind: str, length: int) -> list:
    try:
        env = cbor2.loads(bytes(payload))
    except Exception as e:
        raise ValueError(f"malformed {kind} record: not CBOR ({e})") from e
    if not isinstance(env, list) or len(env) != length:
        raise ValueError(f"malformed {kind} record: expected a {length}-element array")
    if env[0] != _ENVELOPE_VERSION:
        raise ValueError(f"{kind} record has unknown envelope version {env[0]!r}")
    return env


def encode_record(obj) -> tuple[int, bytes]:
    """(record type, payload) for a WriteBatch or DeleteRecord."""
    if isinstance(obj, WriteBatch):
        return WRITE, encode_write(obj)
    if isinstance(obj, DeleteRecord):
        return DELETE, encode_delete(obj)
    raise TypeError(f"no WAL record type for {type(obj).__name__}")


def decode_record(record_type: int, payload) -> "WriteBatch | DeleteRecord":
    """The value a payload of ``record_type`` holds. Malformed payloads raise ValueError."""
    if record_type == WRITE:
        return decode_write(payload)
    if record_type == DELETE:
        return decode_delete(payload)
    raise ValueError(f"unknown WAL record type {record_type}")
