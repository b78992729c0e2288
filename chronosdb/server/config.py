"""Server settings: command-line flags, an optional TOML file, defaults.

The TOML file holds the same settings as the flags (flags win)::

    data-dir = "/var/lib/chronosdb"
    http = "127.0.0.1:8086"
    udp = ["127.0.0.1:8089=telegraf"]
    auth = true
    wal-fsync = "always"
    max-body-bytes = 26214400
"""
from __future__ import annotations

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
    udp_batch_lines: int = 5000
    udp_flush_interval: float = 0.1
    udp_max_pending_bytes: int = 32 << 20

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
            cfg._apply(flags, source="command line")
        return cfg

    def _apply(self, doc: dict, source: str) -> None:
        known = {"data-dir", "http", "udp", "auth", "wal-fsync", "max-body-bytes", "workers",
                 "header-timeout", "body-timeout", "keepalive-timeout", "query-timeout"}
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
        if "wal-fsync" in doc:
            if doc["wal-fsync"] not in FSYNC_MODES:
                raise ConfigError(f"{source}: wal-fsync must be one of {', '.join(FSYNC_MODES)}")
            self.wal_fsync = doc["wal-fsync"]
        for key, attr in (("max-body-bytes", "max_body_bytes"), ("workers", "workers")):
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
