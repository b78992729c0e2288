"""The pubsub bus: matching (differential against a per-point reference), the engine's write
listeners, bounded queues with their overflow policies, the (db, measurement) index, and the
raw-stream row builder."""
from __future__ import annotations

import asyncio
import random
import re
import threading

import numpy as np
import pytest

from chronosdb.model import tagexpr as tx
from chronosdb.model.batch import WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key, parse_key
from chronosdb.pubsub import Bus, SubscriptionClosed, SubscriptionFilter
from chronosdb.pubsub.broker import HOLD_FACTOR
from chronosdb.pubsub.matcher import KeyInfo, MatchedBatch, SharedBatch, match_batch, match_keys
from chronosdb.pubsub.streaming import (WindowTracker, compile_stream, merge_series, raw_series,
                                        raw_series_many)
from chronosdb.query.influxql import parse
from chronosdb.server.metrics import Metrics
from chronosdb.storage.engine import Engine, EngineOptions


def points_of(batch: WriteBatch | None) -> list:
    if batch is None:
        return []
    out = []
    for c in batch.columns:
        vals = c.values.to_list() if hasattr(c.values, "to_list") else c.values.tolist()
        for s, t, v in zip(c.series.tolist(), c.times.tolist(), vals):
            out.append((batch.keys[s], c.name, t, v))
    return sorted(out)


def random_batch(rng: random.Random) -> WriteBatch:
    pts = []
    for _ in range(rng.randint(1, 60)):
        m = rng.choice(["cpu", "mem", "disk"])
        tags = {k: rng.choice(["a", "b", "c"]) for k in rng.sample(["host", "region", "dc"], rng.randint(0, 3))}
        pts.append((make_key(m, tags), rng.choice(["value", "free"]), FieldType.FLOAT,
                    rng.randint(0, 1000), rng.random()))
    return WriteBatch.from_points(pts)


def reference_match(batch: WriteBatch, f: SubscriptionFilter) -> list:
    """The slow twin: one Python decision per point."""
    out = []
    for key, name, t, v in points_of(batch):
        m, tags = parse_key(key)
        tags = dict(tags)
        if f.measurement is not None and m != f.measurement:
            continue
        if f.measurement_regex is not None and not re.search(f.measurement_regex, m.decode()):
            continue
        if f.tags is not None and not f.tags.matches(tags):
            continue
        out.append((key, name, t, v))
    return sorted(out)


@pytest.mark.parametrize("seed", range(20))
def test_match_batch_equals_per_point_reference(seed):
    rng = random.Random(seed)
    filters = [
        SubscriptionFilter("db"),
        SubscriptionFilter("db", measurement=b"cpu"),
        SubscriptionFilter("db", measurement_regex="^(cpu|disk)$"),
        SubscriptionFilter("db", measurement=b"cpu", tags=tx.TagEquals("host", "a")),
        SubscriptionFilter("db", tags=tx.Or(tx.TagEquals("region", "b"), tx.TagRegex("dc", "^c"))),
        SubscriptionFilter("db", measurement=b"mem", tags=tx.And(tx.TagNotEquals("host", "a"),
                                                                  tx.TagEquals("region", ""))),
    ]
    keys = KeyInfo()
    for _ in range(5):
        batch = random_batch(rng)
        for f in filters:
            assert points_of(match_batch(batch, f, keys)) == reference_match(batch, f)


def test_engine_listeners_get_what_was_stored(tmp_path):
    eng = Engine(str(tmp_path), EngineOptions(background=False))
    try:
        eng.create_database("db")
        seen = []
        listener = lambda db, rp, b: seen.append((db, rp, points_of(b)))  # noqa: E731
        eng.add_write_listener(listener)
        eng.write("db", WriteBatch.from_points([("cpu,host=a", "v", FieldType.FLOAT, 10, 1.5)]))
        # v now conflicts (integer into a float field): refused, and not published; w is kept.
        out = eng.write("db", WriteBatch.from_points([("cpu,host=a", "v", FieldType.INTEGER, 20, 2),
                                                      ("cpu,host=a", "w", FieldType.INTEGER, 20, 3)]))
        assert out.dropped == 1
        assert seen == [("db", "autogen", [(b"cpu,host=a", b"v", 10, 1.5)]),
                        ("db", "autogen", [(b"cpu,host=a", b"w", 20, 3)])]
        eng.remove_write_listener(listener)
        eng.write("db", WriteBatch.from_points([("cpu,host=a", "w", FieldType.INTEGER, 30, 4)]))
        assert len(seen) == 2
    finally:
        eng.close()


