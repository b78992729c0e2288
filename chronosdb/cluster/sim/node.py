"""One simulated Raft member: a RawNode, its simulated disk, and a small key-value state machine.

``SimNode`` is the driver the real asyncio node would be, minus the I/O: it takes a Ready,
persists its durable part to the MemDisk, hands back the messages to "send", applies committed
entries to the key-value map (and membership changes to the core), and acknowledges the Ready.
``crash()`` drops everything in memory; ``restart()`` rebuilds the node from its disk.

Commands (entry data, ASCII, ``|``-separated): ``put|op|key|value`` and
``cas|op|key|expected|new`` (an empty expected means "absent"). ``op`` identifies the client
operation so whoever waits for it can find the outcome in ``results``. Empty data is the
leader's no-op. Reads never go through the log: they use ReadIndex.
"""

from __future__ import annotations

import json
import random

from chronosdb.cluster.raft.core import Config, RawNode
from chronosdb.cluster.raft.types import (
    ConfChange, ConfState, EntryKind, Message, ReadState)
from chronosdb.cluster.sim.disk import MemDisk

__all__ = ["SimNode", "encode_kv", "decode_kv"]


def encode_kv(kv: dict[str, str]) -> bytes:
    return json.dumps(kv, sort_keys=True, separators=(",", ":")).encode()


def decode_kv(data: bytes) -> dict[str, str]:
    return json.loads(data) if data else {}


class SimNode:
    def __init__(self, node_id: int, conf: ConfState, cfg_kwargs: dict, seed: int,
                 compact_every: int = 0):
        self.id = node_id
        self.disk = MemDisk(conf)
        self.cfg_kwargs = cfg_kwargs
        self.compact_every = compact_every      # 0 = never compact automatically
        self.rng = random.Random(seed)          # the core's only source of randomness
        self.raft: RawNode | None = None
        self.kv: dict[str, str] = {}
        self.results: dict[str, object] = {}    # op id -> outcome, filled on apply
        self.applied: list[tuple] = []     # (index, term, data) since boot; term None = snapshot
        self.read_states: list[ReadState] = []
        self.boots = 0                          # how many times restart() ran
        self.restart()

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def crash(self) -> None:
        self.raft = None
        self.kv, self.results, self.applied, self.read_states = {}, {}, [], []

    def restart(self) -> None:
        self.boots += 1
        d = self.disk
        self.raft = RawNode(Config(id=self.id, rng=self.rng, **self.cfg_kwargs),
                            conf=d.boot_conf(), hard_state=d.hard_state, snapshot=d.snapshot,
                            entries=list(d.entries))
        self.kv = decode_kv(d.snapshot.data) if d.snapshot else {}
        self.results, self.applied, self.read_states = {}, [], []

    def handle_ready(self) -> list[Message]:
        """Persist, apply, acknowledge; return the messages to send."""
        r = self.raft
        if r is None or not r.has_ready():
            return []
        rd = r.ready()
        self.disk.persist(rd)
        if rd.snapshot is not None:
            self.kv = decode_kv(rd.snapshot.data)
            self.applied.append((rd.snapshot.index, None, None))    # marker: state jumped here
        for e in rd.committed_entries:
            self.applied.append((e.index, e.term, e.data))
            if e.kind == EntryKind.CONF_CHANGE:
                r.apply_conf_change(ConfChange.decode(e.data))
            elif e.data:
                self._apply(e.data)
        self.read_states.extend(rd.read_states)
        r.advance(rd)
        if self.compact_every and rd.committed_entries:
            lg = r.log
            if lg.applied - lg.snap_index >= self.compact_every:
                self.compact(lg.applied)
        return rd.messages

    def compact(self, index: int) -> None:
        self.raft.compact(index, encode_kv(self.kv))
        self.disk.compact(self.raft.log.snapshot)

    def _apply(self, data: bytes) -> None:
        parts = data.decode().split("|")
        if parts[0] == "put":
            _, op, key, value = parts
            self.kv[key] = value
            self.results[op] = None
        elif parts[0] == "cas":
            _, op, key, expected, new = parts
            ok = self.kv.get(key) == (expected or None)
            if ok:
                self.kv[key] = new
            self.results[op] = ok
        # anything else is opaque test data: recorded in `applied`, no effect on kv
