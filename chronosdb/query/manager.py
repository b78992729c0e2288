"""Running queries: what SHOW QUERIES lists, what KILL QUERY stops, what a timeout ends.

Every /query request registers a ``RunningQuery``; the executor calls its ``check`` between
series and groups, which raises ``QueryInterrupted`` once the query was killed or ran past its
deadline. Killing is cooperative: a kernel call in progress finishes first (they are short).
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from chronosdb.query.meta import StatementError


class QueryInterrupted(StatementError):
    pass


@dataclass
class RunningQuery:
    qid: int
    text: str
    database: str
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    killed: bool = False

    def check(self) -> None:
        if self.killed:
            raise QueryInterrupted("query killed")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryInterrupted("query timeout reached")


class QueryManager:
    def __init__(self, timeout: float = 0.0):
        self.timeout = timeout          # seconds; 0 = no limit
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._running: dict[int, RunningQuery] = {}

    def start(self, text: str, database: str | None) -> RunningQuery:
        q = RunningQuery(next(self._ids), text, database or "")
        if self.timeout:
            q.deadline = q.started + self.timeout
        with self._lock:
            self._running[q.qid] = q
        return q

    def finish(self, q: RunningQuery) -> None:
        with self._lock:
            self._running.pop(q.qid, None)

    def kill(self, qid: int) -> bool:
        with self._lock:
            q = self._running.get(qid)
        if q is None:
            return False
        q.killed = True
        return True

    def list(self) -> list[RunningQuery]:
        with self._lock:
            return sorted(self._running.values(), key=lambda q: q.qid)


def duration_text(seconds: float) -> str:
    """InfluxDB prints running time as Go's short duration (``1s``, ``25ms``, ``123µs``)."""
    us = int(seconds * 1e6)
    if us < 1000:
        return f"{us}µs"
    if us < 1_000_000:
        return f"{us // 1000}ms"
    return f"{us // 1_000_000}s"
