"""InfluxDB 1.6.7 compatibility: every query in queries.txt, asked of InfluxDB and of ChronosDB.

Both servers start once for the module (InfluxDB through bench.peers, ChronosDB through
tests/serverproc), both get the data set of dataset.py in database ``compat``, and each query
becomes one test case that sends the same request to both over a kept-alive connection and
compares the answers:

  - HTTP status must match. A 400 must carry ``error`` on both sides; the wording may differ,
    and where it does the test emits a ``WordingDiffers`` warning naming both messages (pytest
    lists them in its warnings summary), so the differences are recorded without failing.
  - For a 200, ``results`` must have the same statement ids in the same order; a result with
    ``error`` must have one on both sides (wording again only warned about); otherwise the
    same series in the same order, each with the same name, tags, columns and rows. Floats
    compare to 1e-9 relative; integers and strings exactly. A number InfluxDB prints without a
    decimal point (Go prints 2.0 as ``2``) is compared by value, not by JSON type.

queries.txt carries per-query directives (see its header): request parameters, and for a known
InfluxDB bug, the documented answer ChronosDB is held to instead.

The module is skipped when influxd is not installed.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import tempfile
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.peers import INFLUXD, InfluxDB, PeerError
from tests.compat import dataset
from tests.serverproc import ServerProcess

QUERIES_PATH = Path(__file__).with_name("queries.txt")
REL_TOL = 1e-9
ABS_TOL = 1e-12  # for values that should be 0 but come out as a rounding residue


class WordingDiffers(UserWarning):
    """Both systems reported an error, in different words."""


# -- queries.txt ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    line: int                  # 1-based line of the query in queries.txt
    query: str
    params: dict = field(default_factory=dict)   # overrides of the default request parameters
    differs: str | None = None  # why InfluxDB's answer is not the reference
    expect: object = None      # the documented answer (JSON body) when ``differs`` is set
    unsupported: str | None = None  # a form ChronosDB does not execute yet: it must say so

    def request_params(self) -> dict:
        """q, db=compat, epoch=ns, then the overrides; an override with an empty value removes it."""
        out = {"q": self.query, "db": dataset.DATABASE, "epoch": "ns"}
        for k, v in self.params.items():
            if v == "":
                out.pop(k, None)
            else:
                out[k] = v
        return out

    @property
    def unsupported_marker(self) -> str:
        """The words our error must contain: the directive's text up to its first ' — '."""
        return self.unsupported.split(" — ")[0]

    @property
    def test_id(self) -> str:
        return f"L{self.line}:{self.query[:90]}"


def _parse_params(text: str, path: Path, line: int) -> dict:
    out = {}
    for item in text.split():
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise ValueError(f"{path}:{line}: params item {item!r} is not key=value")
        out[k] = v
    return out


def load_cases(path: Path = QUERIES_PATH) -> list[Case]:
    """The queries of ``path`` with the directives that precede each one."""
    cases: list[Case] = []
    pending: dict = {}
    for no, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            key, colon, rest = body.partition(":")
            if colon and key in ("params", "differs", "expect", "unsupported"):
                if key in pending:
                    raise ValueError(f"{path}:{no}: second '# {key}:' before a query")
                if key == "params":
                    pending["params"] = _parse_params(rest, path, no)
                elif key == "differs":
                    pending["differs"] = rest.strip()
                elif key == "unsupported":
                    pending["unsupported"] = rest.strip()
                else:
                    try:
                        pending["expect"] = json.loads(rest)
                    except ValueError as e:
                        raise ValueError(f"{path}:{no}: '# expect:' is not JSON: {e}") from None
            continue
        if ("differs" in pending) != ("expect" in pending):
            raise ValueError(f"{path}:{no}: '# differs:' and '# expect:' go together")
        cases.append(Case(no, line, **pending))
        pending = {}
    if pending:
        raise ValueError(f"{path}: directives {sorted(pending)} after the last query")
    return cases


# -- comparison ----------------------------------------------------------------------------------

