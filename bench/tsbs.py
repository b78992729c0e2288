"""The TSBS "devops cpu-only" data set, generated deterministically with numpy.

Layout of the data: one measurement, ``cpu``; one series per host, tagged with the ten TSBS
machine tags (hostname first, then region, datacenter, rack, os, arch, team, service,
service_version, service_environment), and ten float fields per point. ``DevopsData.values`` is
a ``(hosts, 10, n_points)`` float64 array: ``values[h, f, t]`` is field ``FIELDS[f]`` of host ``h``
at ``times[t]``. Every value is a multiple of 0.01 in [0, 100], so ``round(v * 100) / 100 == v``
exactly and its shortest repr is its two-decimal form.

A "line" is one host at one time (ten values). Lines go out in TSBS order, time-major: every host
at t0, then every host at t1, and so on; batch k holds lines ``[k * n, (k + 1) * n)``. The same
batch boundaries are used by ``write_batches`` (ChronosDB's columnar ``WriteBatch``) and by
``line_protocol_bodies`` (InfluxDB line protocol for the peers), so both describe the same points.

The value sets of the tags are those TSBS uses (pkg/data/usecases/devops/host.go); the values
themselves come from our own seeded generator, so they are not byte-identical to TSBS output, but
they have the same shape: a clamped random walk per host and field.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

import numpy as np

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key

MEASUREMENT = "cpu"

FIELDS: list[str] = [
    "usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
    "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
]

# The order TSBS writes tags in (hostname first); series keys sort them, line protocol keeps this.
TAG_KEYS: list[str] = [
    "hostname", "region", "datacenter", "rack", "os", "arch", "team", "service",
    "service_version", "service_environment",
]

# region -> its datacenters, as in TSBS devops.
REGIONS: dict[str, list[str]] = {
    "us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    "us-west-1": ["us-west-1a", "us-west-1b"],
    "us-west-2": ["us-west-2a", "us-west-2b", "us-west-2c"],
    "eu-west-1": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    "eu-central-1": ["eu-central-1a", "eu-central-1b"],
    "ap-southeast-1": ["ap-southeast-1a", "ap-southeast-1b"],
    "ap-southeast-2": ["ap-southeast-2a", "ap-southeast-2b"],
    "ap-northeast-1": ["ap-northeast-1a", "ap-northeast-1c"],
    "sa-east-1": ["sa-east-1a", "sa-east-1b", "sa-east-1c"],
}
RACKS = 100
OS_CHOICES = ["Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"]
ARCH_CHOICES = ["x64", "x86"]
TEAM_CHOICES = ["SF", "NYC", "LON", "CHI"]
SERVICES = 20
SERVICE_VERSIONS = 2
ENVIRONMENT_CHOICES = ["production", "staging", "test"]

_NS = 1_000_000_000
_MAX_CENTS = 100 * 100  # values are cents of a percent: 0 .. 10000


@dataclass
class DevopsData:
    hosts: int
    keys: list[bytes]              # canonical series key per host (chronosdb.model.serieskey)
    tags: list[dict[str, str]]     # tag set per host, in TAG_KEYS order
    times: np.ndarray              # int64 ns, (n_points,)
    values: np.ndarray             # float64, (hosts, len(FIELDS), n_points)

    @property
    def n_points(self) -> int:
        """Timestamps per series."""
        return len(self.times)

    @property
    def n_lines(self) -> int:
        """Line-protocol lines (one host at one time)."""
        return self.hosts * self.n_points

    @property
    def n_values(self) -> int:
        return self.hosts * len(FIELDS) * self.n_points


def _parse_start_ns(start) -> int:
    if isinstance(start, (int, np.integer)):
        return int(start)
    if isinstance(start, datetime):
        dt = start
    else:
        try:
            dt = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"start {start!r} is not an ISO 8601 time or int ns") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


def _host_tags(rng: np.random.Generator, hosts: int) -> list[dict[str, str]]:
    """One seeded draw per tag, vectorized over hosts; the Python loop is per host, not per point."""
    region_names = list(REGIONS)
    region = rng.integers(0, len(region_names), hosts)
    # Datacenter: uniform within the chosen region (regions have 2 to 4 of them).
    dc_u = rng.random(hosts)
    rack = rng.integers(0, RACKS, hosts)
    os_ = rng.integers(0, len(OS_CHOICES), hosts)
    arch = rng.integers(0, len(ARCH_CHOICES), hosts)
    team = rng.integers(0, len(TEAM_CHOICES), hosts)
    service = rng.integers(0, SERVICES, hosts)
    version = rng.integers(0, SERVICE_VERSIONS, hosts)
    env = rng.integers(0, len(ENVIRONMENT_CHOICES), hosts)
    out = []
    for h in range(hosts):
        rname = region_names[region[h]]
        dcs = REGIONS[rname]
        out.append({
            "hostname": f"host_{h}",
            "region": rname,
            "datacenter": dcs[int(dc_u[h] * len(dcs))],
            "rack": str(rack[h]),
            "os": OS_CHOICES[os_[h]],
            "arch": ARCH_CHOICES[arch[h]],
            "team": TEAM_CHOICES[team[h]],
            "service": str(service[h]),
            "service_version": str(version[h]),
            "service_environment": ENVIRONMENT_CHOICES[env[h]],
        })
    return out


def _clamped_walks(rng: np.random.Generator, series: int, n_points: int) -> np.ndarray:
    """(n_points, series) random walks: start U[0, 100], steps N(0, 1), clamped to [0, 100].

    The clamp makes each step depend on the previous clamped value, so there is no closed-form
    cumsum; we step through time once, each step one numpy pass over all series (8640 passes of
    1000 values for the default set, tens of milliseconds).
    """
    walk = np.empty((n_points, series), dtype=np.float64)
    if n_points == 0:
        return walk
    walk[0] = rng.uniform(0.0, 100.0, series)
    steps = rng.standard_normal((max(n_points - 1, 0), series))
    for t in range(1, n_points):
        row = walk[t]
        np.add(walk[t - 1], steps[t - 1], out=row)
        np.clip(row, 0.0, 100.0, out=row)
    return walk


def devops_cpu(hosts: int = 100, start="2016-01-01T00:00:00Z", interval_s: int = 10,
               duration_s: int = 86400, seed: int = 123) -> DevopsData:
    """The devops cpu-only set: ``hosts`` series, one point per ``interval_s`` over ``duration_s``."""
    if hosts <= 0:
        raise ValueError(f"hosts must be positive, got {hosts}")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if duration_s < 0:
        raise ValueError(f"duration_s must not be negative, got {duration_s}")
    start_ns = _parse_start_ns(start)
    n_points = duration_s // interval_s
    rng = np.random.default_rng(seed)
    tags = _host_tags(rng, hosts)
    keys = [make_key(MEASUREMENT, t) for t in tags]
    times = start_ns + np.arange(n_points, dtype=np.int64) * np.int64(interval_s * _NS)
    walk = _clamped_walks(rng, hosts * len(FIELDS), n_points)
    # Round to cents of a percent: rint(x*100)/100 is exactly what a 2-decimal literal parses to.
    cents = np.rint(walk * 100.0)
    values = (cents / 100.0).T.reshape(hosts, len(FIELDS), n_points)
    return DevopsData(hosts, keys, tags, times, np.ascontiguousarray(values))


def _batch_ranges(data: DevopsData, lines_per_batch: int) -> Iterator[tuple[int, int]]:
    if lines_per_batch <= 0:
        raise ValueError(f"lines_per_batch must be positive, got {lines_per_batch}")
    total = data.n_lines
    for a in range(0, total, lines_per_batch):
        yield a, min(a + lines_per_batch, total)


def _line_coords(data: DevopsData, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(host index, time index) of lines [a, b) in time-major order."""
    lines = np.arange(a, b, dtype=np.int64)
    return lines % data.hosts, lines // data.hosts


