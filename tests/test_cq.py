"""Continuous queries in-process: the pure schedule, and the service driven "as of" chosen
instants over a real engine in a temp dir (no wall-clock waiting).

The headline claim of the issue is checked by name: a CQ downsamples 1 h of 10 s data into 5 m
means equal to the same SELECT run by hand, and catches up after the server was down for three
windows (a restart is a new Engine + service over the same data dir).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from queryhelp import AllowAll

from chronosdb.cq import ContinuousQueryService
from chronosdb.cq.schedule import MAX_CATCHUP_WINDOWS, Timing, first_last_run, floor_to, next_run_after, plan_run, timing_of
from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.query import statements
from chronosdb.query.influxql import ParseError, parse, parse_statement
from chronosdb.server.metrics import Metrics
from chronosdb.storage.engine import Engine

S = 1_000_000_000
M = 60 * S
H = 60 * M
T0 = 1_700_000_000 * S // H * H  # an hour boundary


# --- the pure schedule ------------------------------------------------------------------------

def _timing(text):
    return timing_of(parse_statement(text))


def test_timing_defaults_follow_influxdb():
    t = _timing("CREATE CONTINUOUS QUERY c ON db BEGIN SELECT mean(v) INTO x FROM m GROUP BY time(5m) END")
    assert t == Timing(5 * M, 0, 5 * M, 5 * M)
    t = _timing("CREATE CONTINUOUS QUERY c ON db RESAMPLE EVERY 10m BEGIN SELECT mean(v) INTO x FROM m GROUP BY time(5m) END")
    assert t.every == 10 * M and t.for_ == 10 * M  # FOR defaults to EVERY when EVERY is longer
    t = _timing("CREATE CONTINUOUS QUERY c ON db BEGIN SELECT mean(v) INTO x FROM m GROUP BY time(1h, -15m) END")
    assert t.offset == 45 * M


def test_default_run_computes_the_window_that_just_closed():
    t = Timing(5 * M, 0, 5 * M, 5 * M)
    last = first_last_run(T0 + 2 * M, t)
    assert last == T0
    assert plan_run(t, T0 + 4 * M, last, None) is None  # not due yet
    p = plan_run(t, T0 + 5 * M + 300, last, None)
    assert (p.start, p.end, p.last_run) == (T0, T0 + 5 * M, T0 + 5 * M)


def test_resample_for_recomputes_older_windows():
    t = Timing(5 * M, 0, 5 * M, 15 * M)
    p = plan_run(t, T0 + 20 * M, T0 + 15 * M, T0 + 15 * M)
    assert (p.start, p.end) == (T0 + 5 * M, T0 + 20 * M)


def test_resample_every_shorter_than_interval_includes_current_window():
    # InfluxDB docs: RESAMPLE EVERY 30m on GROUP BY time(1h): at 8:30 it computes [8:00, 9:00).
    t = Timing(H, 0, 30 * M, H)
    p = plan_run(t, T0 + 30 * M, T0, T0)
    assert (p.start, p.end) == (T0, T0 + H)


def test_offset_moves_the_run_instants_and_windows():
    t = Timing(H, 15 * M, H, H)
    assert next_run_after(T0 + 15 * M, t) == T0 + H + 15 * M
    p = plan_run(t, T0 + H + 15 * M, T0 + 15 * M, None)
    assert (p.start, p.end) == (T0 + 15 * M, T0 + H + 15 * M)


def test_missed_runs_are_caught_up_in_one_range_and_bounded():
    t = Timing(5 * M, 0, 5 * M, 5 * M)
    # last run at T0+10m (it computed [T0+5m, T0+10m)); down until T0+27m
    p = plan_run(t, T0 + 27 * M, T0 + 10 * M, T0 + 10 * M)
    assert (p.start, p.end) == (T0 + 10 * M, T0 + 25 * M)
    # a failed run's windows are retried: last_end stays behind the schedule
    p = plan_run(t, T0 + 30 * M, T0 + 25 * M, T0 + 10 * M)
    assert (p.start, p.end) == (T0 + 10 * M, T0 + 30 * M)
    # a very long outage is bounded
    p = plan_run(t, T0 + 10_000 * 5 * M, T0, T0, max_windows=100)
    assert p.end - p.start == 100 * 5 * M


def test_floor_to_matches_a_slow_definition():
    rng = random.Random(7)
    for _ in range(2000):
        step = rng.randint(1, 10_000)
        off = rng.randint(0, step - 1)
        t = rng.randint(-10**9, 10**9)
        f = floor_to(t, step, off)
        assert f <= t < f + step and (f - off) % step == 0


# --- the service over a real engine -----------------------------------------------------------

def _cpu_batch(start, n, step=10 * S, hosts=("a", "b"), seed=1):
    rng = np.random.default_rng(seed)
    keys = [f"cpu,host={h}".encode() for h in hosts]
    times = start + np.arange(n, dtype=np.int64) * step
    series = np.repeat(np.arange(len(hosts), dtype=np.int32), n)
    values = rng.normal(50, 10, n * len(hosts))
    return WriteBatch(keys, [FieldColumn(b"value", FieldType.FLOAT, series, np.tile(times, len(hosts)), values)])


def _query(engine, text, now=T0):
    ctx = statements.QueryContext(engine, "db", None, AllowAll(), now=now)
    results = statements.execute(parse(text), ctx)
    return results


def _rows(engine, text):
    """{(tags, time): {column: value}} of a SELECT's answer."""
    res = _query(engine, text)[0]
    assert res.error is None, res.error
    out = {}
    for s in res.series:
        tags = tuple(sorted((s.tags or {}).items()))
        for i, t in enumerate(s.times):
            out[(tags, int(t))] = {c.name: (None if c.valid is not None and not c.valid[i] else c.values[i])
                                   for c in s.columns}
    return out


