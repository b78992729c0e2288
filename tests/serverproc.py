"""Start a real ``chronosdb serve`` subprocess for tests: free loopback port, temp data dir.

Only processes started here are ever signalled, by their own PID.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: str, auth: bool = True, udp: list[str] | None = None,
                 extra: list[str] | None = None, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.auth = auth
        self.args = [sys.executable, "-m", "chronosdb.cli.main", "serve", "--data-dir", data_dir,
                     "--http", f"127.0.0.1:{self.port}"]
        if not auth:
            self.args.append("--no-auth")
        for u in udp or []:
            self.args += ["--udp", u]
        self.args += extra or []
        self.proc: subprocess.Popen | None = None
        self.admin_key: str | None = None
        self.stdout_path = os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".",
                                        f"server-{self.port}.out")

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   CHRONOSDB_LOG_LEVEL="WARNING")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                status, _h, _b = self.request("GET", "/ping", key=None)
                if status == 204:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.kill()
            raise RuntimeError("server did not answer /ping in time")
        key_path = os.path.join(self.data_dir, "admin.key")
        if os.path.exists(key_path):
            with open(key_path) as f:
                self.admin_key = f.read().strip()
        return self

    def output(self) -> str:
        with open(self.stdout_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                key: str | None = "admin", form: str = "token", timeout: float = 30.0):
        """One request on a fresh connection. ``key="admin"`` uses the admin key; ``form`` is
        token | bearer | basic | param."""
        h = dict(headers or {})
        if key == "admin":
            key = self.admin_key
        if key is not None:
            if form == "token":
                h["Authorization"] = f"Token {key}"
            elif form == "bearer":
                h["Authorization"] = f"Bearer {key}"
            elif form == "basic":
                h["Authorization"] = "Basic " + base64.b64encode(f"user:{key}".encode()).decode()
            elif form == "param":
                path += ("&" if "?" in path else "?") + "u=user&p=" + key
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, **kw):
        status, h, b = self.request(method, path, body, **kw)
        return status, (json.loads(b) if b else None)

    def query(self, q: str, db: str | None = None, **kw):
        from urllib.parse import urlencode

        params = {"q": q}
        if db:
            params["db"] = db
        return self.json("POST", "/query?" + urlencode(params), **kw)

    def write(self, body: bytes, db: str = "db", params: str = "", **kw):
        return self.request("POST", f"/write?db={db}{params}", body, **kw)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, our own child
            self.proc.wait()
        if getattr(self, "_out", None):
            self._out.close()