def _publish_from_thread(bus, *batches, db="db", rp="autogen"):
    t = threading.Thread(target=lambda: [bus.publish(db, rp, b) for b in batches])
    t.start()
    t.join()


def _batch(n: int, meas="cpu", t0=0) -> WriteBatch:
    return WriteBatch.from_points([(f"{meas},host=h{i % 3}", "v", FieldType.FLOAT, t0 + i, float(i))
                                   for i in range(n)])


async def _drain(sub, want: int, timeout: float = 5.0) -> list:
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < want and loop.time() < deadline:
        item = await sub.get(0.1)
        if item is not None:
            got.append(item)
    return got


def test_slow_subscriber_is_told_how_many_points_it_missed():
    async def main():
        metrics = Metrics()
        bus = Bus(metrics)
        sub = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu"), max_points=10, overflow="notify")
        _publish_from_thread(bus, _batch(6), _batch(6, t0=100), _batch(3, t0=200), _batch(6, t0=300))
        items = await _drain(sub, 3)
        # 6 queued; 6 do not fit (missed); 3 fit (9 queued); 6 do not fit (missed).
        assert items[0] == ("dropped", 12)
        assert [i[0] for i in items[1:]] == ["batch", "batch"]
        assert [i[1].n_values for i in items[1:]] == [6, 3]
        assert metrics.get("pubsub_points_dropped_total") == 12
        assert metrics.get("pubsub_points_delivered_total") == 9
        assert metrics.get("pubsub_subscribers") == 1
        sub.close()
        assert metrics.get("pubsub_subscribers") == 0
        assert bus.subscriber_count == 0
    asyncio.run(main())


def test_slow_subscriber_disconnected_by_policy():
    async def main():
        metrics = Metrics()
        bus = Bus(metrics)
        sub = bus.subscribe(SubscriptionFilter("db"), max_points=5, overflow="disconnect")
        _publish_from_thread(bus, _batch(4), _batch(4))
        await asyncio.sleep(0)  # let call_soon_threadsafe deliveries run
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while sub.closed_reason is None and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert "slow subscriber" in sub.closed_reason
        with pytest.raises(SubscriptionClosed):
            sub.get_nowait()
        assert metrics.get("pubsub_subscribers_disconnected_total") == 1
        assert bus.subscriber_count == 0
    asyncio.run(main())


def test_index_looks_only_at_the_written_measurement():
    async def main():
        bus = Bus()
        idle = [bus.subscribe(SubscriptionFilter("db", measurement=f"idle{i}".encode())) for i in range(1000)]
        other_db = bus.subscribe(SubscriptionFilter("db2", measurement=b"cpu"))
        active = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu"))
        regex = bus.subscribe(SubscriptionFilter("db", measurement_regex="^c"))
        assert set(bus.candidates("db", {b"cpu"})) == {active, regex}
        _publish_from_thread(bus, _batch(3))
        got_active = await _drain(active, 1)
        got_regex = await _drain(regex, 1)
        assert got_active[0][1].n_values == 3 and got_regex[0][1].n_values == 3
        assert all(s.delivered == 0 for s in idle) and other_db.delivered == 0
        # rp filter
        rp_sub = bus.subscribe(SubscriptionFilter("db", rp="short", measurement=b"cpu"))
        _publish_from_thread(bus, _batch(2))
        await _drain(active, 1)
        assert rp_sub.delivered == 0
    asyncio.run(main())


class CountingLoop:
    """Stands for an event loop the bus hands batches to: keeps the hand-off callbacks, which
    the test runs when it chooses."""

    def __init__(self):
        self.calls = []

    def call_soon_threadsafe(self, fn, *args):
        self.calls.append((fn, args))

    def run(self):
        while self.calls:
            fn, args = self.calls.pop(0)
            fn(*args)


def test_publish_hands_off_once_per_batch_not_per_subscriber():
    bus = Bus()
    loop = CountingLoop()
    calls = loop.calls
    subs = [bus.subscribe(SubscriptionFilter("db", measurement=b"cpu"), loop=loop) for _ in range(100)]
    bus.publish("db", "autogen", _batch(10))
    assert len(calls) == 1
    # The loop has not run the hand-off yet: a second batch joins it, no second wake-up.
    bus.publish("db", "autogen", _batch(10))
    assert len(calls) == 1
    fn, args = calls[0]
    fn(*args)
    assert all(s.delivered == 20 and len(s._queue) == 2 for s in subs)
    # Equal filters share one matched part per batch.
    assert len({id(s._queue[0]) for s in subs}) == 1
    bus.publish("db", "autogen", _batch(10))
    assert len(calls) == 2


