"""Forward every accepted write to the subscriptions of its database and retention policy.

Flow: the engine calls ``publish(db, rp, batch)`` on the writer's thread after a durable write
(``Engine.add_write_listener``). ``publish`` only looks up the subscriptions of ``(db, rp)`` (a
dict probe; nothing else when there are none) and appends one shared ``Payload`` to the bounded
queue of each chosen destination: every destination for mode ALL, one live destination in
round robin for mode ANY. It never blocks and never does I/O.

Each destination has its own sender thread (``Destination``). It encodes the payload to line
protocol on first use (``chronosdb.ext.lpencode.encode_batch``; ALL destinations share that one
encoding) and sends it: HTTP(S) as ``POST <url path>/write?db=..&rp=..`` over one keep-alive connection
(http.client), UDP as datagrams split at line boundaries, each under ``MAX_DATAGRAM`` bytes.

Failures: a connection error, timeout or 5xx answer keeps the body at the head of the queue and
retries it after a backoff (``RETRY_MIN_SECONDS`` doubling to ``RETRY_MAX_SECONDS``); while it
backs off the destination is not live, so ANY subscriptions send elsewhere. A 4xx answer means the
destination refuses this body for good: it is counted as a failure and dropped. A full queue
drops its oldest body (counted) so memory stays bounded and recent data wins.

Thread threads rather than asyncio tasks: the writer threads publish, and blocking http.client
calls in dedicated threads keep the event loop free of subscriber latency.
"""
from __future__ import annotations

import base64
import collections
import http.client
import logging
import socket
import threading
import time
from urllib.parse import urlencode, urlsplit

from chronosdb.query.meta import StatementError

from .definitions import FileSubscriptionStore, SubscriptionDef, SubscriptionStore, check_definition, redact
from chronosdb.ext.lpencode import encode_batch

log = logging.getLogger("chronosdb.subscriptions")

# Bodies (one per accepted write batch) a destination may hold before it drops the oldest.
# At the default HTTP batch of 5000 points (~200 KB of line protocol) that is ~200 MB worst case;
# sized so a receiver restart of a minute at ~15 writes/s loses nothing.
DEFAULT_QUEUE_BODIES = 1000
RETRY_MIN_SECONDS = 0.05
RETRY_MAX_SECONDS = 2.0
HTTP_TIMEOUT_SECONDS = 10.0
# A UDP datagram's payload must fit 65507 bytes; stay below with room for nothing else.
MAX_DATAGRAM = 64000


class Payload:
    """One accepted write, encoded once on first use and shared by every destination."""

    __slots__ = ("database", "retention_policy", "batch", "_body", "_lock")

    def __init__(self, database: str, retention_policy: str, batch):
        self.database, self.retention_policy, self.batch = database, retention_policy, batch
        self._body = None
        self._lock = threading.Lock()

    def body(self) -> bytes:
        with self._lock:
            if self._body is None:
                self._body = encode_batch(self.batch)
                self.batch = None
            return self._body


