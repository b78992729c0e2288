"""The continuous query service: definitions, run state, the statements, and the scheduler.

Pieces and who does what:

* ``ContinuousQueryStore`` (definitions.py) holds the definitions; ``RunStateFile`` below holds,
  per CQ, the due instant of its last run and the end of the last range it computed
  successfully (``<data-dir>/continuous_queries.state.cbor``, rewritten atomically after every
  run). Both survive restarts, which is what makes catch-up possible.
* ``schedule.plan_run`` (pure) turns ``now`` plus that state into the range to recompute.
* ``runner.run_range`` executes the CQ's SELECT INTO over the range.
* ``run_due(now)`` does one pass over every CQ: plan, run, record stats and metrics, persist the
  state. It is synchronous and takes ``now`` as an argument, so tests drive the service "as of"
  any instant without waiting for the wall clock.
* The scheduler (``start``/``stop``) is one asyncio task: it sleeps until the earliest due
  instant (or until a CQ is created or dropped), then calls ``run_due`` in the server's worker
  pool. At start the earliest due instant of a CQ that missed runs is in the past, so the first
  pass catches up at once.

Runs are serialised by a lock: a pass never overlaps another, so one CQ never runs twice at once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass

import cbor2

from chronosdb.query.influxql import ast
from chronosdb.query.meta import StatementError
from chronosdb.storage import filenames

from .definitions import ContinuousQueryDef, ContinuousQueryStore, FileContinuousQueryStore, normalise
from .runner import RunOutcome, run_range
from .schedule import MAX_CATCHUP_WINDOWS, first_last_run, next_run_after, plan_run, timing_of

log = logging.getLogger("chronosdb.cq")

# The scheduler never sleeps longer than this, so a wall-clock jump (NTP step, suspended VM)
# delays a due run by at most this much.
MAX_SLEEP_SECONDS = 30.0


class RunStateFile:
    """``{"version": 1, "state": {"<db>\\x00<name>": [last_run, last_end or None]}}``."""

    VERSION = 1

    def __init__(self, data_dir: str | None):
        self.path = os.path.join(data_dir, filenames.CONTINUOUS_QUERY_STATE) if data_dir else None
        self.state: dict[tuple[str, str], list] = {}
        if self.path and os.path.exists(self.path):
            with open(self.path, "rb") as f:
                doc = cbor2.load(f)
            if doc.get("version") != self.VERSION:
                raise ValueError(f"{self.path}: unknown continuous query state version {doc.get('version')!r}")
            for k, v in doc["state"].items():
                db, name = k.split("\x00", 1)
                self.state[(db, name)] = list(v)

    def save(self) -> None:
        if self.path:
            doc = {"version": self.VERSION,
                   "state": {f"{db}\x00{name}": v for (db, name), v in self.state.items()}}
            filenames.atomic_write(self.path, cbor2.dumps(doc))


@dataclass
class ContinuousQueryStats:
    runs: int = 0
    errors: int = 0
    points_written: int = 0
    last_run_at: int = 0        # ns, server clock, when the last run happened
    last_start: int = 0         # range of the last run
    last_end: int = 0
    last_duration: float = 0.0  # seconds
    last_error: str = ""


class ContinuousQueryService:
    def __init__(self, engine, data_dir: str | None = None, *, store: ContinuousQueryStore | None = None,
                 clock=time.time_ns, metrics=None, limits=None,
                 max_catchup_windows: int = MAX_CATCHUP_WINDOWS):
        self.engine = engine
        self.store = store if store is not None else FileContinuousQueryStore(data_dir)
        self.run_state = RunStateFile(data_dir)
        self.clock = clock
        self.metrics = metrics
        self.limits = limits
        self.max_catchup_windows = max_catchup_windows
        self.stats: dict[tuple[str, str], ContinuousQueryStats] = {}
        self._parsed: dict[tuple[str, str], ast.CreateContinuousQuery] = {}
        self._lock = threading.RLock()
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- definitions (the statements) ------------------------------------------------------
    def _statement(self, cq: ContinuousQueryDef) -> ast.CreateContinuousQuery:
        key = (cq.database, cq.name)
        stmt = self._parsed.get(key)
        if stmt is None or str(stmt) != cq.query:
            stmt = self._parsed[key] = cq.statement()
        return stmt

    def create(self, stmt: ast.CreateContinuousQuery, now: int | None = None) -> None:
        """CREATE CONTINUOUS QUERY. Creating the same CQ again is not an error (InfluxDB 1.x);
        another query under an existing name is."""
        norm = normalise(stmt, self.engine.catalog)
        text = str(norm)
        with self._lock:
            for q in self.store.list():
                if (q.database, q.name) == (norm.database, norm.name):
                    if q.query == text:
                        return
                    raise StatementError("continuous query already exists")
            now = self.clock() if now is None else now
            cq = ContinuousQueryDef(norm.database, norm.name, text, now)
            self.store.add(cq)
            self.run_state.state[(cq.database, cq.name)] = [first_last_run(now, timing_of(norm)), None]
            self.run_state.save()
            self.stats[(cq.database, cq.name)] = ContinuousQueryStats()
        self._poke()

    def drop(self, database: str, name: str) -> None:
        """DROP CONTINUOUS QUERY: a missing one is not an error (InfluxDB 1.6.7)."""
        with self._lock:
            if self.store.remove(database, name):
                self._forget(database, name)
        self._poke()

    def drop_database(self, database: str) -> None:
        with self._lock:
            for q in self.store.list():
                if q.database == database:
                    self.store.remove(q.database, q.name)
                    self._forget(q.database, q.name)
        self._poke()

    def _forget(self, database: str, name: str) -> None:
        self.run_state.state.pop((database, name), None)
        self.run_state.save()
        self.stats.pop((database, name), None)
        self._parsed.pop((database, name), None)

    def list(self) -> list[ContinuousQueryDef]:
        return self.store.list()

    def show(self, can_read) -> dict:
        """SHOW CONTINUOUS QUERIES: one series per database (also those without CQs), in
        InfluxDB's shape ``{"name": db, "columns": ["name", "query"], "values": [...]}``."""
        by_db: dict[str, list] = {}
        for q in self.store.list():
            by_db.setdefault(q.database, []).append([q.name, q.query])
        series = []
        for db in sorted(self.engine.catalog.databases):
            if can_read(db):
                s = {"name": db, "columns": ["name", "query"]}
                if by_db.get(db):
                    s["values"] = by_db[db]
                series.append(s)
        return {"series": series}

    def stats_rows(self, can_read) -> list[dict]:
        """SHOW STATS FOR 'cq': one series per CQ with its run figures."""
        out = []
        for q in self.store.list():
            if not can_read(q.database):
                continue
            st = self.stats.get((q.database, q.name)) or ContinuousQueryStats()
            last_run, last_end = self.run_state.state.get((q.database, q.name), [0, None])
            out.append({"name": "cq", "tags": {"database": q.database, "name": q.name},
                        "columns": ["queryOk", "queryFail", "pointsWritten", "lastRun", "lastWindowEnd",
                                    "lastDurationMs", "lastError"],
                        "values": [[st.runs - st.errors, st.errors, st.points_written, st.last_run_at,
                                    last_end or 0, round(st.last_duration * 1000, 3), st.last_error]]})
        return out

    # -- running ---------------------------------------------------------------------------
    def next_due(self) -> int | None:
        """The earliest instant at which some CQ is due (ns), or None without CQs."""
        due = None
        for q in self.store.list():
            st = self.run_state.state.get((q.database, q.name))
            if st is None:
                continue
            try:
                t = next_run_after(st[0], timing_of(self._statement(q)))
            except Exception:
                continue
            due = t if due is None else min(due, t)
        return due

    def run_due(self, now: int | None = None) -> list[tuple[ContinuousQueryDef, RunOutcome]]:
        """Run every CQ that is due at ``now`` (default: the clock). Returns what ran."""
        with self._lock:
            now = self.clock() if now is None else now
            ran = []
            for q in self.store.list():
                key = (q.database, q.name)
                try:
                    stmt = self._statement(q)
                    timing = timing_of(stmt)
                except Exception:  # a definition this version cannot read must not stop the others
                    log.exception("continuous query %s on %s cannot be scheduled", q.name, q.database)
                    continue
                last_run, last_end = self.run_state.state.setdefault(key, [first_last_run(q.created, timing), None])
                plan = plan_run(timing, now, last_run, last_end, self.max_catchup_windows)
                if plan is None:
                    continue
                if plan.empty:
                    self.run_state.state[key] = [plan.last_run, last_end]
                    continue
                out = run_range(self.engine, stmt, plan.start, plan.end, now, self.limits)
                # A failed range stays owed: the next run starts no later than its start.
                owed = plan.end if out.error is None else (plan.start if last_end is None else min(last_end, plan.start))
                self.run_state.state[key] = [plan.last_run, owed]
                self._record(q, out, now)
                ran.append((q, out))
            self.run_state.save()
            return ran

    def _record(self, q: ContinuousQueryDef, out: RunOutcome, now: int) -> None:
        st = self.stats.setdefault((q.database, q.name), ContinuousQueryStats())
        st.runs += 1
        st.last_run_at, st.last_start, st.last_end, st.last_duration = now, out.start, out.end, out.seconds
        # (the run state, not these stats, is what catch-up trusts: stats reset at restart)
        st.points_written += out.points_written
        labels = {"database": q.database, "cq": q.name}
        if out.error is not None:
            st.errors += 1
            st.last_error = out.error
            log.warning("continuous query %s on %s failed over [%d, %d): %s", q.name, q.database,
                        out.start, out.end, out.error)
        else:
            st.last_error = ""
        m = self.metrics
        if m is not None:
            m.inc("cq_runs_total", **labels)
            if out.error is not None:
                m.inc("cq_run_errors_total", **labels)
            m.inc("cq_points_written_total", out.points_written, **labels)
            m.inc("cq_run_seconds_total", out.seconds, **labels)

    # -- scheduler -------------------------------------------------------------------------
    def _poke(self) -> None:
        """Wake the scheduler (a CQ was created or dropped); safe from any thread."""
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closed during shutdown
                pass

    def start(self, run_blocking=None) -> None:
        """Start the scheduler task on the running loop. ``run_blocking(fn, *args)`` runs a
        pass off the loop (the server's worker pool); default: the loop's executor."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if run_blocking is None:
            async def run_blocking(fn, *args):
                return await self._loop.run_in_executor(None, fn, *args)
        self._task = self._loop.create_task(self._scheduler(run_blocking), name="continuous-queries")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _scheduler(self, run_blocking) -> None:
        while True:
            due = self.next_due()
            delay = MAX_SLEEP_SECONDS if due is None else (due - self.clock()) / 1e9
            if delay > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(delay, MAX_SLEEP_SECONDS))
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await run_blocking(self.run_due)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep scheduling; the failure is logged with its traceback
                log.exception("continuous query pass failed")
                await asyncio.sleep(1.0)