def _rows_by_host(engine, text):
    """Like _rows, but the downsampled measurement keeps host as a tag column: key by it."""
    res = _query(engine, text)[0]
    assert res.error is None, res.error
    out = {}
    for s in res.series:
        cols = {c.name: c for c in s.columns}
        hosts = cols["host"].values.to_list()
        for i, t in enumerate(s.times):
            out[(hosts[i].decode(), int(t))] = float(cols["mean"].values[i])
    return out


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def _open(data_dir, metrics=None):
    engine = Engine(data_dir)
    engine.create_database("db")
    svc = ContinuousQueryService(engine, data_dir, clock=lambda: T0, metrics=metrics)
    statements.attach_services(engine, svc)
    return engine, svc


def _expected_means(engine, start, end):
    got = _rows(engine, f"SELECT mean(value) FROM cpu WHERE time >= {start} AND time < {end} GROUP BY time(5m), host")
    return {(dict(tags)["host"], t): float(v["mean"]) for (tags, t), v in got.items()}


def test_cq_downsamples_1h_of_10s_data_like_the_same_select_by_hand_and_catches_up_after_three_windows_down(data_dir):
    metrics = Metrics()
    engine, svc = _open(data_dir, metrics)
    engine.write("db", _cpu_batch(T0, 360))  # 1 h of 10 s points, two hosts
    r = _query(engine, "CREATE CONTINUOUS QUERY down5m ON db BEGIN SELECT mean(value) INTO cpu_5m FROM cpu "
                       "GROUP BY time(5m), * END")
    assert r[0].error is None
    # The server runs the CQ at each 5 m boundary of the first half hour.
    for k in range(1, 7):
        ran = svc.run_due(T0 + k * 5 * M + 20 * S)
        assert [(o.start, o.end, o.error) for _q, o in ran] == [(T0 + (k - 1) * 5 * M, T0 + k * 5 * M, None)]
    assert svc.run_due(T0 + 34 * M) == []  # nothing due between boundaries
    engine.close()

    # Down from T0+34m to T0+52m: the runs at 35m, 40m, 45m and 50m were missed.
    engine, svc = _open(data_dir, metrics)
    ran = svc.run_due(T0 + 52 * M)
    assert [(o.start, o.end) for _q, o in ran] == [(T0 + 30 * M, T0 + 50 * M)]  # one ranged catch-up run
    svc.run_due(T0 + 55 * M + 1)
    svc.run_due(T0 + 60 * M + 1)

    got = _rows_by_host(engine, "SELECT mean, host FROM cpu_5m")
    want = _expected_means(engine, T0, T0 + H)
    assert len(want) == 24
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k]

    st = svc.stats[("db", "down5m")]
    assert st.errors == 0 and st.runs == 3  # stats count runs since this start
    assert metrics.get("cq_runs_total", database="db", cq="down5m") == 9
    assert metrics.get("cq_points_written_total", database="db", cq="down5m") == 24
    engine.close()


