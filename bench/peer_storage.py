"""Bytes on disk per value, load rate, CPU and peak RSS of the peers on the TSBS devops cpu set.

    python bench/peer_storage.py [--hosts 100] [--hours 24] [--workers 2] [--only influxdb]

Generates the data set (bench/tsbs.py), then for each peer in turn (never side by side, so they
do not compete for the 2 cores): start it in a temp dir, POST the line protocol bodies, settle
(flush + full compaction, see bench/peers.py), and measure du of its data dir. The peers run one
after the other so each one's CPU and load rate are its own.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers, tsbs  # noqa: E402

PEERS = {"influxdb": peers.InfluxDB, "victoriametrics": peers.VictoriaMetrics}


def measure(peer_cls, bodies: list[bytes], n_values: int, workers: int, settle_timeout: float) -> dict:
    peer = peer_cls()
    try:
        peer.start()
        cpu0 = peer.cpu_seconds()
        loaded = peers.load(peer, bodies, workers=workers, n_values=n_values)
        cpu_load = peer.cpu_seconds() - cpu0
        t0 = time.monotonic()
        peer.flush_and_compact(settle_timeout)
        settle_s = time.monotonic() - t0
        cpu_total = peer.cpu_seconds() - cpu0
        disk = peer.disk_bytes()
        return {
            "peer": peer.name,
            "load_s": loaded["seconds"],
            "values_per_s": loaded["values_per_s"],
            "settle_s": settle_s,
            "cpu_s_per_1M_load": cpu_load / n_values * 1e6,
            "cpu_s_per_1M_total": cpu_total / n_values * 1e6,
            "peak_rss": peer.peak_rss_bytes(),
            "disk": disk,
            "bytes_per_value": disk / n_values,
            "breakdown": peer.disk_breakdown(3),
        }
    finally:
        peer.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lines-per-batch", type=int, default=5000)
    ap.add_argument("--only", choices=sorted(PEERS), action="append",
                    help="measure only this peer (repeatable)")
    ap.add_argument("--settle-timeout", type=float, default=300)
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=int(args.hours * 3600))
    bodies = list(tsbs.line_protocol_bodies(data, args.lines_per_batch))
    gen_s = time.monotonic() - t0
    n = data.n_values
    print(f"data: TSBS devops cpu-only, {data.hosts} hosts x {data.n_points} points x "
          f"{len(tsbs.FIELDS)} fields = {n:,} values; {len(bodies)} bodies, "
          f"{sum(map(len, bodies)) / 1e6:.1f} MB line protocol; generated in {gen_s:.2f} s")

    rows = []
    for name in args.only or list(PEERS):
        r = measure(PEERS[name], bodies, n, args.workers, args.settle_timeout)
        rows.append(r)
        print(f"\n{r['peer']}: {r['bytes_per_value']:.3f} bytes/value ({r['disk']:,} bytes on disk)")
        print(f"  load {r['load_s']:.2f} s = {r['values_per_s']:,.0f} values/s ({args.workers} workers); "
              f"settle {r['settle_s']:.1f} s")
        print(f"  server CPU s per 1M values: {r['cpu_s_per_1M_load']:.3f} during load, "
              f"{r['cpu_s_per_1M_total']:.3f} incl. settle; peak RSS {r['peak_rss'] / 2**20:.0f} MiB")
        for path, b in sorted(r["breakdown"].items(), key=lambda kv: -kv[1]):
            if b:
                print(f"    {b:>14,}  {path}")

    print("\n| peer | bytes/value | values/s (load) | CPU s / 1M values | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['peer']} | {r['bytes_per_value']:.2f} | {r['values_per_s']:,.0f} | "
              f"{r['cpu_s_per_1M_load']:.3f} | {r['peak_rss'] / 2**20:.0f} |")
    if len(rows) == 2:
        a, b = rows
        print(f"\nratio {a['peer']}/{b['peer']}: bytes/value {a['bytes_per_value'] / b['bytes_per_value']:.2f}x, "
              f"load rate {a['values_per_s'] / b['values_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
