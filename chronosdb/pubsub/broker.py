"""The bus: every stored write is published here and handed to the subscriptions that want it.

Threads. ``Bus.publish`` is the engine's write listener, so it runs on the *writer's* thread
right after the WAL made the write durable. It must be cheap and must never wait for a
subscriber: it matches the batch (``matcher``: per distinct series key, then numpy masks), and
hands the matched parts to the event loop with **one** ``loop.call_soon_threadsafe`` per
published batch, whatever the number of subscribers. Queues are touched only on the loop thread.

Index. Subscriptions are kept by (database, measurement); regex and every-measurement
subscriptions sit in a separate short list per database. A write to ``cpu`` therefore looks only
at the subscribers of ``cpu`` (and the regex ones): a thousand idle subscribers on other
measurements cost nothing. Subscribers with an equal filter share one match per batch.

Queues. Each subscription has a queue bounded in *points* (``max_points``). When a batch does
not fit, the policy chosen at subscribe time applies:

* ``"notify"``: the batch is dropped, its points are added to ``missed``, and the subscriber's
  next read returns ``("dropped", n)`` before any later batch;
* ``"disconnect"``: the subscription is closed (reason ``"slow subscriber"``); its reader gets
  ``SubscriptionClosed``.

A batch is accepted into an *empty* queue even when it alone exceeds the bound: it exists in
memory already (it is the write's own columns), and refusing it would starve a subscriber of a
stream of large writes. Memory per subscriber is thus at most max(bound, one batch).
"""
from __future__ import annotations

import asyncio
import collections
import re
import threading

from chronosdb.model.batch import WriteBatch
from chronosdb.pubsub.matcher import KeyInfo, SubscriptionFilter, key_mask, select_points

OVERFLOW_POLICIES = ("notify", "disconnect")
DEFAULT_MAX_POINTS = 100_000


