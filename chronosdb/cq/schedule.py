"""When a continuous query runs and which time range each run recomputes: pure arithmetic.

Nothing here reads a clock or touches a file: the service passes ``now`` and the persisted run
state in and gets a ``RunPlan`` back, so every rule below is testable with plain integers.

The rules follow InfluxDB 1.x's continuous querier, plus durable catch-up:

* ``interval`` and ``offset`` come from the SELECT's ``GROUP BY time(interval[, offset])``;
  ``every`` (RESAMPLE EVERY) defaults to the interval, ``for`` (RESAMPLE FOR) to the interval,
  or to ``every`` when that is longer than the interval.
* Runs are due at the instants ``k * every + offset``: a CQ with ``GROUP BY time(1h, 15m)`` runs
  at 8:15, 9:15, ... A run at ``now`` recomputes the windows of
  ``[floor(next_run + interval - for - 1), floor(now + interval - min(every, interval)))``, floors
  taken on the interval grid shifted by the offset. With the defaults that is exactly the window
  that just closed; with ``FOR`` longer than the interval it is the last ``for / interval``
  windows (late points are picked up); with ``EVERY`` shorter than the interval it also includes
  the window still in progress, as InfluxDB does.
* ``next_run`` is the first due instant after the last run, not ``now``: after a stall or a
  restart the range reaches back to the windows that were missed. The end of the last range that
  was computed successfully is kept too, so windows of failed runs are retried by the next run.
  Catch-up is one ranged run, bounded to ``max_windows`` windows before the range's end (older
  misses are given up, and the docs say so).
"""
from __future__ import annotations

from dataclasses import dataclass

from chronosdb.query.influxql import ast

# Catch-up bound: one run recomputes at most this many GROUP BY windows. 1440 covers a day of
# 1-minute windows (the common downsampling CQ) and keeps one catch-up query well under the
# executor's max_buckets (1e6) for up to ~700 series.
MAX_CATCHUP_WINDOWS = 1440


@dataclass(frozen=True)
class Timing:
    interval: int   # GROUP BY time() interval, ns (> 0)
    offset: int     # GROUP BY time() offset, ns, normalised to [0, interval)
    every: int      # RESAMPLE EVERY, ns
    for_: int       # RESAMPLE FOR, ns


@dataclass(frozen=True)
class RunPlan:
    start: int      # recompute windows in [start, end); empty when end <= start
    end: int
    last_run: int   # the due instant this run stands for (persisted; the next run is after it)

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def timing_of(stmt: ast.CreateContinuousQuery) -> Timing:
    """Read the schedule of a CQ. Raises ValueError when the SELECT has no GROUP BY time()."""
    interval = offset = None
    for d in stmt.select.dimensions:
        if isinstance(d, ast.Call) and d.name == "time" and d.args and isinstance(d.args[0], ast.DurationLiteral):
            interval = d.args[0].ns
            offset = 0
            if len(d.args) > 1:
                a = d.args[1]
                if isinstance(a, ast.DurationLiteral):
                    offset = a.ns
                elif isinstance(a, ast.UnaryExpr) and isinstance(a.expr, ast.DurationLiteral):
                    offset = -a.expr.ns
    if not interval or interval <= 0:
        raise ValueError("continuous query requires GROUP BY time(...) with a positive interval")
    every = stmt.resample_every or interval
    for_ = stmt.resample_for or (every if every > interval else interval)
    return Timing(interval, offset % interval, every, for_)


def floor_to(t: int, step: int, offset: int = 0) -> int:
    """The greatest ``k * step + offset`` that is <= t (also for negative t)."""
    return (t - offset) // step * step + offset


def next_run_after(last_run: int, timing: Timing) -> int:
    """The first due instant strictly after ``last_run``."""
    phase = timing.offset % timing.every
    return floor_to(last_run, timing.every, phase) + timing.every


def first_last_run(created: int, timing: Timing) -> int:
    """The state of a CQ that has never run: as if it had run at the due instant at or before
    its creation, so its first run is the next due instant (no work for past windows)."""
    return floor_to(created, timing.every, timing.offset % timing.every)


def plan_run(timing: Timing, now: int, last_run: int, last_end: int | None,
             max_windows: int = MAX_CATCHUP_WINDOWS) -> RunPlan | None:
    """The run due at ``now``, or None when none is due yet."""
    due = next_run_after(last_run, timing)
    if now < due:
        return None
    iv, off = timing.interval, timing.offset
    start = floor_to(due + iv - timing.for_ - 1, iv, off)
    end = floor_to(now + iv - min(timing.every, iv), iv, off)
    if last_end is not None and last_end < start:
        start = last_end  # windows a failed or missed run left behind
    start = max(start, end - max_windows * iv)
    return RunPlan(start, end, floor_to(now, timing.every, off % timing.every))
