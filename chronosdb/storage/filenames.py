"""Every on-disk file and directory name, in one place.

Data directory layout::

    <data-dir>/
      catalog.cbor                      databases and retention policies (atomic rewrite)
      continuous_queries.cbor           continuous query definitions (atomic rewrite)
      continuous_queries.state.cbor     per CQ: last run, end of the last window computed
      subscriptions.cbor                subscription definitions (atomic rewrite)
      <db>/
        index/                          series index of the database
          series-<seq:08d>.log          append-only log of new/dropped series and fields
          series-<seq:08d>.snap         compacted snapshot the log continues from
        <rp>/
          <shard-id:08d>/               one shard: [start, end) of one shard group
            manifest.cbor               identity, live segment files, field types (atomic rewrite)
            wal/<seq:08d>.wal           WAL segments
            <gen:09d>-<level:02d>.seg   immutable segment files (live only if in the manifest)
            tombstones.log              pending deletes, applied by reads until compacted away

Temp files end in ``.tmp`` and are removed on open: a file is only real after its rename.
"""
from __future__ import annotations

import os
import re

CATALOG = "catalog.cbor"
CONTINUOUS_QUERIES = "continuous_queries.cbor"
CONTINUOUS_QUERY_STATE = "continuous_queries.state.cbor"
SUBSCRIPTIONS = "subscriptions.cbor"
INDEX_DIR = "index"
MANIFEST = "manifest.cbor"
WAL_DIR = "wal"
TOMBSTONES = "tombstones.log"
TMP_SUFFIX = ".tmp"

WAL_SEGMENT_RE = re.compile(r"^(\d{8})\.wal$")
SEGMENT_RE = re.compile(r"^(\d{9})-(\d{2})\.seg$")
SHARD_DIR_RE = re.compile(r"^(\d{8})$")
INDEX_LOG_RE = re.compile(r"^series-(\d{8})\.log$")
INDEX_SNAP_RE = re.compile(r"^series-(\d{8})\.snap$")


def wal_segment(seq: int) -> str:
    return f"{seq:08d}.wal"


def segment_file(generation: int, level: int) -> str:
    return f"{generation:09d}-{level:02d}.seg"


def shard_dir(shard_id: int) -> str:
    return f"{shard_id:08d}"


def index_log(seq: int) -> str:
    return f"series-{seq:08d}.log"


def index_snapshot(seq: int) -> str:
    return f"series-{seq:08d}.snap"


def tmp(path: str) -> str:
    return path + TMP_SUFFIX


def fsync_dir(path: str) -> None:
    """fsync a directory so a rename or unlink inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` durably: temp file, fsync, rename, fsync the directory."""
    t = tmp(path)
    with open(t, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(t, path)
    fsync_dir(os.path.dirname(path) or ".")


def remove_temp_files(directory: str) -> None:
    for name in os.listdir(directory):
        if name.endswith(TMP_SUFFIX):
            os.unlink(os.path.join(directory, name))
