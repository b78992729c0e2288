"""Series index benchmark: create N TSBS-like cpu series, compact, close, reopen.

Prints the create rate, snapshot size, compaction time, reopen time and a few lookups' cost.
Usage: python bench/bench_index.py [--series 1000000] [--batch 10000] [--dir PATH]

Keys look like TSBS's devops "cpu" series:
``cpu,arch=x64,datacenter=eu-west-1a,hostname=host_42,os=Ubuntu16.04LTS,rack=17,region=eu-west-1,
service=9,service_environment=production,service_version=1,team=SF``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from chronosdb.model.tagexpr import TagEquals, TagRegex  # noqa: E402
from chronosdb.storage.index import SeriesIndex  # noqa: E402

REGIONS = ["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
           "ap-southeast-2", "ap-northeast-1", "sa-east-1"]
ARCH = ["x64", "x86"]
OS = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"]
TEAM = ["SF", "NYC", "LON", "CHI"]
ENV = ["production", "staging", "test"]


def tsbs_keys(start: int, count: int, rng: np.random.Generator) -> list[bytes]:
    """Canonical keys built directly (tag names are already in sorted order, nothing to escape)."""
    r = rng.integers(0, 1 << 30, size=(count, 8)).tolist()
    out = []
    for i, (dc, rack, os_, arch, team, svc, ver, env) in zip(range(start, start + count), r):
        region = REGIONS[i % len(REGIONS)]
        out.append(
            f"cpu,arch={ARCH[arch % 2]},datacenter={region}{'abc'[dc % 3]},hostname=host_{i},"
            f"os={OS[os_ % 3]},rack={rack % 100},region={region},service={svc % 20},"
            f"service_environment={ENV[env % 3]},service_version={ver % 2},team={TEAM[team % 4]}".encode()
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    root = a.dir or tempfile.mkdtemp(prefix="bench-index-")
    path = os.path.join(root, "index")
    rng = np.random.default_rng(42)

    t = time.perf_counter()
    batches = [tsbs_keys(s, min(a.batch, a.series - s), rng) for s in range(0, a.series, a.batch)]
    gen = time.perf_counter() - t
    print(f"generated {a.series:,} keys in {gen:.2f} s (not counted)")

    ix = SeriesIndex(path, auto_compact_bytes=None)
    t = time.perf_counter()
    for b in batches:
        ix.ids_for_keys(b)
    create = time.perf_counter() - t
    print(f"create: {a.series / create:,.0f} series/s ({create:.2f} s)")

    t = time.perf_counter()
    for b in batches:
        ix.ids_for_keys(b, create=False)
    lookup = time.perf_counter() - t
    print(f"lookup existing: {a.series / lookup:,.0f} keys/s")
    log_size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    print(f"log size: {log_size / 2**20:.1f} MiB")

    t = time.perf_counter()
    ix.close()
    ix = SeriesIndex(path, auto_compact_bytes=None)
    print(f"reopen from log only: {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    ix.compact()
    print(f"compact: {time.perf_counter() - t:.2f} s")
    ix.close()
    snap = [f for f in os.listdir(path) if f.endswith(".snap")][0]
    print(f"snapshot size: {os.path.getsize(os.path.join(path, snap)) / 2**20:.1f} MiB "
          f"({os.path.getsize(os.path.join(path, snap)) / a.series:.0f} bytes/series)")

    t = time.perf_counter()
    ix = SeriesIndex(path, auto_compact_bytes=None)
    reopen = time.perf_counter() - t
    print(f"reopen from snapshot: {reopen:.2f} s, series_count={ix.series_count():,}")

    t = time.perf_counter()
    ix.ids_for_keys(batches[0], create=False)
    print(f"first lookup batch after reopen ({len(batches[0]):,} keys): {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    r = ix.match(b"cpu", TagEquals(b"hostname", b"host_7"))
    print(f"match hostname=host_7: {len(r)} series in {(time.perf_counter() - t) * 1e3:.2f} ms")
    t = time.perf_counter()
    r = ix.match(b"cpu", TagEquals(b"region", b"eu-west-1"))
    print(f"match region=eu-west-1: {len(r):,} series in {(time.perf_counter() - t) * 1e3:.1f} ms")
    t = time.perf_counter()
    r = ix.match(b"cpu", TagRegex(b"hostname", "^host_1[0-9]$"))
    print(f"match hostname=~/^host_1[0-9]$/: {len(r)} series in {(time.perf_counter() - t) * 1e3:.0f} ms "
          f"(regex once per distinct value)")
    more = tsbs_keys(a.series, a.batch, rng)
    t = time.perf_counter()
    ix.ids_for_keys(more)
    print(f"create {a.batch:,} more after reopen: {time.perf_counter() - t:.2f} s")
    ix.close()
    if a.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
