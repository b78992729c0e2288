"""Throughput of the query-result encoders (chronosdb.ext.resultenc).

Prints values/s and MB/s of output for a few result shapes: float columns (the common case of
aggregates), integers, booleans, strings, RFC3339 vs epoch times, pretty, chunked and CSV. For
scale it also times the route we avoid: building Python rows and handing them to orjson (which
does not even give Go's float format).

    python bench/bench_resultenc.py [--rows N] [--repeat R]

Each figure is the best of R runs (the machine is shared). Values counted are the value cells,
not the time cells.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from chronosdb.ext import resultenc as enc
from chronosdb.model.strings import StringArray
from chronosdb.query.results import Column, Series, StatementResult


def best_of(repeat, fn):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(label, seconds, values, nbytes):
    print(f"{label:44s} {values / seconds / 1e6:8.1f} M values/s {nbytes / seconds / 1e6:8.1f} MB/s"
          f"  ({seconds * 1e3:7.1f} ms, {nbytes / 1e6:6.1f} MB)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, r = args.rows, args.repeat
    rng = np.random.default_rng(1)
    times = 1_600_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 10_000_000_000
    gauges = np.round(rng.normal(50, 20, n), 2)           # decimal-looking sensor values
    noisy = rng.random(n) * 1e3                           # full 17-digit floats
    ints = rng.integers(-10**12, 10**12, n)
    bools = rng.integers(0, 2, n).astype(np.uint8)
    words = StringArray.from_list([f"host-{i % 1000}" for i in range(n)])

    def one(cols, t=times):
        return [StatementResult(0, [Series("cpu", {"host": "a"}, t, cols)])]

    f4 = one([Column(f"f{i}", gauges if i % 2 else noisy, None, "float") for i in range(4)])
    print(f"rows per series: {n:,}")
    for label, res, values, kw in [
        ("4 float cols, epoch=ns", f4, 4 * n, dict(epoch="ns")),
        ("4 float cols, RFC3339 times", f4, 4 * n, dict(epoch=None)),
        ("4 float cols, no time column", one(f4[0].series[0].columns, None), 4 * n, dict(epoch="ns")),
        ("1 float col (2-decimal gauges), epoch=ms", one([Column("v", gauges, None, "float")]), n, dict(epoch="ms")),
        ("1 int col, epoch=ns", one([Column("v", ints, None, "integer")]), n, dict(epoch="ns")),
        ("1 bool col, epoch=ns", one([Column("v", bools, None, "boolean")]), n, dict(epoch="ns")),
        ("1 string col, epoch=ns", one([Column("v", words, None, "string")]), n, dict(epoch="ns")),
        ("4 float cols, pretty", f4, 4 * n, dict(epoch="ns", pretty=True)),
    ]:
        secs, body = best_of(r, lambda: enc.encode_results(res, **kw))
        report(label, secs, values, len(body))

    secs, chunks = best_of(r, lambda: list(enc.encode_chunks(f4, "ns", 10000)))
    report("4 float cols, chunked (10000 rows)", secs, 4 * n, sum(map(len, chunks)))
    secs, body = best_of(r, lambda: enc.encode_csv(f4))
    report("4 float cols, CSV", secs, 4 * n, len(body))

    try:
        import orjson
    except ImportError:
        return
    m = min(n, 200_000)
    cols = [c.values[:m] for c in f4[0].series[0].columns]

    def python_rows():
        rows = [[t, a, b, c, d] for t, a, b, c, d in zip(times[:m].tolist(), *(x.tolist() for x in cols))]
        return orjson.dumps({"results": [{"statement_id": 0, "series": [{"values": rows}]}]})

    secs, body = best_of(r, python_rows)
    report(f"(for scale) Python rows + orjson, {m:,} rows", secs, 4 * m, len(body))


if __name__ == "__main__":
    main()