def write_batches(data: DevopsData, lines_per_batch: int = 5000) -> Iterator[WriteBatch]:
    """ChronosDB write batches in TSBS line order, one FieldColumn per field.

    A batch's ``keys`` are the hosts its lines touch, in first-appearance order.
    """
    field_names = [f.encode() for f in FIELDS]
    for a, b in _batch_ranges(data, lines_per_batch):
        host, t = _line_coords(data, a, b)
        if b - a >= data.hosts:
            # A time-major run of >= hosts lines touches every host once at least.
            keys, series = data.keys, host.astype(np.int32)
        else:
            touched, series = np.unique(host, return_inverse=True)
            keys = [data.keys[i] for i in touched]
            series = series.astype(np.int32)
        times = data.times[t]
        columns = [
            FieldColumn(name, FieldType.FLOAT, series, times, data.values[host, f, t])
            for f, name in enumerate(field_names)
        ]
        yield WriteBatch(keys, columns)


def _escape_tag(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


class _PieceTable:
    """All byte pieces a line is made of, concatenated once; a line is 21 piece ids.

    Pieces: per host its prefix ``cpu,<tags> usage_user=``; the nine ``,<field>=`` joiners; the
    10001 number strings ``repr(k / 100)``; per time `` <ns>\\n``. A batch becomes bytes by one
    gather: piece ids -> per output byte the source byte in ``blob`` (np.repeat + arange).
    """

    def __init__(self, data: DevopsData):
        prefixes = []
        for tags in data.tags:
            tagstr = ",".join(f"{k}={_escape_tag(tags[k])}" for k in TAG_KEYS)
            prefixes.append(f"{MEASUREMENT},{tagstr} {FIELDS[0]}=".encode())
        joiners = [f",{f}=".encode() for f in FIELDS[1:]]
        numbers = [repr(k / 100).encode() for k in range(_MAX_CENTS + 1)]
        stamps = [b" %d\n" % t for t in data.times.tolist()]
        pieces = prefixes + joiners + numbers + stamps
        self.host_base = 0
        self.joiner_base = len(prefixes)
        self.number_base = self.joiner_base + len(joiners)
        self.stamp_base = self.number_base + len(numbers)
        self.blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        lens = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        self.lengths = lens
        self.starts = np.cumsum(lens) - lens

    def render(self, host: np.ndarray, t: np.ndarray, cents: np.ndarray) -> bytes:
        """Bytes of lines (host[i], t[i]) whose ten values are cents[i, :]."""
        n_fields = len(FIELDS)
        width = 2 * n_fields + 1
        ids = np.empty((len(host), width), dtype=np.int64)
        ids[:, 0] = self.host_base + host
        ids[:, 1:2 * n_fields:2] = self.number_base + cents
        ids[:, 2:2 * n_fields - 1:2] = self.joiner_base + np.arange(n_fields - 1)
        ids[:, 2 * n_fields] = self.stamp_base + t
        ids = ids.ravel()
        lens = self.lengths[ids]
        out_starts = np.cumsum(lens) - lens
        total = int(out_starts[-1] + lens[-1]) if len(ids) else 0
        src = np.repeat(self.starts[ids] - out_starts, lens) + np.arange(total, dtype=np.int64)
        return self.blob[src].tobytes()


def line_protocol_bodies(data: DevopsData, lines_per_batch: int = 5000) -> Iterator[bytes]:
    """The batches of ``write_batches`` as InfluxDB line protocol bodies (ns timestamps)."""
    table = _PieceTable(data)
    # Exact: every value is k / 100, so rint(v * 100) recovers k.
    cents = np.rint(data.values * 100.0).astype(np.int64)
    for a, b in _batch_ranges(data, lines_per_batch):
        host, t = _line_coords(data, a, b)
        yield table.render(host, t, cents[host, :, t])
