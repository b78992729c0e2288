"""The small HTTP client behind the CLI's client commands (stdlib only, keep-alive)."""
from __future__ import annotations

import http.client
import json
import os
import sys
import time
from urllib.parse import quote, urlsplit


class CliError(Exception):
    pass


class CliClient:
    def __init__(self, host: str, key: str | None):
        u = urlsplit(host if "://" in host else "http://" + host)
        if u.scheme not in ("http", "https"):
            raise CliError(f"unsupported scheme in --host {host!r}")
        self.scheme, self.netloc = u.scheme, u.netloc
        self.key = key
        self._conn = None

    @classmethod
    def from_args(cls, host: str, key: str | None, data_dir: str) -> "CliClient":
        if not key:
            path = os.path.join(data_dir, "admin.key")
            try:
                with open(path) as f:
                    key = f.read().strip()
            except FileNotFoundError:
                key = None  # a server started with --no-auth needs none
            except OSError as e:
                raise CliError(f"cannot read {path}: {e}") from None
        return cls(host, key)

    def _connection(self):
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.netloc, timeout=300)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> bytes:
        h = dict(headers or {})
        if self.key:
            h["Authorization"] = f"Token {self.key}"
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self._conn = None
                conn.close()
                if attempt:
                    raise CliError(f"cannot reach {self.scheme}://{self.netloc}: {e}") from None
        if resp.status >= 300:
            try:
                msg = json.loads(data)["error"]
            except Exception:
                msg = data.decode(errors="replace")[:500]
            raise CliError(f"{resp.status}: {msg}")
        return data

    def request_json(self, method: str, path: str, doc=None):
        body = json.dumps(doc).encode() if doc is not None else None
        hdr = {"Content-Type": "application/json"} if body is not None else {}
        return json.loads(self.request(method, path, body, hdr) or b"null")

    def write_stream(self, src, db: str, rp: str | None, precision: str, batch_lines: int,
                     total_bytes: int = 0, progress: bool = True) -> tuple[int, int]:
        """POST line protocol from a binary stream in batches; prints a progress line."""
        path = f"/write?db={quote(db)}&precision={precision}" + (f"&rp={quote(rp)}" if rp else "")
        sent_bytes = sent_lines = 0
        t0 = time.monotonic()
        last = 0.0
        buf: list[bytes] = []

        def flush():
            nonlocal sent_bytes, sent_lines
            if not buf:
                return
            body = b"".join(buf)
            self.request("POST", path, body, {"Content-Type": "text/plain; charset=utf-8"})
            sent_bytes += len(body)
            sent_lines += len(buf)
            buf.clear()

        for line in src:
            buf.append(line if line.endswith(b"\n") else line + b"\n")
            if len(buf) >= batch_lines:
                flush()
                now = time.monotonic()
                if progress and now - last > 0.25:
                    last = now
                    _progress(sent_bytes, total_bytes, sent_lines, now - t0)
        flush()
        if progress:
            _progress(sent_bytes, total_bytes, sent_lines, time.monotonic() - t0, final=True)
        return sent_bytes, sent_lines


def _progress(done: int, total: int, lines: int, secs: float, final: bool = False) -> None:
    rate = lines / secs if secs > 0 else 0.0
    mb = done / 1e6
    if total:
        frac = min(1.0, done / total)
        bar = "#" * int(frac * 30)
        text = f"[{bar:30s}] {frac * 100:5.1f}% {mb:8.1f} MB {lines:,} points {rate:,.0f} points/s"
    else:
        text = f"{mb:8.1f} MB {lines:,} points {rate:,.0f} points/s"
    sys.stderr.write("\r" + text + ("\n" if final else ""))
    sys.stderr.flush()
