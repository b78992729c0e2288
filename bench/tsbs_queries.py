"""The nine TSBS devops query types, as InfluxQL and as MetricsQL, drawn with a seeded RNG.

TSBS (timescale/tsbs, cmd/tsbs_generate_queries) defines each type once per database. We follow
its InfluxDB forms (databases/influx/devops.go) word for word, and its VictoriaMetrics forms
(databases/victoriametrics/devops.go) where TSBS has one. TSBS gives VictoriaMetrics no form for
high-cpu-1, lastpoint and groupby-orderby-limit ("not supported in PromQL"); for those three we
write the closest MetricsQL ourselves and say so on each generator.

The time windows are drawn as TSBS draws them (uses/common: a random start, whole seconds, such
that the window fits inside the data set) over the bench data set of bench/tsbs.py: 2016-01-01,
24 h, 100 hosts ``host_0`` .. ``host_99``. Window lengths are TSBS's constants:

    single-groupby-M-H-T   M of the 10 cpu fields, H random hosts, T hours, max per 1 minute
    cpu-max-all-8          all 10 fields, 8 random hosts, 8 h, max per 1 minute (InfluxDB form)
                           and per 1 hour (VictoriaMetrics form), as TSBS writes them
    double-groupby-1/all   1 / 10 fields, every host, 12 h, mean per hour and host
    high-cpu-1             every field of 1 random host where usage_user > 90, 12 h
    lastpoint              the newest row of every host
    groupby-orderby-limit  max(usage_user) per minute before a random end, 5 rows

VictoriaMetrics sees the data as metrics ``cpu_<field>`` carrying the host tags plus
``db="bench"`` (bench/peers.py writes through its InfluxDB endpoint); a MetricsQL query goes to
``/api/v1/query_range`` with ``start``, ``end`` (unix seconds, inclusive) and ``step`` (seconds).
InfluxDB's windows are half-open (``time < end``), so the VictoriaMetrics ``end`` is the last
step inside the window.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bench.tsbs import FIELDS

DATA_START_S = 1_451_606_400   # 2016-01-01T00:00:00Z, bench/tsbs.py's default start
DATA_DURATION_S = 86_400
HOSTS = 100

# TSBS uses/devops: window lengths of the query types.
DOUBLE_GROUPBY_S = 12 * 3600
HIGH_CPU_S = 12 * 3600
MAX_ALL_S = 8 * 3600


@dataclass(frozen=True)
class DataRange:
    """What the queries may touch: [start_s, start_s + duration_s), hosts host_0 .. host_{n-1}."""
    start_s: int = DATA_START_S
    duration_s: int = DATA_DURATION_S
    hosts: int = HOSTS

    @property
    def end_s(self) -> int:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class TsbsQuery:
    kind: str          # the TSBS query type, e.g. "single-groupby-5-1-12"
    influxql: str      # sent to InfluxDB and ChronosDB as /query?q=...&db=bench
    metricsql: str     # sent to VictoriaMetrics as /api/v1/query_range?query=...
    start_s: int       # query_range start (unix s)
    end_s: int         # query_range end (unix s, inclusive)
    step_s: int        # query_range step (s)

    def vm_params(self) -> dict:
        return {"query": self.metricsql, "start": str(self.start_s), "end": str(self.end_s),
                "step": str(self.step_s)}


def rfc3339(unix_s: int) -> str:
    """Whole-second RFC3339 in UTC, as TSBS prints window bounds (Go's time.RFC3339)."""
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_window(rng: random.Random, data: DataRange, length_s: int) -> tuple[int, int]:
    """[start, start + length) with a whole-second start drawn so the window fits in the data.
    A window longer than the data (a reduced --hours run) shrinks to the whole data range."""
    if data.duration_s <= 0:
        raise ValueError(f"no data to query: duration {data.duration_s} s")
    length_s = min(length_s, data.duration_s)
    start = data.start_s + rng.randrange(0, data.duration_s - length_s + 1)
    return start, start + length_s


def random_hosts(rng: random.Random, data: DataRange, n: int) -> list[str]:
    """``n`` distinct hosts, as TSBS's GetRandomHosts (a random permutation prefix)."""
    if not 0 < n <= data.hosts:
        raise ValueError(f"cannot pick {n} distinct hosts of {data.hosts}")
    return [f"host_{i}" for i in rng.sample(range(data.hosts), n)]


def _influx_hosts(hosts: list[str]) -> str:
    return "(" + " or ".join(f"hostname = '{h}'" for h in hosts) + ")"


def _vm_selector(fields: list[str], hosts: list[str] | None) -> str:
    """TSBS's getSelectClause: one metric by name, several by a __name__ regex; hosts by = / =~."""
    host = ""
    if hosts:
        host = f"hostname='{hosts[0]}'" if len(hosts) == 1 else f"hostname=~'{'|'.join(hosts)}'"
    if len(fields) == 1:
        return f"cpu_{fields[0]}" + (f"{{{host}}}" if host else "")
    name = f"__name__=~'cpu_({'|'.join(fields)})'"
    return "{" + name + (", " + host if host else "") + "}"


def _last_step(start: int, end: int, step: int) -> int:
    """The last start + k*step strictly before ``end`` (InfluxDB's window is half-open)."""
    return start + ((end - start - 1) // step) * step


def single_groupby(n_fields: int, n_hosts: int, hours: int) -> Callable[[random.Random, DataRange], TsbsQuery]:
    kind = f"single-groupby-{n_fields}-{n_hosts}-{hours}"

    def generate(rng: random.Random, data: DataRange) -> TsbsQuery:
        start, end = random_window(rng, data, hours * 3600)
        fields = FIELDS[:n_fields]
        hosts = random_hosts(rng, data, n_hosts)
        select = ", ".join(f"max({f})" for f in fields)
        q = (f"SELECT {select} from cpu where {_influx_hosts(hosts)} and time >= '{rfc3339(start)}' "
             f"and time < '{rfc3339(end)}' group by time(1m)")
        vm = f"max(max_over_time({_vm_selector(fields, hosts)}[1m])) by (__name__)"
        return TsbsQuery(kind, q, vm, start, _last_step(start, end, 60), 60)

    generate.__name__ = kind
    return generate


def cpu_max_all(n_hosts: int):
    kind = f"cpu-max-all-{n_hosts}"

    def generate(rng: random.Random, data: DataRange) -> TsbsQuery:
        start, end = random_window(rng, data, MAX_ALL_S)
        hosts = random_hosts(rng, data, n_hosts)
        select = ",".join(f"max({f})" for f in FIELDS)
        q = (f"SELECT {select} from cpu where {_influx_hosts(hosts)} and time >= '{rfc3339(start)}' "
             f"and time < '{rfc3339(end)}' group by time(1m)")
        # TSBS's MetricsQL form groups per hour although its InfluxQL form groups per minute.
        vm = f"max(max_over_time({_vm_selector(FIELDS, hosts)}[1h])) by (__name__)"
        return TsbsQuery(kind, q, vm, start, _last_step(start, end, 3600), 3600)

    generate.__name__ = kind
    return generate


def double_groupby(n_fields: int, label: str):
    kind = f"double-groupby-{label}"

    def generate(rng: random.Random, data: DataRange) -> TsbsQuery:
        start, end = random_window(rng, data, DOUBLE_GROUPBY_S)
        fields = FIELDS[:n_fields]
        select = ", ".join(f"mean({f})" for f in fields)
        q = (f"SELECT {select} from cpu where time >= '{rfc3339(start)}' and time < '{rfc3339(end)}' "
             f"group by time(1h),hostname")
        vm = f"avg(avg_over_time({_vm_selector(fields, None)}[1h])) by (__name__, hostname)"
        return TsbsQuery(kind, q, vm, start, _last_step(start, end, 3600), 3600)

    generate.__name__ = kind
    return generate


def high_cpu(n_hosts: int):
    kind = f"high-cpu-{n_hosts}"

    def generate(rng: random.Random, data: DataRange) -> TsbsQuery:
        start, end = random_window(rng, data, HIGH_CPU_S)
        hosts = random_hosts(rng, data, n_hosts)
        q = (f"SELECT * from cpu where usage_user > 90.0 and {_influx_hosts(hosts)} "
             f"and time >= '{rfc3339(start)}' and time < '{rfc3339(end)}'")
        # Ours (TSBS has none): every field of the host at the steps where its usage_user > 90,
        # sampled on the data's own 10 s grid.
        host_sel = _vm_selector(["usage_user"], hosts)
        every = _vm_selector(FIELDS, hosts)
        vm = f"{every} and on (hostname) ({host_sel} > 90)"
        return TsbsQuery(kind, q, vm, start, _last_step(start, end, 10), 10)

    generate.__name__ = kind
    return generate


def lastpoint(rng: random.Random, data: DataRange) -> TsbsQuery:
    """The newest row of every host. Ours for VictoriaMetrics (TSBS has none): the last value of
    every cpu metric at the end of the data, looking back one hour."""
    q = 'SELECT * from cpu group by "hostname" order by time desc limit 1'
    vm = "last_over_time({__name__=~'cpu_.*'}[1h])"
    t = data.end_s
    return TsbsQuery("lastpoint", q, vm, t, t, 60)


def groupby_orderby_limit(rng: random.Random, data: DataRange) -> TsbsQuery:
    """TSBS's InfluxQL, word for word: ``time < END group by time(1m) limit 5``. Note that
    InfluxDB answers it with the *first* five minutes of the data (no ORDER BY DESC in the TSBS
    text); ChronosDB must give the same answer. Ours for VictoriaMetrics (TSBS has none): the
    intent of the query type, the max of usage_user over all hosts for the five minutes before
    END."""
    start, end = random_window(rng, data, 3600)
    q = f"SELECT max(usage_user) from cpu WHERE time < '{rfc3339(end)}' group by time(1m) limit 5"
    vm = "max(max_over_time(cpu_usage_user[1m]))"
    return TsbsQuery("groupby-orderby-limit", q, vm, end - 5 * 60, end - 60, 60)


QUERY_TYPES: dict[str, Callable[[random.Random, DataRange], TsbsQuery]] = {
    "single-groupby-1-1-1": single_groupby(1, 1, 1),
    "single-groupby-5-1-12": single_groupby(5, 1, 12),
    "single-groupby-5-8-1": single_groupby(5, 8, 1),
    "cpu-max-all-8": cpu_max_all(8),
    "double-groupby-1": double_groupby(1, "1"),
    "double-groupby-all": double_groupby(len(FIELDS), "all"),
    "high-cpu-1": high_cpu(1),
    "lastpoint": lastpoint,
    "groupby-orderby-limit": groupby_orderby_limit,
}


def generate(kind: str, n: int, seed: int = 1, data: DataRange = DataRange()) -> list[TsbsQuery]:
    """``n`` instances of query type ``kind``, the same for the same seed."""
    try:
        gen = QUERY_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown TSBS query type {kind!r}; known: {', '.join(QUERY_TYPES)}") from None
    # One RNG per type, seeded from the seed and the type's name, so adding a type or changing
    # --types does not change the instances of the others.
    rng = random.Random(f"{seed}:{kind}")
    return [gen(rng, data) for _ in range(n)]


if __name__ == "__main__":
    for kind in QUERY_TYPES:
        q = generate(kind, 1)[0]
        print(f"{kind}\n  InfluxQL:  {q.influxql}\n  MetricsQL: {q.metricsql}  "
              f"[start={q.start_s} end={q.end_s} step={q.step_s}]\n")
