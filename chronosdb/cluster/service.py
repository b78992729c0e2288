"""The server-side glue of the meta cluster: one ``chronosdb serve`` process as a Raft member.

What lives here, and why together:

* ``MetaWriter`` — the one seam every metadata *write* goes through (DDL statements in
  ``chronosdb.query.meta``, ``/api/keys`` in ``chronosdb.server.handlers.keys``).
  ``LocalMetaWriter`` is the single-node *direct path*: today's calls on the catalog and key
  store, unchanged, no Raft. ``RaftMetaWriter`` turns each write into a meta command proposed
  through Raft. The server's composition root picks one; callers never know which.
* ``ClusterService`` — builds transport, Raft storage and ``RaftNode`` from the config, and runs
  three small background jobs:

  - the *mirror*: every member copies the committed ``MetaState`` into its local catalog and
    key store (``mirror_meta``), so the query engine, the authorizer and every other reader keep
    reading local structures unchanged. The mirror is a diff of the whole state against the
    local copies, not a replay of commands, so it is idempotent by construction: a restart that
    replays the log, or a snapshot that replaces the state, converges to the same result. It
    waits until a restarted node has re-applied the commit index it had on disk, so it never
    mirrors a half-replayed past (which could drop a database that was re-created later);
  - *self-registration*: once a leader is known, a member whose ``AddMember`` record is missing
    or out of date (new HTTP port after a restart) proposes its own ``AddMember(id, rpc, http)``;
    the leader registers itself first, which gives followers the leader's HTTP address;
  - *joining* (``--join``): ask an existing member, over its HTTP API, to add this node as a
    learner and promote it to voter once caught up; repeated until this node is a voter, so a
    leader change half-way only delays it.

* The two internal HTTP calls (handlers in ``chronosdb.server.handlers.cluster``):
  ``POST /api/cluster/propose`` (a follower forwards an encoded command to the leader) and
  ``POST /api/cluster/join``. Both need the shared cluster secret in the
  ``X-ChronosDB-Cluster-Secret`` header: they act with cluster-wide authority, after the
  forwarding member has already authorized its client.

Proposals made by a follower are forwarded to the leader (not redirected to the client), so
any member accepts meta writes. A forwarded write returns once the leader has applied it *and*
this member has applied up to the leader's applied index and mirrored it, so a client sees its
own write on the member it used. Only a ``NotLeader`` answer or a refused connection is retried
(the command cannot have been appended); a timeout is ``ProposalTimeout`` — outcome unknown.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import random
import secrets
import socket
import time
import urllib.error
import urllib.request
from typing import Protocol

from chronosdb.auth.keys import KeyInfo, digest_of, new_key
from chronosdb.cluster import meta
from chronosdb.cluster.meta import MetaConflict, MetaError, MetaNotFound, MetaState
from chronosdb.cluster.node import NodeStopped, ProposalTimeout, RaftNode
from chronosdb.cluster.raft.storage import RaftStorage
from chronosdb.cluster.raft.types import ConfChange, ConfChangeKind, ConfState, NotLeader
from chronosdb.cluster.transport import Transport
from chronosdb.model.errors import BadRequest, ChronosError
from chronosdb.storage import filenames

__all__ = ["ENGINE_SUBDIR", "MetaWriter", "LocalMetaWriter", "RaftMetaWriter", "ClusterService", "ClusterStartError", "mirror_meta",
           "SECRET_HEADER", "RAFT_DIR"]

log = logging.getLogger("chronosdb.cluster")

SECRET_HEADER = "x-chronosdb-cluster-secret"
# A member's data directory: <data-dir>/meta-raft (the Raft log and snapshots) beside
# <data-dir>/data (the engine: catalog, databases). They cannot share one directory because the
# engine removes, when it opens, every directory that its catalog does not name.
RAFT_DIR = "meta-raft"
ENGINE_SUBDIR = "data"
# A learner is promoted once it is this many entries or fewer behind the leader: close enough
# that the promotion's own entry finds it ready to vote, as etcd's learner-promotion check.
PROMOTE_MAX_LAG = 16
MIRROR_INTERVAL = 0.05            # seconds between checks for newly applied meta commands
REGISTER_INTERVAL = 0.3           # seconds between self-registration / join attempts
FORWARD_TIMEOUT = 10.0            # seconds a forwarded proposal may take end to end


class ClusterUnavailable(ChronosError):
    status = 503


class ClusterStartError(RuntimeError):
    """This data directory cannot become a cluster member as it is (the message says why)."""


class _ForwardedError(MetaError):
    """A MetaError answered by the leader, carrying the leader's HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------- the seam

