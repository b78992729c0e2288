"""Start, feed and measure the real peer databases (InfluxDB 1.x, VictoriaMetrics) for benchmarks.

Each peer runs as a child process we start, on loopback ports we pick, with everything it writes
under its own temp directory:

    <root>/                 mkdtemp, removed on stop() unless keep=True
      data/                 the peer's whole on-disk state; disk_bytes() measures only this
      influxd.conf          (InfluxDB) the config file we write
      <name>.log            the peer's stdout + stderr, outside data/ so it is not counted

We only ever signal the PID we started (SIGTERM, then SIGKILL after a grace period), and every
peer registers its stop() with atexit so a failing benchmark does not leave servers behind.

CPU and memory come from /proc/<pid>: utime + stime for CPU seconds, VmHWM for peak RSS. Disk is
counted in allocated blocks (st_blocks * 512), like ``du``, so sparse or preallocated files count
for what they really take.
"""
from __future__ import annotations

import atexit
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

INFLUXD = "/usr/bin/influxd"
VICTORIA_METRICS = "/usr/bin/victoria-metrics"

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class PeerError(RuntimeError):
    """A peer failed to start, answered a request with an error, or did not settle in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_bytes(path) -> int:
    """Bytes allocated on disk under ``path`` (st_blocks * 512, as du counts), 0 if missing."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # the peer removed it while we walked
                continue
            total += st.st_blocks * 512
    return total