def _plan(q: str, fields=("value", "s")):
    return compile_stream(parse(q), "db", None, lambda m: list(fields), now=10**18)


def test_raw_rows_merge_fields_filter_and_sort():
    batch = WriteBatch.from_points([
        ("cpu,host=a", "value", FieldType.FLOAT, 30, 3.0),
        ("cpu,host=a", "value", FieldType.FLOAT, 10, 1.0),
        ("cpu,host=b", "value", FieldType.FLOAT, 20, 9.0),
        ("cpu,host=b", "s", FieldType.STRING, 20, "x"),
        ("cpu,host=a", "value", FieldType.FLOAT, 10, 1.5),   # same series+time: last one wins
    ])
    plan = _plan("SELECT value, s, host FROM cpu WHERE value > 1.2")
    [s] = raw_series(plan, batch, KeyInfo())
    assert s.name == "cpu" and s.tags is None
    assert s.times.tolist() == [10, 20, 30]
    value, sv, host = s.columns
    assert value.values.tolist() == [1.5, 9.0, 3.0]
    assert sv.values.to_list()[1] == b"x" and sv.valid.tolist() == [False, True, False]
    assert host.values.to_list() == [b"a", b"b", b"a"]
    # cursor: only rows after it
    [s] = raw_series(plan, batch, KeyInfo(), after=15)
    assert s.times.tolist() == [20, 30]
    # tag condition with a field condition under OR stays per point
    plan = _plan("SELECT value FROM cpu WHERE host = 'b' OR value > 2")
    [s] = raw_series(plan, batch, KeyInfo())
    assert s.times.tolist() == [20, 30]


def test_raw_group_by_tag_and_wildcard():
    batch = WriteBatch.from_points([("cpu,dc=x,host=a", "value", FieldType.FLOAT, 1, 1.0),
                                    ("cpu,dc=x,host=b", "value", FieldType.FLOAT, 2, 2.0)])
    out = raw_series(_plan("SELECT * FROM cpu GROUP BY host"), batch, KeyInfo())
    assert [s.tags for s in out] == [{"host": "a"}, {"host": "b"}]
    assert [c.name for c in out[0].columns] == ["dc", "value"]


@pytest.mark.parametrize("q,text", [
    ("SELECT mean(value) FROM cpu", "GROUP BY time"),
    ("SELECT value FROM cpu, mem", "one measurement"),
    ("SELECT value INTO x FROM cpu", "INTO"),
    ("SELECT value FROM cpu LIMIT 3", "LIMIT"),
    ("SELECT value + 1 FROM cpu", "expressions"),
    ("SHOW DATABASES", "SELECT"),
])
def test_unstreamable_queries_are_refused(q, text):
    with pytest.raises(Exception) as e:
        _plan(q)
    assert text in str(e.value) and getattr(e.value, "status", 400) == 400


def test_window_tracker():
    w = WindowTracker(interval=10, offset=0, grace=2)
    w.touch_times(np.array([1, 5, 13, 27, 28], dtype=np.int64))
    assert w.due(11) == []
    assert w.due(12) == [0]
    assert w.next_deadline() == 22
    assert w.open_windows(15) == [10, 20]
    assert w.due(100) == [10, 20]
    assert w.dirty == set()


# --- the shared path: MatchedBatch over one SharedBatch ---------------------------------------

_SHARED_FILTERS = [
    SubscriptionFilter("db"),
    SubscriptionFilter("db", measurement=b"cpu"),
    SubscriptionFilter("db", measurement_regex="^(cpu|disk)$"),
    SubscriptionFilter("db", measurement=b"cpu", tags=tx.TagEquals("host", "a")),
    SubscriptionFilter("db", tags=tx.And(tx.TagEquals("region", "b"), tx.TagRegex("dc", "^c"))),
    SubscriptionFilter("db", measurement=b"mem", tags=tx.And(tx.TagNotEquals("host", "a"),
                                                              tx.TagEquals("region", "c"))),
    SubscriptionFilter("db", tags=tx.Or(tx.TagEquals("region", "b"), tx.TagEquals("host", "c"))),
]


def _shared(batch):
    keys = KeyInfo()
    return SharedBatch(batch, [keys.get(k) for k in batch.keys])