class SubscriptionClosed(Exception):
    """The subscription ended (closed by its owner, the bus, or as a slow subscriber)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Subscription:
    """One subscriber's bounded queue. Created by ``Bus.subscribe``; read on the event loop."""

    def __init__(self, bus: "Bus", flt: SubscriptionFilter, max_points: int, overflow: str,
                 loop: asyncio.AbstractEventLoop):
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"unknown overflow policy {overflow!r}: expected one of "
                             f"{', '.join(OVERFLOW_POLICIES)}")
        if max_points <= 0:
            raise ValueError("max_points must be positive")
        self.bus = bus
        self.filter = flt
        self.max_points = max_points
        self.overflow = overflow
        self.loop = loop
        self.queued_points = 0
        self.missed = 0               # points dropped since the reader last heard of drops
        self.delivered = 0            # points handed to the queue, in total
        self.closed_reason: str | None = None
        self._queue: collections.deque[WriteBatch] = collections.deque()
        self._wake = asyncio.Event()

    # -- loop thread, called by the bus ------------------------------------------------------
    def _offer(self, batch: WriteBatch) -> tuple[int, int]:
        """Queue a batch or apply the overflow policy. Returns (points queued, points dropped)."""
        if self.closed_reason is not None:
            return 0, 0
        n = batch.n_values
        if self._queue and self.queued_points + n > self.max_points:
            if self.overflow == "disconnect":
                self.bus._closed_slow(self)
                return 0, n
            self.missed += n
            self._wake.set()
            return 0, n
        self._queue.append(batch)
        self.queued_points += n
        self.delivered += n
        self._wake.set()
        return n, 0

    # -- the reader --------------------------------------------------------------------------
    def get_nowait(self):
        """("dropped", n) | ("batch", WriteBatch) | None when nothing is queued.
        Raises SubscriptionClosed once closed (after the queued batches were read)."""
        if self.missed:
            n, self.missed = self.missed, 0
            return ("dropped", n)
        if self._queue:
            b = self._queue.popleft()
            self.queued_points -= b.n_values
            return ("batch", b)
        if self.closed_reason is not None:
            raise SubscriptionClosed(self.closed_reason)
        self._wake.clear()
        return None

    async def get(self, timeout: float | None = None):
        """Wait for the next item; None when ``timeout`` seconds pass with nothing."""
        item = self.get_nowait()
        if item is not None:
            return item
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return self.get_nowait()

    def close(self, reason: str = "closed") -> None:
        """End the subscription (idempotent). Call on the loop thread."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self.queued_points = 0
            self.bus._remove(self)
            self._wake.set()


class Bus:
    """The in-process publish/subscribe bus. ``engine.add_write_listener(bus.publish)``."""

    def __init__(self, metrics=None):
        self.metrics = metrics
        self._lock = threading.Lock()
        # Copy-on-write index, so publish() reads it without the lock:
        # (db, measurement) -> tuple of subscriptions; db -> tuple of regex/any subscriptions.
        self._by_measurement: dict[tuple[str, bytes], tuple[Subscription, ...]] = {}
        self._scanning: dict[str, tuple[Subscription, ...]] = {}
        self._count = 0
        self._keys = KeyInfo()
        self.published_batches = 0

    @property
    def subscriber_count(self) -> int:
        return self._count

    def subscribe(self, flt: SubscriptionFilter, *, max_points: int = DEFAULT_MAX_POINTS,
                  overflow: str = "notify", loop: asyncio.AbstractEventLoop | None = None) -> Subscription:
        sub = Subscription(self, flt, max_points, overflow, loop or asyncio.get_running_loop())
        with self._lock:
            if flt.measurement is not None:
                k = (flt.db, flt.measurement)
                self._by_measurement = {**self._by_measurement,
                                        k: self._by_measurement.get(k, ()) + (sub,)}
            else:
                self._scanning = {**self._scanning, flt.db: self._scanning.get(flt.db, ()) + (sub,)}
            self._count += 1
        self._metric("pubsub_subscribers", 1)
        return sub

    def _remove(self, sub: Subscription) -> None:
        flt = sub.filter
        with self._lock:
            if flt.measurement is not None:
                k = (flt.db, flt.measurement)
                rest = tuple(s for s in self._by_measurement.get(k, ()) if s is not sub)
                index = dict(self._by_measurement)
                if rest:
                    index[k] = rest
                else:
                    index.pop(k, None)
                self._by_measurement = index
            else:
                rest = tuple(s for s in self._scanning.get(flt.db, ()) if s is not sub)
                index = dict(self._scanning)
                if rest:
                    index[flt.db] = rest
                else:
                    index.pop(flt.db, None)
                self._scanning = index
            self._count -= 1
        self._metric("pubsub_subscribers", -1)

    def _closed_slow(self, sub: Subscription) -> None:
        sub.close("slow subscriber: its queue overflowed")
        self._metric("pubsub_subscribers_disconnected_total", 1)

    def _metric(self, name: str, value: float) -> None:
        if self.metrics is not None and value:
            self.metrics.inc(name, value)

    # -- the writer's side -------------------------------------------------------------------
    def candidates(self, db: str, measurements) -> list[Subscription]:
        """The subscriptions that may want a write to ``db`` touching ``measurements``."""
        out = list(self._scanning.get(db, ()))
        idx = self._by_measurement
        for m in measurements:
            out.extend(idx.get((db, m), ()))
        return out

    def publish(self, db: str, rp: str, batch: WriteBatch) -> None:
        """The engine's write listener: match ``batch`` and hand it off without blocking."""
        if not self._count:
            return
        scanning = self._scanning.get(db, ())
        has_exact = any(k[0] == db for k in self._by_measurement) if self._by_measurement else False
        if not scanning and not has_exact:
            return
        infos = [self._keys.get(k) for k in batch.keys]
        measurements = {m for m, _t in infos}
        subs = self.candidates(db, measurements)
        if not subs:
            return
        self.published_batches += 1
        # Subscribers with an equal filter (same query) share one match.
        matched: dict[SubscriptionFilter, WriteBatch | None] = {}
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for sub in subs:
            f = sub.filter
            if f.rp is not None and f.rp != rp:
                continue
            if f in matched:
                part = matched[f]
            else:
                regex = _regex(f.measurement_regex)
                part = matched[f] = select_points(
                    batch, key_mask(batch.keys, infos, f.measurement, regex, f.tags))
            if part is not None:
                by_loop.setdefault(sub.loop, []).append((sub, part))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._deliver, items)
            except RuntimeError:  # that loop is closed: its subscribers are gone with it
                pass

    def _deliver(self, items) -> None:
        delivered = dropped = 0
        for sub, part in items:
            d, x = sub._offer(part)
            delivered += d
            dropped += x
        self._metric("pubsub_points_delivered_total", delivered)
        self._metric("pubsub_points_dropped_total", dropped)


_REGEX_CACHE: dict[str, re.Pattern] = {}


def _regex(pattern: str | None):
    if pattern is None:
        return None
    r = _REGEX_CACHE.get(pattern)
    if r is None:
        if len(_REGEX_CACHE) > 1000:
            _REGEX_CACHE.clear()
        r = _REGEX_CACHE[pattern] = re.compile(pattern)
    return r
