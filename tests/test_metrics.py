"""The Prometheus rendering of the server's own metrics (chronosdb/server/metrics.py)."""
from __future__ import annotations

import re

from chronosdb.server.metrics import BUCKETS, Metrics


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_latency_histogram_counts_sums_and_overflow_bucket():
    m = Metrics()
    took = [0.00005, 0.0003, 0.002, 0.2, 42.0, 99.0]  # the last two beyond the largest bucket
    for s in took:
        m.observe_request("/query", 200, s)
    got = _samples(m.render().decode())
    route = 'route="/query"'
    assert got[f"chronosdb_http_request_duration_seconds_count{{{route}}}"] == len(took)
    assert abs(got[f"chronosdb_http_request_duration_seconds_sum{{{route}}}"] - sum(took)) < 1e-6
    assert got[f'chronosdb_http_request_duration_seconds_bucket{{{route},le="+Inf"}}'] == len(took)
    assert got[f'chronosdb_http_request_duration_seconds_bucket{{{route},le="{BUCKETS[-1]:g}"}}'] == 4
    assert got[f'chronosdb_http_request_duration_seconds_bucket{{{route},le="0.0001"}}'] == 1
    # cumulative buckets never decrease
    cum = [v for k, v in got.items() if k.startswith("chronosdb_http_request_duration_seconds_bucket")]
    assert cum == sorted(cum)


def test_counters_with_labels_and_help_lines():
    m = Metrics()
    m.inc("points_written_total", 5)
    m.inc("write_errors_total", kind="parse")
    text = m.render().decode()
    assert "# TYPE chronosdb_points_written_total counter" in text
    assert re.search(r'^chronosdb_write_errors_total\{kind="parse"\} 1$', text, re.M)
