"""Throughput of the line-protocol parser (chronosdb.ext.lineproto). Prints figures; asserts nothing.

    python bench/bench_lineproto.py            # ~10-20 s on one core

Bodies:
  - "tsbs devops": bench/tsbs.py devops cpu-only lines (10 tags in TSBS order, hostname first, so
    every line takes the tag-sort + key-rebuild path; 10 float fields; ns timestamps), 5000 lines
    per body as TSBS loaders send them, and 100k lines in one body. The target is >= 150 MB/s and
    >= 6M values/s per core.
  - "mixed types": seeded random lines with escapes in every name, integers, booleans and quoted
    strings with escapes, to show the slow paths (key rebuild, string unescaping).
  - "tags presorted": the devops lines with tags already in canonical order, the path where the
    series key is the line's own bytes (no unescape, no sort, no copy).
Each figure is the best of several runs of one parse() over the body (one core; the scan holds
no GIL). The plain-Python twin is timed once on a small body for scale.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.tsbs import devops_cpu, line_protocol_bodies  # noqa: E402
from chronosdb.ext import lineproto, lineproto_ref  # noqa: E402


def best_of(fn, repeat=7):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def mixed_body(n_lines: int, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_lines):
        host = f"host\\ {rng.integers(0, 200)}"
        region = ["eu\\,west", "us-east", "ap=south"][rng.integers(0, 3)].replace("=", "\\=")
        tags = [f"region={region}", f"host={host}", f"zone=z{rng.integers(0, 5)}"]
        fields = [
            f"load={rng.random() * 100:.3f}",
            f"count={rng.integers(-10**12, 10**12)}i",
            f"up={'true' if rng.random() < 0.5 else 'f'}",
            f'msg="req \\"{rng.integers(0, 10**6)}\\" ok, took {rng.integers(1, 999)} ms"',
        ]
        lines.append(f"web\\ requests,{','.join(tags)} {','.join(fields)} {1451606400 + i}")
    return ("\n".join(lines) + "\n").encode()


def presorted(body: bytes) -> bytes:
    """The same lines with their tags already in canonical order (the zero-copy key path)."""
    res = lineproto.parse(body)
    keys = res.batch.keys
    series = res.batch.columns[0].series
    out = [keys[s] + b" " + line.split(b" ", 1)[1]
           for s, line in zip(series.tolist(), body.splitlines())]
    return b"\n".join(out) + b"\n"


def report(label: str, body: bytes, precision: str = "ns") -> None:
    res = lineproto.parse(body, precision)
    assert not res.errors, res.errors[:3]
    values = res.batch.n_values
    t = best_of(lambda: lineproto.parse(body, precision))
    print(
        f"{label:28s} {len(body) / 1e6:7.2f} MB  {res.n_lines:7d} lines  "
        f"{len(body) / t / 1e6:8.1f} MB/s  {res.n_lines / t / 1e6:6.2f} M lines/s  "
        f"{values / t / 1e6:6.2f} M values/s"
    )


def main() -> None:
    data = devops_cpu(hosts=1000, duration_s=3600, interval_s=10, seed=1)
    bodies = list(line_protocol_bodies(data, lines_per_batch=5000))
    body = bodies[0]
    report("tsbs devops (5000 lines)", body)
    big = b"".join(bodies[:20])
    report("tsbs devops (100k lines)", big)
    report("tsbs devops, tags presorted", presorted(big))
    report("mixed types (20k lines)", mixed_body(20_000), "s")
    small = b"".join(body.splitlines(keepends=True)[:500])
    t_ref = best_of(lambda: lineproto_ref.parse(small), repeat=1)
    t_c = best_of(lambda: lineproto.parse(small))
    print(f"python twin on 500 devops lines: {t_ref * 1e3:.1f} ms ({t_ref / t_c:.0f}x the Cython parser)")


if __name__ == "__main__":
    main()
