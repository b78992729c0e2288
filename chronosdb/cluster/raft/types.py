"""The value types of the Raft core: log entries, persistent state, messages and the Ready batch.

Everything here is a plain immutable value (frozen dataclasses with slots), so the core can hand
them to the driver without copying and tests can compare them with ``==``. The one mutable type
is ``Ready``: the batch of work the core hands out and takes back with ``RawNode.advance``.

Wire form: ``message_to_wire`` turns a ``Message`` into nested lists of ints and bytes only
(encodable by cbor2 or msgpack without custom tags); ``message_from_wire`` checks the shape and
types of what came off the network and raises ``ValueError`` naming what is wrong, because a
peer may run another version or the bytes may be damaged.

    message  = [type, frm, to, term, log_term, index, [entry...], commit, reject(0|1),
                reject_hint, snapshot | [], context]
    entry    = [term, index, kind, data]
    snapshot = [index, term, [voter...], [learner...], data]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "EntryKind", "Entry", "HardState", "ConfState", "Snapshot", "ConfChangeKind", "ConfChange",
    "MsgType", "Message", "message_to_wire", "message_from_wire", "ReadState", "Role",
    "SoftState", "Ready", "NotLeader", "RaftError",
]


class RaftError(Exception):
    """A request the core cannot carry out in its current state (the message says why)."""


class NotLeader(RaftError):
    """A proposal reached a node that is not the leader (or whose leader is handing over).

    ``leader_id`` is the leader this node knows of (0 = none known), so the caller can redirect.
    """

    def __init__(self, leader_id: int, reason: str = ""):
        msg = f"not the leader (leader is {leader_id or 'unknown'})"
        super().__init__(msg + (f": {reason}" if reason else ""))
        self.leader_id = leader_id


class EntryKind(IntEnum):
    NORMAL = 0          # the leader's no-op is a NORMAL entry with data b""
    CONF_CHANGE = 1     # data is ConfChange.encode()


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""
    term: int = 0
    vote: int = 0       # node ids are positive ints; 0 = voted for no one this term
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The applied state at ``index`` (whose entry had ``term``) and the membership then."""
    index: int
    term: int
    conf: ConfState
    data: bytes


class ConfChangeKind(IntEnum):
    ADD_VOTER = 0       # also promotes a learner
    ADD_LEARNER = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class ConfChange:
    kind: ConfChangeKind
    node: int

    def encode(self) -> bytes:
        # One kind byte, then the node id as 8 bytes big-endian: fixed size, trivially checked.
        return bytes([int(self.kind)]) + int(self.node).to_bytes(8, "big")

    @staticmethod
    def decode(b: bytes) -> "ConfChange":
        if len(b) != 9:
            raise ValueError(f"conf change must be 9 bytes, got {len(b)}")
        try:
            kind = ConfChangeKind(b[0])
        except ValueError:
            raise ValueError(f"unknown conf change kind {b[0]}") from None
        node = int.from_bytes(b[1:], "big")
        if node <= 0:
            raise ValueError(f"conf change node id must be positive, got {node}")
        return ConfChange(kind, node)


class MsgType(IntEnum):
    APPEND = 0              # leader -> follower: entries after (log_term, index), leader commit
    APPEND_RESP = 1         # index = last index matched (or the rejected index), reject_hint
    VOTE = 2                # candidate: (log_term, index) = its last entry
    VOTE_RESP = 3
    PRE_VOTE = 4            # term = the term the pre-candidate would campaign in (not adopted)
    PRE_VOTE_RESP = 5
    HEARTBEAT = 6           # commit = min(leader commit, follower match); context = read round;
                            # index = the leader's tick count when sent (echoed, for the lease)
    HEARTBEAT_RESP = 7      # index and context echoed
    SNAPSHOT = 8            # InstallSnapshot: snapshot carries the state and membership
    TIMEOUT_NOW = 9         # leader transfer: campaign at once, ignoring the lease
    READ_INDEX = 10         # follower -> leader: a forwarded ReadIndex request (context)
    READ_INDEX_RESP = 11    # leader -> follower: index to wait for (context echoed)
    TRANSFER_LEADER = 12    # follower -> leader: a forwarded transfer request (index = target)


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    frm: int
    to: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


