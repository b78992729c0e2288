"""The cluster's metadata as a deterministic state machine replicated through Raft.

Every change to cluster metadata is a typed *command* (a frozen dataclass below). A node that
wants a change encodes the command (``encode_command``), proposes the bytes through Raft, and
every node applies the committed bytes in log order with ``MetaState.apply(decode_command(b))``.
For the copies to stay equal, ``apply`` is a pure function of (state, command): no clock, no
randomness, no I/O. Anything time- or random-dependent (a key's id, its creation time) is decided
by the proposer and carried *in* the command. An invalid command (a database that already
exists, a key id that does not) raises a ``MetaError`` on every node alike and leaves the state
unchanged; the proposer's caller receives that error as the proposal's outcome.

Wire form of a command: CBOR ``[tag, field, field, ...]`` with the fields in declaration order.
The tag is a short stable string (never reuse or renumber one); ``decode_command`` checks the
tag, the field count and each field's type and raises ``ValueError`` naming what is wrong.

API keys are stored as (id, SHA-256 of the secret, database, scope): the secret never enters the
log, the snapshot or the network.

Snapshots (``snapshot()``/``MetaState.restore``) are canonical CBOR of plain dicts and lists with
sorted keys, so two nodes with equal state produce equal bytes.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field

import cbor2

from chronosdb.model.errors import ChronosError
from chronosdb.storage.catalog import default_shard_duration  # the one rule, shared with a single node

__all__ = [
    "MetaError", "MetaNotFound", "MetaConflict",
    "CreateDatabase", "DropDatabase", "CreateRetentionPolicy", "AlterRetentionPolicy",
    "DropRetentionPolicy", "CreateKey", "RevokeKey", "AddMember", "RemoveMember",
    "CreateContinuousQuery", "DropContinuousQuery", "CreateSubscription", "DropSubscription",
    "COMMANDS", "encode_command", "decode_command",
    "RetentionPolicyInfo", "DatabaseInfo", "KeyRecord", "MemberInfo", "MetaState",
]

NS_PER_HOUR = 3600 * 10**9
NS_PER_DAY = 24 * NS_PER_HOUR
DEFAULT_RP = "autogen"
KEY_SCOPES_DB = ("read", "write", "readwrite")
SNAPSHOT_VERSION = 1
# Same rule as the single-node catalog: names become directory names, so no path tricks.
_NAME_RE = re.compile(r"^[^\x00-\x1f/\\.][^\x00-\x1f/\\]{0,254}$")


class MetaError(ChronosError):
    """A command that is invalid for the current metadata (same verdict on every node)."""
    status = 400


class MetaNotFound(MetaError):
    status = 404


class MetaConflict(MetaError):
    status = 409


# ---------------------------------------------------------------------- commands

@dataclass(frozen=True, slots=True)
class CreateDatabase:
    name: str


@dataclass(frozen=True, slots=True)
class DropDatabase:
    name: str


@dataclass(frozen=True, slots=True)
class CreateRetentionPolicy:
    db: str
    name: str
    duration: int               # ns; 0 = keep forever
    shard_duration: int = 0     # ns; 0 = InfluxDB's default for the duration
    replication: int = 1
    default: bool = False


@dataclass(frozen=True, slots=True)
class AlterRetentionPolicy:
    db: str
    name: str
    duration: int | None = None         # None = unchanged
    shard_duration: int | None = None
    replication: int | None = None
    default: bool = False


@dataclass(frozen=True, slots=True)
class DropRetentionPolicy:
    db: str
    name: str


@dataclass(frozen=True, slots=True)
class CreateKey:
    key_id: str
    hash: bytes                 # SHA-256 of the secret; the secret itself never goes through Raft
    database: str | None        # None = an admin key
    scope: str                  # read | write | readwrite, or admin for an admin key
    created_ns: int             # decided by the proposer, so apply stays deterministic
    description: str = ""


@dataclass(frozen=True, slots=True)
class RevokeKey:
    key_id: str


@dataclass(frozen=True, slots=True)
class AddMember:
    node_id: int
    rpc_address: str            # "host:port" of the node's Raft/RPC listener
    http_address: str           # "host:port" of its HTTP API


@dataclass(frozen=True, slots=True)
class RemoveMember:
    node_id: int


@dataclass(frozen=True, slots=True)
class CreateContinuousQuery:
    db: str
    name: str
    text: str                   # the full CREATE CONTINUOUS QUERY statement


@dataclass(frozen=True, slots=True)
class DropContinuousQuery:
    db: str
    name: str


@dataclass(frozen=True, slots=True)
class CreateSubscription:
    db: str
    rp: str
    name: str
    mode: str                   # "ALL" | "ANY" (InfluxDB 1.x)
    destinations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DropSubscription:
    db: str
    rp: str
    name: str


# Wire tags: stable forever. Add new commands with new tags; never renumber.
COMMANDS: dict[str, type] = {
    "db+": CreateDatabase, "db-": DropDatabase,
    "rp+": CreateRetentionPolicy, "rp~": AlterRetentionPolicy, "rp-": DropRetentionPolicy,
    "key+": CreateKey, "key-": RevokeKey,
    "mem+": AddMember, "mem-": RemoveMember,
    "cq+": CreateContinuousQuery, "cq-": DropContinuousQuery,
    "sub+": CreateSubscription, "sub-": DropSubscription,
}
_TAGS = {cls: tag for tag, cls in COMMANDS.items()}


def _field_types(cls) -> list[tuple[str, object]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]


_FIELDS = {cls: _field_types(cls) for cls in COMMANDS.values()}


def encode_command(cmd) -> bytes:
    tag = _TAGS.get(type(cmd))
    if tag is None:
        raise ValueError(f"not a meta command: {type(cmd).__name__}")
    values = []
    for name, _ in _FIELDS[type(cmd)]:
        v = getattr(cmd, name)
        values.append(list(v) if isinstance(v, tuple) else v)
    return cbor2.dumps([tag, *values])


def _check_type(value, hint, where: str):
    """``value`` converted to ``hint`` (int, str, bytes, bool, X | None, tuple[str, ...])."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, where)
    if origin is tuple:
        (item, _) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {type(value).__name__}")
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is int and type(value) is int:
        return value
    if hint is bool and type(value) is bool:
        return value
    if hint in (str, bytes) and type(value) is hint:
        return value
    raise ValueError(f"{where} must be {getattr(hint, '__name__', hint)}, got {type(value).__name__}")


