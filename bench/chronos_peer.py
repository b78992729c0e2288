"""ChronosDB as a bench peer: ``chronosdb serve`` started like the others (loopback, temp dir)."""
from __future__ import annotations

import os
import sys
import urllib.parse

from bench.peers import Peer, PeerError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ChronosDB(Peer):
    name = "chronosdb"
    binary = sys.executable

    def __init__(self, root=None, keep=False, wal_fsync: str = "always"):
        super().__init__(root, keep)
        self.wal_fsync = wal_fsync

    def _command(self) -> list[str]:
        os.environ["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
        return [sys.executable, "-m", "chronosdb.cli.main", "serve", "--no-auth",
                "--data-dir", str(self.data_dir), "--http", f"127.0.0.1:{self.http_port}",
                "--wal-fsync", self.wal_fsync]

    def _after_start(self) -> None:
        status, resp = self.request("POST", "/query?q=CREATE+DATABASE+bench")
        if status != 200:
            raise PeerError(f"chronosdb CREATE DATABASE answered {status}: {resp[:300]!r}")

    def write_path(self, db: str = "bench") -> str:
        return "/write?" + urllib.parse.urlencode({"db": db})

    def flush_and_compact(self, timeout: float = 120.0) -> None:
        """Snapshot the caches and fully compact (POST /api/compact), as the peers are settled
        with their own forced merges before they are measured."""
        status, resp = self.request("POST", "/api/compact", timeout=timeout)
        if status != 204:
            raise PeerError(f"chronosdb /api/compact answered {status}: {resp[:300]!r}")
