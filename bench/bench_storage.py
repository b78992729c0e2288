"""Storage benchmark: ChronosDB's engine beside InfluxDB 1.6.7 and VictoriaMetrics 1.79.5.

    python bench/bench_storage.py [--hosts 100] [--hours 24] [--no-peers] [--threads 1]

On the TSBS devops cpu-only data set (bench/tsbs.py; 100 hosts x 10 fields x 24 h at 10 s =
8.64M values) it prints, in one run:

* engine write values/s: the data loaded through ``Engine.write`` (no HTTP), fsync on, batches of
  5000 lines, by ``--threads`` writer threads;
* bytes on disk per value after a full compaction (du of the data dir, real blocks), beside the
  peers' figures for the same data, settled the same way (bench/peers.py);
* codec encode / decode values/s per core, per codec, on the data set's columns in blocks of
  1000, and the whole read path (segment file → decoded columns) values/s.

Peers run after ours, one at a time, so nobody competes for the two cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers, tsbs  # noqa: E402
from bench.peer_storage import measure as measure_peer  # noqa: E402
from chronosdb.ext import codecs  # noqa: E402
from chronosdb.storage.api import StorageReader  # noqa: E402
from chronosdb.storage.engine import Engine, EngineOptions  # noqa: E402


def engine_load(data: tsbs.DevopsData, data_dir: str, threads: int) -> dict:
    batches = list(tsbs.write_batches(data, lines_per_batch=5000))
    engine = Engine(data_dir, EngineOptions())
    engine.create_database("bench")
    it = iter(batches)
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                b = next(it, None)
            if b is None:
                return
            engine.write("bench", b)

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    write_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    engine.compact_all(full=True)
    compact_s = time.perf_counter() - t1
    cpu = time.process_time() - cpu0
    # Whole read path: every series+field decoded from the compacted segment file.
    reader = StorageReader(engine)
    sids = reader.series_ids("bench", b"cpu")
    fields = [f.encode() for f in tsbs.FIELDS]
    t2 = time.perf_counter()
    n_read = 0
    for sid in sids.tolist():
        for f in fields:
            col = reader.scan("bench", sid, f)
            n_read += len(col[0])
    read_s = time.perf_counter() - t2
    segs = engine.stats()["segments"]
    engine.close()
    disk = peers.tree_bytes(data_dir)
    return {
        "write_values_per_s": data.n_values / write_s,
        "write_s": write_s,
        "compact_s": compact_s,
        "cpu_s_per_1M": cpu / data.n_values * 1e6,
        "disk": disk,
        "bytes_per_value": disk / data.n_values,
        "segments": segs,
        "read_values_per_s": n_read / read_s,
        "n_read": n_read,
    }


def _rate(fn, n_values: int, min_s: float = 0.3) -> float:
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= min_s:
            return n_values * reps / el


def codec_speeds(data: tsbs.DevopsData, max_columns: int = 200) -> list[tuple]:
    """Per codec: (name, bits/value, encode values/s, decode values/s), single thread."""
    rows = []
    vals = data.values.reshape(-1, data.values.shape[-1])[:max_columns]
    blocks = [np.ascontiguousarray(c[i:i + 1000]) for c in vals for i in range(0, len(c), 1000)]
    n = sum(len(b) for b in blocks)
    enc = [codecs.encode_floats(b) for b in blocks]
    rows.append(("floats (decimal/gorilla auto)", 8 * sum(map(len, enc)) / n,
                 _rate(lambda: [codecs.encode_floats(b) for b in blocks], n),
                 _rate(lambda: [codecs.decode_floats(e) for e in enc], n)))
    times = [np.ascontiguousarray(data.times[i:i + 1000]) for i in range(0, len(data.times), 1000)]
    times = times * max(1, len(blocks) // len(times))
    nt = sum(len(t) for t in times)
    enc_t = [codecs.encode_times(t) for t in times]
    rows.append(("times (fixed interval)", 8 * sum(map(len, enc_t)) / nt,
                 _rate(lambda: [codecs.encode_times(t) for t in times], nt),
                 _rate(lambda: [codecs.decode_times(e) for e in enc_t], nt)))
    rng = np.random.default_rng(5)
    jitter = [np.cumsum(rng.integers(9_000_000_000, 11_000_000_000, 1000)) for _ in range(len(blocks) // 4 or 1)]
    nj = sum(len(t) for t in jitter)
    enc_j = [codecs.encode_times(t) for t in jitter]
    rows.append(("times (jittered)", 8 * sum(map(len, enc_j)) / nj,
                 _rate(lambda: [codecs.encode_times(t) for t in jitter], nj),
                 _rate(lambda: [codecs.decode_times(e) for e in enc_j], nj)))
    ints = [np.round(b * 100).astype(np.int64) for b in blocks]
    enc_i = [codecs.encode_ints(b) for b in ints]
    rows.append(("ints (counter-like)", 8 * sum(map(len, enc_i)) / n,
                 _rate(lambda: [codecs.encode_ints(b) for b in ints], n),
                 _rate(lambda: [codecs.decode_ints(e) for e in enc_i], n)))
    bools = [(b > 50).astype(np.uint8) for b in blocks]
    enc_b = [codecs.encode_bools(b) for b in bools]
    rows.append(("bools", 8 * sum(map(len, enc_b)) / n,
                 _rate(lambda: [codecs.encode_bools(b) for b in bools], n),
                 _rate(lambda: [codecs.decode_bools(e) for e in enc_b], n)))
    noisy = [b + rng.random(len(b)) * 1e-7 for b in blocks]  # no longer decimals: Gorilla path
    enc_g = [codecs.encode_floats(b) for b in noisy]
    rows.append(("floats (full precision, gorilla)", 8 * sum(map(len, enc_g)) / n,
                 _rate(lambda: [codecs.encode_floats(b) for b in noisy], n),
                 _rate(lambda: [codecs.decode_floats(e) for e in enc_g], n)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)

    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=int(args.hours * 3600))
    print(f"data set: TSBS devops cpu-only, {args.hosts} hosts, {args.hours:g} h, "
          f"{data.n_values:,} values")
    tmp = tempfile.mkdtemp(prefix="chronosdb-bench-")
    try:
        ours = engine_load(data, os.path.join(tmp, "data"), args.threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n== ChronosDB engine (no HTTP, fsync on) ==")
    print(f"write: {ours['write_values_per_s'] / 1e6:.2f}M values/s ({args.threads} thread(s)); "
          f"full compaction {ours['compact_s']:.1f} s; {ours['segments']} segment file(s)")
    print(f"read path (segment → columns): {ours['read_values_per_s'] / 1e6:.1f}M values/s")
    print(f"disk: {ours['disk']:,} bytes = {ours['bytes_per_value']:.3f} bytes/value")

    print("\n== codecs (single core) ==")
    print(f"{'codec':36s} {'bits/value':>10s} {'encode M/s':>11s} {'decode M/s':>11s}")
    for name, bits, e, d in codec_speeds(data):
        print(f"{name:36s} {bits:10.2f} {e / 1e6:11.1f} {d / 1e6:11.1f}")

    if args.no_peers:
        return 0
    bodies = list(tsbs.line_protocol_bodies(data, lines_per_batch=5000))
    results = []
    for cls in (peers.InfluxDB, peers.VictoriaMetrics):
        try:
            results.append(measure_peer(cls, bodies, data.n_values, workers=2, settle_timeout=300))
        except Exception as e:  # report and go on: a missing peer must not hide our figures
            print(f"{cls.__name__}: not measured: {e}")
    print("\n== bytes on disk per value, same data, same machine, same run ==")
    print(f"{'system':26s} {'bytes/value':>11s} {'vs ChronosDB':>13s}")
    print(f"{'ChronosDB':26s} {ours['bytes_per_value']:11.3f} {1.0:12.2f}x")
    for r in results:
        print(f"{r['peer']:26s} {r['bytes_per_value']:11.3f} "
              f"{r['bytes_per_value'] / ours['bytes_per_value']:12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
