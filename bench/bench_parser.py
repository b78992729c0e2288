"""InfluxQL parse cost, cold (pyparsing) and warm (statement-cache hit). Prints figures only.

    python bench/bench_parser.py            # ~10 s on one core

For each query: "cold" is a full pyparsing parse (``parse_uncached``), "warm" is
``StatementCache.parse`` on a text of the same shape whose literals differ on every call (new
time bounds, host names, intervals), which is what a dashboard refreshing sends, so every warm
call re-binds its literals into the cached template. "shape" is the tokenizer pass alone (the
floor of a hit). Cold is also measured with pyparsing's packrat memo on, since that is a
process-wide switch we chose to leave off.
"""
from __future__ import annotations

import itertools
import time

import pyparsing as pp

from chronosdb.query.influxql import StatementCache, parse_uncached
from chronosdb.query.influxql.cache import shape_of
from chronosdb.query.influxql.durations import format_time

T0 = 1451606400 * 10**9  # 2016-01-01T00:00:00Z

QUERIES = {
    "grafana mean": lambda i: (
        f'SELECT mean("value") FROM "m" WHERE time >= {1700000000000 + i}ms and time <= '
        f'{1700003600000 + i}ms GROUP BY time({10 + i % 50}s) fill(null)'),
    "tsbs single-groupby-1-1-1": lambda i: (
        f"SELECT max(usage_user) FROM cpu WHERE (hostname = 'host_{i % 4000}') AND time >= "
        f"'{format_time(T0 + i * 10**9)}' AND time < '{format_time(T0 + i * 10**9 + 3600 * 10**9)}' "
        f"GROUP BY time(1m)"),
    "tsbs cpu-max-all-8": lambda i: (
        "SELECT max(usage_user), max(usage_system), max(usage_idle), max(usage_nice), max(usage_iowait), "
        "max(usage_irq), max(usage_softirq), max(usage_steal), max(usage_guest), max(usage_guest_nice) "
        "FROM cpu WHERE (" + " OR ".join(f"hostname = 'host_{(i + k) % 4000}'" for k in range(8))
        + f") AND time >= '{format_time(T0 + i * 10**9)}' AND time < "
        f"'{format_time(T0 + i * 10**9 + 8 * 3600 * 10**9)}' GROUP BY time(1h)"),
    "tsbs high-cpu-1": lambda i: (
        f"SELECT * FROM cpu WHERE usage_user > {90.0 + (i % 9) / 10} AND time >= "
        f"'{format_time(T0 + i * 10**9)}' AND time < '{format_time(T0 + i * 10**9 + 43200 * 10**9)}' "
        f"AND (hostname = 'host_{i % 4000}')"),
    "show tag values": lambda i: (
        f"SHOW TAG VALUES FROM cpu WITH KEY = \"hostname\" WHERE region = 'us-east-{i % 9}'"),
}


def per_call_us(fn, n) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    print(f"{'query':28s} {'cold µs':>9s} {'packrat µs':>10s} {'warm µs':>8s} {'shape µs':>8s} {'cold/warm':>9s}")
    for name, make in QUERIES.items():
        cold = per_call_us(lambda i: parse_uncached(make(i)), 40)
        pp.ParserElement.enable_packrat(cache_size_limit=None)
        try:
            packrat = per_call_us(lambda i: parse_uncached(make(i)), 40)
        finally:
            pp.ParserElement.disable_memoization()
        cache = StatementCache()
        cache.parse(make(0))
        texts = [make(i) for i in range(1, 5001)]
        warm = per_call_us(lambda i: cache.parse(texts[i]), 5000)
        assert cache.misses == 1, "every warm call must be a hit"
        shape = per_call_us(lambda i: shape_of(texts[i]), 5000)
        print(f"{name:28s} {cold:9.0f} {packrat:10.0f} {warm:8.1f} {shape:8.1f} {cold / warm:9.0f}x")
    # A dashboard's mix: 20 shapes, each refreshed with new bounds.
    cache = StatementCache()
    shapes = list(QUERIES.values())
    texts = [shapes[i % len(shapes)](i) for i in range(5000)]
    for t in texts[:len(shapes)]:
        cache.parse(t)
    warm = per_call_us(lambda i: cache.parse(texts[i]), 5000)
    print(f"{'mixed shapes, all hits':28s} {'':9s} {'':10s} {warm:8.1f}")


if __name__ == "__main__":
    main()