class MetaWriter(Protocol):
    """Every metadata write. Methods block (they run in worker threads)."""

    def create_database(self, name: str) -> None: ...
    def drop_database(self, name: str) -> None: ...
    def create_retention_policy(self, db: str, name: str, duration: int, shard_duration: int,
                                replication: int, default: bool) -> None: ...
    def alter_retention_policy(self, db: str, name: str, duration: int | None,
                               shard_duration: int | None, replication: int | None,
                               default: bool) -> None: ...
    def drop_retention_policy(self, db: str, name: str) -> None: ...
    def create_key(self, database: str | None, scope: str, description: str) -> tuple[KeyInfo, str]: ...
    def revoke_key(self, key_id: str) -> bool: ...


class LocalMetaWriter:
    """Single node: the direct path, exactly the calls the server made before the cluster."""

    def __init__(self, engine, keys):
        self.engine, self.keys = engine, keys

    def create_database(self, name):
        self.engine.create_database(name)

    def drop_database(self, name):
        if name in self.engine.catalog.databases:  # dropping a missing database is not an error
            self.engine.drop_database(name)

    def create_retention_policy(self, db, name, duration, shard_duration, replication, default):
        self.engine.catalog.create_retention_policy(db, name, duration, shard_duration, replication,
                                                    default=default)

    def alter_retention_policy(self, db, name, duration, shard_duration, replication, default):
        self.engine.catalog.alter_retention_policy(db, name, duration, shard_duration, replication, default)

    def drop_retention_policy(self, db, name):
        self.engine.catalog.database(db)
        if name in self.engine.catalog.database(db).policies:
            self.engine.drop_retention_policy(db, name)

    def create_key(self, database, scope, description):
        return self.keys.create(database, scope, description)

    def revoke_key(self, key_id):
        return self.keys.revoke(key_id)


class RaftMetaWriter:
    """Cluster: each write is a meta command proposed through Raft (from a worker thread,
    bridged onto the event loop that runs the RaftNode). InfluxQL's forgiving cases keep
    their meaning: creating an existing database or dropping a missing one is not an error."""

    def __init__(self, service: "ClusterService", loop: asyncio.AbstractEventLoop):
        self.service, self.loop = service, loop

    def _propose(self, cmd):
        fut = asyncio.run_coroutine_threadsafe(self.service.submit(cmd), self.loop)
        try:
            return fut.result(FORWARD_TIMEOUT + 5)
        except TimeoutError:
            fut.cancel()
            raise ProposalTimeout(f"{type(cmd).__name__}: no answer in time; outcome unknown") from None

    def create_database(self, name):
        try:
            self._propose(meta.CreateDatabase(name))
        except MetaConflict:
            pass

    def drop_database(self, name):
        try:
            self._propose(meta.DropDatabase(name))
        except MetaNotFound:
            pass

    def create_retention_policy(self, db, name, duration, shard_duration, replication, default):
        try:
            self._propose(meta.CreateRetentionPolicy(db, name, duration, shard_duration, replication, default))
        except MetaConflict:
            # InfluxDB: re-creating a policy with the same settings is fine (and may make it default).
            p = self.service.node.state.policy(db, name)
            sd = shard_duration or meta.default_shard_duration(duration)
            if (p.duration, p.shard_duration, p.replication) != (duration, sd, replication):
                raise
            if default:
                self._propose(meta.AlterRetentionPolicy(db, name, None, None, None, True))

    def alter_retention_policy(self, db, name, duration, shard_duration, replication, default):
        self._propose(meta.AlterRetentionPolicy(db, name, duration, shard_duration, replication, default))

    def drop_retention_policy(self, db, name):
        try:
            self._propose(meta.DropRetentionPolicy(db, name))
        except MetaNotFound:
            self.service.node.state.database(db)    # a missing database is still an error

    def create_key(self, database, scope, description):
        # The proposer decides id, secret and time; only the hash enters the log.
        key = new_key()
        key_id = secrets.token_hex(6)
        created = time.time_ns()
        self._propose(meta.CreateKey(key_id, digest_of(key), database, scope, created, description))
        return KeyInfo(key_id, database, scope, created, description), key

    def revoke_key(self, key_id):
        try:
            self._propose(meta.RevokeKey(key_id))
            return True
        except MetaNotFound:
            # This node's own first-start admin key lives only here, not in the meta store.
            return self.service.keys.revoke(key_id)


# ---------------------------------------------------------------------------- the mirror