def decode_command(b: bytes):
    """The command encoded in ``b``; ValueError naming the problem if it is not one."""
    try:
        obj = cbor2.loads(b)
    except Exception as e:
        raise ValueError(f"meta command is not valid CBOR: {e}") from None
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise ValueError("meta command must be a CBOR list starting with a string tag")
    cls = COMMANDS.get(obj[0])
    if cls is None:
        raise ValueError(f"unknown meta command tag {obj[0]!r}")
    fields = _FIELDS[cls]
    if len(obj) - 1 != len(fields):
        raise ValueError(f"meta command {cls.__name__} needs {len(fields)} fields, got {len(obj) - 1}")
    args = [_check_type(v, hint, f"{cls.__name__}.{name}") for (name, hint), v in zip(fields, obj[1:])]
    return cls(*args)


# ---------------------------------------------------------------------- state

@dataclass
class RetentionPolicyInfo:
    name: str
    duration: int
    shard_duration: int
    replication: int
    subscriptions: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (mode, destinations)


@dataclass
class DatabaseInfo:
    name: str
    default_rp: str
    policies: dict[str, RetentionPolicyInfo] = field(default_factory=dict)
    continuous_queries: dict[str, str] = field(default_factory=dict)   # name -> statement text


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    hash: bytes
    database: str | None
    scope: str
    created_ns: int
    description: str


@dataclass(frozen=True)
class MemberInfo:
    node_id: int
    rpc_address: str
    http_address: str


def _name(kind: str, name: str) -> str:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise MetaError(f"invalid {kind} name {name!r}")
    return name


def _address(kind: str, addr: str) -> str:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MetaError(f"invalid {kind} {addr!r}: expected host:port")
    return addr


def _check_durations(duration: int | None, shard_duration: int | None, replication: int | None) -> None:
    if duration is not None:
        if duration < 0:
            raise MetaError(f"retention policy duration must not be negative, got {duration}")
        if duration and duration < NS_PER_HOUR:
            raise MetaError("retention policy duration must be at least 1h0m0s")
    if shard_duration is not None and shard_duration < 0:
        raise MetaError(f"shard duration must not be negative, got {shard_duration}")
    if replication is not None and replication < 1:
        raise MetaError(f"replication factor must be at least 1, got {replication}")