def _same_value(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return type(a) is type(b) and a == b


def _compare_series(where: str, exp: dict, got: dict, diffs: list[str]) -> None:
    for key in ("name", "columns"):
        if exp.get(key) != got.get(key):
            diffs.append(f"{where}: {key} {got.get(key)!r} != expected {exp.get(key)!r}")
            return
    if (exp.get("tags") or None) != (got.get("tags") or None):
        diffs.append(f"{where}: tags {got.get('tags')!r} != expected {exp.get('tags')!r}")
        return
    if bool(exp.get("partial")) != bool(got.get("partial")):
        diffs.append(f"{where}: partial {got.get('partial')!r} != expected {exp.get('partial')!r}")
    ev, gv = exp.get("values") or [], got.get("values") or []
    if len(ev) != len(gv):
        diffs.append(f"{where}: {len(gv)} rows != expected {len(ev)}; first rows got {gv[:3]!r}, "
                     f"expected {ev[:3]!r}")
    for r, (erow, grow) in enumerate(zip(ev, gv)):
        if len(erow) != len(grow) or not all(_same_value(x, y) for x, y in zip(erow, grow)):
            diffs.append(f"{where} row {r}: {grow!r} != expected {erow!r}")
            if len(diffs) > 8:
                return


def compare_answers(exp_status: int, exp: dict, got_status: int, got: dict) -> tuple[list[str], list[str]]:
    """(differences, wording differences) between an expected and an actual /query answer."""
    diffs: list[str] = []
    wording: list[str] = []
    if exp_status != got_status:
        return [f"HTTP {got_status} != expected {exp_status}; got {json.dumps(got)[:400]}; "
                f"expected {json.dumps(exp)[:400]}"], wording
    if "error" in exp or "error" in got:
        if ("error" in exp) != ("error" in got):
            return [f"top-level error: got {got.get('error')!r}, expected {exp.get('error')!r}"], wording
        if exp["error"] != got["error"]:
            wording.append(f"top-level error: ours {got['error']!r}, InfluxDB {exp['error']!r}")
        return diffs, wording
    er, gr = exp.get("results", []), got.get("results", [])
    if [r.get("statement_id") for r in er] != [r.get("statement_id") for r in gr]:
        return [f"statement ids {[r.get('statement_id') for r in gr]} != expected "
                f"{[r.get('statement_id') for r in er]}; got {json.dumps(got)[:400]}; "
                f"expected {json.dumps(exp)[:400]}"], wording
    for i, (e, g) in enumerate(zip(er, gr)):
        if ("error" in e) != ("error" in g):
            diffs.append(f"result {i}: error got {g.get('error')!r}, expected {e.get('error')!r}")
            continue
        if "error" in e:
            if e["error"] != g["error"]:
                wording.append(f"result {i} error: ours {g['error']!r}, InfluxDB {e['error']!r}")
            continue
        es, gs = e.get("series") or [], g.get("series") or []
        if len(es) != len(gs):
            diffs.append(f"result {i}: {len(gs)} series != expected {len(es)}; got "
                         f"{[(s.get('name'), s.get('tags')) for s in gs][:6]}, expected "
                         f"{[(s.get('name'), s.get('tags')) for s in es][:6]}")
            continue
        for j, (s1, s2) in enumerate(zip(es, gs)):
            _compare_series(f"result {i} series {j} ({s1.get('name')} {s1.get('tags')})", s1, s2, diffs)
    return diffs, wording


# -- servers -------------------------------------------------------------------------------------

class QueryClient:
    """GET /query on one kept-alive connection, reopened if the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, params: dict) -> tuple[int, dict]:
        path = "/query?" + urllib.parse.urlencode(params)
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if resp.will_close:
            self.conn.close()
            self.conn = None
        try:
            return resp.status, json.loads(body) if body else {}
        except ValueError:
            return resp.status, {"error": f"<not JSON> {body[:200]!r}"}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


@pytest.fixture(scope="module")
def influx():
    if not os.access(INFLUXD, os.X_OK):
        pytest.skip(f"InfluxDB not installed ({INFLUXD} missing): no reference to compare with")
    peer = InfluxDB()
    try:
        peer.start()
        # The peer creates "bench" for benchmarks; drop it so SHOW DATABASES lists what ours does.
        peer.query("DROP DATABASE bench", method="POST")
        peer.query(f"CREATE DATABASE {dataset.DATABASE}", method="POST")
        for body in dataset.bodies():
            peer.write(body, db=dataset.DATABASE)
    except PeerError:
        peer.stop()
        raise
    client = QueryClient(peer.http_port)
    yield client
    client.close()
    peer.stop()


@pytest.fixture(scope="module")
def chronos():
    root = tempfile.mkdtemp(prefix="compat-chronos-")
    server = ServerProcess(os.path.join(root, "data"), auth=False)
    try:
        server.start()
        status, body = server.query(f"CREATE DATABASE {dataset.DATABASE}")
        assert status == 200 and "error" not in body["results"][0], body
        for b in dataset.bodies():
            status, _h, resp = server.write(b, db=dataset.DATABASE)
            assert status == 204, f"ChronosDB write answered {status}: {resp[:300]!r}"
        client = QueryClient(server.port)
        yield client
        client.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- the cases -----------------------------------------------------------------------------------

CASES = load_cases()


def test_queries_file_is_rich_enough():
    assert len(CASES) >= 150
    assert len({c.query for c in CASES if not c.params}) == len([c for c in CASES if not c.params]), \
        "a query appears twice with the same parameters"


def test_comparison_catches_differences():
    """The comparator itself: equal answers pass, each kind of difference is caught."""
    base = {"results": [{"statement_id": 0, "series": [
        {"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "mean"], "values": [[1, 2.0], [2, None]]}]}]}
    same = json.loads(json.dumps(base))
    same["results"][0]["series"][0]["values"][0][1] = 2  # Go prints 2.0 as 2
    assert compare_answers(200, base, 200, same) == ([], [])
    for mutate in (
        lambda b: b["results"][0]["series"][0]["values"][0].__setitem__(1, 2.0001),
        lambda b: b["results"][0]["series"][0]["values"][1].__setitem__(1, 0),
        lambda b: b["results"][0]["series"][0]["values"][0].__setitem__(0, 3),
        lambda b: b["results"][0]["series"][0]["values"].reverse(),
        lambda b: b["results"][0]["series"][0]["values"].pop(),
        lambda b: b["results"][0]["series"][0].__setitem__("tags", {"host": "b"}),
        lambda b: b["results"][0]["series"][0].__setitem__("name", "mem"),
        lambda b: b["results"][0]["series"][0]["columns"].__setitem__(1, "max"),
        lambda b: b["results"][0].__setitem__("statement_id", 1),
        lambda b: b["results"][0].pop("series"),
        lambda b: b["results"][0].__setitem__("error", "boom"),
    ):
        other = json.loads(json.dumps(base))
        mutate(other)
        diffs, _ = compare_answers(200, base, 200, other)
        assert diffs, other
    assert compare_answers(400, {"error": "x"}, 200, base)[0]
    assert compare_answers(400, {"error": "x"}, 400, {"error": "y"}) == ([], ["top-level error: ours 'y', InfluxDB 'x'"])
    assert _same_value(True, True) and not _same_value(True, 1) and not _same_value("1", 1)


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_query_matches_influxdb(case: Case, influx: QueryClient, chronos: QueryClient):
    params = case.request_params()
    got_status, got = chronos.get(params)
    if case.unsupported:
        # Not executed yet: the answer must be a clear statement error, never a wrong answer.
        # When the feature lands this fails: then drop the directive and compare with InfluxDB.
        errors = [r.get("error", "") for r in got.get("results", [])] if got_status == 200 else []
        assert errors and all(errors), (f"queries.txt:{case.line}: expected a statement error "
                                        f"({case.unsupported}); got {got_status} {got}")
        assert case.unsupported_marker in errors[0], errors[0]
        return
    if case.differs:
        exp_status = 400 if "results" not in case.expect else 200
        exp = case.expect
        source = f"documented answer (InfluxDB differs: {case.differs})"
    else:
        exp_status, exp = influx.get(params)
        source = "InfluxDB"
    diffs, wording = compare_answers(exp_status, exp, got_status, got)
    for w in wording:
        warnings.warn(WordingDiffers(f"queries.txt:{case.line} {case.query!r}: {w}"))
    assert not diffs, (f"queries.txt:{case.line} {case.query!r} params {params}: ChronosDB differs from "
                       f"{source}:\n  " + "\n  ".join(diffs))
