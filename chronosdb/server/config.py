"""Server settings: command-line flags, an optional TOML file, defaults.

The TOML file holds the same settings as the flags (flags win)::

    data-dir = "/var/lib/chronosdb"
    http = "127.0.0.1:8086"
    udp = ["127.0.0.1:8089=telegraf"]
    auth = true
    wal-fsync = "always"
    max-body-bytes = 26214400

    # meta cluster (docs/cluster.md); without node-id the server is a single node (no Raft)
    node-id = 1
    rpc = "127.0.0.1:7001"
    peers = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"   # founders (all the same)
    join = "127.0.0.1:8086"           # instead of peers: an existing member's HTTP address
    cluster-secret = "..."            # or $CHRONOSDB_CLUSTER_SECRET; required with node-id
    raft-snapshot-every = 1000

    stream-process = true             # open streams served by a second process (docs/streaming.md)
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field

DEFAULT_DATA_DIR = "./chronosdb-data"
DEFAULT_HTTP = "127.0.0.1:8086"
FSYNC_MODES = ("always", "batch", "none")


class ConfigError(ValueError):
    pass


def parse_hostport(s: str, what: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ConfigError(f"{what}: expected HOST:PORT, got {s!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def parse_peers(s: str) -> dict[int, tuple[str, int]]:
    """``1=host:port,2=host:port,...`` → {1: (host, port), ...}."""
    peers: dict[int, tuple[str, int]] = {}
    for item in (p.strip() for p in s.split(",")):
        nid, sep, addr = item.partition("=")
        if not sep or not nid.strip().isdigit() or int(nid) <= 0:
            raise ConfigError(f"peers: expected ID=HOST:PORT[,ID=HOST:PORT...], got {item!r}")
        if int(nid) in peers:
            raise ConfigError(f"peers: node id {int(nid)} is listed twice")
        peers[int(nid)] = parse_hostport(addr.strip(), f"peers (node {int(nid)})")
    return peers


def parse_udp(s: str) -> tuple[str, int, str]:
    addr, sep, db = s.partition("=")
    if not sep or not db:
        raise ConfigError(f"--udp: expected HOST:PORT=DATABASE, got {s!r}")
    host, port = parse_hostport(addr, "--udp")
    return host, port, db


@dataclass
class ServerConfig:
    data_dir: str = DEFAULT_DATA_DIR
    http_host: str = "127.0.0.1"
    http_port: int = 8086
    udp: list[tuple[str, int, str]] = field(default_factory=list)
    auth: bool = True
    wal_fsync: str = "always"
    max_body_bytes: int = 25 * 1024 * 1024     # InfluxDB 1.x's default max-body-size
    header_timeout: float = 10.0               # a request's headers must arrive within this
    body_timeout: float = 60.0                 # ... and its body within this
    keepalive_timeout: float = 75.0            # idle keep-alive connections are closed after this
    workers: int = 4                           # threads for parsing and engine work
    query_timeout: float = 0.0                 # seconds a query may run; 0 = no limit
    # Open streams are served by a second OS process (server/streamproc.py); false keeps them
    # on a thread of this one. $CHRONOSDB_STREAM_PROCESS=0 sets false too.
    stream_process: bool = field(default_factory=lambda: os.environ.get("CHRONOSDB_STREAM_PROCESS", "1") != "0")
    udp_batch_lines: int = 5000
    udp_flush_interval: float = 0.1
    udp_max_pending_bytes: int = 32 << 20
    # Meta cluster. node_id None = single node: metadata written directly, no Raft.
    node_id: int | None = None
    rpc: tuple[str, int] | None = None          # Raft listener (no authentication: bind privately)
    peers: dict[int, tuple[str, int]] = field(default_factory=dict)   # founders, self included
    join: str | None = None                     # HTTP host:port of a member, for a later node
    cluster_secret: str | None = None           # guards the internal /api/cluster/{join,propose}
    raft_snapshot_every: int = 1000             # applied entries between meta snapshots

    @property
    def cluster(self) -> bool:
        return self.node_id is not None

    @classmethod
    def from_sources(cls, args=None, toml_path: str | None = None) -> "ServerConfig":
        cfg = cls()
        if toml_path:
            try:
                with open(toml_path, "rb") as f:
                    doc = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"--config {toml_path}: {e}") from e
            cfg._apply(doc, source=toml_path)
        if args is not None:
            flags = {}
            if args.data_dir is not None:
                flags["data-dir"] = args.data_dir
            if args.http is not None:
                flags["http"] = args.http
            if args.udp:
                flags["udp"] = args.udp
            if args.no_auth:
                flags["auth"] = False
            if args.wal_fsync is not None:
                flags["wal-fsync"] = args.wal_fsync
            for name in ("node_id", "rpc", "peers", "join", "cluster_secret", "raft_snapshot_every"):
                v = getattr(args, name, None)
                if v is not None:
                    flags[name.replace("_", "-")] = v
            cfg._apply(flags, source="command line")
        if cfg.cluster_secret is None and os.environ.get("CHRONOSDB_CLUSTER_SECRET"):
            cfg.cluster_secret = os.environ["CHRONOSDB_CLUSTER_SECRET"]
        cfg._check_cluster()
        return cfg

    def _check_cluster(self) -> None:
        cluster_only = {"rpc": self.rpc, "peers": self.peers, "join": self.join}
        if self.node_id is None:
            given = [k for k, v in cluster_only.items() if v]
            if given:
                raise ConfigError(f"{', '.join(given)} need node-id (--node-id): they configure a cluster member")
            return
        if self.rpc is None:
            raise ConfigError("node-id needs rpc (--rpc HOST:PORT), the Raft listen address")
        if self.peers and self.join:
            raise ConfigError("give either peers (founding members) or join (an existing cluster), not both")
        if self.peers and self.node_id not in self.peers:
            raise ConfigError(f"peers must include this node (id {self.node_id})")
        if not self.cluster_secret:
            raise ConfigError("a cluster member needs a shared secret: --cluster-secret, cluster-secret "
                              "in the config file, or $CHRONOSDB_CLUSTER_SECRET")

    def _apply(self, doc: dict, source: str) -> None:
        known = {"data-dir", "http", "udp", "auth", "wal-fsync", "max-body-bytes", "workers",
                 "header-timeout", "body-timeout", "keepalive-timeout", "query-timeout",
                 "node-id", "rpc", "peers", "join", "cluster-secret", "raft-snapshot-every",
                 "stream-process"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s): {', '.join(sorted(unknown))}")
        if "data-dir" in doc:
            self.data_dir = str(doc["data-dir"])
        if "http" in doc:
            self.http_host, self.http_port = parse_hostport(str(doc["http"]), "http")
        if "udp" in doc:
            items = doc["udp"] if isinstance(doc["udp"], list) else [doc["udp"]]
            self.udp = [parse_udp(str(u)) for u in items]
        if "auth" in doc:
            self.auth = bool(doc["auth"])
        if "stream-process" in doc:
            if not isinstance(doc["stream-process"], bool):
                raise ConfigError(f"{source}: stream-process must be true or false")
            self.stream_process = doc["stream-process"]
        if "wal-fsync" in doc:
            if doc["wal-fsync"] not in FSYNC_MODES:
                raise ConfigError(f"{source}: wal-fsync must be one of {', '.join(FSYNC_MODES)}")
            self.wal_fsync = doc["wal-fsync"]
        if "node-id" in doc:
            v = doc["node-id"]
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{source}: node-id must be a positive integer, got {v!r}")
            self.node_id = v
        if "rpc" in doc:
            self.rpc = parse_hostport(str(doc["rpc"]), "rpc")
        if "peers" in doc:
            self.peers = parse_peers(str(doc["peers"]))
        if "join" in doc:
            parse_hostport(str(doc["join"]), "join")
            self.join = str(doc["join"])
        if "cluster-secret" in doc:
            self.cluster_secret = str(doc["cluster-secret"])
        for key, attr in (("max-body-bytes", "max_body_bytes"), ("workers", "workers"),
                          ("raft-snapshot-every", "raft_snapshot_every")):
            if key in doc:
                v = doc[key]
                if not isinstance(v, int) or v <= 0:
                    raise ConfigError(f"{source}: {key} must be a positive integer")
                setattr(self, attr, v)
        for key in ("header-timeout", "body-timeout", "keepalive-timeout", "query-timeout"):
            if key in doc:
                v = doc[key]
                if not isinstance(v, (int, float)) or v <= 0:
                    raise ConfigError(f"{source}: {key} must be a positive number of seconds")
                setattr(self, key.replace("-", "_"), float(v))
