"""The `chronosdb` command line: version, serve flags and config, write, keys."""
from __future__ import annotations

import os
import subprocess
import sys

from serverproc import ROOT, ServerProcess, free_port
from test_server_write import read_back


def cli(*args, input=None, timeout=60):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "chronosdb.cli.main", *args], input=input,
                          capture_output=True, timeout=timeout, env=env)


def test_version():
    r = cli("version")
    assert r.returncode == 0 and r.stdout.decode().startswith("chronosdb ")


def test_serve_rejects_bad_flags_and_config(tmp_path):
    r = cli("serve", "--http", "nonsense", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and b"HOST:PORT" in r.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text('colour = "blue"\n')
    r = cli("serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and b"unknown setting" in r.stderr and b"colour" in r.stderr
    cfg.write_text('wal-fsync = "sometimes"\n')
    r = cli("serve", "--config", str(cfg))
    assert r.returncode == 2 and b"wal-fsync" in r.stderr


def test_serve_reads_its_config_file(tmp_path):
    port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'http = "127.0.0.1:{port}"\nauth = false\nwal-fsync = "batch"\n')
    s = ServerProcess(str(tmp_path / "data"), auth=True, port=port)
    s.args = [a for a in s.args if a not in ("--http", f"127.0.0.1:{port}")] + ["--config", str(cfg)]
    s.start()
    try:
        # auth = false from the file: a request without a key works
        st, doc = s.query("CREATE DATABASE fromcfg", key=None)
        assert st == 200 and "error" not in doc["results"][0]
    finally:
        assert s.stop() == 0


def test_keys_and_write_commands(start_server, tmp_path):
    s = start_server(auth=True)
    assert s.query("CREATE DATABASE clidb")[0] == 200
    common = ["--host", f"http://127.0.0.1:{s.port}", "--data-dir", s.data_dir]
    r = cli("keys", "create", "--db", "clidb", "--scope", "write", *common)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    key = next(line.split()[1] for line in out.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id:"))
    r = cli("keys", "list", *common)
    assert r.returncode == 0 and key_id in r.stdout.decode() and key not in r.stdout.decode()
    lp = tmp_path / "in.lp"
    lp.write_bytes(b"".join(b"w,h=a v=%d %d\n" % (i, i + 1) for i in range(12_000)))
    r = cli("write", "--db", "clidb", "--key", key, "--host", f"http://127.0.0.1:{s.port}", str(lp))
    assert r.returncode == 0, r.stderr
    assert b"12,000 points" in r.stderr  # the progress line
    r = cli("write", "--db", "clidb", "--key", key, "--host", f"http://127.0.0.1:{s.port}", "--quiet", "-",
            input=b"w,h=a v=-1 999999999\n")
    assert r.returncode == 0, r.stderr
    r = cli("keys", "revoke", key_id, *common)
    assert r.returncode == 0
    r = cli("write", "--db", "clidb", "--key", key, "--host", f"http://127.0.0.1:{s.port}", "--quiet", "-",
            input=b"w,h=a v=1 1\n")
    assert r.returncode == 1 and b"401" in r.stderr
    r = cli("write", "--db", "nope", *common, "--quiet", "-", input=b"w v=1 1\n")
    assert r.returncode == 1 and b"database not found" in r.stderr
    assert s.stop() == 0
    t, v = read_back(s.data_dir, "clidb", b"w,h=a", b"v")
    assert len(t) == 12_001 and v[-1] == -1.0


def test_compact_command_shrinks_to_one_segment_file(start_server):
    s = start_server(auth=True)
    assert s.query("CREATE DATABASE cdb")[0] == 200
    for i in range(3):
        assert s.write(b"".join(b"c,h=a v=%d %d\n" % (j, (i * 1000 + j) * 10**9) for j in range(1000)),
                       db="cdb")[0] == 204
    common = ["--host", f"http://127.0.0.1:{s.port}", "--data-dir", s.data_dir]
    r = cli("compact", *common)
    assert r.returncode == 0, r.stderr
    import glob
    segs = glob.glob(os.path.join(s.data_dir, "cdb", "autogen", "*", "*.seg"))
    assert len(segs) == 1
    st, _h, _b = s.request("POST", "/api/compact", key=None)
    assert st == 401
