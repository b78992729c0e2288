"""Node-to-node message transport over TCP (asyncio): framed CBOR, one outgoing link per peer.

Framing (both directions)::

    +----------------------+-------------------------------+
    | length: u32 big-end. | body: `length` bytes of CBOR  |
    +----------------------+-------------------------------+

The first frame on every connection is a *hello*, ``["chronosdb-raft", 1, sender_node_id,
proof]``, where ``proof`` is HMAC-SHA256 over ``chronosdb-raft-hello:<sender id>`` keyed with the
cluster secret (empty when the transport has none). A transport with a secret refuses a hello
without the right proof, so a process that does not know the secret cannot inject Raft messages.
The proof is the same on every connection of a node: someone who can read the traffic can replay
it, so the cluster ports still belong on a private network (or a TLS tunnel);
every later frame's body is one message object (whatever the caller passed to ``send``: plain
ints, bytes, strings, lists). Connections are one-way: a node dials each peer and only writes on
that connection; it reads only on connections that peers dialled to it. That keeps ordering simple
(one writer per link, so messages to one peer arrive in the order they were sent) and needs no
handshake beyond the hello.

Why sends are lossy: Raft retries by itself (heartbeats, append retries, new elections), so a
message to a peer that is down or slow is better dropped than buffered without bound. Each peer
has a bounded queue; ``send`` returns False when it is full, and messages queued when a connection
breaks are lost with it. A writer task per peer reconnects with exponential backoff plus jitter
(from an injectable ``random.Random``, so tests can seed it).

A frame longer than ``max_frame`` bytes, a body that is not CBOR, or a missing/wrong hello ends
that one connection (logged with the peer's address); the transport and its other links go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import struct
from dataclasses import dataclass, field
from typing import Callable

import cbor2

__all__ = ["Transport", "FrameError", "encode_frame", "reconnect_delays", "HELLO_TAG",
           "DEFAULT_MAX_FRAME"]

log = logging.getLogger(__name__)

HELLO_TAG = "chronosdb-raft"
PROTOCOL_VERSION = 1
_LEN = struct.Struct(">I")
# A Raft append carries at most max_entries_per_msg entries and a snapshot the whole meta state;
# 64 MiB is far above either for the metadata cluster and still bounds a hostile length field.
DEFAULT_MAX_FRAME = 64 << 20
# A peer that connects but says nothing is dropped after this long (seconds).
HELLO_TIMEOUT = 5.0


def hello_proof(secret: bytes | None, node_id: int) -> bytes:
    """What a node sends in its hello to show it knows the cluster secret (b"" without one)."""
    if not secret:
        return b""
    return hmac.new(secret, b"chronosdb-raft-hello:%d" % node_id, hashlib.sha256).digest()


class FrameError(Exception):
    """A frame that cannot be accepted (too long, not CBOR, bad hello)."""


def encode_frame(obj, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    body = cbor2.dumps(obj)
    if len(body) > max_frame:
        raise FrameError(f"frame of {len(body)} bytes exceeds the limit of {max_frame}")
    return _LEN.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader, max_frame: int):
    head = await reader.readexactly(4)
    (n,) = _LEN.unpack(head)
    if n > max_frame:
        raise FrameError(f"frame length {n} exceeds the limit of {max_frame}")
    body = await reader.readexactly(n)
    try:
        return cbor2.loads(body)
    except Exception as e:  # cbor2 raises several types for malformed input
        raise FrameError(f"frame body is not valid CBOR: {e}") from None


def reconnect_delays(rng: random.Random, initial: float, maximum: float):
    """Seconds to wait before each reconnect attempt: the base doubles from ``initial`` up to
    ``maximum``, and each wait is drawn from [base/2, base] so that peers that lost the same
    node do not all redial it in the same instant when it comes back."""
    base = initial
    while True:
        yield base * (0.5 + rng.random() / 2)
        base = min(base * 2, maximum)


@dataclass
class _Peer:
    node_id: int
    address: tuple[str, int]
    queue: asyncio.Queue
    task: asyncio.Task | None = None
    connected: bool = False
    sent: int = 0
    dropped: int = 0
    connects: int = 0
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)


class Transport:
    """TCP links from ``node_id`` to its peers; ``on_message(from_id, obj)`` gets what arrives.

    ``on_message`` runs on the event loop and must not block.
    """

    def __init__(self, node_id: int, listen: tuple[str, int],
                 on_message: Callable[[int, object], None], *, queue_limit: int = 1024,
                 max_frame: int = DEFAULT_MAX_FRAME, rng: random.Random | None = None,
                 backoff_initial: float = 0.05, backoff_max: float = 2.0,
                 secret: bytes | None = None):
        if node_id <= 0:
            raise ValueError(f"node id must be a positive int, got {node_id}")
        self.node_id = node_id
        self.listen = listen
        self.secret = secret or None
        self.on_message = on_message
        self.queue_limit = queue_limit
        self.max_frame = max_frame
        self.rng = rng or random.Random()
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.peers: dict[int, _Peer] = {}
        self.received = 0
        self.rejected_connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._inbound: set[asyncio.Task] = set()
        self._closed = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self.listen[0], self.listen[1])

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("Transport.address is known only after start()")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    # ----------------------------------------------------------------- outgoing

    def add_peer(self, node_id: int, address: tuple[str, int]) -> None:
        """Start (or re-point) the link to ``node_id``; safe to call again with a new address."""
        if node_id == self.node_id:
            return
        old = self.peers.get(node_id)
        if old is not None:
            if old.address == tuple(address):
                return
            self.remove_peer(node_id)
        peer = _Peer(node_id, (address[0], int(address[1])), asyncio.Queue(self.queue_limit))
        peer.task = asyncio.get_running_loop().create_task(self._run_link(peer), name=f"raft-link-{node_id}")
        self.peers[node_id] = peer

    def remove_peer(self, node_id: int) -> None:
        peer = self.peers.pop(node_id, None)
        if peer is not None and peer.task is not None:
            peer.task.cancel()

    def send(self, to: int, obj) -> bool:
        """Queue ``obj`` for ``to`` without blocking. False if the peer is unknown or its
        queue is full (the message is dropped). Raises FrameError if ``obj`` encodes to more
        than ``max_frame`` bytes: that is a caller bug, not a transient condition."""
        peer = self.peers.get(to)
        if peer is None or self._closed:
            return False
        try:
            peer.queue.put_nowait(encode_frame(obj, self.max_frame))
        except asyncio.QueueFull:
            peer.dropped += 1
            return False
        return True

    async def _run_link(self, peer: _Peer) -> None:
        delays = reconnect_delays(self.rng, self.backoff_initial, self.backoff_max)
        while True:
            try:
                reader, writer = await asyncio.open_connection(*peer.address)
            except OSError as e:
                log.debug("raft link %d -> %d (%s:%d): connect failed: %s",
                          self.node_id, peer.node_id, *peer.address, e)
                await asyncio.sleep(next(delays))
                continue
            delays = reconnect_delays(self.rng, self.backoff_initial, self.backoff_max)
            peer.connected, peer.writer = True, writer
            peer.connects += 1
            try:
                writer.write(encode_frame([HELLO_TAG, PROTOCOL_VERSION, self.node_id,
                                           hello_proof(self.secret, self.node_id)]))
                while True:
                    frame = await peer.queue.get()
                    writer.write(frame)
                    await writer.drain()
                    peer.sent += 1
            except (OSError, ConnectionError) as e:
                log.info("raft link %d -> %d lost: %s", self.node_id, peer.node_id, e)
            finally:
                peer.connected, peer.writer = False, None
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, ConnectionError, asyncio.CancelledError):
                    pass

    # ----------------------------------------------------------------- incoming

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._inbound.add(task)
        remote = writer.get_extra_info("peername")
        try:
            hello = await asyncio.wait_for(_read_frame(reader, self.max_frame), HELLO_TIMEOUT)
            if (not isinstance(hello, list) or len(hello) != 4 or hello[0] != HELLO_TAG
                    or hello[1] != PROTOCOL_VERSION or type(hello[2]) is not int or hello[2] <= 0
                    or not isinstance(hello[3], bytes)):
                raise FrameError(f"bad hello frame {hello!r:.80}")
            sender = hello[2]
            if self.secret is not None and not hmac.compare_digest(
                    hello[3], hello_proof(self.secret, sender)):
                raise FrameError(f"hello from node {sender} without the right cluster secret")
            while True:
                obj = await _read_frame(reader, self.max_frame)
                self.received += 1
                try:
                    self.on_message(sender, obj)
                except Exception:
                    log.exception("raft transport: on_message failed for a message from node %d", sender)
        except asyncio.IncompleteReadError:
            pass                        # the peer closed the connection
        except (FrameError, asyncio.TimeoutError) as e:
            self.rejected_connections += 1
            log.warning("raft transport: closing connection from %s: %s", remote, e)
        except (OSError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # close() cancels us; asyncio's stream callback would log a cancelled handler
            # task as an error, so end normally.
            pass
        finally:
            self._inbound.discard(task)
            writer.close()

    # ----------------------------------------------------------------- lifecycle

    def stats(self) -> dict:
        return {
            "received": self.received,
            "rejected_connections": self.rejected_connections,
            "peers": {pid: {"address": f"{p.address[0]}:{p.address[1]}", "connected": p.connected,
                            "queued": p.queue.qsize(), "sent": p.sent, "dropped": p.dropped,
                            "connects": p.connects}
                      for pid, p in self.peers.items()},
        }

    async def close(self) -> None:
        self._closed = True
        for pid in list(self.peers):
            peer = self.peers[pid]
            self.remove_peer(pid)
            if peer.task is not None:
                try:
                    await peer.task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._server is not None:
            self._server.close()
        for t in list(self._inbound):
            t.cancel()
        if self._inbound:
            await asyncio.gather(*self._inbound, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
