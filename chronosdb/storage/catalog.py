"""The catalog: databases, their retention policies and their shard groups.

Held in memory, persisted whole to ``<data-dir>/catalog.cbor`` by an atomic rewrite on every
change (changes are rare: DDL and new shard groups). In a cluster the same state lives in the
Raft-replicated meta store; this class is the single-node holder of it.

Shard groups are aligned to multiples of the policy's shard duration since the Unix epoch, as
InfluxDB aligns them, so a point's group is ``floor(t / d) * d`` whatever wrote it first.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import asdict, dataclass, field

import cbor2

from chronosdb.model.errors import BadRequest, DatabaseNotFound, RetentionPolicyNotFound
from chronosdb.storage import filenames

NS_PER_HOUR = 3600 * 10**9
NS_PER_DAY = 24 * NS_PER_HOUR
DEFAULT_RP = "autogen"
_NAME_RE = re.compile(r"^[^\x00-\x1f/\\.][^\x00-\x1f/\\]{0,254}$")


def default_shard_duration(duration_ns: int) -> int:
    """InfluxDB 1.x's rule: under 2 days → 1 h, up to 6 months → 1 day, else (or infinite) 7 days."""
    if duration_ns == 0:
        return 7 * NS_PER_DAY
    if duration_ns < 2 * NS_PER_DAY:
        return NS_PER_HOUR
    if duration_ns <= 180 * NS_PER_DAY:
        return NS_PER_DAY
    return 7 * NS_PER_DAY


def check_name(kind: str, name: str) -> str:
    """Names become directory names: refuse path tricks and control characters."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise BadRequest(f"invalid {kind} name {name!r}")
    return name


@dataclass
class ShardGroupInfo:
    shard_id: int
    start: int  # inclusive, ns
    end: int    # exclusive, ns


@dataclass
class RetentionPolicy:
    name: str
    duration: int          # ns; 0 = keep forever
    shard_duration: int    # ns
    replication: int = 1
    shard_groups: list[ShardGroupInfo] = field(default_factory=list)

    def group_bounds(self, t: int) -> tuple[int, int]:
        start = (t // self.shard_duration) * self.shard_duration
        return start, start + self.shard_duration


@dataclass
class DatabaseInfo:
    name: str
    default_rp: str = DEFAULT_RP
    policies: dict[str, RetentionPolicy] = field(default_factory=dict)


class Catalog:
    def __init__(self, data_dir: str):
        self._path = os.path.join(data_dir, filenames.CATALOG)
        self._lock = threading.RLock()
        self.databases: dict[str, DatabaseInfo] = {}
        self.next_shard_id = 1
        if os.path.exists(self._path):
            self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        with open(self._path, "rb") as f:
            doc = cbor2.load(f)
        self.next_shard_id = doc["next_shard_id"]
        for d in doc["databases"]:
            db = DatabaseInfo(d["name"], d["default_rp"])
            for p in d["policies"]:
                groups = [ShardGroupInfo(**g) for g in p.pop("shard_groups")]
                db.policies[p["name"]] = RetentionPolicy(**p, shard_groups=groups)
            self.databases[db.name] = db

    def _save(self) -> None:
        doc = {
            "version": 1,
            "next_shard_id": self.next_shard_id,
            "databases": [
                {"name": d.name, "default_rp": d.default_rp,
                 "policies": [asdict(p) for p in d.policies.values()]}
                for d in self.databases.values()
            ],
        }
        filenames.atomic_write(self._path, cbor2.dumps(doc))

    # -- databases and policies --------------------------------------------------------------
    def database(self, name: str) -> DatabaseInfo:
        db = self.databases.get(name)
        if db is None:
            raise DatabaseNotFound(name)
        return db

    def policy(self, db: str, rp: str | None) -> RetentionPolicy:
        d = self.database(db)
        name = rp or d.default_rp
        p = d.policies.get(name)
        if p is None:
            raise RetentionPolicyNotFound(db, name)
        return p

    def create_database(self, name: str) -> bool:
        """Idempotent, as in InfluxDB. Returns True when it was created."""
        check_name("database", name)
        with self._lock:
            if name in self.databases:
                return False
            db = DatabaseInfo(name)
            db.policies[DEFAULT_RP] = RetentionPolicy(DEFAULT_RP, 0, default_shard_duration(0))
            self.databases[name] = db
            self._save()
            return True

    def drop_database(self, name: str) -> DatabaseInfo | None:
        with self._lock:
            db = self.databases.pop(name, None)
            if db is not None:
                self._save()
            return db

    def create_retention_policy(self, db: str, name: str, duration: int, shard_duration: int = 0,
                                replication: int = 1, default: bool = False) -> None:
        check_name("retention policy", name)
        if duration < 0 or shard_duration < 0:
            raise BadRequest("retention policy durations must not be negative")
        if duration and duration < NS_PER_HOUR:
            raise BadRequest("retention policy duration must be at least 1h0m0s")
        with self._lock:
            d = self.database(db)
            sd = shard_duration or default_shard_duration(duration)
            existing = d.policies.get(name)
            if existing is not None:
                if (existing.duration, existing.shard_duration, existing.replication) != (duration, sd, replication):
                    raise BadRequest("retention policy already exists")
            else:
                d.policies[name] = RetentionPolicy(name, duration, sd, replication)
            if default:
                d.default_rp = name
            self._save()

    def alter_retention_policy(self, db: str, name: str, duration: int | None = None,
                               shard_duration: int | None = None, replication: int | None = None,
                               default: bool = False) -> None:
        with self._lock:
            p = self.policy(db, name)
            if duration is not None:
                if duration and duration < NS_PER_HOUR:
                    raise BadRequest("retention policy duration must be at least 1h0m0s")
                p.duration = duration
            if shard_duration is not None:
                p.shard_duration = shard_duration or default_shard_duration(p.duration)
            if replication is not None:
                p.replication = replication
            if default:
                self.database(db).default_rp = name
            self._save()

    def set_default_retention_policy(self, db: str, name: str) -> None:
        """Make ``name`` the default policy of ``db``; "" leaves it without one (as after
        dropping the default). Used to mirror the cluster's meta state, which allows both."""
        with self._lock:
            d = self.database(db)
            if name and name not in d.policies:
                raise RetentionPolicyNotFound(db, name)
            d.default_rp = name
            self._save()

    def drop_retention_policy(self, db: str, name: str) -> RetentionPolicy | None:
        with self._lock:
            d = self.database(db)
            p = d.policies.pop(name, None)
            if p is not None:
                if d.default_rp == name:
                    d.default_rp = ""
                self._save()
            return p

    # -- shard groups ------------------------------------------------------------------------
    def shard_group_for(self, db: str, rp: str, t: int) -> ShardGroupInfo:
        """The group holding time t, created (and persisted) if it does not exist yet."""
        with self._lock:
            p = self.policy(db, rp)
            for g in p.shard_groups:
                if g.start <= t < g.end:
                    return g
            start, end = p.group_bounds(t)
            g = ShardGroupInfo(self.next_shard_id, start, end)
            self.next_shard_id += 1
            p.shard_groups.append(g)
            p.shard_groups.sort(key=lambda x: x.start)
            self._save()
            return g

    def remove_shard_group(self, db: str, rp: str, shard_id: int) -> None:
        with self._lock:
            p = self.policy(db, rp)
            p.shard_groups = [g for g in p.shard_groups if g.shard_id != shard_id]
            self._save()
