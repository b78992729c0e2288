"""Duration and time literals of InfluxQL, as integer nanoseconds.

A duration literal is one or more ``<digits><unit>`` pairs written together (``1h30m``), with the
units ``ns``, ``u``/``µ`` (microseconds), ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``. The pairs add
up. We render a duration in the single largest unit that divides it exactly (``5400s`` -> ``90m``),
which is how InfluxDB prints them too, so rendering and parsing are inverse on every value.

A time literal is a quoted string compared with ``time``: RFC3339 with optional fraction of up to
nine digits and an optional offset (``2016-01-01T00:00:00.5+02:00``), a space instead of the
``T``, or a bare date (``2016-01-01``). Without an offset the time reads as UTC; ``has_offset``
says whether the text carried one so the compiler can honour a ``tz()`` clause instead.

Both patterns are module constants because the grammar and the cache's tokenizer must agree on
exactly what one literal is (the cache lifts literals out of a query by these same patterns).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

NS_PER_UNIT = {
    "ns": 1,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
INT64_MAX = (1 << 63) - 1

# Longer units first so "ms" is not read as "m" followed by a stray "s".
_UNIT = r"(?:ns|ms|u|µ|s|m|h|d|w)"
# One duration literal: pairs glued together, not followed by a word character (so "10sx" is not
# a duration; it is the number 10 and then whatever "sx" is).
DURATION_PATTERN = r"(?:\d+" + _UNIT + r")+(?!\w)"
_PAIR = re.compile(r"(\d+)(ns|ms|u|µ|s|m|h|d|w)")
_DURATION_FULL = re.compile(DURATION_PATTERN + r"\Z")

# Largest first: the first unit that divides the value exactly is the one we print.
_RENDER_UNITS = (("w", NS_PER_UNIT["w"]), ("d", NS_PER_UNIT["d"]), ("h", NS_PER_UNIT["h"]),
                 ("m", NS_PER_UNIT["m"]), ("s", NS_PER_UNIT["s"]), ("ms", NS_PER_UNIT["ms"]),
                 ("u", NS_PER_UNIT["u"]), ("ns", 1))


def parse_duration(text: str) -> int:
    """``"1h30m"`` -> 5400000000000. Raises ValueError on anything that is not a duration
    literal or that overflows int64 nanoseconds."""
    if not _DURATION_FULL.match(text):
        raise ValueError(f"invalid duration: {text!r}")
    total = 0
    for digits, unit in _PAIR.findall(text):
        total += int(digits) * NS_PER_UNIT[unit]
    if total > INT64_MAX:
        raise ValueError(f"overflowed duration {text}: choose a smaller duration or INF")
    return total


def format_duration(ns: int) -> str:
    """Inverse of ``parse_duration`` for non-negative values: one unit, the largest exact one."""
    if ns < 0:
        raise ValueError(f"a duration literal cannot be negative: {ns}")
    if ns == 0:
        return "0s"
    for unit, size in _RENDER_UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: ns divides 1")


_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:\d{2})?\Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def time_has_offset(text: str) -> bool:
    m = _TIME.match(text)
    return bool(m and m.group(8))


_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (integer arithmetic; the cache
    re-binds time literals on every hit, and this is several times cheaper than datetime)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_time(text: str) -> int:
    """An RFC3339-ish time string -> int64 ns since the epoch (UTC when no offset is given).

    Raises ValueError naming the text when it is not a time or lies outside the int64 range."""
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"invalid time literal: {text!r}")
    year, month, day, hh, mm, ss, frac, off = m.groups()
    if off and not hh:
        raise ValueError(f"invalid time literal: {text!r} (an offset needs a time of day)")
    y, mo, d = int(year), int(month), int(day)
    h, mi, sec = (int(hh), int(mm), int(ss)) if hh else (0, 0, 0)
    leap = mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not (1 <= mo <= 12 and 1 <= d <= _DAYS_IN_MONTH[mo] + leap and h < 24 and mi < 60 and sec < 60):
        raise ValueError(f"invalid time literal: {text!r} (field out of range)")
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
    if off and off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        seconds -= sign * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    ns = seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
    if not -INT64_MAX - 1 <= ns <= INT64_MAX:
        raise ValueError(f"time literal out of range: {text!r}")
    return ns


def format_time(ns: int) -> str:
    """int64 ns -> RFC3339 in UTC with the shortest exact fraction (``2016-01-01T00:00:00Z``)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    dt = _EPOCH + timedelta(seconds=seconds)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.year < 1000:  # strftime does not zero-pad years below 1000 on every platform
        text = f"{dt.year:04d}" + text[text.index("-"):]
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"