@pytest.mark.parametrize("seed", range(20))
def test_matched_batch_equals_per_point_reference(seed):
    rng = random.Random(1000 + seed)
    batch = random_batch(rng)
    shared = _shared(batch)
    for f in _SHARED_FILTERS:
        idx = match_keys(shared, f.measurement, f.compiled_regex, f.tags)
        part = MatchedBatch(shared, idx)
        want = reference_match(batch, f)
        assert points_of(part) == want, f
        assert part.n_values == len(want)


def _series_dump(series):
    out = []
    for s in series:
        cols = []
        for c in s.columns:
            vals = None if c.values is None else (c.values.to_list() if hasattr(c.values, "to_list")
                                                  else c.values.tolist())
            cols.append((c.name, c.kind, vals, None if c.valid is None else c.valid.tolist()))
        out.append((s.name, s.tags, s.times.tolist(), cols))
    return out


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("q", [
    "SELECT value FROM cpu",
    "SELECT * FROM /./",
    "SELECT value, host FROM cpu WHERE host = 'a' OR value > 0.5",
    "SELECT free, value FROM /cpu|mem/ GROUP BY region",
    "SELECT * FROM mem WHERE region = 'b' GROUP BY host, dc",
])
def test_raw_series_from_shared_rows_equals_cut_out_part(seed, q):
    """The shared path (slices of the published batch's rows) gives exactly what formatting the
    subscriber's own cut-out columns gives."""
    rng = random.Random(seed)
    batch = random_batch(rng)
    plan = _plan(q, fields=("value", "free"))
    shared = _shared(batch)
    f = plan.filter
    idx = match_keys(shared, f.measurement, f.compiled_regex, f.tags)
    if not len(idx):
        return
    part = MatchedBatch(shared, idx)
    cut = WriteBatch(batch.keys, list(part.columns))
    assert _series_dump(raw_series(plan, part, KeyInfo())) == _series_dump(raw_series(plan, cut, KeyInfo()))
    assert _series_dump(raw_series(plan, part, KeyInfo(), after=500)) == \
        _series_dump(raw_series(plan, cut, KeyInfo(), after=500))


def test_equality_filters_test_only_their_keys():
    batch = WriteBatch.from_points([(f"cpu,host=h{i}", "value", FieldType.FLOAT, i, 1.0) for i in range(50)])
    shared = _shared(batch)
    calls = []

    class Counting(tx.TagEquals):
        __slots__ = ()

        def matches(self, tags):
            calls.append(1)
            return super().matches(tags)

    idx = match_keys(shared, b"cpu", None, Counting("host", "h7"))
    assert idx.tolist() == [7] and len(calls) == 1


def test_merge_series_concatenates_per_series_in_time_order():
    plan = _plan("SELECT value FROM cpu GROUP BY host")
    b1 = WriteBatch.from_points([("cpu,host=a", "value", FieldType.FLOAT, 20, 2.0),
                                 ("cpu,host=b", "value", FieldType.FLOAT, 5, 5.0)])
    b2 = WriteBatch.from_points([("cpu,host=a", "value", FieldType.FLOAT, 10, 1.0)])
    merged = merge_series([raw_series(plan, b1, KeyInfo()), raw_series(plan, b2, KeyInfo())])
    assert [(s.tags, s.times.tolist(), s.columns[0].values.tolist()) for s in merged] == [
        ({"host": "a"}, [10, 20], [1.0, 2.0]), ({"host": "b"}, [5], [5.0])]


def test_drain_takes_everything_queued_and_reports_drops_in_order():
    async def main():
        bus = Bus()
        sub = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu"), max_points=5)
        for n in (3, 2, 4):
            _publish_from_thread(bus, _batch(n))
        deadline = asyncio.get_running_loop().time() + 10
        while sub.delivered + sub.missed < 9 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        items = await sub.get_many(1.0)
        assert [k for k, _ in items] == ["dropped", "batch", "batch"]
        assert items[0][1] == 4 and sum(p.n_values for _k, p in items[1:]) == 5
        assert sub.drain() == []
        sub.close()
        with pytest.raises(SubscriptionClosed):
            sub.drain()
    asyncio.run(main())


