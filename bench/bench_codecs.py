"""Column codec figures on TSBS-devops-cpu-like data: bits/value and single-thread values/s.

    python bench/bench_codecs.py [--columns 200] [--seconds 0.5]

Data (seeded numpy): per column 1000 points, as segment blocks hold; floats are a random walk with
N(0,1) steps clamped to [0, 100] and rounded to 2 decimals; times are a 10 s interval (and, for
contrast, the same with +-1 ms jitter); ints are a counter with small random increments; bools are
random. Each codec is timed two ways: per 1000-value block through the Python API (what the
segment reader pays, call overhead included) and as one 1M-value column (the kernel alone).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script
from chronosdb.ext import codecs as cx  # noqa: E402

BLOCK = 1000
BIG = 1_000_000


def tsbs_floats(rng, n):
    """Clamped N(0,1) random walk in [0, 100], rounded to 2 decimals (built once, not timed)."""
    out = np.empty(n)
    x = rng.uniform(0, 100)
    for i, step in enumerate(rng.normal(size=n)):
        x = min(100.0, max(0.0, x + step))
        out[i] = x
    return np.round(out, 2)


def columns(kind, rng, n, count):
    start = 1_600_000_000 * 10**9
    if kind == "floats":
        return [tsbs_floats(rng, n) for _ in range(count)]
    if kind == "times (10 s fixed)":
        return [start + np.arange(n, dtype=np.int64) * 10**10 for _ in range(count)]
    if kind == "times (10 s +-1 ms)":
        return [start + np.arange(n, dtype=np.int64) * 10**10 + rng.integers(-10**6, 10**6, n) for _ in range(count)]
    if kind == "ints (counter)":
        return [np.cumsum(rng.integers(0, 50, n)) for _ in range(count)]
    if kind == "bools":
        return [rng.integers(0, 2, n).astype(np.uint8) for _ in range(count)]
    raise KeyError(kind)


CODECS = {
    "floats": (cx.encode_floats, cx.decode_floats),
    "times (10 s fixed)": (cx.encode_times, cx.decode_times),
    "times (10 s +-1 ms)": (cx.encode_times, cx.decode_times),
    "ints (counter)": (cx.encode_ints, cx.decode_ints),
    "bools": (cx.encode_bools, cx.decode_bools),
}


def rate(fn, items, values_per_item, seconds):
    """values/s of fn over items, repeated until `seconds` have passed (best of the repeats)."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        dt = time.perf_counter() - t0
        best = max(best, len(items) * values_per_item / dt)
        if time.perf_counter() > deadline:
            return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--columns", type=int, default=200, help="1000-value columns per codec")
    ap.add_argument("--seconds", type=float, default=0.4, help="time budget per measurement")
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    print(f"{'codec':22} {'encoding':22} {'bits/value':>10} {'enc M/s blk':>12} {'dec M/s blk':>12}"
          f" {'enc M/s 1M':>11} {'dec M/s 1M':>11}")
    for kind, (enc, dec) in CODECS.items():
        cols = columns(kind, rng, BLOCK, args.columns)
        encoded = [enc(c) for c in cols]
        names = {cx.ENCODING_NAMES[cx.encoding_of(e)] for e in encoded}
        bits = sum(len(e) for e in encoded) * 8 / (BLOCK * len(cols))
        enc_blk = rate(enc, cols, BLOCK, args.seconds) / 1e6
        dec_blk = rate(dec, encoded, BLOCK, args.seconds) / 1e6
        big = columns(kind, rng, BIG, 1)[0] if kind.startswith("times") else np.concatenate(
            columns(kind, rng, BLOCK, BIG // BLOCK))
        big_enc = enc(big)
        enc_big = rate(enc, [big], len(big), args.seconds) / 1e6
        dec_big = rate(dec, [big_enc], len(big), args.seconds) / 1e6
        print(f"{kind:22} {','.join(sorted(names)):22} {bits:10.3f} {enc_blk:12.1f} {dec_blk:12.1f}"
              f" {enc_big:11.1f} {dec_big:11.1f}")


if __name__ == "__main__":
    main()