def _http(method: str, host: str, port: int, path: str, body: bytes | None = None,
          timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Peer:
    """Base class: process lifecycle, /proc measurements, HTTP helpers. Subclasses set the rest."""

    name = "peer"
    binary = ""
    ping_path = "/ping"

    def __init__(self, root: str | os.PathLike | None = None, keep: bool = False):
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / f"{self.name}.log"
        self.keep = keep
        self.http_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._atexit_registered = False

    # -- what subclasses provide ------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Pick ports, write config files. Called before each start attempt."""
        self.http_port = free_port()

    def _after_start(self) -> None:
        """Work to do once the peer answers ping (e.g. create the database)."""

    def write_path(self, db: str = "bench") -> str:
        raise NotImplementedError

    def query(self, q: str, **params):
        raise NotImplementedError

    def flush_and_compact(self, timeout: float = 120.0) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def write_url(self, db: str = "bench") -> str:
        return self.base_url + self.write_path(db)

    def start(self, timeout: float = 30.0) -> "Peer":
        if self.proc is not None:
            raise PeerError(f"{self.name} already started (pid {self.pid})")
        if not os.access(self.binary, os.X_OK):
            raise PeerError(f"{self.name}: binary {self.binary} not found or not executable")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        # A port picked by free_port() can be taken by someone else before the peer binds it;
        # a fresh pick on the next attempt makes that race harmless.
        last = None
        for _attempt in range(3):
            self._prepare()
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                self._command(), stdout=self._log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.root,
            )
            try:
                self._wait_ready(timeout)
                self._after_start()
                return self
            except PeerError as e:
                last = e
                self._terminate()
                if "address already in use" not in self.log_tail().lower():
                    break
        raise last

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self.proc.poll() is not None:
                raise PeerError(f"{self.name} exited with code {self.proc.returncode} while starting; "
                                f"log {self.log_path}:\n{self.log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} did not answer {self.ping_path} within {timeout}s; "
                                f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(delay)  # polling a child that is starting up, not synchronising a test
            delay = min(delay * 2, 0.25)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def _terminate(self, grace: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # our own child, by its PID
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM our process, wait up to ``grace`` s, SIGKILL only if it is still there."""
        self._terminate(grace)
        if self._own_root and not self.keep and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Peer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None,
                timeout: float = 60.0) -> tuple[int, bytes]:
        return _http(method, "127.0.0.1", self.http_port, path, body, timeout)

    def ping(self) -> bool:
        if self.http_port is None:
            return False
        try:
            status, _ = self.request("GET", self.ping_path, timeout=2.0)
        except OSError:
            return False
        return 200 <= status < 300

    def write(self, body: bytes, db: str = "bench") -> None:
        status, resp = self.request("POST", self.write_path(db), body)
        if status not in (200, 204):
            raise PeerError(f"{self.name} write answered {status}: {resp[:500]!r}")

    def _get_json(self, path: str, params: dict):
        status, resp = self.request("GET", path + "?" + urllib.parse.urlencode(params))
        if status != 200:
            raise PeerError(f"{self.name} GET {path} answered {status}: {resp[:500]!r}")
        return json.loads(resp)

    # -- measurements ------------------------------------------------------------------------
    def _proc_file(self, name: str) -> str:
        if self.proc is None:
            raise PeerError(f"{self.name} is not running")
        return Path(f"/proc/{self.proc.pid}/{name}").read_text()

    def cpu_seconds(self) -> float:
        """utime + stime of our process so far, in seconds."""
        stat = self._proc_file("stat")
        # Field 2 (comm) is parenthesised and may hold spaces: split after its closing ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / _CLK_TCK

    def peak_rss_bytes(self) -> int:
        """Peak resident set size (VmHWM) of our process."""
        for line in self._proc_file("status").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise PeerError(f"{self.name}: no VmHWM in /proc/{self.pid}/status")

    def disk_bytes(self) -> int:
        """Allocated bytes of the data directory (what du reports)."""
        return tree_bytes(self.data_dir)

    def disk_breakdown(self, depth: int = 2) -> dict[str, int]:
        """Allocated bytes per sub-path of data/ down to ``depth`` levels (to see where bytes go)."""
        out: dict[str, int] = {}
        for dirpath, _dirs, files in os.walk(self.data_dir):
            rel = Path(dirpath).relative_to(self.data_dir)
            key = "/".join(rel.parts[:depth]) or "."
            for f in files:
                try:
                    out[key] = out.get(key, 0) + os.lstat(os.path.join(dirpath, f)).st_blocks * 512
                except FileNotFoundError:
                    continue
        return out

    def _wait_stable(self, probe, timeout: float, polls: int = 3, interval: float = 0.5) -> None:
        """Wait until ``probe()`` returns the same settled value ``polls`` times in a row.

        ``probe`` returns (settled: bool, fingerprint); the fingerprint (file counts, sizes) must
        also stop changing, so a merge that starts between two polls is not mistaken for done.
        """
        deadline = time.monotonic() + timeout
        last, same = None, 0
        while True:
            settled, fingerprint = probe()
            if settled and fingerprint == last:
                same += 1
                if same >= polls:
                    return
            else:
                same = 0
            last = fingerprint
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} did not settle within {timeout}s (last state {fingerprint})")
            time.sleep(interval)  # polling the peer's on-disk state; it compacts on its own clock


class InfluxDB(Peer):
    """InfluxDB 1.x (tested with 1.6.7), configured for a benchmark.

    Config we write (influxd.conf) and why:
      - meta/, data/, wal/ all under data/ so disk_bytes() sees the whole state;
      - http on 127.0.0.1:<free port>, the RPC (backup/restore) bind-address on another free port;
      - reporting-disabled, [monitor] store-enabled = false (no _internal database taking disk and
        CPU), [continuous_queries] off, [subscriber] off, HTTP access log off, query log off;
      - cache-snapshot-write-cold-duration = "1s": a shard that has not been written for 1 s has
        its cache snapshotted to a TSM file and its WAL segments deleted (default 10m);
      - compact-full-write-cold-duration = "2s": a shard cold for 2 s is fully compacted into
        optimised TSM files (default 4h). With both, flush_and_compact() only has to stop
        writing and wait for the WAL to empty and the TSM file set to stop changing.
      - index-version = "inmem" (the 1.6 default), so the series index lives in RAM; the series
        file (data/<db>/_series) is still on disk and counted.
    """

    name = "influxdb"
    binary = INFLUXD
    ping_path = "/ping"

    def __init__(self, root=None, keep=False, index_version: str = "inmem"):
        super().__init__(root, keep)
        self.index_version = index_version
        self.rpc_port: int | None = None
        self.config_path = self.root / "influxd.conf"

    def _prepare(self) -> None:
        self.http_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        d = self.data_dir
        self.config_path.write_text(f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  index-version = "{self.index_version}"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "2s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
""")

    def _command(self) -> list[str]:
        return [self.binary, "-config", str(self.config_path)]

    def _after_start(self) -> None:
        self.query("CREATE DATABASE bench", method="POST")

    def write_path(self, db: str = "bench") -> str:
        return "/write?" + urllib.parse.urlencode({"db": db, "precision": "ns"})

    def query(self, q: str, db: str = "bench", method: str = "GET", **params):
        """Run InfluxQL; returns the decoded JSON. Raises PeerError if a statement failed."""
        args = {"q": q, "db": db, **params}
        if method == "POST":
            status, resp = self.request("POST", "/query?" + urllib.parse.urlencode(args))
            if status != 200:
                raise PeerError(f"influxdb query {q!r} answered {status}: {resp[:500]!r}")
            out = json.loads(resp)
        else:
            out = self._get_json("/query", args)
        for r in out.get("results", []):
            if "error" in r:
                raise PeerError(f"influxdb query {q!r} failed: {r['error']}")
        return out

    def _probe(self):
        wal = self.data_dir / "wal"
        tsm_files = sorted(
            (str(p.relative_to(self.data_dir)), p.stat().st_size)
            for p in (self.data_dir / "data").rglob("*") if p.is_file() and ".tsm" in p.name
        )
        wal_bytes = sum(p.stat().st_size for p in wal.rglob("*.wal")) if wal.exists() else 0
        # A compaction in flight leaves *.tsm.tmp files; an unsnapshotted cache leaves WAL bytes.
        busy = any(name.endswith(".tmp") for name, _ in tsm_files)
        return (wal_bytes == 0 and not busy), tuple(tsm_files)

    def flush_and_compact(self, timeout: float = 120.0) -> None:
        """Wait for the cold-shard snapshot (WAL empties) and full compaction (TSM set stable)."""
        self._wait_stable(self._probe, timeout, polls=6, interval=0.5)


class VictoriaMetrics(Peer):
    """VictoriaMetrics single node (tested with 1.79.5), written through its InfluxDB /write.

    Flags: -storageDataPath data/, -httpListenAddr 127.0.0.1:<free port>, -retentionPeriod 100y
    (the TSBS set is dated 2016; with the default 1 month retention VM would drop it all),
    -search.latencyOffset=0s (no hiding of the newest points from queries), -loggerLevel=WARN.
    Lines become metrics ``cpu_<field>{<tags>, db="bench"}``.
    """

    name = "victoriametrics"
    binary = VICTORIA_METRICS
    ping_path = "/health"

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr=127.0.0.1:{self.http_port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]

    def write_path(self, db: str = "bench") -> str:
        return "/write?" + urllib.parse.urlencode({"db": db})

    def query(self, q: str, **params):
        """MetricsQL instant query (/api/v1/query); pass time=<unix s> etc. as keywords."""
        out = self._get_json("/api/v1/query", {"query": q, **params})
        if out.get("status") != "success":
            raise PeerError(f"victoriametrics query {q!r} failed: {out}")
        return out

    def export_count(self, match: str = '{__name__=~".+"}') -> int:
        """Exact number of stored samples matching ``match`` (sums /api/v1/export value arrays)."""
        status, resp = self.request(
            "GET", "/api/v1/export?" + urllib.parse.urlencode({"match[]": match}))
        if status != 200:
            raise PeerError(f"victoriametrics export answered {status}: {resp[:500]!r}")
        return sum(len(json.loads(line)["values"]) for line in resp.splitlines() if line.strip())

    def force_flush(self) -> None:
        """Make buffered rows searchable and written to disk (/internal/force_flush)."""
        status, resp = self.request("GET", "/internal/force_flush")
        if status != 200:
            raise PeerError(f"victoriametrics force_flush answered {status}: {resp[:200]!r}")

    def metrics(self) -> dict[str, float]:
        """The /metrics page summed by metric name (labels dropped)."""
        status, resp = self.request("GET", "/metrics")
        if status != 200:
            raise PeerError(f"victoriametrics /metrics answered {status}")
        out: dict[str, float] = {}
        for line in resp.decode().splitlines():
            if not line or line[0] == "#":
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            try:
                out[name] = out.get(name, 0.0) + float(value)
            except ValueError:
                continue
        return out

    def _probe(self):
        m = self.metrics()
        parts = m.get("vm_parts", 0.0)
        settled = m.get("vm_active_merges", 0.0) == 0 and m.get("vm_pending_rows", 0.0) == 0
        return settled, (parts, self.disk_bytes())

    def flush_and_compact(self, timeout: float = 120.0) -> None:
        """force_flush, then force_merge every partition, then wait until no merge runs and
        the part count and disk usage stop changing (force_merge returns before it finishes)."""
        self.force_flush()
        status, resp = self.request("GET", "/internal/force_merge")
        if status != 200:
            raise PeerError(f"victoriametrics force_merge answered {status}: {resp[:200]!r}")
        self._wait_stable(self._probe, timeout, polls=4, interval=0.5)


# -- load generator -------------------------------------------------------------------------

# The bodies the forked workers read: set just before the fork so they are inherited, never pickled.
_LOAD_BODIES: list[bytes] = []


def _load_worker(host: str, port: int, path: str, worker: int, workers: int,
                 barrier, results) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    bodies = _LOAD_BODIES
    try:
        try:
            conn.connect()  # connect before the clock starts
        except OSError as e:
            results.put((worker, None, f"connect to {host}:{port}: {e}"))
            barrier.abort()  # wakes the parent and the other workers with BrokenBarrierError
            return
        barrier.wait()
        for i in range(worker, len(bodies), workers):
            conn.request("POST", path, body=bodies[i],
                         headers={"Content-Type": "text/plain; charset=utf-8"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status not in (200, 204):
                results.put((worker, None, f"body {i}: HTTP {resp.status}: {data[:300]!r}"))
                return
        results.put((worker, time.monotonic(), None))
    except Exception as e:  # report to the parent instead of dying silently
        results.put((worker, None, f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def load(peer_or_url, bodies: list[bytes], workers: int = 2, n_values: int | None = None) -> dict:
    """POST ``bodies`` to a peer's write endpoint from ``workers`` forked processes.

    Worker w sends bodies w, w + workers, ... over one keep-alive connection, so the time order
    of the data set is roughly kept. ``peer_or_url`` is a Peer (its write_url("bench")) or a full
    write URL. Timing starts when every worker is connected and ready (fork cost excluded) and
    ends when the last response arrives. A failed connect or any non-2xx answer raises PeerError.
    Returns {"seconds", "values_per_s", "bodies", "bytes"};
    values_per_s is None unless ``n_values`` (the values in all bodies) is given.
    """
    if workers <= 0:
        raise ValueError(f"workers must be positive, got {workers}")
    url = peer_or_url.write_url("bench") if isinstance(peer_or_url, Peer) else str(peer_or_url)
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"load needs an http:// write URL, got {url!r}")
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    workers = max(1, min(workers, len(bodies)))

    global _LOAD_BODIES
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    results = ctx.Queue()
    _LOAD_BODIES = bodies
    procs = [ctx.Process(target=_load_worker,
                         args=(u.hostname, u.port or 80, path, w, workers, barrier, results))
             for w in range(workers)]
    try:
        for p in procs:
            p.start()
        ends, errors = [], []
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            for p in procs:
                p.join(timeout=10)
            while not results.empty():
                errors.append(results.get()[2] or "worker stopped before the start")
            raise PeerError(f"load to {url} could not start: " + ("; ".join(errors) or "barrier broken"))
        t0 = time.monotonic()
        for _ in procs:
            _w, end, err = results.get(timeout=3600)
            if err:
                errors.append(err)
            else:
                ends.append(end)
        for p in procs:
            p.join()
    finally:
        _LOAD_BODIES = []
        for p in procs:
            if p.is_alive():
                p.terminate()  # our own worker, by its Process handle
                p.join()
    if errors:
        raise PeerError(f"load to {url} failed: " + "; ".join(errors))
    seconds = max(ends) - t0
    return {
        "seconds": seconds,
        "values_per_s": (n_values / seconds) if n_values is not None and seconds > 0 else None,
        "bodies": len(bodies),
        "bytes": sum(len(b) for b in bodies),
    }
