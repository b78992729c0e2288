"""UDP line-protocol input: datagrams into one database, batched into engine writes.

Never replies. Datagrams are appended to a pending buffer and flushed every
``udp_flush_interval`` seconds or once ``udp_batch_lines`` datagrams are pending, as one
parse + write in a worker thread. When the pending buffer exceeds ``udp_max_pending_bytes``
(the engine is behind), new datagrams are dropped and counted rather than queued without bound.
"""
from __future__ import annotations

import asyncio
import logging
import time

from chronosdb.ext import lineproto

log = logging.getLogger("chronosdb.udp")


class UdpListener(asyncio.DatagramProtocol):
    instances: set["UdpListener"] = set()

    def __init__(self, server, database: str):
        self.server = server
        self.database = database
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.flushing = False
        self._task = None

    def connection_made(self, transport):
        UdpListener.instances.add(self)
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    def connection_lost(self, exc):
        UdpListener.instances.discard(self)
        if self._task is not None:
            self._task.cancel()

    def datagram_received(self, data: bytes, addr):
        m = self.server.metrics
        m.inc("udp_datagrams_total")
        if self.pending_bytes + len(data) > self.server.config.udp_max_pending_bytes:
            m.inc("udp_datagrams_dropped_total")
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if len(self.pending) >= self.server.config.udp_batch_lines and not self.flushing:
            asyncio.get_running_loop().create_task(self.flush_now())

    async def _flush_loop(self):
        while True:
            await asyncio.sleep(self.server.config.udp_flush_interval)
            await self.flush_now()

    async def flush_now(self):
        if self.flushing or not self.pending:
            return
        self.flushing = True
        body = b"\n".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        try:
            await self.server.run_blocking(self._write, body)
        except Exception as e:  # a bad batch must not stop the listener; it is counted
            self.server.metrics.inc("write_errors_total", kind="udp")
            log.warning("udp write into %s failed: %s", self.database, e)
        finally:
            self.flushing = False

    def _write(self, body: bytes) -> None:
        res = lineproto.parse(body, "ns", time.time_ns())
        if res.errors:
            self.server.metrics.inc("udp_parse_errors_total", len(res.errors))
        if res.n_lines:
            out = self.server.engine.write(self.database, res.batch)
            self.server.metrics.inc("points_written_total", out.written)
