"""Segment scan benchmark: how fast SegmentReader turns a TSBS segment file into columns.

    python bench/bench_scan.py [--hosts 100] [--hours 12] [--min-s 0.5]

Builds the TSBS devops cpu-only data set (bench/tsbs.py; 100 hosts x 10 float fields at 10 s),
writes it as one segment file through SegmentWriter (series id = host number), then prints, on
one core (the reader releases the GIL while decoding, but this runs a single thread):

* full reads of every series+field (``read(sid, field)``), values/s: the bulk decoder
  (chronosdb.ext.blockscan) beside the per-block path (its Python twin, blockscan_ref, which is
  what SegmentReader did before);
* range reads cutting the first and last block of every series+field, values/s returned;
* the float codec alone over the same values columns (the ceiling: what decoding costs without
  framing, checksums or allocation);
* (series, field) lookups/s (``field_type``, ``blocks``), which every read starts with.

Figures vary with the machine and its load; run it a few times on a quiet machine.
"""
from __future__ import annotations

import argparse
import mmap
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import tsbs  # noqa: E402
from chronosdb.ext import blockscan_ref, codecs  # noqa: E402
from chronosdb.model.fieldtype import FieldType  # noqa: E402
from chronosdb.storage import filenames  # noqa: E402
from chronosdb.storage.segment import SegmentReader, SegmentWriter  # noqa: E402
from chronosdb.storage.segment import layout as L  # noqa: E402

I64 = np.iinfo(np.int64)


def build_segment(data: tsbs.DevopsData, directory: str) -> str:
    path = os.path.join(directory, filenames.segment_file(1, 0))
    w = SegmentWriter(path, 1, 0)
    fields = [f.encode() for f in tsbs.FIELDS]
    for h in range(data.hosts):
        for k, field in enumerate(fields):
            w.add(h + 1, field, FieldType.FLOAT, data.times, data.values[h, k])
    w.finish()
    return path


def timed(fn, min_s: float) -> float:
    """Seconds per call of fn, repeated for at least min_s (best of the repeats)."""
    best, spent = float("inf"), 0.0
    while spent < min_s:
        t0 = time.perf_counter()
        fn()
        el = time.perf_counter() - t0
        best, spent = min(best, el), spent + el
    return best


def values_columns(r: SegmentReader, mm, keys) -> list[bytes]:
    """The encoded values column of every block (for the codec-only ceiling)."""
    out = []
    for sid, field in keys:
        bt = r.blocks(sid, field)
        for off, size in zip(bt.offset.tolist(), bt.size.tolist()):
            body = mm[off:off + size - L.BLOCK_CHECKSUM_SIZE]
            tlen, pos = L.read_uvarint(body, 1)
            out.append(body[pos + tlen:])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=12)
    ap.add_argument("--min-s", type=float, default=0.5, help="time spent on each figure")
    args = ap.parse_args(argv)

    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=int(args.hours * 3600))
    keys = [(h + 1, f.encode()) for h in range(data.hosts) for f in tsbs.FIELDS]
    with tempfile.TemporaryDirectory() as d:
        path = build_segment(data, d)
        r = SegmentReader(path)
        n_values = data.n_values
        n_blocks = sum(len(r.blocks(s, f)) for s, f in keys)
        print(f"segment: {args.hosts} series x {len(tsbs.FIELDS)} fields x {data.n_points} points = "
              f"{n_values:,} values in {n_blocks:,} blocks, {os.path.getsize(path) / n_values:.2f} B/value")

        def full_new():
            for s, f in keys:
                r.read(s, f)

        f_ = open(path, "rb")
        mm = mmap.mmap(f_.fileno(), 0, access=mmap.ACCESS_READ)
        tables = [r.blocks(s, f) for s, f in keys]

        def full_old():
            for bt in tables:
                blockscan_ref.decode_blocks(mm, bt.offset, bt.size, bt.count, bt.min_time, bt.max_time,
                                            int(FieldType.FLOAT), int(I64.min), int(I64.max))

        # Range reads: from the middle of the first block to the middle of the last.
        step = int(data.times[1] - data.times[0]) if data.n_points > 1 else 1
        lo = int(data.times[0]) + 500 * step
        hi = int(data.times[-1]) - 500 * step
        n_range = len(keys) * int(((data.times >= lo) & (data.times <= hi)).sum())

        def ranged():
            for s, f in keys:
                r.read(s, f, lo, hi)

        cols = values_columns(r, mm, keys)

        def codec_only():
            for c in cols:
                codecs.decode_floats(c)

        t_new, t_old = timed(full_new, args.min_s), timed(full_old, args.min_s)
        t_rng, t_codec = timed(ranged, args.min_s), timed(codec_only, args.min_s)
        print(f"full scan, bulk (blockscan)     : {n_values / t_new / 1e6:8.1f} M values/s "
              f"({t_new * 1e3:.1f} ms, {t_new / len(keys) * 1e6:.1f} us per series+field)")
        print(f"full scan, per block (twin/old) : {n_values / t_old / 1e6:8.1f} M values/s "
              f"({t_old * 1e3:.1f} ms)  -> x{t_old / t_new:.1f}")
        print(f"range scan (cuts 2 blocks each) : {n_range / t_rng / 1e6:8.1f} M values/s returned")
        print(f"float codec alone (ceiling)     : {n_values / t_codec / 1e6:8.1f} M values/s")

        n_look = 20_000
        probe = [keys[i % len(keys)] for i in range(n_look)]

        def lookups():
            ft = r.field_type
            for s, f in probe:
                ft(s, f)

        def tables_():
            bl = r.blocks
            for s, f in probe:
                bl(s, f)

        t_l, t_b = timed(lookups, args.min_s), timed(tables_, args.min_s)
        print(f"field_type lookups              : {n_look / t_l / 1e6:8.2f} M/s ({t_l / n_look * 1e9:.0f} ns each)")
        print(f"blocks() tables                 : {n_look / t_b / 1e6:8.2f} M/s ({t_b / n_look * 1e9:.0f} ns each)")
        del tables, cols
        mm.close()
        f_.close()
        r.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
