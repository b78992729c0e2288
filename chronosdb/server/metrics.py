"""Server metrics in the Prometheus text exposition format (``GET /metrics``).

Counters and gauges are plain dicts keyed by (name, sorted labels); request latencies are a
fixed-bucket histogram per route. Engine figures (WAL fsyncs, cache bytes, compactions) are read
from the engine when scraped, so they are never stale and cost nothing between scrapes.
"""
from __future__ import annotations

import bisect
import os
import threading
from functools import lru_cache

# Bucket bounds in seconds: sub-millisecond resolution for the fast paths, up to 10 s.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0)
ROUTES = ("/write", "/query", "/ping", "/health", "/metrics", "/api/keys", "/stream", "/ws/stream")

HELP = {
    "points_written_total": ("counter", "Field values written through /write and UDP"),
    "write_errors_total": ("counter", "Rejected writes or lines, by kind"),
    "http_requests_total": ("counter", "HTTP requests answered, by route and status"),
    "http_requests_rejected_total": ("counter", "Requests refused at the HTTP framing level"),
    "http_request_timeouts_total": ("counter", "Requests whose headers or body did not arrive in time"),
    "udp_datagrams_total": ("counter", "UDP datagrams received"),
    "udp_datagrams_dropped_total": ("counter", "UDP datagrams dropped because the queue was full"),
    "udp_parse_errors_total": ("counter", "UDP lines that failed to parse"),
    "http_request_duration_seconds": ("histogram", "HTTP request latency by route"),
    "pubsub_subscribers": ("gauge", "Open pubsub subscriptions (streams)"),
    "pubsub_points_delivered_total": ("counter", "Points queued for pubsub subscribers"),
    "pubsub_points_dropped_total": ("counter", "Points dropped because a subscriber's queue was full"),
    "pubsub_subscribers_disconnected_total": ("counter", "Subscribers disconnected as too slow"),
    "streams_opened_total": ("counter", "Streaming queries opened (/stream, /ws/stream)"),
    "stream_events_total": ("counter", "Points events sent by raw streams, by how they were written "
                            "(tick: in one pass for the streams of a pace tick; stream: by the stream)"),
    "cq_runs_total": ("counter", "Continuous query runs, by database and name"),
    "cq_run_errors_total": ("counter", "Continuous query runs that failed"),
    "cq_points_written_total": ("counter", "Points written by continuous queries"),
    "cq_run_seconds_total": ("counter", "Time spent running continuous queries"),
    "subscription_writes_forwarded_total": ("counter", "Write bodies a subscription destination accepted"),
    "subscription_write_failures_total": ("counter", "Failed sends to a subscription destination (retried unless refused)"),
    "subscription_bodies_dropped_total": ("counter", "Write bodies dropped because a destination's queue was full"),
    "subscription_queue_depth": ("gauge", "Write bodies waiting in a subscription destination's queue"),
    "queries_inline_total": ("counter", "Queries answered on the event loop (their shape runs fast)"),
    "queries_prepared_total": ("counter", "Queries answered from a prepared shape by the direct path, no statement built"),
    "queries_inline_over_budget_total": ("counter", "Inline queries that ran past the budget and started over in the pool"),
}


def _resident_memory_bytes() -> int | None:
    """This process's resident set size, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@lru_cache(maxsize=1024)
def _route(path: str) -> str:
    for r in ROUTES:
        if path == r or path.startswith(r + "/"):
            return r
    return "other"


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return _label_text(tuple(labels.items()))


@lru_cache(maxsize=4096)
def _label_text(items: tuple) -> str:
    """``{k="v",...}`` of label items, sorted by name, values escaped (cached: every request
    counts itself under a few label sets)."""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(items))
    return "{" + inner + "}"


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], float] = {}
        self._hist: dict[str, list] = {}  # route -> [bucket counts..., sum, count]
        self.engine = None

    def inc(self, name: str, value: float = 1, **labels) -> None:
        key = (name, _labels(labels))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + value

    def get(self, name: str, **labels) -> float:
        return self._counters.get((name, _labels(labels)), 0)

    def set_gauge(self, name: str, value: float, **labels) -> None:
        """Set a gauge (declared "gauge" in HELP); rendered with the counters."""
        key = (name, _labels(labels))
        with self._lock:
            self._counters[key] = value

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = _route(path)
        self.inc("http_requests_total", route=route, status=str(status))
        with self._lock:
            h = self._hist.get(route)
            if h is None:
                h = self._hist[route] = [0] * (len(BUCKETS) + 2)
            h[bisect.bisect_left(BUCKETS, seconds)] += 1
            h[-1] += seconds  # h[len(BUCKETS)] counts the overflow (+Inf) bucket

    def render(self) -> bytes:
        out: list[str] = []
        with self._lock:
            counters = dict(self._counters)
            hist = {k: list(v) for k, v in self._hist.items()}
        seen = set()
        for (name, labels), v in sorted(counters.items()):
            if name not in seen:
                kind, text = HELP.get(name, ("counter", name))
                out.append(f"# HELP chronosdb_{name} {text}")
                out.append(f"# TYPE chronosdb_{name} {kind}")
                seen.add(name)
            out.append(f"chronosdb_{name}{labels} {v:g}")
        if hist:
            out.append("# HELP chronosdb_http_request_duration_seconds HTTP request latency by route")
            out.append("# TYPE chronosdb_http_request_duration_seconds histogram")
            for route, h in sorted(hist.items()):
                cum = 0
                for bound, c in zip(BUCKETS, h):
                    cum += c
                    out.append(f'chronosdb_http_request_duration_seconds_bucket{{route="{route}",le="{bound:g}"}} {cum}')
                cum += h[len(BUCKETS)]
                out.append(f'chronosdb_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {cum}')
                out.append(f'chronosdb_http_request_duration_seconds_sum{{route="{route}"}} {h[-1]:.6f}')
                out.append(f'chronosdb_http_request_duration_seconds_count{{route="{route}"}} {cum}')
        if self.engine is not None:
            st = self.engine.stats()
            fsyncs = sum(s.wal.fsync_count for s in list(self.engine._shards.values()))
            for name, kind, text, value in (
                ("wal_fsyncs", "gauge", "WAL fsync calls by open shards since they opened", fsyncs),
                ("wal_bytes", "gauge", "Bytes in WAL segments", st["wal_bytes"]),
                ("cache_bytes", "gauge", "Bytes held in write caches", st["cache_bytes"]),
                ("segment_bytes", "gauge", "Bytes in segment files", st["segment_bytes"]),
                ("segments", "gauge", "Live segment files", st["segments"]),
                ("shards", "gauge", "Open shards", st["shards"]),
                ("snapshots_total", "counter", "Cache snapshots written", st["snapshots"]),
                ("compactions_total", "counter", "Compactions run", st["compactions"]),
                ("engine_values_written_total", "counter", "Values written by the engine", st["values_written"]),
            ):
                out.append(f"# HELP chronosdb_{name} {text}")
                out.append(f"# TYPE chronosdb_{name} {kind}")
                out.append(f"chronosdb_{name} {value}")
        rss = _resident_memory_bytes()
        if rss is not None:
            out.append("# HELP process_resident_memory_bytes Resident memory of the server process")
            out.append("# TYPE process_resident_memory_bytes gauge")
            out.append(f"process_resident_memory_bytes {rss}")
        return ("\n".join(out) + "\n").encode()
