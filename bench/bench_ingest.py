"""HTTP ingest benchmark: ChronosDB beside InfluxDB 1.6.7 and VictoriaMetrics 1.79.5.

    python bench/bench_ingest.py [--hosts 100] [--hours 24] [--workers 1 2] [--only NAME]

Loads the TSBS devops cpu-only set (bench/tsbs.py) over HTTP /write in bodies of 5000 lines,
from 1 and from 2 client processes on keep-alive connections, into each system in turn (fresh
data dir each time, fsync on for ChronosDB), and prints values/s, the server's CPU seconds per 1M
values (utime+stime of its process during the load) and its peak RSS (VmHWM), then the ratios to
VictoriaMetrics measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers, tsbs  # noqa: E402
from bench.chronos_peer import ChronosDB  # noqa: E402

SYSTEMS = {"chronosdb": ChronosDB, "influxdb": peers.InfluxDB, "victoriametrics": peers.VictoriaMetrics}


def run_one(cls, bodies, n_values, workers) -> dict:
    p = cls()
    try:
        p.start()
        cpu0 = p.cpu_seconds()
        res = peers.load(p, bodies, workers=workers, n_values=n_values)
        cpu = p.cpu_seconds() - cpu0
        return {"system": p.name, "workers": workers, "values_per_s": res["values_per_s"],
                "cpu_per_1M": cpu / n_values * 1e6, "peak_rss_mib": p.peak_rss_bytes() / 2**20}
    finally:
        p.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", choices=sorted(SYSTEMS), action="append")
    args = ap.parse_args(argv)
    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=int(args.hours * 3600))
    bodies = list(tsbs.line_protocol_bodies(data, lines_per_batch=5000))
    names = args.only or list(SYSTEMS)
    print(f"TSBS devops cpu-only: {data.n_values:,} values in {len(bodies)} bodies of 5000 lines "
          f"({sum(map(len, bodies)) / 1e6:.0f} MB)")
    rows = []
    for w in args.workers:
        for name in names:
            try:
                rows.append(run_one(SYSTEMS[name], bodies, data.n_values, w))
            except Exception as e:  # a missing peer must not hide the other figures
                print(f"{name} ({w} workers): not measured: {e}")
    print(f"\n{'system':16s} {'workers':>7s} {'values/s':>12s} {'CPU-s/1M':>9s} {'peak RSS':>9s} "
          f"{'vs VM values/s':>15s}")
    for r in rows:
        vm = next((x for x in rows if x["system"] == "victoriametrics" and x["workers"] == r["workers"]), None)
        ratio = f"{r['values_per_s'] / vm['values_per_s']:.2f}x" if vm else "-"
        print(f"{r['system']:16s} {r['workers']:7d} {r['values_per_s'] / 1e6:10.2f}M {r['cpu_per_1M']:9.2f} "
              f"{r['peak_rss_mib']:7.0f}Mi {ratio:>15s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
