"""TSBS devops query latency: ChronosDB beside InfluxDB 1.6.7 and VictoriaMetrics 1.79.5.

    python bench/bench_queries.py [--types T ...] [--runs 20] [--warmup 3] [--hosts 100]
                                  [--hours 24] [--seed 1] [--only NAME ...] [--vm-nocache]

Loads the TSBS devops cpu-only set (bench/tsbs.py: 100 hosts, 24 h from 2016-01-01, one point
per 10 s) into each system, waits until each has settled (InfluxDB: WAL snapshotted and TSM
fully compacted; VictoriaMetrics: flushed and merged; ChronosDB: answers once written), then per
query type (bench/tsbs_queries.py) draws ``warmup + runs`` different random instances. The first
``warmup`` run untimed; each of the next ``runs`` is sent to every system in turn over its own
kept-alive HTTP connection and timed from sending the request to the last byte of the answer
(JSON decoding excluded). Prints the median latency in ms per type and system and the
ChronosDB/VictoriaMetrics ratio.

Every instance also compares ChronosDB's InfluxQL answer with InfluxDB's (the comparator of the
compatibility tests: same series, tags, columns, rows, floats to 1e-9). Mismatches are counted
and the first one per type is printed; they never stop the run. A system that answers with an
error has no latency figure for that type (an error is not an answer worth timing).

The systems run side by side on the same (shared) machine; only the one being queried is busy.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers, tsbs  # noqa: E402
from bench.chronos_peer import ChronosDB  # noqa: E402
from bench.tsbs_queries import QUERY_TYPES, DataRange, TsbsQuery, generate  # noqa: E402
from tests.compat.test_influx_compat import compare_answers  # noqa: E402

DB = "bench"


class Client:
    """One kept-alive connection; ``timed(path)`` -> (seconds, status, body bytes)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def timed(self, path: str) -> tuple[float, int, bytes]:
        for attempt in (0, 1):
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - t0
                break
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle connection: reconnect once, outside the timing.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
                if attempt:
                    raise
        if resp.will_close:
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        return elapsed, resp.status, body


def influx_path(q: TsbsQuery) -> str:
    return "/query?" + urllib.parse.urlencode({"q": q.influxql, "db": DB})


def vm_path(q: TsbsQuery, nocache: bool = False) -> str:
    params = q.vm_params()
    if nocache:
        params["nocache"] = "1"  # bypass VictoriaMetrics' rollup result cache
    return "/api/v1/query_range?" + urllib.parse.urlencode(params)


def _decode(body: bytes) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        return {"error": f"<not JSON> {body[:200]!r}"}


def influx_error(status: int, doc: dict) -> str | None:
    if status != 200 or "error" in doc:
        return f"HTTP {status}: {doc.get('error')}"
    for r in doc.get("results", []):
        if "error" in r:
            return r["error"]
    return None


def answer_size(name: str, doc: dict) -> int:
    """Rows (InfluxQL) or samples (MetricsQL) in an answer, to tell an empty answer from a real one."""
    if name == "victoriametrics":
        return sum(len(r.get("values", [])) for r in doc.get("data", {}).get("result", []))
    return sum(len(s.get("values") or []) for r in doc.get("results", []) for s in r.get("series") or [])


def vm_error(status: int, doc: dict) -> str | None:
    if status != 200 or doc.get("status") != "success":
        return f"HTTP {status}: {doc.get('error') or doc}"[:300]
    return None


def start_and_load(names: list[str], bodies: list[bytes], n_values: int) -> dict:
    started = {}
    classes = {"chronosdb": ChronosDB, "influxdb": peers.InfluxDB, "victoriametrics": peers.VictoriaMetrics}
    for name in names:
        p = classes[name]()
        try:
            p.start()
            t0 = time.monotonic()
            res = peers.load(p, bodies, workers=2, n_values=n_values)
            p.flush_and_compact(timeout=300)
            print(f"{name}: loaded {n_values:,} values at {res['values_per_s'] / 1e6:.2f}M values/s, "
                  f"settled after {time.monotonic() - t0:.1f} s", flush=True)
            started[name] = p
        except Exception as e:  # a peer that fails must not hide the others' figures
            print(f"{name}: not measured: {type(e).__name__}: {e}", flush=True)
            p.stop()
    return started


