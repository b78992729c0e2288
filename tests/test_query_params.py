"""Bound parameters (``$name`` + ``params={...}``) against a real server, as InfluxDB 1.x takes them."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from serverproc import ServerProcess

    s = ServerProcess(str(tmp_path_factory.mktemp("params") / "d"), auth=False).start()
    try:
        assert s.query("CREATE DATABASE db")[0] == 200
        body = b"\n".join(b"cpu,host=%s v=%d %d000000000" % (h, i, i) for h in (b"a", b"b") for i in range(10))
        assert s.write(body)[0] == 204
        yield s
    finally:
        s.kill()


def _q(srv, q, params=None):
    args = {"q": q, "db": "db"}
    if params is not None:
        args["params"] = params if isinstance(params, str) else json.dumps(params)
    status, _h, body = srv.request("GET", "/query?" + urlencode(args))
    return status, json.loads(body)


def test_string_number_and_time_parameters_bind_as_literals(srv):
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h AND v >= $min AND time < $t",
                     {"h": "b", "min": 7, "t": "1970-01-01T00:00:09Z"})
    assert status == 200
    assert [r[1] for r in doc["results"][0]["series"][0]["values"]] == [7, 8]


def test_a_parameter_value_is_never_parsed_as_influxql(srv):
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h", {"h": "a' OR host = 'b"})
    assert status == 200
    assert "series" not in doc["results"][0]  # no host has that name


def test_a_missing_parameter_is_an_error_naming_it(srv):
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h")
    assert status == 400 and "missing parameter: h" in doc["error"]
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h", {"x": 1})
    assert status == 400 and "missing parameter: h" in doc["error"]


def test_malformed_params_are_refused(srv):
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h", "{not json")
    assert status == 400 and "error parsing query parameters" in doc["error"]
    status, doc = _q(srv, "SELECT v FROM cpu WHERE host = $h", "[1, 2]")
    assert status == 400 and "JSON object" in doc["error"]
    status, doc = _q(srv, "SELECT v FROM cpu WHERE time > $t", {"t": "not a time"})
    assert status == 400 and "$t" in doc["error"]