def _entry_to_wire(e: Entry) -> list:
    return [e.term, e.index, int(e.kind), e.data]


def _snapshot_to_wire(s: Snapshot) -> list:
    return [s.index, s.term, list(s.conf.voters), list(s.conf.learners), s.data]


def message_to_wire(m: Message) -> list:
    return [int(m.type), m.frm, m.to, m.term, m.log_term, m.index,
            [_entry_to_wire(e) for e in m.entries], m.commit, 1 if m.reject else 0,
            m.reject_hint, _snapshot_to_wire(m.snapshot) if m.snapshot is not None else [],
            m.context]


def _int(v, what: str) -> int:
    if type(v) is not int or v < 0:
        raise ValueError(f"raft message field {what} must be a non-negative int, got {v!r}")
    return v


def _bytes(v, what: str) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise ValueError(f"raft message field {what} must be bytes, got {type(v).__name__}")


def _list(v, what: str, n: int | None = None) -> list:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"raft message field {what} must be a list, got {type(v).__name__}")
    if n is not None and len(v) != n:
        raise ValueError(f"raft message field {what} must have {n} items, got {len(v)}")
    return list(v)


def _entry_from_wire(obj, i: int) -> Entry:
    term, index, kind, data = _list(obj, f"entries[{i}]", 4)
    try:
        k = EntryKind(_int(kind, f"entries[{i}].kind"))
    except ValueError as e:
        raise ValueError(f"raft message entries[{i}].kind: {e}") from None
    return Entry(_int(term, f"entries[{i}].term"), _int(index, f"entries[{i}].index"), k,
                 _bytes(data, f"entries[{i}].data"))


def message_from_wire(obj) -> Message:
    """Rebuild a Message from ``message_to_wire`` output; ValueError names what is malformed."""
    f = _list(obj, "message", 12)
    try:
        mtype = MsgType(_int(f[0], "type"))
    except ValueError as e:
        raise ValueError(f"raft message type: {e}") from None
    entries = tuple(_entry_from_wire(e, i) for i, e in enumerate(_list(f[6], "entries")))
    snap = None
    s = _list(f[10], "snapshot")
    if s:
        if len(s) != 5:
            raise ValueError(f"raft message field snapshot must have 5 items, got {len(s)}")
        voters = tuple(_int(v, "snapshot.voters") for v in _list(s[2], "snapshot.voters"))
        learners = tuple(_int(v, "snapshot.learners") for v in _list(s[3], "snapshot.learners"))
        snap = Snapshot(_int(s[0], "snapshot.index"), _int(s[1], "snapshot.term"),
                        ConfState(voters, learners), _bytes(s[4], "snapshot.data"))
    if f[8] not in (0, 1, True, False):
        raise ValueError(f"raft message field reject must be 0 or 1, got {f[8]!r}")
    return Message(mtype, _int(f[1], "frm"), _int(f[2], "to"), _int(f[3], "term"),
                   _int(f[4], "log_term"), _int(f[5], "index"), entries, _int(f[7], "commit"),
                   bool(f[8]), _int(f[9], "reject_hint"), snap, _bytes(f[11], "context"))


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: the read with ``context`` may be served once applied >= ``index``."""
    index: int
    context: bytes


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3
    LEARNER = 4     # a non-voting member: receives the log, never campaigns


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the driver about (not persisted)."""
    leader: int
    role: Role


@dataclass
class Ready:
    """One batch of work from the core. Handle it in this order, then call ``advance(rd)``:

    1. persist ``hard_state``/``snapshot``/``entries`` durably (fsync);
    2. only then send ``messages`` (a vote or an append ack promises what is on disk);
    3. apply ``committed_entries`` in order; serve ``read_states`` once applied >= their index.
    """
    soft_state: SoftState | None = None     # changed since last Ready, else None
    hard_state: HardState | None = None     # to persist (fsync) if not None
    snapshot: Snapshot | None = None        # replaces the stored log up to snapshot.index
    entries: list[Entry] = field(default_factory=list)  # entries[0].index may be <= stored last: the stored suffix from there is replaced
    messages: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
