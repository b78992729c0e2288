"""The write-ahead log of a shard.

``segment`` frames records (lengths, lz4, checksums) and knows nothing of their meaning;
``records`` encodes and decodes the typed payloads (WRITE batches, DELETEs) and knows nothing of
files; ``log`` holds the ``Wal``: the directory of segments, group commit, fsync modes and
recovery. The byte format is in docs/format/wal.md.
"""
from chronosdb.storage.wal.log import FSYNC_MODES, Wal
from chronosdb.storage.wal.records import (
    DELETE,
    WRITE,
    DeleteRecord,
    decode_record,
    encode_record,
)

__all__ = ["Wal", "FSYNC_MODES", "DeleteRecord", "encode_record", "decode_record", "WRITE", "DELETE"]