def mirror_meta(plain: dict, engine, keys, keep_key_ids: set[str]) -> bool:
    """Make the local catalog and key store equal to ``plain`` (``MetaState.to_plain()``).

    Idempotent: running it twice, or on a state the locals already match, changes nothing.
    Keys in ``keep_key_ids`` (this node's own first-start admin key) are local-only and kept.
    Returns True when keys were removed (open streams must re-check their authorization).
    """
    catalog = engine.catalog
    want_dbs = {d["name"]: d for d in plain["databases"]}
    for name in list(catalog.databases):
        if name not in want_dbs:
            engine.drop_database(name)
    for name, d in want_dbs.items():
        if name not in catalog.databases:
            engine.create_database(name)
        info = catalog.database(name)
        want_rps = {p["name"]: p for p in d["policies"]}
        for rp in list(info.policies):
            if rp not in want_rps:
                engine.drop_retention_policy(name, rp)
        for rp, p in want_rps.items():
            have = info.policies.get(rp)
            target = (p["duration"], p["shard_duration"], p["replication"])
            if have is None:
                catalog.create_retention_policy(name, rp, *target)
            elif (have.duration, have.shard_duration, have.replication) != target:
                catalog.alter_retention_policy(name, rp, *target)
        if info.default_rp != d["default_rp"]:
            catalog.set_default_retention_policy(name, d["default_rp"])
    want_keys = {k[0]: k for k in plain["keys"]}
    removed = False
    for info in keys.list():
        if info.key_id not in want_keys and info.key_id not in keep_key_ids:
            removed = keys.revoke(info.key_id) or removed
    for key_id, digest, database, scope, created_ns, description in want_keys.values():
        keys.insert_hashed(key_id, bytes(digest), database, scope, created_ns, description)
    return removed


# ---------------------------------------------------------------------------- the service