def _unique_time_batch(rng: random.Random, t0: int) -> WriteBatch:
    pts = []
    for i in range(rng.randint(1, 40)):
        m = rng.choice(["cpu", "mem"])
        tags = {k: rng.choice(["a", "b", "c"]) for k in rng.sample(["host", "region"], rng.randint(0, 2))}
        pts.append((make_key(m, tags), rng.choice(["value", "free"]), FieldType.FLOAT, t0 + i * 7, rng.random()))
    return WriteBatch.from_points(pts)


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("q", [
    "SELECT value FROM cpu",
    "SELECT value, free, host FROM /./ WHERE host = 'a' OR value > 0.5",
    "SELECT free, value FROM /cpu|mem/ GROUP BY region",
    "SELECT value FROM mem WHERE region = 'b' GROUP BY host",
    "SELECT value, free FROM cpu WHERE host = 'a' AND region = 'c'",   # one key per batch: slices
])
def test_raw_series_many_equals_merged_per_batch_series(seed, q):
    """Coalesced batches formatted in one pass == each batch formatted alone, then merged per
    series (``merge_series``); with a resume cursor on the first batches (catch-up)."""
    rng = random.Random(seed)
    plan = _plan(q, fields=("value", "free"))
    parts = []
    for j in range(rng.randint(2, 4)):
        batch = _unique_time_batch(rng, 1000 * j + rng.randint(0, 500))
        shared = _shared(batch)
        f = plan.filter
        idx = match_keys(shared, f.measurement, f.compiled_regex, f.tags)
        if len(idx):
            parts.append((MatchedBatch(shared, idx), 1200 if j == 0 and seed % 2 else None))
    if not parts:
        return
    want = merge_series([s for s in (raw_series(plan, b, KeyInfo(), a) for b, a in parts) if s])
    got = raw_series_many(plan, parts, KeyInfo())
    assert _rows_by_series(got) == _rows_by_series(want)
    # One entry per series in the coalesced event, each in time order.
    names = [(s.name, sorted((s.tags or {}).items())) for s in got]
    assert len(names) == len(set(map(repr, names)))
    assert all((np.diff(s.times) >= 0).all() for s in got)


def _rows_by_series(series) -> dict:
    """{(name, tags): sorted [(time, {column: value})]} with absent and null values left out:
    what a client reads, whether a series came as one entry or several."""
    out: dict = {}
    for s in series:
        rows = out.setdefault((s.name, tuple(sorted((s.tags or {}).items()))), [])
        for i, t in enumerate(s.times.tolist()):
            row = {}
            for c in s.columns:
                if c.values is None or (c.valid is not None and not c.valid[i]):
                    continue
                v = c.values.take(np.array([i]))  if hasattr(c.values, "to_list") else c.values[i]
                row[c.name] = v.to_list()[0] if hasattr(v, "to_list") else v.item()
            rows.append((t, sorted(row.items())))
    return {k: sorted(v) for k, v in out.items()}


def test_batches_for_readers_waiting_for_a_tick_are_held_and_released_as_one_run():
    """While every live subscriber of a batch waits for a pace tick (``tick_fed``), the bus
    holds the batch; ``release`` (the tick) gives each subscriber one ``MatchedRun`` of its
    parts of all held batches, in publish order. A batch someone does not wait for is
    delivered at once, after what was held."""
    from chronosdb.pubsub.matcher import MatchedRun
    metrics = Metrics()
    bus = Bus(metrics)
    loop = CountingLoop()
    flush = loop.run
    a, b, a2 = (bus.subscribe(SubscriptionFilter("db", measurement=b"cpu", tags=tx.TagEquals("host", h)), loop=loop)
                for h in ("h1", "h2", "h1"))
    batches = [_batch(9, t0=100 * i) for i in range(3)]
    a.tick_fed = b.tick_fed = a2.tick_fed = True
    for wb in batches:
        bus.publish("db", "autogen", wb)
    flush()
    assert bus.holding(loop) and a.delivered == b.delivered == 0 and not a._queue
    bus.release(loop)
    assert not bus.holding(loop)
    # Subscribers of an equal filter share one run and its part objects (the stream formatter
    # shares its work between readers of the same parts).
    (_k, shared_run), = a2.drain()
    assert shared_run is a._queue[0] and shared_run.parts() is a._queue[0].parts()
    a2.close()
    for sub, host in ((a, b"cpu,host=h1"), (b, b"cpu,host=h2")):
        (kind, run), = sub.drain()
        assert kind == "batch" and isinstance(run, MatchedRun) and run.n_values == 9
        parts = run.parts()
        assert [points_of(p) for p in parts] == \
            [points_of(match_batch(wb, sub.filter)) for wb in batches]
        assert all(k == host for p in parts for k, _n, _t, _v in points_of(p))
    assert metrics.get("pubsub_points_delivered_total") == 27
    # b no longer waits: a batch is delivered at once, after the one held before it.
    bus.publish("db", "autogen", batches[0])
    flush()
    b.tick_fed = False
    bus.publish("db", "autogen", batches[1])
    flush()
    assert not bus.holding(loop)
    assert [type(p).__name__ for _k, p in a.drain()] == ["MatchedBatch", "MatchedBatch"]
    assert [points_of(p) for _k, p in b.drain()] == [points_of(match_batch(wb, b.filter)) for wb in batches[:2]]
    # A closed subscriber does not keep the others' batches from being held ...
    b.close()
    bus.publish("db", "autogen", batches[2])
    flush()
    assert bus.holding(loop)
    bus.release(loop)
    assert [points_of(p) for _k, p in a.drain()] == [points_of(match_batch(batches[2], a.filter))]
    # ... and a stalled reader's run is queued as copies of its parts (small shares of their
    # batches: one host of ten).
    a.stalled = True
    ten = [WriteBatch.from_points([(f"cpu,host=h{i % 10}", "v", FieldType.FLOAT, t0 + i, 1.0)
                                   for i in range(30)]) for t0 in (1000, 2000)]
    for wb in ten:
        bus.publish("db", "autogen", wb)
    flush()
    bus.release(loop)
    assert [type(p).__name__ for p in a._queue] == ["WriteBatch", "WriteBatch"]
    assert a.held_points == a.queued_points == 6
    assert [points_of(p) for _k, p in a.drain()] == [points_of(match_batch(wb, a.filter)) for wb in ten]


