"""Subscription definitions: validation and the durable store.

A subscription names a database and retention policy, a mode (``ALL``: every destination gets
every write; ``ANY``: each write goes to one live destination, round robin) and destinations
``http://host:port[/path]``, ``https://...`` or ``udp://host:port``. As in InfluxDB 1.x a
destination without a port is refused.

The store is behind ``SubscriptionStore`` (list, add, remove) so the cluster's meta state
machine can hold the definitions later; ``FileSubscriptionStore`` keeps them in
``<data-dir>/subscriptions.cbor``, rewritten atomically on change.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import cbor2

from chronosdb.query.meta import StatementError
from chronosdb.storage import filenames

SCHEMES = ("http", "https", "udp")
MODES = ("ALL", "ANY")


@dataclass(frozen=True)
class SubscriptionDef:
    database: str
    retention_policy: str
    name: str
    mode: str                 # "ALL" | "ANY"
    destinations: tuple       # URLs, as written


def redact(url: str) -> str:
    """The URL without its password, for logs, metrics labels and stats."""
    u = urlsplit(url)
    if u.password is None:
        return url
    host = u.hostname + (f":{u.port}" if u.port is not None else "")
    return u._replace(netloc=f"{u.username}:***@{host}").geturl()


def check_destination(url: str) -> None:
    """Raise StatementError unless ``url`` is a destination we can send to."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        port = None
        u = None
    if u is None or u.scheme not in SCHEMES or not u.hostname or port is None:
        raise StatementError(f"invalid subscription URL: {url}")


def check_definition(sub: SubscriptionDef) -> None:
    if sub.mode not in MODES:
        raise StatementError(f"invalid subscription mode {sub.mode!r}: expected ALL or ANY")
    if not sub.destinations:
        raise StatementError("a subscription needs at least one destination")
    for d in sub.destinations:
        check_destination(d)


class SubscriptionStore(Protocol):
    def list(self) -> list[SubscriptionDef]: ...

    def add(self, sub: SubscriptionDef) -> None: ...

    def remove(self, database: str, retention_policy: str, name: str) -> bool: ...


class FileSubscriptionStore:
    """``{"version": 1, "subscriptions": [{"database", "rp", "name", "mode", "destinations"}]}``
    in creation order."""

    VERSION = 1

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, filenames.SUBSCRIPTIONS)
        self._lock = threading.Lock()
        self._items: list[SubscriptionDef] = []
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                doc = cbor2.load(f)
            if doc.get("version") != self.VERSION:
                raise ValueError(f"{self.path}: unknown subscription file version {doc.get('version')!r}")
            self._items = [SubscriptionDef(s["database"], s["rp"], s["name"], s["mode"], tuple(s["destinations"]))
                           for s in doc["subscriptions"]]

    def _save(self) -> None:
        doc = {"version": self.VERSION, "subscriptions": [
            {"database": s.database, "rp": s.retention_policy, "name": s.name, "mode": s.mode,
             "destinations": list(s.destinations)} for s in self._items]}
        filenames.atomic_write(self.path, cbor2.dumps(doc))

    def list(self) -> list[SubscriptionDef]:
        with self._lock:
            return list(self._items)

    def add(self, sub: SubscriptionDef) -> None:
        with self._lock:
            self._items.append(sub)
            self._save()

    def remove(self, database: str, retention_policy: str, name: str) -> bool:
        with self._lock:
            kept = [s for s in self._items if (s.database, s.retention_policy, s.name)
                    != (database, retention_policy, name)]
            if len(kept) == len(self._items):
                return False
            self._items = kept
            self._save()
            return True
