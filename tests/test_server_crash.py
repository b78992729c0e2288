"""Kill -9 the server while clients write; every 2xx-acknowledged point must survive restarts.

20 cycles by default; CHRONOSDB_SOAK_CYCLES raises it (``make soak-server``).
"""
from __future__ import annotations

import http.client
import os
import random
import threading
import time

import numpy as np

from chronosdb.storage.api import StorageReader
from chronosdb.storage.engine import Engine, EngineOptions
from serverproc import ServerProcess

CYCLES = int(os.environ.get("CHRONOSDB_SOAK_CYCLES", "20"))
LINES = 40  # points per request; request r writes times r*1000 + j, values r*1000 + j


def body_for(r: int) -> bytes:
    return b"".join(b"k,c=%d v=%d %d\n" % (r % 3, r * 1000 + j, r * 1000 + j) for j in range(LINES))


def writer(port: int, start: int, acked: set, attempted: set, stop: threading.Event):
    r = start
    conn = None
    while not stop.is_set():
        attempted.add(r)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/write?db=crash", body_for(r))
            resp = conn.getresponse()
            resp.read()
            if 200 <= resp.status < 300:
                acked.add(r)
        except OSError:
            conn = None
            time.sleep(0.01)
        except http.client.HTTPException:
            conn = None
        r += 1


def test_kill_9_loses_no_acknowledged_write(tmp_path):
    rng = random.Random(int(os.environ.get("CHRONOSDB_CRASH_SEED", "3")))
    data = str(tmp_path / "data")
    acked: set[int] = set()
    attempted: set[int] = set()
    for cycle in range(CYCLES):
        s = ServerProcess(data, auth=False).start()
        if cycle == 0:
            assert s.query("CREATE DATABASE crash")[0] == 200
        stop = threading.Event()
        ts = [threading.Thread(target=writer, args=(s.port, (cycle * 2 + k) * 100_000, acked, attempted, stop))
              for k in range(2)]
        for t in ts:
            t.start()
        time.sleep(rng.uniform(0.1, 0.6))
        s.kill()  # SIGKILL of our own child
        stop.set()
        for t in ts:
            t.join()
    e = Engine(data, EngineOptions(background=False))
    try:
        reader = StorageReader(e)
        counts: dict[int, int] = {}
        for sid in reader.series_ids("crash", b"k"):
            t, v = reader.scan("crash", int(sid), b"v")
            assert (v == t.astype(np.float64)).all()           # nothing garbled
            req = t // 1000
            ids, c = np.unique(req, return_counts=True)
            for i, n in zip(ids.tolist(), c.tolist()):
                counts[i] = counts.get(i, 0) + n
    finally:
        e.close()
    lost = [r for r in acked if counts.get(r) != LINES]
    assert not lost, f"acknowledged requests lost: {sorted(lost)[:10]} of {len(acked)}"
    unexpected = [r for r in counts if r not in attempted]
    assert not unexpected, f"points from requests never sent: {unexpected[:10]}"
    partial = [r for r, n in counts.items() if n != LINES]
    assert not partial, f"requests stored partially: {partial[:10]}"
    assert len(acked) > CYCLES