def _advertised(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()     # a wildcard bind is not an address others can dial
    return f"{host}:{port}"


def _post_json(url: str, doc: dict, secret: str, timeout: float) -> tuple[int, dict]:
    """One internal HTTP call (stdlib, run in a worker thread). (status, JSON body)."""
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json", SECRET_HEADER: secret})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body or b"{}")
        except ValueError:
            return e.code, {"error": body.decode(errors="replace")}


def _error_from(status: int, message: str) -> Exception:
    if status == 503:
        return ProposalTimeout(message)
    if 400 <= status < 500:
        return _ForwardedError(message, status)
    return ClusterUnavailable(message)


class ClusterService:
    """This process's membership in the meta cluster (see the module docstring)."""

    def __init__(self, server):
        self.server = server
        self.config = server.config
        self.engine, self.keys = server.engine, server.keys
        self.node: RaftNode | None = None
        self.transport: Transport | None = None
        self.rpc_address = ""
        self.http_address = ""
        self._tasks: list[asyncio.Task] = []
        self._mirror_lock = asyncio.Lock()
        self._mirrored: tuple[int, int] | None = None
        self._replayed_to = 0
        self._keep_key_ids: set[str] = set()
        self.joined = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cfg = self.config
        rng = random.Random()
        self.transport = Transport(cfg.node_id, cfg.rpc, lambda *_: None, rng=rng,
                                   secret=cfg.cluster_secret.encode() if cfg.cluster_secret else None)
        await self.transport.start()
        # Ports as bound (a configured port 0 means "any free one"), hosts as configured.
        self.rpc_address = _advertised(cfg.rpc[0], self.transport.address[1])
        self.http_address = _advertised(cfg.http_host, self.server.http_address[1])
        raft_dir = os.path.join(cfg.data_dir, RAFT_DIR)
        if not os.path.isdir(raft_dir) and os.path.exists(os.path.join(cfg.data_dir, filenames.CATALOG)):
            # A single node's catalog: the member would ignore its databases (its engine lives
            # in data/) and the mirror would never know them. Converting is not supported.
            await self.transport.close()
            self.transport = None
            raise ClusterStartError(
                f"data directory {cfg.data_dir} holds a single-node server's databases; "
                f"a new cluster member needs a fresh data directory")
        storage = RaftStorage(raft_dir)
        founders = tuple(sorted(cfg.peers)) if cfg.peers else (() if cfg.join else (cfg.node_id,))
        for nid, addr in cfg.peers.items():
            if nid != cfg.node_id:
                self.transport.add_peer(nid, addr)
        self.node = RaftNode(cfg.node_id, storage, self.transport, MetaState(),
                             conf=ConfState(voters=founders), rng=rng,
                             snapshot_every=cfg.raft_snapshot_every)
        await self.node.start()
        self._replayed_to = self.node.raw.commit_index
        own = self.server.keys.verify(self._own_admin_key() or "")
        if own is not None:
            self._keep_key_ids.add(own.key_id)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._mirror_loop(), name="meta-mirror"),
                       loop.create_task(self._register_loop(), name="meta-register")]
        log.info("cluster: node %d, rpc %s, http %s, %s", cfg.node_id, self.rpc_address, self.http_address,
                 f"joining via {cfg.join}" if cfg.join else f"founders {founders}")

    def _own_admin_key(self) -> str | None:
        try:
            with open(self.server.admin_key_path) as f:
                return f.read().strip()
        except OSError:
            return None

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self.node is not None:
            await self.node.stop()
        if self.transport is not None:
            await self.transport.close()

    def status(self) -> dict:
        """node.status() and transport.stats(), with node ids as string keys (JSON objects)."""
        node = self.node.status()
        if "followers" in node:
            node["followers"] = {str(k): v for k, v in node["followers"].items()}
        transport = self.transport.stats()
        transport["peers"] = {str(k): v for k, v in transport["peers"].items()}
        return {"node": node, "transport": transport, "rpc": self.rpc_address, "http": self.http_address}

    # ------------------------------------------------------------------ proposals

    def _leader_http(self) -> str | None:
        m = self.node.state.members.get(self.node.leader_id)
        return m.http_address if m is not None else None

    async def submit(self, cmd):
        """Propose ``cmd`` here if leader, else forward it to the leader; return once it is
        applied and mirrored on this member. Raises the command's MetaError, ProposalTimeout
        (outcome unknown) or ClusterUnavailable (no leader reachable: nothing was appended)."""
        deadline = time.monotonic() + FORWARD_TIMEOUT
        body = {"command": base64.b64encode(meta.encode_command(cmd)).decode()}
        while True:
            if self.node.is_leader:
                try:
                    result = await self.node.propose(cmd)
                    await self.mirror_now()
                    return result
                except NotLeader:
                    pass
            else:
                url = self._leader_http()
                if url is not None:
                    try:
                        status, doc = await asyncio.to_thread(
                            _post_json, f"http://{url}/api/cluster/propose", body, self.config.cluster_secret,
                            max(0.5, deadline - time.monotonic()))
                    except (ConnectionError, urllib.error.URLError) as e:
                        if isinstance(getattr(e, "reason", e), TimeoutError):
                            raise ProposalTimeout(f"forwarded {type(cmd).__name__}: no answer from the "
                                                  f"leader at {url}; outcome unknown") from None
                        status, doc = 0, {}                 # not reached: safe to retry
                    except TimeoutError:
                        raise ProposalTimeout(f"forwarded {type(cmd).__name__}: no answer from the "
                                              f"leader at {url}; outcome unknown") from None
                    if status == 200:
                        await self._wait_applied(int(doc.get("index", 0)), deadline)
                        await self.mirror_now()
                        return None
                    if status not in (0, 421):
                        raise _error_from(status, doc.get("error", f"leader answered {status}"))
            if time.monotonic() >= deadline:
                raise ClusterUnavailable(f"{type(cmd).__name__}: no reachable leader within "
                                         f"{FORWARD_TIMEOUT:.0f}s (nothing was proposed)")
            await asyncio.sleep(0.05)

    async def _wait_applied(self, index: int, deadline: float) -> None:
        while self.node.raw.applied_index < index:
            if time.monotonic() >= deadline:
                raise ProposalTimeout(f"the leader applied the command at index {index} but this node "
                                      f"has not caught up in time")
            await asyncio.sleep(0.01)

    async def handle_propose(self, body: bytes) -> tuple[int, dict]:
        """Leader side of a forwarded proposal: (HTTP status, JSON body)."""
        try:
            doc = json.loads(body or b"{}")
            cmd = meta.decode_command(base64.b64decode(doc["command"], validate=True))
        except (ValueError, KeyError, TypeError) as e:
            raise BadRequest(f"forwarded proposal is malformed: {e}") from None
        try:
            await self.node.propose(cmd)
        except NotLeader as e:
            return 421, {"error": str(e), "leader": self.node.leader_id}
        except (MetaError, ProposalTimeout, NodeStopped) as e:
            return e.status, {"error": e.message}
        await self.mirror_now()
        return 200, {"index": self.node.raw.applied_index}

    # ------------------------------------------------------------------ joining

    async def handle_join(self, body: bytes) -> tuple[int, dict]:
        """Leader side of ``--join``: add the node (AddMember, then learner), promote it to
        voter once its lag is small. Called again by the joiner until it is a voter."""
        try:
            doc = json.loads(body or b"{}")
            nid, rpc, http = int(doc["id"]), str(doc["rpc"]), str(doc["http"])
        except (ValueError, KeyError, TypeError) as e:
            raise BadRequest(f'join request needs {{"id", "rpc", "http"}}: {e}') from None
        node = self.node
        if not node.is_leader:
            return 421, {"error": f"not the leader (leader is {node.leader_id or 'unknown'})",
                         "leader_http": self._leader_http()}
        try:
            m = node.state.members.get(nid)
            if m is None or (m.rpc_address, m.http_address) != (rpc, http):
                await node.propose(meta.AddMember(nid, rpc, http))
            # The joiner's transport only dials out: it needs every member's rpc address to
            # answer the leader before it has applied (or received) anything.
            members = [[m.node_id, m.rpc_address] for m in node.state.member_list()]
            cs = node.raw.conf_state
            if nid in cs.voters:
                return 200, {"voter": True, "members": members}
            if nid not in cs.learners:
                await node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, nid))
            follower = node.status().get("followers", {}).get(nid)
            if follower is not None and follower["match"] > 0 and follower["lag"] <= PROMOTE_MAX_LAG:
                await node.propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, nid))
                return 200, {"voter": True, "members": members}
            return 202, {"voter": False, "lag": None if follower is None else follower["lag"],
                         "members": members}
        except NotLeader as e:
            return 421, {"error": str(e), "leader_http": self._leader_http()}
        except (MetaError, ProposalTimeout, NodeStopped) as e:
            return e.status, {"error": e.message}

    async def _join_once(self, target: str) -> bool:
        """One round of asking ``target`` (HTTP host:port) to add us; True once a voter."""
        doc = {"id": self.config.node_id, "rpc": self.rpc_address, "http": self.http_address}
        for _hop in range(3):                      # follow at most a few leader redirects
            try:
                status, ans = await asyncio.to_thread(_post_json, f"http://{target}/api/cluster/join", doc,
                                                      self.config.cluster_secret, 5.0)
            except (OSError, urllib.error.URLError) as e:
                log.info("cluster: join via %s failed: %s", target, e)
                return False
            if status == 421 and ans.get("leader_http"):
                target = ans["leader_http"]
                continue
            if status in (200, 202):
                for nid, rpc in ans.get("members", []):
                    if nid != self.config.node_id and nid not in self.transport.peers:
                        host, _, port = rpc.rpartition(":")
                        self.transport.add_peer(int(nid), (host.strip("[]"), int(port)))
                return bool(ans.get("voter"))
            if status in (400, 401, 403, 409):
                log.error("cluster: join refused by %s (%d): %s", target, status, ans.get("error"))
            return False
        return False

    # ------------------------------------------------------------------ background jobs

    async def _register_loop(self) -> None:
        cfg, node = self.config, self.node
        while True:
            try:
                if cfg.join and not self.joined:
                    # Storage that already holds a membership with us as voter: joined before.
                    if cfg.node_id in node.raw.conf_state.voters:
                        self.joined = True
                    else:
                        # Once this node hears from a leader, ask it directly.
                        self.joined = await self._join_once(self._leader_http() or cfg.join)
                elif node.leader_id:
                    m = node.state.members.get(cfg.node_id)
                    if m is None or (m.rpc_address, m.http_address) != (self.rpc_address, self.http_address):
                        await self.submit(meta.AddMember(cfg.node_id, self.rpc_address, self.http_address))
            except asyncio.CancelledError:
                raise
            except Exception as e:          # keep trying: the cluster may be electing
                log.info("cluster: registration of node %d not done yet: %s", cfg.node_id, e)
            await asyncio.sleep(REGISTER_INTERVAL)

    async def _mirror_loop(self) -> None:
        while True:
            try:
                await self.mirror_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster: mirroring the meta state into the local catalog failed")
            await asyncio.sleep(MIRROR_INTERVAL)

    async def mirror_now(self) -> None:
        """Copy the applied meta state into the local catalog and key store if it changed."""
        async with self._mirror_lock:
            node = self.node
            if node.raw is None or node.raw.applied_index < self._replayed_to:
                return                      # still replaying the log after a restart
            state = node.state
            mark = (id(state), state.version)
            if mark == self._mirrored:
                return
            plain = state.to_plain()        # taken on the loop: a consistent point of the log
            removed = await self.server.run_blocking(mirror_meta, plain, self.engine, self.keys,
                                                     self._keep_key_ids)
            self._mirrored = mark
            if removed:
                self.server.on_keys_changed()


def check_secret(headers: dict, secret: str | None) -> bool:
    given = headers.get(SECRET_HEADER, "")
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())
