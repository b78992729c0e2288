"""Writer process for the crash-recovery test: writes deterministic batches forever and prints
``ACK <id>`` after each write returned. The test kills it with SIGKILL at random moments.

Batch ``i`` holds 50 points of series ``cpu,host=h{i % 7}``: times ``T0 + i * 1000 + j`` and
values ``i * 1000 + j`` (j < 50), so every stored point says which batch it came from.
Small cache limits make snapshots and compactions run while it is killed.
"""
import sys
import threading

import numpy as np

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.storage.compaction.planner import CompactionPolicy
from chronosdb.storage.engine import Engine, EngineOptions
from chronosdb.storage.shard import ShardOptions

T0 = 1_451_606_400 * 10**9
PER_BATCH = 50


def batch_for(i: int) -> WriteBatch:
    j = np.arange(PER_BATCH, dtype=np.int64)
    key = f"cpu,host=h{i % 7}".encode()
    col = FieldColumn(b"v", FieldType.FLOAT, np.zeros(PER_BATCH, np.int32), T0 + i * 1000 + j,
                      (i * 1000 + j).astype(np.float64))
    return WriteBatch([key], [col])


def main() -> None:
    data_dir, first, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    opts = EngineOptions(
        shard=ShardOptions(cache_snapshot_bytes=64 << 10, snapshot_cold_seconds=0.2,
                           compaction=CompactionPolicy(fan_in=2)),
        maintenance_interval=0.05)
    engine = Engine(data_dir, opts)
    engine.create_database("crash")
    out_lock = threading.Lock()
    counter = iter(range(first, first + 10**9))
    counter_lock = threading.Lock()

    def run():
        while True:
            with counter_lock:
                i = next(counter)
            engine.write("crash", batch_for(i))
            with out_lock:
                sys.stdout.write(f"ACK {i}\n")
                sys.stdout.flush()

    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for t in ts:
        t.join()


if __name__ == "__main__":
    main()