def test_a_publisher_on_the_loop_delivers_at_once_and_the_hand_off_then_finds_nothing():
    bus = Bus()
    loop = CountingLoop()
    sub = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu"), loop=loop)
    bus.publish("db", "autogen", _batch(5))
    bus.publish("db", "autogen", _batch(4, t0=10))
    assert sub.delivered == 0 and len(loop.calls) == 1
    bus.deliver_pending(loop)
    assert sub.delivered == 9 and [p.n_values for _k, p in sub.drain()] == [5, 4]
    loop.run()
    assert sub.delivered == 9 and not sub._queue


def test_a_lagging_reader_queues_copies_of_small_parts_not_whole_batches():
    async def main():
        bus = Bus()
        # Bound 150 points: once the queue keeps HOLD_FACTOR x 150 = 2400 published points
        # alive (80 batches of 30), later parts are copied out.
        one = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu", tags=tx.TagEquals("host", "h1")),
                            max_points=150)
        assert HOLD_FACTOR == 16
        ten_hosts = WriteBatch.from_points([(f"cpu,host=h{i % 10}", "v", FieldType.FLOAT, i, 1.0)
                                            for i in range(30)])
        for _ in range(40):
            _publish_from_thread(bus, ten_hosts)
        deadline = asyncio.get_running_loop().time() + 10
        while one.delivered < 120 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        # 40 batches: all kept whole (40 x 30 < 2400) ...
        assert [type(b).__name__ for b in one._queue] == ["MatchedBatch"] * 40
        assert one.held_points == 40 * 30
        items = one.drain()
        assert one.held_points == 0
        # ... until the reader is stalled: from then on parts are copied.
        one.stalled = True
        for _ in range(10):
            _publish_from_thread(bus, ten_hosts)
        while one.delivered < 150 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        assert [type(b).__name__ for b in one._queue] == ["WriteBatch"] * 10
        assert one.held_points == 30
        items = one.drain()
        assert sum(p.n_values for _k, p in items) == 30
        assert all(p.keys[s] == b"cpu,host=h1" for _k, p in items for c in p.columns for s in c.series.tolist())
    asyncio.run(main())


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("q", [
    "SELECT value FROM cpu WHERE host = 'a' AND region = 'b' AND dc = 'c'",
    "SELECT * FROM cpu WHERE host = 'a' AND region = 'b' AND dc = 'c'",
    "SELECT value, free, host, dc, nothere FROM cpu WHERE host = 'b' AND region = 'a' AND dc = 'a'",
    "SELECT value FROM cpu WHERE host = 'a' AND region = 'a' AND dc = 'a' AND value > 0.4",
    "SELECT free FROM cpu WHERE host = 'c' AND region = 'c' AND dc = 'c' AND time >= 1300 AND time < 2600",
    "SELECT * FROM cpu WHERE host = 'a' AND region = 'b' AND dc = 'b' GROUP BY host, region",
    "SELECT value::tag, host::field, host FROM cpu WHERE host = 'a' AND region = 'b' AND dc = 'b'",
])
def test_one_key_slices_of_combined_rows_equal_the_general_path(seed, q):
    """``_key_series`` (a stream of one series: slices of the combined rows) == the general
    ``_measurement_series`` over the same rows, whatever the projection, residual, time range
    and GROUP BY; every key of the combined batches is tried."""
    from chronosdb.pubsub.streaming import _Combined, _key_series, _measurement_series
    rng = random.Random(seed)
    plan = _plan(q, fields=("value", "free"))
    shareds = []
    for j in range(rng.randint(1, 4)):
        pts = []
        for _ in range(rng.randint(1, 80)):
            tags = {k: rng.choice(["a", "b", "c"]) for k in ("host", "region", "dc") if rng.random() < 0.9}
            pts.append((make_key(rng.choice(["cpu", "mem"]), tags), rng.choice(["value", "free"]),
                        FieldType.FLOAT, 1000 * j + rng.randint(0, 2000), rng.random()))
        shareds.append(_shared(WriteBatch.from_points(pts)))
    comb = _Combined(tuple(shareds))
    for g in range(len(comb.key_list)):
        a, b = int(comb.key_start[g]), int(comb.key_end[g])
        if a == b or comb.info_list[g][0] != b"cpu":
            continue
        want = _measurement_series(plan, comb.rows, np.arange(a, b), comb.key_list, comb.info_list, b"cpu")
        assert _series_dump(_key_series(plan, comb, a, b, g)) == _series_dump(want), comb.key_list[g]