class MetaState:
    """Databases, retention policies, API keys (hashed), members, continuous queries and
    subscriptions. Mutated only by ``apply``; read through the accessors."""

    def __init__(self):
        self.databases: dict[str, DatabaseInfo] = {}
        self.keys: dict[str, KeyRecord] = {}
        self.members: dict[int, MemberInfo] = {}
        self.version = 0        # number of commands applied successfully: a cheap change marker

    # ------------------------------------------------------------ accessors

    def database(self, name: str) -> DatabaseInfo:
        d = self.databases.get(name)
        if d is None:
            raise MetaNotFound(f'database not found: "{name}"')
        return d

    def policy(self, db: str, name: str) -> RetentionPolicyInfo:
        p = self.database(db).policies.get(name)
        if p is None:
            raise MetaNotFound(f'retention policy not found: "{name}" on database "{db}"')
        return p

    def database_names(self) -> list[str]:
        return sorted(self.databases)

    def key_by_hash(self, digest: bytes) -> KeyRecord | None:
        for k in self.keys.values():
            if k.hash == digest:
                return k
        return None

    def member_list(self) -> list[MemberInfo]:
        return [self.members[i] for i in sorted(self.members)]

    # ------------------------------------------------------------ apply

    def apply(self, cmd):
        """Apply one committed command; returns its result or raises MetaError (state unchanged)."""
        handler = getattr(self, "_apply_" + type(cmd).__name__, None)
        if handler is None or type(cmd) not in _TAGS:
            raise MetaError(f"not a meta command: {type(cmd).__name__}")
        result = handler(cmd)
        self.version += 1
        return result

    def _apply_CreateDatabase(self, c: CreateDatabase):
        _name("database", c.name)
        if c.name in self.databases:
            raise MetaConflict(f'database already exists: "{c.name}"')
        self.databases[c.name] = DatabaseInfo(
            c.name, DEFAULT_RP, {DEFAULT_RP: RetentionPolicyInfo(DEFAULT_RP, 0, default_shard_duration(0), 1)})
        return self.databases[c.name]

    def _apply_DropDatabase(self, c: DropDatabase):
        self.database(c.name)
        del self.databases[c.name]
        # Keys scoped to the database go with it, as in the single-node KeyStore.
        for kid in [k for k, rec in self.keys.items() if rec.database == c.name]:
            del self.keys[kid]
        return None

    def _apply_CreateRetentionPolicy(self, c: CreateRetentionPolicy):
        _name("retention policy", c.name)
        _check_durations(c.duration, c.shard_duration, c.replication)
        d = self.database(c.db)
        if c.name in d.policies:
            raise MetaConflict(f'retention policy already exists: "{c.name}" on database "{c.db}"')
        p = RetentionPolicyInfo(c.name, c.duration, c.shard_duration or default_shard_duration(c.duration),
                                c.replication)
        d.policies[c.name] = p
        if c.default:
            d.default_rp = c.name
        return p

    def _apply_AlterRetentionPolicy(self, c: AlterRetentionPolicy):
        _check_durations(c.duration, c.shard_duration, c.replication)
        p = self.policy(c.db, c.name)
        if c.duration is not None:
            p.duration = c.duration
        if c.shard_duration is not None:
            p.shard_duration = c.shard_duration or default_shard_duration(p.duration)
        if c.replication is not None:
            p.replication = c.replication
        if c.default:
            self.databases[c.db].default_rp = c.name
        return p

    def _apply_DropRetentionPolicy(self, c: DropRetentionPolicy):
        d = self.database(c.db)
        self.policy(c.db, c.name)
        del d.policies[c.name]
        if d.default_rp == c.name:
            d.default_rp = ""       # InfluxDB 1.x leaves the database without a default
        return None

    def _apply_CreateKey(self, c: CreateKey):
        if not c.key_id:
            raise MetaError("key id must not be empty")
        if len(c.hash) != 32:
            raise MetaError(f"key hash must be 32 bytes (SHA-256), got {len(c.hash)}")
        if c.database is None:
            if c.scope != "admin":
                raise MetaError(f"invalid scope {c.scope!r} for an admin key: admin keys take scope 'admin'")
        else:
            if c.scope not in KEY_SCOPES_DB:
                raise MetaError(f"invalid scope {c.scope!r} for a key on database {c.database!r}: "
                                f"expected one of {', '.join(KEY_SCOPES_DB)}")
            self.database(c.database)
        if c.key_id in self.keys:
            raise MetaConflict(f"key id already exists: {c.key_id}")
        if self.key_by_hash(c.hash) is not None:
            raise MetaConflict("a key with the same hash already exists")
        rec = KeyRecord(c.key_id, c.hash, c.database, c.scope, c.created_ns, c.description)
        self.keys[c.key_id] = rec
        return rec

    def _apply_RevokeKey(self, c: RevokeKey):
        if c.key_id not in self.keys:
            raise MetaNotFound(f"key not found: {c.key_id}")
        return self.keys.pop(c.key_id)

    def _apply_AddMember(self, c: AddMember):
        if c.node_id <= 0:
            raise MetaError(f"node id must be positive, got {c.node_id}")
        _address("rpc address", c.rpc_address)
        _address("http address", c.http_address)
        for m in self.members.values():
            if m.node_id != c.node_id and c.rpc_address == m.rpc_address:
                raise MetaConflict(f"rpc address {c.rpc_address} is already used by node {m.node_id}")
        # Re-adding a member updates its addresses (a node restarted on another port).
        m = MemberInfo(c.node_id, c.rpc_address, c.http_address)
        self.members[c.node_id] = m
        return m

    def _apply_RemoveMember(self, c: RemoveMember):
        if c.node_id not in self.members:
            raise MetaNotFound(f"node {c.node_id} is not a member")
        return self.members.pop(c.node_id)

    def _apply_CreateContinuousQuery(self, c: CreateContinuousQuery):
        _name("continuous query", c.name)
        d = self.database(c.db)
        if c.name in d.continuous_queries:
            raise MetaConflict(f'continuous query already exists: "{c.name}" on database "{c.db}"')
        d.continuous_queries[c.name] = c.text
        return None

    def _apply_DropContinuousQuery(self, c: DropContinuousQuery):
        d = self.database(c.db)
        if c.name not in d.continuous_queries:
            raise MetaNotFound(f'continuous query not found: "{c.name}" on database "{c.db}"')
        del d.continuous_queries[c.name]
        return None

    def _apply_CreateSubscription(self, c: CreateSubscription):
        _name("subscription", c.name)
        if c.mode not in ("ALL", "ANY"):
            raise MetaError(f"subscription mode must be ALL or ANY, got {c.mode!r}")
        if not c.destinations:
            raise MetaError("a subscription needs at least one destination")
        p = self.policy(c.db, c.rp)
        if c.name in p.subscriptions:
            raise MetaConflict(f'subscription already exists: "{c.name}" on "{c.db}"."{c.rp}"')
        p.subscriptions[c.name] = (c.mode, c.destinations)
        return None

    def _apply_DropSubscription(self, c: DropSubscription):
        p = self.policy(c.db, c.rp)
        if c.name not in p.subscriptions:
            raise MetaNotFound(f'subscription not found: "{c.name}" on "{c.db}"."{c.rp}"')
        del p.subscriptions[c.name]
        return None

    # ------------------------------------------------------------ snapshots

    def to_plain(self) -> dict:
        """The whole state as plain, sorted dicts and lists (what the snapshot encodes)."""
        return {
            "version": SNAPSHOT_VERSION,
            "applied": self.version,
            "databases": [
                {"name": d.name, "default_rp": d.default_rp,
                 "policies": [{"name": p.name, "duration": p.duration, "shard_duration": p.shard_duration,
                               "replication": p.replication,
                               "subscriptions": [[n, m, list(dst)] for n, (m, dst) in sorted(p.subscriptions.items())]}
                              for _, p in sorted(d.policies.items())],
                 "cqs": [[n, t] for n, t in sorted(d.continuous_queries.items())]}
                for _, d in sorted(self.databases.items())],
            "keys": [[k.key_id, k.hash, k.database, k.scope, k.created_ns, k.description]
                     for _, k in sorted(self.keys.items())],
            "members": [[m.node_id, m.rpc_address, m.http_address] for _, m in sorted(self.members.items())],
        }

    def snapshot(self) -> bytes:
        return cbor2.dumps(self.to_plain(), canonical=True)

    @classmethod
    def restore(cls, data: bytes) -> "MetaState":
        """Rebuild a state from ``snapshot()`` bytes; ValueError if they are not one."""
        try:
            obj = cbor2.loads(data)
            if obj.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unsupported meta snapshot version {obj.get('version')!r}")
            s = cls()
            s.version = int(obj["applied"])
            for d in obj["databases"]:
                info = DatabaseInfo(d["name"], d["default_rp"])
                for p in d["policies"]:
                    info.policies[p["name"]] = RetentionPolicyInfo(
                        p["name"], p["duration"], p["shard_duration"], p["replication"],
                        {n: (m, tuple(dst)) for n, m, dst in p["subscriptions"]})
                info.continuous_queries = {n: t for n, t in d["cqs"]}
                s.databases[info.name] = info
            for kid, h, db, scope, created, desc in obj["keys"]:
                s.keys[kid] = KeyRecord(kid, bytes(h), db, scope, created, desc)
            for nid, rpc, http in obj["members"]:
                s.members[nid] = MemberInfo(nid, rpc, http)
            return s
        except ValueError:
            raise
        except Exception as e:
            raise ValueError(f"malformed meta snapshot: {e!r}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, MetaState) and self.to_plain() == other.to_plain()
