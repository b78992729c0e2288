"""Throughput of the line-protocol encoder (chronosdb.ext.lpencode). Prints figures; asserts nothing.

    python bench/bench_lpencode.py            # a few seconds on one core

Inputs, from bench/tsbs.py's devops cpu-only set (100 hosts, 10 tags, 10 float fields):
  - encode_batch over ``write_batches`` (5000 lines per WriteBatch, as TSBS loaders send them):
    the path the subscription forwarder takes. Includes the per-batch numpy plan (lexsort).
  - encode_columns for one host's whole day as numpy columns (8640 rows, 10 fields): the
    path of Client.write((measurement, tags, times, {field: array})) and DataFrames.
  - Client-side row encoding (dicts -> WriteBatch -> encode_batch), the path of write(list of
    dicts), whose Python collecting dominates.
The plain-Python twin is timed once on a small input for scale. Each figure is the best of
several runs.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.tsbs import FIELDS, devops_cpu, write_batches  # noqa: E402
from chronosdb.client.points import encode_bodies  # noqa: E402
from chronosdb.ext import lineproto, lpencode, lpencode_ref  # noqa: E402


def best_of(fn, repeat=5):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(name: str, seconds: float, lines: int, values: int, nbytes: int) -> None:
    print(f"{name:<46} {lines / seconds / 1e6:7.2f} M lines/s {values / seconds / 1e6:7.2f} M values/s"
          f" {nbytes / seconds / 1e6:8.1f} MB/s")


def main() -> None:
    data = devops_cpu(hosts=100, duration_s=3 * 3600)   # 1080 points x 100 hosts x 10 fields
    batches = list(write_batches(data, 5000))
    n_lines = data.n_lines
    n_values = sum(b.n_values for b in batches)

    def all_batches():
        return [lpencode.encode_batch(b) for b in batches]
    t, bodies = best_of(all_batches)
    report("encode_batch, TSBS devops 5000-line batches", t, n_lines, n_values, sum(map(len, bodies)))
    check = lineproto.parse(bodies[0])
    assert not check.errors and check.n_lines == 5000

    day = devops_cpu(hosts=1, duration_s=86400)
    tags = day.tags[0]
    fields = {f: day.values[0, i] for i, f in enumerate(FIELDS)}
    t, body = best_of(lambda: lpencode.encode_columns("cpu", tags, day.times, fields))
    report("encode_columns, one host x 8640 rows", t, len(day.times), len(day.times) * len(FIELDS), len(body))

    hosts = np.array([d["hostname"] for d in data.tags])
    per_row = {"hostname": np.repeat(hosts, 200)}
    times = np.tile(data.times[:200], len(hosts))
    cols = {f: data.values[:, i, :200].reshape(-1) for i, f in enumerate(FIELDS)}
    t, body = best_of(lambda: lpencode.encode_columns("cpu", per_row, times, cols))
    report("encode_columns, hostname tag column, 20000 rows", t, len(times), len(times) * len(FIELDS), len(body))

    rows = [{"measurement": "cpu", "tags": data.tags[h],
             "fields": {f: float(data.values[h, i, k]) for i, f in enumerate(FIELDS)},
             "time": int(data.times[k])} for k in range(50) for h in range(100)]
    t, bodies = best_of(lambda: list(encode_bodies(rows, batch_size=5000)), repeat=3)
    report("client rows (5000 dicts -> body)", t, len(rows), len(rows) * len(FIELDS), sum(map(len, bodies)))

    small = batches[0]
    t0 = time.perf_counter()
    ref = lpencode_ref.encode_batch(small)
    t = time.perf_counter() - t0
    assert ref == lpencode.encode_batch(small)
    report("python twin (encode_batch_ref), one batch", t, 5000, small.n_values, len(ref))


if __name__ == "__main__":
    main()