def test_a_reader_far_behind_queues_copies_once_its_held_batches_pass_the_factor():
    async def main():
        bus = Bus()
        # Bound 50 points; a part is 1 point of a 100-point batch: 8 whole batches (800 =
        # HOLD_FACTOR x 50 points kept alive), then copies.
        one = bus.subscribe(SubscriptionFilter("db", measurement=b"cpu", tags=tx.TagEquals("host", "h1")),
                            max_points=50)
        hundred = WriteBatch.from_points([(f"cpu,host=h{i}", "v", FieldType.FLOAT, i, 1.0) for i in range(100)])
        for _ in range(20):
            _publish_from_thread(bus, hundred)
        deadline = asyncio.get_running_loop().time() + 10
        while one.delivered < 20 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.001)
        assert [type(b).__name__ for b in one._queue] == ["MatchedBatch"] * 8 + ["WriteBatch"] * 12
        assert one.held_points == 8 * 100 + 12
    asyncio.run(main())


def _rows_dump(comb):
    r = comb.rows
    return (r.series.tolist(), r.times.tolist(), comb.key_start.tolist(), comb.key_end.tolist(),
            {k: (v.tolist(), va.tolist(), kind) for k, (v, va, kind) in sorted(r.fields.items())})


@pytest.mark.parametrize("seed", range(40))
def test_combined_rows_by_counting_sort_equal_the_sorted_merge(seed):
    """``_Combined._group`` (points grouped by series, no sort) gives exactly the rows of
    ``_Combined._sort`` (per-batch rows merged, then one lexsort) whenever it applies, and
    declines (the caller sorts) when a batch has a series' times out of order or twice."""
    from chronosdb.pubsub.streaming import _Combined
    rng = random.Random(seed)
    shareds = []
    messy = seed % 3 == 0                   # times out of order, or twice for a series
    ragged = seed % 3 == 1                  # lines carry different fields
    for j in range(rng.randint(1, 5)):
        lines = []
        t = 1000 * j
        for _ in range(rng.randint(1, 60)):
            t += rng.choice([0, 1, 5]) if messy else rng.choice([1, 5])
            ts = t if not messy or rng.random() < 0.8 else t - rng.randint(0, 20)
            key = make_key(rng.choice(["cpu", "mem"]), {"host": rng.choice("abcd")})
            every = [("value", FieldType.FLOAT), ("n", FieldType.INTEGER), ("ok", FieldType.BOOLEAN)]
            # clean: every line of a batch carries the same fields (all three, or only "value")
            fields = rng.sample(every, rng.randint(1, 3)) if ragged else (every if j % 2 == 0 else every[:1])
            for name, ft in fields:
                v = rng.random() if ft is FieldType.FLOAT else (rng.randint(-5, 5) if ft is FieldType.INTEGER
                                                                 else rng.random() < 0.5)
                lines.append((key, name, ft, ts, v))
        shareds.append(_shared(WriteBatch.from_points(lines)))
    comb = _Combined(tuple(shareds))
    ref = _Combined.__new__(_Combined)
    ref.key_list, ref.info_list, ref.gid_of = comb.key_list, comb.info_list, comb.gid_of
    ref._sort(tuple(shareds))
    assert _rows_dump(comb) == _rows_dump(ref)
    fast = _Combined.__new__(_Combined)
    fast.key_list, fast.info_list, fast.gid_of = comb.key_list, comb.info_list, comb.gid_of
    if not messy and not ragged:
        assert fast._group(tuple(shareds)), "clean batches are grouped without a sort"
        assert _rows_dump(fast) == _rows_dump(ref)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("epoch", [None, "ns", "ms"])
