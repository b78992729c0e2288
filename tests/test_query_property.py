"""Property: aggregates computed from block stats + Cython kernels equal a plain recomputation.

Random data goes through the real engine (compacted segment blocks, a cache on top, overwrites
and deletes), random windows and ranges go through the real SELECT executor, and the answer is
compared with numpy over the same points kept in memory.
"""
from __future__ import annotations

import numpy as np
import pytest
from queryhelp import AllowAll
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronosdb.model.batch import FieldColumn, WriteBatch
from chronosdb.model.fieldtype import FieldType
from chronosdb.query.influxql import parse
from chronosdb.query.statements import QueryContext, execute
from chronosdb.storage.engine import Engine, EngineOptions

T0 = 1_451_606_400 * 10**9
S = 10**9


def _write_hosts(e, rng) -> dict:
    """3 series (hosts h0-h2) of 6000 points at irregular times, written and fully compacted;
    {host number: {time: value}}."""
    truth = {}
    for h in range(3):
        key = f"m,host=h{h}".encode()
        # + h ns: no two hosts share a timestamp, so first()/last() have no cross-series ties
        t = T0 + np.sort(rng.choice(40_000, 6000, replace=False)).astype(np.int64) * S + h
        v = np.round(rng.normal(50, 20, 6000), 2)
        e.write("db", WriteBatch([key], [FieldColumn(b"v", FieldType.FLOAT, np.zeros(6000, np.int32), t, v)]))
        truth[h] = dict(zip(t.tolist(), v.tolist()))
    e.compact_all(full=True)
    return truth


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """3 series of 6000 points at irregular times; compacted, then partly overwritten and
    deleted so some blocks cannot be answered from their stats."""
    rng = np.random.default_rng(42)
    e = Engine(str(tmp_path_factory.mktemp("prop") / "d"), EngineOptions(background=False))
    e.create_database("db")
    truth = _write_hosts(e, rng)
    # overwrite some points (newer data over compacted blocks) and add cache-only points
    for h in range(3):
        key = f"m,host=h{h}".encode()
        ts = sorted(rng.choice(list(truth[h]), 40, replace=False).tolist())
        extra = (T0 + np.arange(41_000, 41_050) * S + h).tolist()
        allt = np.array(ts + extra, dtype=np.int64)
        vals = np.round(rng.normal(0, 100, len(allt)), 2)
        e.write("db", WriteBatch([key], [FieldColumn(b"v", FieldType.FLOAT, np.zeros(len(allt), np.int32), allt, vals)]))
        truth[h].update(zip(allt.tolist(), vals.tolist()))
    # delete a range from host h1
    lo, hi = T0 + 10_000 * S, T0 + 12_000 * S
    from chronosdb.model.tagexpr import TagEquals

    e.delete("db", [b"m"], TagEquals(b"host", b"h1"), lo, hi)
    truth[1] = {t: v for t, v in truth[1].items() if not lo <= t <= hi}
    yield e, truth
    e.close()


@pytest.fixture(scope="module")
def segments_only(tmp_path_factory):
    """The same kind of data, compacted and nothing else: no cache, no tombstone, so GROUP BY
    windows shorter than a block take the fused scan (one series or several)."""
    rng = np.random.default_rng(7)
    e = Engine(str(tmp_path_factory.mktemp("prop2") / "d"), EngineOptions(background=False))
    e.create_database("db")
    truth = _write_hosts(e, rng)
    yield e, truth
    e.close()


def brute(truth, hosts, lo, hi, every, func):
    pts = sorted((t, v) for h in hosts for t, v in truth[h].items() if lo <= t <= hi)
    if not pts:
        return {}
    t = np.array([p[0] for p in pts], dtype=np.int64)
    v = np.array([p[1] for p in pts])
    start = (lo // every) * every
    w = (t - start) // every
    out = {}
    for wi in np.unique(w).tolist():
        vv = v[w == wi]
        tt = t[w == wi]
        if func == "count":
            r = len(vv)
        elif func == "sum":
            r = vv.sum()
        elif func == "mean":
            r = vv.mean()
        elif func == "min":
            r = vv.min()
        elif func == "max":
            r = vv.max()
        elif func == "spread":
            r = vv.max() - vv.min()
        elif func == "first":
            r = vv[np.argmin(tt)]
        else:
            r = vv[np.argmax(tt)]
        out[start + wi * every] = r
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, 42_000), span=st.integers(1, 42_000),
       every=st.sampled_from([7, 60, 600, 3600, 7200, 86_400]),
       func=st.sampled_from(["count", "sum", "mean", "min", "max", "spread", "first", "last"]),
       host=st.sampled_from([None, 0, 1, 2]))
def test_windowed_aggregates_equal_brute_force(world, a, span, every, func, host):
    _check_windows(world, a, span, every, func, host)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, 42_000), span=st.integers(1, 42_000),
       every=st.sampled_from([7, 60, 600, 3600]),
       func=st.sampled_from(["count", "sum", "mean", "min", "max", "spread", "first", "last"]),
       host=st.sampled_from([None, 0, 1, 2]))
def test_fused_scans_equal_brute_force(segments_only, a, span, every, func, host):
    _check_windows(segments_only, a, span, every, func, host)


def _check_windows(world, a, span, every, func, host):
    e, truth = world
    lo, hi = T0 + a * S, T0 + (a + span) * S
    where = f"time >= {lo} AND time <= {hi}"
    if host is not None:
        where += f" AND host = 'h{host}'"
    q = f"SELECT {func}(v) FROM m WHERE {where} GROUP BY time({every}s) fill(none)"
    (res,) = execute(parse(q), QueryContext(e, "db", None, AllowAll()))
    assert res.error is None, res.error
    got = {}
    if res.series:
        (s,) = res.series
        col = s.columns[0]
        for i, t in enumerate(s.times.tolist()):
            if col.valid is None or col.valid[i]:
                got[t] = col.values[i]
    hosts = [host] if host is not None else [0, 1, 2]
    exp = brute(truth, hosts, lo, hi, every * S, func)
    assert set(got) == set(exp)
    for t in exp:
        assert got[t] == pytest.approx(exp[t], rel=1e-9, abs=1e-9), (t, func)
