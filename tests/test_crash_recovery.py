"""Kill a writing process with SIGKILL at random moments; every acknowledged batch must be read
back exactly after reopen, and nothing that was never written may appear.

CHRONOSDB_SOAK_CYCLES raises the number of cycles (``make soak``).
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions

sys.path.insert(0, os.path.dirname(__file__))
from crash_writer import PER_BATCH, T0  # noqa: E402

CYCLES = int(os.environ.get("CHRONOSDB_SOAK_CYCLES", "20"))


def run_writer_and_kill(data_dir: str, first: int, rng: random.Random) -> tuple[set[int], int]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "crash_writer.py"),
                             data_dir, str(first), "2"], stdout=subprocess.PIPE, text=True, env=env)
    acked: set[int] = set()
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            if line.startswith("ACK "):
                acked.add(int(line[4:]))
            elif line.startswith("READY"):
                ready.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    deadline = time.monotonic() + 60
    while not ready.wait(0.05):
        assert proc.poll() is None, f"writer exited with {proc.returncode} before it was ready"
        assert time.monotonic() < deadline, "writer did not start"
    time.sleep(rng.uniform(0.05, 0.8))
    os.kill(proc.pid, signal.SIGKILL)  # our own child, by PID
    proc.wait()
    th.join(10)
    return acked, first


def test_sigkill_never_loses_an_acknowledged_write(tmp_path):
    rng = random.Random(int(os.environ.get("CHRONOSDB_CRASH_SEED", "7")))
    data_dir = str(tmp_path / "data")
    all_acked: set[int] = set()
    max_started = -1
    for cycle in range(CYCLES):
        first = cycle * 1_000_000
        acked, _ = run_writer_and_kill(data_dir, first, rng)
        all_acked |= acked
        max_started = first + 1_000_000 - 1
        engine = Engine(data_dir, EngineOptions(background=False))
        try:
            reader = StorageReader(engine)
            seen_batches: dict[int, int] = {}
            for sid in reader.series_ids("crash", b"cpu"):
                col = reader.scan("crash", int(sid), b"v")
                if col is None:
                    continue
                t, v = col
                rel = t - T0
                batch_ids, j = rel // 1000, rel % 1000
                # Every stored point is exactly a point some batch wrote: value matches time.
                assert (v == (batch_ids * 1000 + j).astype(np.float64)).all(), f"cycle {cycle}: garbage value"
                assert (j < PER_BATCH).all()
                ids, counts = np.unique(batch_ids, return_counts=True)
                for b, c in zip(ids.tolist(), counts.tolist()):
                    seen_batches[b] = seen_batches.get(b, 0) + c
            missing = [b for b in all_acked if seen_batches.get(b) != PER_BATCH]
            assert not missing, f"cycle {cycle}: acknowledged batches lost or partial: {sorted(missing)[:10]}"
            # Unacknowledged batches may be present (the kill came after the fsync but before the
            # ACK line) — but only whole, and only batches the writer could have started.
            for b, c in seen_batches.items():
                assert c == PER_BATCH, f"cycle {cycle}: batch {b} is partial ({c} points)"
                assert b <= max_started
        finally:
            engine.close()
    assert len(all_acked) > CYCLES  # the writer really wrote