def split_datagrams(body: bytes, limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Cut a line protocol body into pieces of at most ``limit`` bytes at line boundaries (a
    single line longer than the limit goes alone and may be refused by the network)."""
    out = []
    start = 0
    n = len(body)
    while start < n:
        if n - start <= limit:
            out.append(body[start:])
            break
        cut = body.rfind(b"\n", start, start + limit)
        if cut < 0:
            cut = body.find(b"\n", start + limit)
            if cut < 0:
                cut = n - 1
        out.append(body[start:cut + 1])
        start = cut + 1
    return out


class PermanentFailure(Exception):
    """The destination refused the body (HTTP 4xx): retrying would not help."""


class Destination:
    def __init__(self, url: str, labels: dict, metrics=None, queue_bodies: int = DEFAULT_QUEUE_BODIES):
        self.url = url
        self.public_url = redact(url)  # what logs, metrics and stats show
        u = urlsplit(url)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.path = u.path.rstrip("/") + "/write"
        self.auth_header = None
        if u.username is not None:
            cred = f"{u.username}:{u.password or ''}".encode()
            self.auth_header = "Basic " + base64.b64encode(cred).decode()
        self.labels = labels
        self.metrics = metrics
        self.queue: collections.deque = collections.deque()
        self.queue_bodies = queue_bodies
        self.cond = threading.Condition()
        self.live = True
        self.forwarded = self.failures = self.dropped = 0
        self._stopping = False
        self._conn = None
        self._sock = None
        self._thread = threading.Thread(target=self._run, name=f"subscriber {self.public_url}", daemon=True)
        self._thread.start()

    # -- producer side ---------------------------------------------------------------------
    def enqueue(self, payload: Payload) -> None:
        dropped = 0
        with self.cond:
            while len(self.queue) >= self.queue_bodies:
                self.queue.popleft()
                dropped += 1
            self.queue.append(payload)
            depth = len(self.queue)
            self.dropped += dropped
            self.cond.notify()
        if self.metrics is not None:
            if dropped:
                self.metrics.inc("subscription_bodies_dropped_total", dropped, **self.labels)
            self.metrics.set_gauge("subscription_queue_depth", depth, **self.labels)

    def depth(self) -> int:
        return len(self.queue)

    # -- sender thread ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff = RETRY_MIN_SECONDS
        while True:
            with self.cond:
                while not self.queue and not self._stopping:
                    self.cond.wait()
                if self._stopping and not self.queue:
                    break
                payload = self.queue[0]
            try:
                self._send(payload)
            except PermanentFailure as e:
                self._done(payload, ok=False)
                log.warning("subscriber %s refused a write: %s", self.public_url, e)
            except (OSError, http.client.HTTPException) as e:
                self._close_connection()
                self.live = False
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.inc("subscription_write_failures_total", **self.labels)
                log.info("subscriber %s: %s; retrying in %.2fs", self.public_url, e, backoff)
                with self.cond:
                    if self._stopping:
                        break
                    self.cond.wait(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
                continue
            else:
                self._done(payload, ok=True)
            backoff = RETRY_MIN_SECONDS
            self.live = True
        self._close_connection()

    def _done(self, payload: Payload, ok: bool) -> None:
        with self.cond:
            if self.queue and self.queue[0] is payload:
                self.queue.popleft()
            depth = len(self.queue)
            self.cond.notify_all()
        if ok:
            self.forwarded += 1
        else:
            self.failures += 1
        if self.metrics is not None:
            self.metrics.inc("subscription_writes_forwarded_total" if ok else "subscription_write_failures_total",
                             **self.labels)
            self.metrics.set_gauge("subscription_queue_depth", depth, **self.labels)

    def _send(self, payload: Payload) -> None:
        body = payload.body()
        if not body:
            return
        if self.scheme == "udp":
            if self._sock is None:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for part in split_datagrams(body):
                self._sock.sendto(part, (self.host, self.port))
            return
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=HTTP_TIMEOUT_SECONDS)
        query = urlencode({"db": payload.database, "rp": payload.retention_policy})
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        self._conn.request("POST", f"{self.path}?{query}", body=body, headers=headers)
        resp = self._conn.getresponse()
        text = resp.read()
        if resp.status >= 500:
            raise OSError(f"HTTP {resp.status}: {text[:200].decode(errors='replace')}")
        if resp.status >= 300:
            raise PermanentFailure(f"HTTP {resp.status}: {text[:200].decode(errors='replace')}")

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop the sender, after giving the queue up to ``drain_seconds`` to empty."""
        deadline = time.monotonic() + drain_seconds
        with self.cond:
            while self.queue and self.live and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            self._stopping = True
            self.queue.clear()
            self.cond.notify_all()
        self._thread.join(HTTP_TIMEOUT_SECONDS + 1)
        if self._sock is not None:
            self._sock.close()
        if self.metrics is not None:
            self.metrics.set_gauge("subscription_queue_depth", 0, **self.labels)


class ActiveSubscription:
    def __init__(self, sub: SubscriptionDef, metrics=None, queue_bodies: int = DEFAULT_QUEUE_BODIES):
        self.definition = sub
        self.destinations = [
            Destination(url, {"subscription": f"{sub.database}.{sub.retention_policy}.{sub.name}",
                              "destination": redact(url)}, metrics, queue_bodies)
            for url in sub.destinations]
        self._next = 0

    def route(self, payload: Payload) -> None:
        if self.definition.mode == "ALL":
            for d in self.destinations:
                d.enqueue(payload)
            return
        n = len(self.destinations)
        for i in range(n):  # round robin, skipping destinations that are backing off
            d = self.destinations[(self._next + i) % n]
            if d.live:
                self._next = (self._next + i + 1) % n
                d.enqueue(payload)
                return
        d = self.destinations[self._next % n]  # none live: queue on the next one anyway
        self._next = (self._next + 1) % n
        d.enqueue(payload)

    def stop(self, drain_seconds: float = 0.0) -> None:
        for d in self.destinations:
            d.stop(drain_seconds)


class SubscriptionService:
    def __init__(self, engine, data_dir: str | None = None, *, store: SubscriptionStore | None = None,
                 metrics=None, queue_bodies: int = DEFAULT_QUEUE_BODIES):
        self.engine = engine
        self.store = store if store is not None else FileSubscriptionStore(data_dir)
        self.metrics = metrics
        self.queue_bodies = queue_bodies
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str, str], ActiveSubscription] = {}
        # (db, rp) -> tuple of active subscriptions; replaced whole on change so publish reads
        # it without the lock.
        self._routes: dict[tuple[str, str], tuple] = {}
        self._listening = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the senders of the stored subscriptions and listen to the engine's writes."""
        with self._lock:
            for sub in self.store.list():
                self._activate(sub)
            self._rebuild_routes()
        add = getattr(self.engine, "add_write_listener", None)
        if add is not None and not self._listening:
            add(self.publish)
            self._listening = True

    def stop(self, drain_seconds: float = 1.0) -> None:
        remove = getattr(self.engine, "remove_write_listener", None)
        if remove is not None and self._listening:
            remove(self.publish)
            self._listening = False
        with self._lock:
            active, self._active, self._routes = list(self._active.values()), {}, {}
        for a in active:
            a.stop(drain_seconds)

    def _activate(self, sub: SubscriptionDef) -> None:
        self._active[(sub.database, sub.retention_policy, sub.name)] = ActiveSubscription(
            sub, self.metrics, self.queue_bodies)

    def _rebuild_routes(self) -> None:
        routes: dict[tuple[str, str], list] = {}
        for (db, rp, _name), a in self._active.items():
            routes.setdefault((db, rp), []).append(a)
        self._routes = {k: tuple(v) for k, v in routes.items()}

    # -- the write path --------------------------------------------------------------------
    def publish(self, database: str, retention_policy: str, batch) -> None:
        """Queue one accepted write for every subscription of (database, retention policy).
        Non-blocking: no encoding and no I/O happen here."""
        subs = self._routes.get((database, retention_policy))
        if not subs:
            return
        payload = Payload(database, retention_policy, batch)
        for a in subs:
            a.route(payload)

    # -- statements ------------------------------------------------------------------------
    def _check_db_rp(self, database: str, retention_policy: str) -> None:
        dbs = self.engine.catalog.databases
        if database not in dbs:
            raise StatementError(f"database not found: {database}")
        if retention_policy not in dbs[database].policies:
            raise StatementError(f"retention policy not found: {retention_policy}")

    def create(self, stmt) -> None:
        """CREATE SUBSCRIPTION name ON db.rp DESTINATIONS ALL|ANY 'url', ..."""
        sub = SubscriptionDef(stmt.database, stmt.retention_policy, stmt.name, stmt.mode.upper(),
                              tuple(stmt.destinations))
        self._check_db_rp(sub.database, sub.retention_policy)
        check_definition(sub)
        with self._lock:
            key = (sub.database, sub.retention_policy, sub.name)
            if any((s.database, s.retention_policy, s.name) == key for s in self.store.list()):
                raise StatementError("subscription already exists")
            self.store.add(sub)
            if self._listening:
                self._activate(sub)
                self._rebuild_routes()

    def drop(self, database: str, retention_policy: str, name: str) -> None:
        self._check_db_rp(database, retention_policy)
        with self._lock:
            if not self.store.remove(database, retention_policy, name):
                raise StatementError("subscription not found")
            active = self._active.pop((database, retention_policy, name), None)
            self._rebuild_routes()
        if active is not None:
            active.stop()

    def drop_database(self, database: str) -> None:
        stopped = []
        with self._lock:
            for s in self.store.list():
                if s.database == database:
                    self.store.remove(s.database, s.retention_policy, s.name)
                    a = self._active.pop((s.database, s.retention_policy, s.name), None)
                    if a is not None:
                        stopped.append(a)
            self._rebuild_routes()
        for a in stopped:
            a.stop()

    def show(self, can_read) -> dict:
        """SHOW SUBSCRIPTIONS: one series per database that has subscriptions; ``destinations``
        is a JSON array of the URLs, as InfluxDB answers it."""
        by_db: dict[str, list] = {}
        for s in self.store.list():
            if can_read(s.database):
                by_db.setdefault(s.database, []).append(
                    [s.retention_policy, s.name, s.mode, list(s.destinations)])
        return {"series": [{"name": db, "columns": ["retention_policy", "name", "mode", "destinations"],
                            "values": rows} for db, rows in sorted(by_db.items())]}

    def stats_rows(self, can_read) -> list[dict]:
        """SHOW STATS FOR 'subscriber': one series per destination."""
        out = []
        with self._lock:
            active = list(self._active.values())
        for a in active:
            s = a.definition
            if not can_read(s.database):
                continue
            for d in a.destinations:
                out.append({"name": "subscriber",
                            "tags": {"database": s.database, "retention_policy": s.retention_policy,
                                     "name": s.name, "destination": d.public_url},
                            "columns": ["writesForwarded", "writeFailures", "bodiesDropped", "queueDepth", "live"],
                            "values": [[d.forwarded, d.failures, d.dropped, d.depth(), d.live]]})
        return out

    def destinations(self) -> list[Destination]:
        with self._lock:
            return [d for a in self._active.values() for d in a.destinations]