def run_type(kind: str, queries: list[TsbsQuery], warmup: int, clients: dict,
             vm_nocache: bool = False) -> dict:
    """Medians (ms) per system, mismatch count and first mismatch / errors for one query type."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    sizes: dict[str, list[int]] = {name: [] for name in clients}
    errors: dict[str, str] = {}
    mismatches, first_mismatch = 0, None
    for i, q in enumerate(queries):
        answers = {}
        for name, client in clients.items():
            path = vm_path(q, vm_nocache) if name == "victoriametrics" else influx_path(q)
            elapsed, status, body = client.timed(path)
            doc = _decode(body)
            err = (vm_error if name == "victoriametrics" else influx_error)(status, doc)
            if err:
                errors.setdefault(name, err)
            elif i >= warmup:
                times[name].append(elapsed * 1e3)
                sizes[name].append(answer_size(name, doc))
            answers[name] = (status, doc)
        if i >= warmup and "chronosdb" in answers and "influxdb" in answers:
            diffs, _wording = compare_answers(*answers["influxdb"], *answers["chronosdb"])
            if diffs:
                mismatches += 1
                if first_mismatch is None:
                    first_mismatch = f"{q.influxql}\n      {diffs[0][:300]}"
    medians = {name: (statistics.median(t) if t else None) for name, t in times.items()}
    rows = {name: (statistics.median(v) if v else None) for name, v in sizes.items()}
    return {"kind": kind, "medians": medians, "rows": rows, "errors": errors, "mismatches": mismatches,
            "first_mismatch": first_mismatch, "n": len(queries) - warmup}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", nargs="+", choices=list(QUERY_TYPES), default=list(QUERY_TYPES))
    ap.add_argument("--runs", type=int, default=20, help="timed instances per type (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed instances first (default 3)")
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="+", choices=["chronosdb", "influxdb", "victoriametrics"],
                    default=["chronosdb", "influxdb", "victoriametrics"])
    ap.add_argument("--vm-nocache", action="store_true",
                    help="send nocache=1 to VictoriaMetrics (its rollup result cache is on by default, "
                         "as in TSBS runs)")
    args = ap.parse_args(argv)
    if args.runs <= 0 or args.warmup < 0:
        ap.error("--runs must be positive and --warmup not negative")

    duration_s = int(args.hours * 3600)
    data = tsbs.devops_cpu(hosts=args.hosts, duration_s=duration_s)
    bodies = list(tsbs.line_protocol_bodies(data, lines_per_batch=5000))
    print(f"TSBS devops cpu-only: {args.hosts} hosts, {args.hours:g} h, {data.n_values:,} values", flush=True)
    started = start_and_load(args.only, bodies, data.n_values)
    del bodies
    try:
        clients = {name: Client(p.http_port) for name, p in started.items()}
        dr = DataRange(duration_s=duration_s, hosts=args.hosts)
        rows = []
        for kind in args.types:
            queries = generate(kind, args.warmup + args.runs, seed=args.seed, data=dr)
            rows.append(run_type(kind, queries, args.warmup, clients, args.vm_nocache))
            print(f"  {kind}: done", flush=True)
    finally:
        for p in started.values():
            p.stop()

    def ms(v):
        return f"{v:9.2f}" if v is not None else f"{'n/a':>9s}"

    print(f"\nmedian latency (ms) over {args.runs} instances after {args.warmup} warm-up, "
          f"seed {args.seed}{', VM nocache=1' if args.vm_nocache else ''}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'query type':24s} {'InfluxDB':>9s} {'VM':>9s} {'ChronosDB':>9s} {'Chr/VM':>7s} "
          f"{'mismatch':>9s}")
    for r in rows:
        m = r["medians"]
        c, v = m.get("chronosdb"), m.get("victoriametrics")
        ratio = f"{c / v:7.2f}" if c is not None and v else f"{'n/a':>7s}"
        mism = f"{r['mismatches']}/{r['n']}" if "chronosdb" in m and "influxdb" in m else "-"
        print(f"{r['kind']:24s} {ms(m.get('influxdb'))} {ms(v)} {ms(c)} {ratio} {mism:>9s}")
    print("\nmedian answer size (InfluxQL rows / MetricsQL samples): " + "; ".join(
        f"{r['kind']} " + "/".join(f"{n}={v:g}" for n, v in r["rows"].items() if v is not None)
        for r in rows))
    for r in rows:
        for name, err in r["errors"].items():
            print(f"{r['kind']}: {name} answered with an error: {err[:200]}")
        if r["first_mismatch"] and "chronosdb" not in r["errors"]:
            print(f"{r['kind']}: first ChronosDB/InfluxDB mismatch:\n      {r['first_mismatch']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