def _counts(engine):
    return {t: int(v["count"]) for (_g, t), v in _rows(engine, "SELECT count FROM n").items() if v["count"]}


def test_late_points_inside_resample_for_are_recomputed(data_dir):
    engine, svc = _open(data_dir)
    engine.write("db", _cpu_batch(T0, 60, hosts=("a",)))  # 10 minutes
    _query(engine, "CREATE CONTINUOUS QUERY c ON db RESAMPLE FOR 15m BEGIN SELECT count(value) INTO n FROM cpu "
                   "GROUP BY time(5m) END")
    svc.run_due(T0 + 10 * M)
    # (count() of an empty window is 0, not null, so the runs also write zeros before T0, exactly
    # as the same SELECT INTO by hand does; only the non-empty windows matter here)
    before = _counts(engine)
    assert before == {T0: 30, T0 + 5 * M: 30}
    # Late points: one into [T0, T0+5m) (still inside FOR at the next run), and the next window
    late = WriteBatch([b"cpu,host=late"], [FieldColumn(b"value", FieldType.FLOAT, np.zeros(2, np.int32),
                                                        np.array([T0 + 5 * S, T0 + 11 * M], np.int64),
                                                        np.array([1.0, 2.0]))])
    engine.write("db", late)
    svc.run_due(T0 + 15 * M)
    assert _counts(engine) == {T0: 31, T0 + 5 * M: 30, T0 + 10 * M: 1}
    # Once a window is older than FOR, late points there are no longer picked up.
    engine.write("db", WriteBatch([b"cpu,host=late"], [FieldColumn(b"value", FieldType.FLOAT, np.zeros(1, np.int32),
                                                                    np.array([T0 + 7 * S], np.int64), np.array([3.0]))]))
    svc.run_due(T0 + 25 * M)
    assert _counts(engine)[T0] == 31
    engine.close()


def test_measurement_placeholder_and_regex_from(data_dir):
    engine, svc = _open(data_dir)
    _query(engine, "CREATE RETENTION POLICY coarse ON db DURATION 0s REPLICATION 1")
    engine.write("db", _cpu_batch(T0, 30, hosts=("a",)))
    mem = _cpu_batch(T0, 30, hosts=("a",), seed=2)
    mem.keys = [b"mem,host=a"]
    engine.write("db", mem)
    engine.write("db", WriteBatch([b"disk,host=a"], [FieldColumn(b"value", FieldType.FLOAT, np.zeros(1, np.int32),
                                                                  np.array([T0], np.int64), np.array([1.0]))]))
    r = _query(engine, "CREATE CONTINUOUS QUERY c ON db BEGIN SELECT max(value) INTO db.coarse.:MEASUREMENT "
                       "FROM /^(cpu|mem)$/ GROUP BY time(5m), * END")
    assert r[0].error is None
    ran = svc.run_due(T0 + 5 * M)
    assert ran[0][1].error is None
    for m in ("cpu", "mem"):
        got = _rows(engine, f"SELECT max FROM coarse.{m}")
        want = _rows(engine, f"SELECT max(value) FROM {m} WHERE time >= {T0} AND time < {T0 + 5 * M} GROUP BY time(5m), host")
        assert [float(v["max"]) for v in got.values()] == [float(v["max"]) for v in want.values()]
    assert _rows(engine, "SELECT * FROM coarse.disk") == {}
    engine.close()


