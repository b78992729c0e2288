"""Fused scan + window aggregate benchmark (chronosdb.ext.scanagg) against the per-series path.

    python bench/bench_scanagg.py [--hosts 100] [--hours 24] [--query-hours 12] [--min-s 0.5]

Builds the TSBS devops cpu-only data set (bench/tsbs.py; 100 hosts x 10 float fields at 10 s over
24 h), writes it as one segment file (series id = host number), and answers the shape of TSBS
double-groupby: 12 h in the middle of the day, GROUP BY time(1h), one group per host, for one
field, then for all 10 fields (one call each). Single thread. Prints values/s scanned for:

* ``window_aggregate`` alone, block columns already gathered (count/sum/min/max/first/last);
* the same plus gathering the block columns through ``SegmentReader.blocks`` per host (the glue a
  caller that does not slice the index arrays itself would pay);
* the per-series path the executor uses today: ``read`` -> ``merge.window_bounds`` ->
  ``mean`` partial ``add_points`` per host (and with six partials, to compare like with like).

Figures vary with the machine and its load; run it a few times on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import tsbs  # noqa: E402
from chronosdb.ext import merge, scanagg  # noqa: E402
from chronosdb.model.fieldtype import FieldType  # noqa: E402
from chronosdb.query.functions import make_partial  # noqa: E402
from chronosdb.storage import filenames  # noqa: E402
from chronosdb.storage.segment import SegmentReader, SegmentWriter  # noqa: E402

HOUR_NS = 3600 * 10 ** 9


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


def gather(r: SegmentReader, hosts: int, field: bytes):
    """Block index columns of every host's entry for one field, and entry_starts."""
    tabs = [r.blocks(h + 1, field) for h in range(hosts)]
    starts = np.zeros(hosts + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tabs], out=starts[1:])
    cols = [np.concatenate([getattr(t, c) for t in tabs]) for c in ("offset", "size", "count", "min_time", "max_time")]
    return cols, starts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--query-hours", type=int, default=12)
    ap.add_argument("--min-s", type=float, default=0.5, help="time spent on each figure")
    args = ap.parse_args(argv)

    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=int(args.hours * 3600))
    fields = [f.encode() for f in tsbs.FIELDS]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        path = build_segment(data, d)
        print(f"segment: {args.hosts} hosts x {len(fields)} fields x {data.n_points} points = "
              f"{data.n_values:,} values ({os.path.getsize(path) / 1e6:.1f} MB, written in "
              f"{time.perf_counter() - t0:.1f} s)")
        r = SegmentReader(path)
        mm = r._mm
        day0 = int(data.times[0])
        lo = day0 + (int(args.hours) - args.query_hours) // 2 * HOUR_NS
        nwin = args.query_hours
        hi = lo + nwin * HOUR_NS - 1
        groups = np.arange(args.hosts, dtype=np.int32)
        n_query = args.hosts * int(((data.times >= lo) & (data.times <= hi)).sum())
        print(f"query: {args.query_hours} h, GROUP BY time(1h), {args.hosts} groups -> "
              f"{n_query:,} values per field")

        field = fields[0]
        cols, starts = gather(r, args.hosts, field)
        all_cols = {f: gather(r, args.hosts, f) for f in fields}

        def fused():
            return scanagg.window_aggregate(mm, path, 1, *cols, starts, groups, lo, hi, lo, HOUR_NS, nwin, args.hosts)

        def fused_gather():
            c, s = gather(r, args.hosts, field)
            return scanagg.window_aggregate(mm, path, 1, *c, s, groups, lo, hi, lo, HOUR_NS, nwin, args.hosts)

        def fused_all_fields():
            for c, s in all_cols.values():
                scanagg.window_aggregate(mm, path, 1, *c, s, groups, lo, hi, lo, HOUR_NS, nwin, args.hosts)

        def per_series(names):
            def run():
                out = []
                for h in range(args.hosts):
                    parts = [make_partial(n, nwin, FieldType.FLOAT) for n in names]
                    t, v = r.read(h + 1, field, lo, hi)
                    b = merge.window_bounds(t, lo, HOUR_NS, nwin)
                    for p in parts:
                        p.add_points(t, v, b)
                    out.append(parts)
                return out
            return run

        # Same answers before timing anything.
        agg = fused()
        ref = per_series(("mean",))()
        for h in range(args.hosts):
            p = ref[h][0]
            assert np.array_equal(p.counts, agg.count[h]) and p.sums.tobytes() == agg.sum[h].tobytes()

        t_fused = timed(fused, args.min_s)
        t_gather = timed(fused_gather, args.min_s)
        t_all = timed(fused_all_fields, args.min_s)
        t_mean = timed(per_series(("mean",)), args.min_s)
        t_six = timed(per_series(("count", "sum", "min", "max", "first", "last")), args.min_s)
        print(f"window_aggregate, one field          : {n_query / t_fused / 1e6:7.1f} M values/s "
              f"({t_fused * 1e3:.2f} ms)")
        print(f"  + gathering columns via blocks()   : {n_query / t_gather / 1e6:7.1f} M values/s "
              f"({t_gather * 1e3:.2f} ms)")
        print(f"window_aggregate, all {len(fields)} fields      : {len(fields) * n_query / t_all / 1e6:7.1f} M values/s "
              f"({t_all * 1e3:.2f} ms per query)")
        print(f"per-series path, mean                : {n_query / t_mean / 1e6:7.1f} M values/s "
              f"({t_mean * 1e3:.2f} ms)  -> fused is x{t_mean / t_fused:.1f}")
        print(f"per-series path, 6 partials          : {n_query / t_six / 1e6:7.1f} M values/s "
              f"({t_six * 1e3:.2f} ms)  -> fused is x{t_six / t_fused:.1f}")
        r.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
