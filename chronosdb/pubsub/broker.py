"""The bus: every stored write is published here and handed to the subscriptions that want it.

Threads. ``Bus.publish`` is the engine's write listener, so it runs on the *writer's* thread
right after the WAL made the write durable. It must be cheap and must never wait for a
subscriber: it finds, per distinct filter, the matching *keys* of the batch (``match_keys``; the
result is cached per distinct keys list until the subscriptions change, so a writer sending the
same series again pays nothing per subscriber), wraps the batch once in a ``SharedBatch`` and
hands it, with the match, to each event loop that has subscribers wanting it (in the server:
the stream loop, a thread of its own; see ``server.http.protocol.StreamLoop``): one list append
per loop, whatever the number of subscribers. At most **one** ``loop.call_soon_threadsafe`` is
pending per loop: while one hand-off waits for the loop, later batches join it, so a busy loop
takes several published batches per wake-up. On the loop, each filter's part becomes a
``MatchedBatch`` (shared batch + key indices: no points are copied) offered to its
subscribers. Queues are touched only on their loop's thread.

Holding for the tick. A subscriber whose reader waits for its loop's pace tick (a busy stream,
see the stream handler's ticker) is ``tick_fed``: the tick will drain its queue anyway. A batch
whose every live subscriber on the loop is tick-fed is *held* instead of delivered, and the tick
calls ``release``: each subscriber then gets one ``MatchedRun`` (its parts of every held batch,
in publish order) instead of one ``MatchedBatch`` per batch. A batch someone does not wait for
is delivered at once, after whatever was held (every queue stays in publish order).

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

import numpy as np

from chronosdb.model.batch import WriteBatch
from chronosdb.pubsub.matcher import KeyInfo, MatchedBatch, MatchedRun, SharedBatch, SubscriptionFilter, match_keys

OVERFLOW_POLICIES = ("notify", "disconnect")
DEFAULT_MAX_POINTS = 100_000
# Match plans cached per distinct keys list (see Bus._plan_for); batches with more keys than
# this are matched afresh (hashing their keys would cost about as much as matching them).
PLAN_CACHE_ENTRIES = 256
# A queued MatchedBatch keeps its whole published batch alive. While a reader is stalled (its
# client stopped taking data), or once the published batches its queue keeps alive hold this
# many times its bound in points, small parts are copied out instead (see Subscription._offer).
# Copying costs the delivery thread a gather per part and the reader its share of the
# formatting done once for all readers, so readers that are merely a few pace ticks behind
# (a busy server: they lag together, and share the batches they hold) are not copied for.
HOLD_FACTOR = 16
PLAN_CACHE_MAX_KEYS = 10_000


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
        self.held_points = 0          # points of the published batches the queue keeps alive
        self.stalled = False          # set by the reader: its client stopped taking data
        self._tick_fed = False
        self.closed_reason: str | None = None
        self._queue: collections.deque[WriteBatch] = collections.deque()
        self._waiter: asyncio.Future | None = None   # the reader's, while it waits in get()

    @property
    def tick_fed(self) -> bool:
        """Set by the reader while it waits for a pace tick that will drain this queue anyway
        (the stream handler's ticker): the bus may hold batches for it until then (release)."""
        return self._tick_fed

    @tick_fed.setter
    def tick_fed(self, value: bool) -> None:
        if value != self._tick_fed:
            self._tick_fed = value
            self.bus._fed_version += 1

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
            self._notify()
            return 0, n
        held, pieces = n, (batch,)
        if isinstance(batch, (MatchedBatch, MatchedRun)):
            held = batch.held_values
            if n * 4 < held and (self.stalled or
                                 self.held_points + held > HOLD_FACTOR * self.max_points):
                # The reader is stalled or far behind and this part is a small share of its
                # batch(es): keep a copy of the part, not the whole published batches (memory
                # stays proportional to the bound).
                pieces = [p.compact() for p in batch.parts()]
                held = n
        self._queue.extend(pieces)
        self.queued_points += n
        self.held_points += held
        self.delivered += n
        self._notify()
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
            self.held_points -= getattr(b, "held_values", b.n_values)
            return ("batch", b)
        if self.closed_reason is not None:
            raise SubscriptionClosed(self.closed_reason)
        return None

    def drain(self, limit: int | None = None) -> list:
        """Everything queued now, in order (at most ``limit`` batches): the items
        ``get_nowait`` would return one by one; empty when nothing is queued. Raises
        SubscriptionClosed only when nothing is left to read."""
        if limit is None and not self.missed and self._queue:
            # Everything, the common case: one pass, the counters reset at once.
            out = [("batch", b) for b in self._queue]
            self._queue.clear()
            self.queued_points = self.held_points = 0
            return out
        out = []
        while limit is None or len(out) < limit:
            if not self.missed and not self._queue and out:
                break
            item = self.get_nowait()
            if item is None:
                break
            out.append(item)
        return out

    def _notify(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def get(self, timeout: float | None = None):
        """Wait for the next item; None when ``timeout`` seconds pass with nothing.
        (A bare future and a timer handle: cheaper per wake-up than ``asyncio.wait_for``,
        which starts a task each time.)"""
        item = self.get_nowait()
        if item is not None:
            return item
        waiter = self._waiter = self.loop.create_future()
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self.get_nowait()

    async def get_many(self, timeout: float | None = None, limit: int | None = None) -> list:
        """Wait for items, then take everything queued (``drain``); [] on timeout."""
        out = self.drain(limit)
        if out:
            return out
        first = await self.get(timeout)
        if first is None:
            return []
        return [first] + (self.drain(None if limit is None else limit - 1) if limit != 1 else [])

    def close(self, reason: str = "closed") -> None:
        """End the subscription (idempotent). Call on the loop thread."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self.queued_points = self.held_points = 0
            self.bus._remove(self)
            self._notify()


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
        self._version = 0                      # bumped by every (un)subscribe: plans go stale
        self._plans: dict[tuple, tuple] = {}
        self._pending_lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list] = {}
        # Per loop: published batches held for that loop's pace tick (see _deliver, release).
        # Touched only on that loop's thread.
        self._held: dict[asyncio.AbstractEventLoop, list] = {}
        # Bumped when a subscription starts or stops being tick-fed: _can_hold's last answer
        # per plan stays good until then (and until the subscriptions change: _version).
        self._fed_version = 0
        self._hold_memo: tuple = (None, -1, -1, None, False)

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
            self._version += 1
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
            self._version += 1
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
        plan = self._plan_for(db, rp, batch)
        if not plan:
            return
        self.published_batches += 1
        entries, loops = plan[0], plan[1]
        # The writer's thread only wraps the batch and hands it to each loop with subscribers
        # that want it; the parts per subscriber are made on those loops (_flush), off the
        # write's own path.
        item = (SharedBatch(batch, entries[0][3]), plan)
        for loop in loops:
            self._hand_off(loop, item)

    def _plan_for(self, db: str, rp: str, batch: WriteBatch):
        """([(filter, matched key indices, subscribers, key infos)], loops of those subscribers)
        for a batch, or None when nobody wants it; from a small cache keyed by the batch's keys:
        writers that send the same series again and again (the common case) pay for matching
        once, not once per batch. Any subscribe or unsubscribe empties the cache."""
        keys = batch.keys
        ck = (db, rp, tuple(keys)) if len(keys) <= PLAN_CACHE_MAX_KEYS else None
        cache = self._plans
        if ck is not None:
            hit = cache.get(ck)
            if hit is not None and hit[0] == self._version:
                return hit[1]
        version = self._version
        infos = [self._keys.get(k) for k in keys]
        shared = SharedBatch(batch, infos)
        subs = self.candidates(db, {m for m, _t in infos})
        groups: dict[SubscriptionFilter, list] = {}
        for sub in subs:
            f = sub.filter
            if f.rp is not None and f.rp != rp:
                continue
            groups.setdefault(f, []).append(sub)
        entries = []
        loops: dict = {}
        for f, members in groups.items():
            key_idx = match_keys(shared, f.measurement, _regex(f.measurement_regex), f.tags)
            if len(key_idx):
                entries.append((f, key_idx, tuple(members), infos))
                for sub in members:
                    loops[sub.loop] = True
        plan = None
        if entries:
            # Every entry's key indices end to end, and where each entry starts: the points per
            # entry of a batch are then one gather and one reduceat (see _deliver).
            cat = np.concatenate([e[1] for e in entries])
            starts = np.cumsum([0] + [len(e[1]) for e in entries[:-1]])
            plan = (entries, tuple(loops), cat, starts)
        if ck is not None:
            if len(cache) >= PLAN_CACHE_ENTRIES:
                cache.clear()
            cache[ck] = (version, plan)
        return plan

    def _hand_off(self, loop, item) -> None:
        """Queue a published (shared batch, plan entries) for ``loop``; wake it only if no
        hand-off is pending there already, so a busy loop takes several batches per callback."""
        with self._pending_lock:
            pending = self._pending.get(loop)
            if pending is not None:
                pending.append(item)
                return
            self._pending[loop] = [item]
        try:
            loop.call_soon_threadsafe(self._flush, loop)
        except RuntimeError:  # that loop is closed: its subscribers are gone with it
            with self._pending_lock:
                self._pending.pop(loop, None)

    def _flush(self, loop) -> None:
        with self._pending_lock:
            items = self._pending.pop(loop, [])
        self._deliver(loop, items)

    def deliver_pending(self, loop) -> None:
        """On ``loop``'s own thread: deliver (or hold) now what was published for it, without
        waiting for the hand-off callback (which then finds nothing). For a publisher that runs
        on the loop itself (the stream process reads its channel there), so that what it read
        is in the queues, or held, when it returns."""
        self._flush(loop)

    def _deliver(self, loop, items) -> None:
        """On ``loop``: each published batch's parts to that loop's subscribers, in publish
        order; one ``MatchedBatch`` per distinct filter, shared by its subscribers (the stream
        formatter reuses its work across them). A batch whose every live subscriber here waits
        for a pace tick (``Subscription.tick_fed``) is held instead, and given to them by that
        tick (``release``) together with the other batches held meanwhile."""
        held = self._held.get(loop)
        delivered = dropped = 0
        for item in items:
            entries = item[1][0]
            if self._can_hold(entries, loop):
                if held is None:
                    held = self._held[loop] = []
                held.append(item)
                continue
            if held:                    # what was held goes first: every queue stays in order
                self.release(loop)
                held = None
            shared, (_entries, _loops, cat, starts) = item
            counts = np.add.reduceat(shared.points_per_key[cat], starts).tolist()
            for (_flt, key_idx, subs, _infos), n in zip(entries, counts):
                d, x = _offer_each(subs, loop, MatchedBatch(shared, key_idx, n))
                delivered += d
                dropped += x
        self._counted(delivered, dropped)

    def _counted(self, delivered: int, dropped: int) -> None:
        self._metric("pubsub_points_delivered_total", delivered)
        self._metric("pubsub_points_dropped_total", dropped)

    def holding(self, loop) -> bool:
        """Are batches held for ``loop``'s next tick? (The last batches delivered there were.)"""
        return bool(self._held.get(loop))

    def _can_hold(self, entries, loop) -> bool:
        """``_all_tick_fed``, remembered for the last plan until a subscription starts or stops
        waiting for a tick or the subscriptions change (between two ticks, usually none do)."""
        m = self._hold_memo
        if m[0] is entries and m[1] == self._fed_version and m[2] == self._version and m[3] is loop:
            return m[4]
        can = _all_tick_fed(entries, loop)
        self._hold_memo = (entries, self._fed_version, self._version, loop, can)
        return can

    def release(self, loop) -> None:
        """On ``loop`` (its pace tick calls this before draining the queues): the batches held
        for that loop's tick-fed subscribers, as one item per filter — a ``MatchedRun`` of every
        held batch's part for that filter, in publish order — offered to each of its
        subscribers. So a tick-fed subscriber costs the bus one queue item per tick, not one per
        published batch. (A subscriber that stopped waiting for the tick since a batch was held
        gets the batch here too, in order: it was meant for it.)"""
        items = self._held.pop(loop, None)
        if not items:
            return
        # id(subscribers of a plan entry) -> (subscribers, shareds, key idx, counts). Cached
        # plans keep one tuple per entry, so batches of the same series share a run; the items
        # keep the tuples alive meanwhile. Consecutive batches of one plan (a writer sending
        # the same series) are counted together: one reduceat over all of them.
        runs: dict[int, tuple] = {}
        i = 0
        while i < len(items):
            plan = items[i][1]
            j = i + 1
            while j < len(items) and items[j][1] is plan:
                j += 1
            shareds = [it[0] for it in items[i:j]]
            entries, _loops, cat, starts = plan
            ppk = np.stack([sh.points_per_key for sh in shareds]) if j - i > 1 else \
                shareds[0].points_per_key[None, :]
            per_entry = np.add.reduceat(ppk[:, cat], starts, axis=1).T.tolist()
            for (_flt, key_idx, subs, _infos), ns in zip(entries, per_entry):
                run = runs.get(id(subs))
                if run is None:
                    run = runs[id(subs)] = (subs, [], [], [])
                run[1].extend(shareds)
                run[2].extend([key_idx] * len(shareds))
                run[3].extend(ns)
            i = j
        delivered = dropped = 0
        for subs, shareds, idxs, ns in runs.values():
            part = MatchedBatch(shareds[0], idxs[0], ns[0]) if len(shareds) == 1 else \
                MatchedRun(tuple(shareds), tuple(idxs), tuple(ns))
            d, x = _offer_each(subs, loop, part)
            delivered += d
            dropped += x
        self._counted(delivered, dropped)


def _offer_each(subs, loop, part) -> tuple[int, int]:
    """Offer ``part`` to those of ``subs`` served on ``loop``: (points queued, points dropped)."""
    delivered = dropped = 0
    for sub in subs:
        if sub.loop is loop:
            d, x = sub._offer(part)
            delivered += d
            dropped += x
    return delivered, dropped


def _all_tick_fed(entries, loop) -> bool:
    """Does every live subscriber on ``loop`` of a batch's plan entries wait for a pace tick
    (and is there one)? Then delivering the batch before the tick would change nothing."""
    live = False
    for e in entries:
        for sub in e[2]:
            if sub.loop is loop and sub.closed_reason is None:
                if not sub.tick_fed:
                    return False
                live = True
    return live


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