INFLUX_NORMALISED = [
    # (statement, what InfluxDB 1.6.7 answers in SHOW CONTINUOUS QUERIES; checked by hand
    # against influxd 1.6.7, see docs/continuous-queries.md)
    ("CREATE CONTINUOUS QUERY cq1 ON db BEGIN SELECT mean(value) INTO db.autogen.m5 FROM cpu GROUP BY time(5m), * END",
     "CREATE CONTINUOUS QUERY cq1 ON db BEGIN SELECT mean(value) INTO db.autogen.m5 FROM db.autogen.cpu GROUP BY time(5m), * END"),
    ("CREATE CONTINUOUS QUERY cq7 ON db RESAMPLE EVERY 10m BEGIN SELECT mean(value) INTO m5 FROM cpu GROUP BY time(5m) END",
     "CREATE CONTINUOUS QUERY cq7 ON db RESAMPLE EVERY 10m BEGIN SELECT mean(value) INTO db.autogen.m5 FROM db.autogen.cpu GROUP BY time(5m) END"),
    ("CREATE CONTINUOUS QUERY cq9 ON db BEGIN SELECT mean(value) INTO m5 FROM cpu WHERE time > now() - 1h GROUP BY time(5m) END",
     "CREATE CONTINUOUS QUERY cq9 ON db BEGIN SELECT mean(value) INTO db.autogen.m5 FROM db.autogen.cpu WHERE time > now() - 1h GROUP BY time(5m) END"),
    ("CREATE CONTINUOUS QUERY \"Cq 2\" ON db RESAMPLE EVERY 1m FOR 10m BEGIN select MEAN(\"value\") as v, max(value) "
     "into db.autogen.:MEASUREMENT from /c.*/, mem where host='a' group by time(5m,1m), host fill(none) END",
     "CREATE CONTINUOUS QUERY \"Cq 2\" ON db RESAMPLE EVERY 1m FOR 10m BEGIN SELECT mean(value) AS v, max(value) "
     "INTO db.autogen.:MEASUREMENT FROM db.autogen./c.*/, db.autogen.mem WHERE host = 'a' GROUP BY time(5m, 1m), host fill(none) END"),
    ("CREATE CONTINUOUS QUERY c8 ON db BEGIN SELECT mean(value) INTO m FROM (SELECT value FROM cpu) GROUP BY time(1m) END",
     "CREATE CONTINUOUS QUERY c8 ON db BEGIN SELECT mean(value) INTO db.autogen.m FROM (SELECT value FROM db.autogen.cpu) GROUP BY time(1m) END"),
]


def test_show_continuous_queries_answers_influxdbs_normalised_text(data_dir):
    engine, svc = _open(data_dir)
    engine.create_database("empty")
    for stmt, _ in INFLUX_NORMALISED:
        assert _query(engine, stmt)[0].error is None, stmt
    res = _query(engine, "SHOW CONTINUOUS QUERIES")[0]
    by_name = {s.name: s for s in res.series}
    assert set(by_name) == {"db", "empty"}
    assert [c.name for c in by_name["db"].columns] == ["name", "query"]
    queries = [q.decode() for q in by_name["db"].columns[1].values.to_list()]
    assert queries == [want for _, want in INFLUX_NORMALISED]
    assert len(by_name["empty"]) == 0
    engine.close()
    # definitions survive a restart, in creation order
    engine, svc = _open(data_dir)
    assert [q.query for q in svc.list()] == [want for _, want in INFLUX_NORMALISED]
    engine.close()


@pytest.mark.parametrize("text, error", [
    ("CREATE CONTINUOUS QUERY c ON db BEGIN SELECT mean(value) INTO m5 FROM cpu END", "expected GROUP BY time(...)"),
    ("CREATE CONTINUOUS QUERY c ON db BEGIN SELECT mean(value) FROM cpu GROUP BY time(5m) END", "found FROM, expected INTO"),
    ("CREATE CONTINUOUS QUERY c ON db RESAMPLE FOR 1m BEGIN SELECT mean(value) INTO m5 FROM cpu GROUP BY time(5m) END",
     "FOR duration must be >= GROUP BY time duration: must be a minimum of 5m, got 1m"),
])
def test_invalid_continuous_queries_are_parse_errors_as_in_influxdb(text, error):
    with pytest.raises(ParseError) as e:
        parse(text)
    assert error in str(e.value)