def test_one_series_events_equal_the_general_formatting(seed, epoch):
    """The bulk writer of one-series streams (``one_series_events``: rows from the combined
    rows straight to bytes) gives, byte for byte, the event data of the general path
    (``raw_series_many`` then ``encode_data``), including empty answers and time ranges; and it
    declines the streams it cannot serve."""
    from chronosdb.pubsub.streaming import combined_rows, one_series_events, one_series_spec
    from chronosdb.server.handlers.stream import encode_data
    rng = random.Random(seed)
    shareds = []
    for j in range(rng.randint(1, 4)):
        pts, t = [], 1000 * j
        for _ in range(rng.randint(1, 50)):
            t += rng.choice([1, 3, 7])
            key = make_key(rng.choice(["cpu", "mem"]), {"host": rng.choice("abc"), "dc": rng.choice("xy")})
            pts.append((key, "value", FieldType.FLOAT, t, rng.choice([rng.random(), 1e22, -0.0, 3.0])))
            pts.append((key, "n", FieldType.INTEGER, t, rng.randint(-9, 9)))
        shareds.append(_shared(WriteBatch.from_points(pts)))
    queries = [
        "SELECT value FROM cpu WHERE host = 'a' AND dc = 'x'",
        "SELECT n, value AS v, missing FROM cpu WHERE host = 'b' AND dc = 'y'",
        "SELECT value FROM mem WHERE host = 'c' AND dc = 'x' AND time >= 1020 AND time <= 2100",
        "SELECT value FROM cpu WHERE host = 'a' AND dc = 'y' GROUP BY host",
        "SELECT value FROM cpu WHERE host = 'a'",                  # two series (mostly): declined
        "SELECT value, host FROM cpu WHERE host = 'b' AND dc = 'x'",  # a tag column: declined
        "SELECT value FROM mem WHERE host = 'a' AND dc = 'y' AND time > 9000",   # no row in range
    ]
    plans = [_plan(q, fields=("value", "n")) for q in queries]
    comb = combined_rows(tuple(shareds))
    requests = [(p, one_series_spec(p), epoch, {}) for p in plans]
    got = one_series_events(comb, requests)
    served = 0
    for p, r in zip(plans, got):
        parts = [(MatchedBatch(sh, match_keys(sh, p.filter.measurement, None, p.filter.tags)), None)
                 for sh in shareds]
        parts = [(b, a) for b, a in parts if len(b.key_idx)]
        series = raw_series_many(p, parts, KeyInfo()) if parts else []
        if r is False:
            continue
        served += 1
        if r is None:
            assert series == [] or all(len(s.times) == 0 for s in series)
        else:
            assert r[0] == encode_data(series, epoch)
            assert r[1] == max(int(s.times.max()) for s in series)
    assert got[5] is False
    assert served >= 3


def test_a_stream_connection_reports_a_full_send_buffer_to_its_response():
    """The transport's pause/resume reach ``Response.on_flow``: how a stalled client marks its
    subscription (``StreamSession.flow`` -> ``Subscription.stalled``, then parts are copied)."""
    from chronosdb.server.http.messages import Response
    from chronosdb.server.http.protocol import StreamConnection
    seen = []
    conn = StreamConnection(None, Response(200, b"", "text/event-stream", on_flow=seen.append), b"", "x")
    conn.pause_writing()
    assert seen == [True] and not conn.can_write.is_set()
    conn.resume_writing()
    assert seen == [True, False] and conn.can_write.is_set()
    StreamConnection(None, Response(200), b"", "x").pause_writing()   # no hook: nothing to call
