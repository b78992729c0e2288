"""The compatibility data set: a small, deterministic, deliberately awkward set of points.

It is written to InfluxDB 1.6.7 and to ChronosDB alike (database ``compat``), and every query in
``queries.txt`` runs against both, so its shape is what the queries can exercise:

  measurement  tags (cardinality)                  fields (type)
  -----------  ----------------------------------  ---------------------------------------------
  cpu          host (6), region (3), dc (5)        usage_user, usage_system (float),
                                                   delta (float, negative half the time),
                                                   procs (int), throttled (bool),
                                                   governor (string, on some lines only)
  mem          host (6), region (3)                used, free (int), used_percent (float),
                                                   pgfault (int counter that resets once)
  disk         host (3), device (2)                free (int), used_percent (float),
                                                   readonly (bool), mode (string)
  weather      location (3, with a space, a comma),     temperature (float, below zero at night),
               station (2)                         humidity (int)

Times run from 2016-01-01T00:00:00Z for three hours. Steps between points are irregular (15 s to
2 min, with sub-second and sub-millisecond offsets so epoch=ms/us truncation is visible); cpu has
a hole from 01:00 to 01:30 (empty GROUP BY windows), disk only writes every ~5 minutes. A second
body (``overwrite_body``) rewrites some cpu points at times already written, changing one field
only: the last write wins field by field, the other fields stay.

Values are rounded to two decimals (floats) so both systems parse the same doubles, and no value
is NaN or infinite (InfluxDB 1.x rejects those in line protocol).

Everything comes from one ``random.Random(SEED)``; the Python loop here runs once per point to
build a few thousand lines of test input, it is not on any read or write path.
"""
from __future__ import annotations

import random

DATABASE = "compat"
SEED = 20160101
START_NS = 1_451_606_400_000_000_000          # 2016-01-01T00:00:00Z
DURATION_S = 3 * 3600
END_NS = START_NS + DURATION_S * 1_000_000_000

HOSTS = {  # host -> (region, dc)
    "server01": ("us-west", "us-west-a"),
    "server02": ("us-west", "us-west-b"),
    "server03": ("us-east", "us-east-a"),
    "server04": ("us-east", "us-east-a"),
    "server05": ("eu-central", "eu-central-a"),
    "server06": ("eu-central", "eu-central-b"),
}
DISK_HOSTS = ["server01", "server03", "server05"]
DEVICES = ["sda", "sdb"]
LOCATIONS = ["coyote_creek", "santa\\ monica", "moon\\,base"]   # line-protocol escaped values
STATIONS = ["a", "b"]
GOVERNORS = ["performance", "powersave", "ondemand"]
DISK_MODES = ["rw", "ro", "rw"]

CPU_GAP = (START_NS + 3600 * 1_000_000_000, START_NS + 5400 * 1_000_000_000)  # 01:00 .. 01:30


def _times(rng: random.Random, min_step_s: float, max_step_s: float) -> list[int]:
    """Irregular ns timestamps in [START_NS, END_NS): steps uniform in [min, max] s, each with
    a sub-millisecond part so precision truncation shows."""
    out, t = [], START_NS + rng.randrange(0, 30) * 1_000_000_000
    while t < END_NS:
        out.append(t)
        t += int(rng.uniform(min_step_s, max_step_s) * 1000) * 1_000_000 + rng.randrange(0, 1_000_000)
    return out


def _f(x: float) -> str:
    """A float field value: two decimals, never written as an integer literal."""
    s = repr(round(x, 2))
    return s if ("." in s or "e" in s) else s + ".0"


def _cpu_lines(rng: random.Random) -> list[str]:
    lines = []
    for host, (region, dc) in HOSTS.items():
        user, procs = rng.uniform(5, 60), rng.randrange(80, 300)
        for t in _times(rng, 15, 120):
            if CPU_GAP[0] <= t < CPU_GAP[1]:
                continue
            user = min(100.0, max(0.0, user + rng.gauss(0, 6)))
            system = rng.uniform(0, 25)
            procs = max(1, procs + rng.randrange(-7, 8))
            fields = [f"usage_user={_f(user)}", f"usage_system={_f(system)}",
                      f"delta={_f(rng.uniform(-50, 50))}", f"procs={procs}i",
                      f"throttled={'true' if rng.random() < 0.2 else 'false'}"]
            if rng.random() < 0.3:
                fields.append(f'governor="{rng.choice(GOVERNORS)}"')
            lines.append(f"cpu,host={host},region={region},dc={dc} {','.join(fields)} {t}")
    return lines


def _mem_lines(rng: random.Random) -> list[str]:
    lines = []
    total = 16 * 1024 ** 3
    for host, (region, _dc) in HOSTS.items():
        used, pgfault = rng.randrange(2, 12) * 1024 ** 3, rng.randrange(0, 10_000)
        times = _times(rng, 30, 110)
        reset_at = len(times) // 2
        for i, t in enumerate(times):
            used = min(total - 1, max(1, used + rng.randrange(-300, 301) * 1024 ** 2))
            pgfault = rng.randrange(0, 50) if i == reset_at else pgfault + rng.randrange(0, 500)
            lines.append(f"mem,host={host},region={region} used={used}i,free={total - used}i,"
                         f"used_percent={_f(100.0 * used / total)},pgfault={pgfault}i {t}")
    return lines


def _disk_lines(rng: random.Random) -> list[str]:
    lines = []
    for host in DISK_HOSTS:
        for dev in DEVICES:
            free = rng.randrange(100, 900) * 1024 ** 3
            for t in _times(rng, 240, 360):
                free = max(0, free - rng.randrange(-2, 10) * 1024 ** 2)
                lines.append(f"disk,host={host},device={dev} free={free}i,"
                             f"used_percent={_f(100 - free / 1024 ** 4 * 100)},"
                             f"readonly={'t' if rng.random() < 0.1 else 'f'},"
                             f'mode="{rng.choice(DISK_MODES)}" {t}')
    return lines


def _weather_lines(rng: random.Random) -> list[str]:
    lines = []
    for loc in LOCATIONS:
        for st in STATIONS:
            temp = rng.uniform(-8, 4)
            for t in _times(rng, 60, 180):
                temp += rng.gauss(0.05, 0.8)
                lines.append(f"weather,location={loc},station={st} temperature={_f(temp)},"
                             f"humidity={rng.randrange(20, 100)}i {t}")
    return lines


def _build() -> tuple[str, str]:
    rng = random.Random(SEED)
    cpu = _cpu_lines(rng)
    lines = cpu + _mem_lines(rng) + _disk_lines(rng) + _weather_lines(rng)
    # Duplicate timestamps: rewrite usage_user (only) on every 25th cpu line, in a later body.
    over = []
    for line in cpu[::25]:
        head, fields, t = line.rsplit(" ", 2)
        over.append(f"{head} usage_user={_f(rng.uniform(0, 100))} {t}")
    # The same point twice inside one body as well: the later line wins.
    head, fields, t = cpu[7].rsplit(" ", 2)
    over.append(f"{head} usage_system=1.5 {t}")
    over.append(f"{head} usage_system=2.5 {t}")
    return "\n".join(lines) + "\n", "\n".join(over) + "\n"


_MAIN, _OVERWRITE = _build()


def main_body() -> bytes:
    """Line protocol (ns precision) of every point, written first."""
    return _MAIN.encode()


def overwrite_body() -> bytes:
    """Line protocol written second: points at existing times that replace one field each."""
    return _OVERWRITE.encode()


def bodies() -> list[bytes]:
    """Bodies in write order."""
    return [main_body(), overwrite_body()]