def test_statement_errors(data_dir):
    engine, svc = _open(data_dir)
    cq = "CREATE CONTINUOUS QUERY c ON {db} BEGIN SELECT mean(value) INTO {into} FROM {src} GROUP BY time(5m) END"
    assert _query(engine, cq.format(db="nodb", into="m", src="cpu"))[0].error == "database not found: nodb"
    assert _query(engine, cq.format(db="db", into="m", src="other.autogen.cpu"))[0].error == "database not found: other"
    assert _query(engine, cq.format(db="db", into='"no rp".m', src="cpu"))[0].error == "retention policy not found: db.no rp"
    assert _query(engine, cq.format(db="db", into="m", src="cpu"))[0].error is None
    assert _query(engine, cq.format(db="db", into="m", src="cpu"))[0].error is None  # the same again: fine
    assert _query(engine, cq.format(db="db", into="m2", src="cpu"))[0].error == "continuous query already exists"
    assert _query(engine, "DROP CONTINUOUS QUERY nope ON db")[0].error is None
    assert _query(engine, "DROP CONTINUOUS QUERY c ON nodb")[0].error is None
    assert [q.name for q in svc.list()] == ["c"]
    assert _query(engine, "DROP DATABASE db")[0].error is None
    assert svc.list() == [] and svc.run_state.state == {}
    engine.close()


def test_a_failing_run_is_recorded_and_its_windows_retried(data_dir):
    metrics = Metrics()
    engine, svc = _open(data_dir, metrics)
    engine.write("db", _cpu_batch(T0, 60, hosts=("a",)))
    _query(engine, "CREATE CONTINUOUS QUERY c ON db BEGIN SELECT mean(value) INTO out FROM cpu GROUP BY time(5m) END")
    # "out" gets an integer field "mean" first, so the CQ's float means conflict with it
    engine.write("db", WriteBatch([b"out"], [FieldColumn(b"mean", FieldType.INTEGER, np.zeros(1, np.int32),
                                                          np.array([T0 - H], np.int64), np.array([1]))]))
    (_q, out), = svc.run_due(T0 + 5 * M)
    assert out.error and "field type conflict" in out.error
    assert metrics.get("cq_run_errors_total", database="db", cq="c") == 1
    stats = {s["tags"]["name"]: s for s in svc.stats_rows(lambda db: True)}
    assert stats["c"]["values"][0][1] == 1 and "conflict" in stats["c"]["values"][0][-1]
    _query(engine, "DROP MEASUREMENT out")
    (_q, out), = svc.run_due(T0 + 10 * M)
    assert out.error is None and (out.start, out.end) == (T0, T0 + 10 * M)  # the failed window again
    assert len(_rows(engine, "SELECT mean FROM out")) == 2
    engine.close()


def test_user_time_conditions_are_replaced_by_the_schedule(data_dir):
    engine, svc = _open(data_dir)
    engine.write("db", _cpu_batch(T0, 60, hosts=("a",)))
    _query(engine, "CREATE CONTINUOUS QUERY c ON db BEGIN SELECT count(value) INTO n FROM cpu "
                   f"WHERE time > {T0 + 9 * M} AND host = 'a' GROUP BY time(5m) END")
    svc.run_due(T0 + 5 * M)
    assert [v["count"] for v in _rows(engine, "SELECT count FROM n").values()] == [30]
    engine.close()


def test_catch_up_is_bounded(data_dir):
    engine, svc = _open(data_dir)
    svc.max_catchup_windows = 3
    engine.write("db", _cpu_batch(T0, 360, hosts=("a",)))
    _query(engine, "CREATE CONTINUOUS QUERY c ON db BEGIN SELECT count(value) INTO n FROM cpu GROUP BY time(5m) END")
    (_q, out), = svc.run_due(T0 + H)
    assert (out.start, out.end) == (T0 + 45 * M, T0 + H)
    assert MAX_CATCHUP_WINDOWS >= 1000
    engine.close()


def test_the_statement_cache_does_not_skip_the_for_check():
    ok = "CREATE CONTINUOUS QUERY c ON db RESAMPLE FOR 10m BEGIN SELECT mean(v) INTO m FROM cpu GROUP BY time(5m) END"
    bad = ok.replace("time(5m)", "time(20m)")
    assert parse(ok) == parse(ok)  # the shape is cached now
    with pytest.raises(ParseError, match="must be a minimum of 20m, got 10m"):
        parse(bad)
