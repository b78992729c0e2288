"""The server's composition root: builds the engine, keys, metrics, HTTP and UDP, and runs them.

``Server`` owns the asyncio side. Blocking work (line-protocol parsing, engine writes, queries)
goes to a thread pool through ``run_blocking``; the Cython kernels release the GIL, so the event
loop keeps serving other connections meanwhile.

Shutdown (SIGTERM/SIGINT): stop accepting, answer the requests already received, flush (close
the engine: WAL closed, background work stopped), exit 0.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from chronosdb.auth import ADMIN_KEY_FILE, KEYS_FILE, Authorizer, KeyStore
from chronosdb.cluster.service import ENGINE_SUBDIR, ClusterService, ClusterStartError, LocalMetaWriter, RaftMetaWriter
from chronosdb.cq import ContinuousQueryService
from chronosdb.model.errors import ChronosError
from chronosdb.query.executor import Limits
from chronosdb.query.manager import QueryManager
from chronosdb.query.statements import attach_services
from chronosdb.server.config import ServerConfig
from chronosdb.server.handlers.admin import handle_compact
from chronosdb.server.handlers.cluster import handle_cluster
from chronosdb.server.handlers.console import handle_console, handle_docs
from chronosdb.server.handlers.keys import handle_keys
from chronosdb.server.handlers.openapi import handle_openapi
from chronosdb.server.handlers.query import handle_query
from chronosdb.server.handlers.status import handle_health, handle_metrics, handle_ping
from chronosdb.server.handlers.stream import close_unauthorized_streams, end_streams, handle_stream, handle_ws_stream
from chronosdb.pubsub import Bus
from chronosdb.server.handlers.write import handle_write
from chronosdb.server.http.messages import HttpError, Response
from chronosdb.server.http.protocol import HttpProtocol, StreamLoop
from chronosdb.server.metrics import Metrics
from chronosdb.server.udp import UdpListener
from chronosdb.storage.engine import Engine, EngineOptions
from chronosdb.storage.shard import ShardOptions
from chronosdb.subscriptions import SubscriptionService

log = logging.getLogger("chronosdb.server")


ROUTES = {
    "/write": handle_write,
    "/query": handle_query,
    "/ping": handle_ping,
    "/health": handle_health,
    "/metrics": handle_metrics,
    "/api/compact": handle_compact,
    "/api/openapi.json": handle_openapi,
    "/": handle_console,
    "/docs": handle_docs,
    "/stream": handle_stream,
    "/ws/stream": handle_ws_stream,
}

# Longest prefix first: a path under one of these goes to its handler.
PREFIX_ROUTES = (
    ("/api/keys/", handle_keys),
    ("/api/cluster/", handle_cluster),
    ("/console/", handle_console),
    ("/docs/", handle_docs),
)


class Server:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.stopping = False
        self.connections: set[HttpProtocol] = set()
        self.inflight = 0
        self.metrics = Metrics()
        os.makedirs(config.data_dir, exist_ok=True)
        # A cluster member keeps its Raft log beside the engine's directory, not inside it: the
        # engine removes every directory its catalog does not name (docs/cluster.md).
        engine_dir = os.path.join(config.data_dir, ENGINE_SUBDIR) if config.cluster else config.data_dir
        self.engine = Engine(engine_dir, EngineOptions(shard=ShardOptions(wal_fsync=config.wal_fsync)))
        self.metrics.engine = self.engine
        # Every stored write is published on the bus (streaming queries subscribe to it).
        self.bus = Bus(self.metrics)
        self.engine.add_write_listener(self.bus.publish)
        self.streams: set = set()  # open StreamSessions (handlers/stream.py)
        self.stream_loop = None  # serves open streams: a StreamLoop thread or a StreamProcess (start())
        self.keys = KeyStore(os.path.join(config.data_dir, KEYS_FILE))
        self.admin_key_path = os.path.join(config.data_dir, ADMIN_KEY_FILE)
        self.new_admin_key = self.keys.ensure_admin_key(self.admin_key_path)
        self.authorizer = Authorizer(self.keys, enabled=config.auth)
        self.pool = ThreadPoolExecutor(config.workers, thread_name_prefix="chronosdb-worker")
        self.query_limits = Limits()
        self.queries = QueryManager(config.query_timeout)
        # Continuous queries and subscriptions; CQ/subscription statements reach them through
        # the engine (query.statements.attach_services).
        self.continuous_queries = ContinuousQueryService(self.engine, config.data_dir, metrics=self.metrics,
                                                         limits=self.query_limits)
        self.subscriptions = SubscriptionService(self.engine, config.data_dir, metrics=self.metrics)
        attach_services(self.engine, self.continuous_queries, self.subscriptions)
        # Metadata writes (DDL, keys) go through one seam: directly on a single node, through
        # the Raft meta cluster with --node-id (chronosdb.cluster.service; docs/cluster.md).
        self.cluster = None
        self.meta_writer = LocalMetaWriter(self.engine, self.keys)
        if config.cluster:
            self.cluster = ClusterService(self)
        self.engine.meta_writer = self.meta_writer
        self._http_server = None
        self._udp_transports = []
        self._stop_event: asyncio.Event | None = None
        self.http_address: tuple[str, int] | None = None

    # -- used by the handlers --------------------------------------------------------------
    def authenticate(self, req):
        return self.authorizer.authenticate(req.headers, req.params)

    async def run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def on_keys_changed(self) -> None:
        """Hook for revocations: open streams whose key no longer authorizes them close."""
        close_unauthorized_streams(self)

    async def router(self, req) -> Response:
        handler = ROUTES.get(req.path)
        if handler is None:
            if req.path == "/api/keys":
                handler = handle_keys
            else:
                for prefix, h in PREFIX_ROUTES:
                    if req.path.startswith(prefix):
                        handler = h
                        break
        if handler is None:
            return Response.error(404, f"not found: {req.path}")
        self.inflight += 1
        try:
            return await handler(self, req)
        except (ChronosError, HttpError) as e:
            resp = Response.error(e.status, e.message)
            challenge = getattr(e, "challenge", None)
            if e.status == 401 and challenge:
                resp.headers.append(("WWW-Authenticate", challenge))
            return resp
        finally:
            self.inflight -= 1

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        if cfg.stream_process:
            from chronosdb.server.streamproc import StreamProcess
            self.stream_loop = StreamProcess(self, loop)
            self.engine.add_write_listener(self.stream_loop.publish)
        else:
            self.stream_loop = StreamLoop()
        self._http_server = await loop.create_server(lambda: HttpProtocol(self), cfg.http_host,
                                                     cfg.http_port, reuse_address=True, backlog=1024)
        sock = self._http_server.sockets[0].getsockname()
        self.http_address = (sock[0], sock[1])
        log.info("http listening on %s:%d (auth %s, wal-fsync %s, data dir %s)", sock[0], sock[1],
                 "on" if cfg.auth else "off", cfg.wal_fsync, os.path.abspath(cfg.data_dir))
        if self.cluster is not None:
            await self.cluster.start()
            self.meta_writer = self.engine.meta_writer = RaftMetaWriter(self.cluster, loop)
        for host, port, db in cfg.udp:
            if self.cluster is None:    # in a cluster the database comes from the meta store
                self.engine.create_database(db)
            transport, _proto = await loop.create_datagram_endpoint(
                lambda db=db: UdpListener(self, db), local_addr=(host, port))
            self._udp_transports.append(transport)
            log.info("udp listening on %s:%d into database %s", host, port, db)
        self.subscriptions.start()
        self.continuous_queries.start(self.run_blocking)

    async def serve_until_stopped(self) -> None:
        self._stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_event.set)
        await self._stop_event.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    async def shutdown(self, grace: float = 30.0) -> None:
        log.info("shutting down: no new connections, finishing %d in-flight request(s)", self.inflight)
        self.stopping = True
        end_streams(self, "server shutting down")
        if self._http_server is not None:
            self._http_server.close()
        for t in self._udp_transports:
            t.close()
        for u in list(UdpListener.instances):
            await u.flush_now()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.inflight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for c in list(self.connections):
            if c.transport is not None and c.queue.empty():
                c.transport.close()
        if self.stream_loop is not None:
            await self.stream_loop.stop()
        await self.continuous_queries.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await loop.run_in_executor(None, self.pool.shutdown, True)
        await loop.run_in_executor(None, self.subscriptions.stop)
        await loop.run_in_executor(None, self.engine.close)
        log.info("stopped")


def run(config: ServerConfig) -> int:
    """Run the server in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the pure asyncio loop works too, slower
        pass

    async def main():
        server = Server(config)
        if server.new_admin_key:
            # Shown once, on first start; the file keeps it for the CLI (mode 0600).
            print(f"ChronosDB admin key (shown once; also stored in {server.admin_key_path}):\n"
                  f"  {server.new_admin_key}", flush=True)
        try:
            await server.start()
        except ClusterStartError as e:
            print(f"chronosdb serve: {e}", file=sys.stderr, flush=True)
            await server.shutdown(grace=0)
            return 2
        await server.serve_until_stopped()
        return 0

    return asyncio.run(main())
