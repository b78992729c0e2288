"""The OpenAPI document (chronosdb/server/openapi.json) against the server it describes.

* the document is valid OpenAPI 3.1;
* every route of ``chronosdb/server/app.py`` (ROUTES and PREFIX_ROUTES) is in it;
* ``GET /api/openapi.json`` serves exactly that file, with ETag/Cache-Control and 304s;
* schemathesis generates requests from the document for every operation and sends them to a
  real ``chronosdb serve`` with the admin key: no 5xx, and every status code, content type and
  response body must be one the document declares.

A failure here is either a server bug or a wrong document: fix whichever is wrong, never
bend the document around a bug.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from serverproc import ServerProcess  # noqa: E402

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from openapi_spec_validator import validate  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from chronosdb.server.app import PREFIX_ROUTES, ROUTES  # noqa: E402
from chronosdb.server.handlers.openapi import OPENAPI_PATH, etag_matches  # noqa: E402

# Examples per operation: ~17 operations x 60 requests stays well under a minute here.
MAX_EXAMPLES = 60


def _document() -> dict:
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("openapi") / "data")).start()
    try:
        # Some data, so generated queries can meet real series and schemas.
        assert s.query("CREATE DATABASE db")[0] == 200
        status, _h, body = s.write(b"cpu,host=a,region=eu usage=1.5,cores=8i,ok=true,note=\"x\" 1000000000\n"
                                   b"cpu,host=b,region=us usage=2.5,cores=4i,ok=false,note=\"y\" 2000000000\n")
        assert status == 204, body
        yield s
    finally:
        s.kill()


# The streams' 200 never ends, so generated requests would hang there; their refusals are
# checked against the document below instead (and their behaviour by tests/test_stream*.py).
STREAM_PATHS = "^/(ws/)?stream$"


@pytest.fixture(scope="module")
def api_schema(api_server):
    return schemathesis.openapi.from_dict(_document())


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=STREAM_PATHS)


def test_document_is_valid_openapi_3_1():
    doc = _document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_is_documented():
    paths = set(_document()["paths"])
    for route in ROUTES:
        assert route in paths, f"{route} is routed in app.py but missing from openapi.json"
    for prefix, _handler in PREFIX_ROUTES:
        assert any(p.startswith(prefix) and len(p) > len(prefix) for p in paths), \
            f"prefix route {prefix} has no documented path under it"


def test_served_document_is_the_file_with_caching_headers(api_server):
    status, headers, body = api_server.request("GET", "/api/openapi.json", key=None)
    assert status == 200
    assert headers["content-type"] == "application/json"
    with open(OPENAPI_PATH, "rb") as f:
        assert body == f.read()
    etag = headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert "max-age=" in headers["cache-control"]

    status, headers2, body2 = api_server.request("GET", "/api/openapi.json", key=None,
                                                 headers={"If-None-Match": etag})
    assert (status, body2, headers2["etag"]) == (304, b"", etag)
    status, _h, _b = api_server.request("GET", "/api/openapi.json", key=None,
                                        headers={"If-None-Match": f'"other", W/{etag}'})
    assert status == 304
    status, _h, body3 = api_server.request("GET", "/api/openapi.json", key=None,
                                           headers={"If-None-Match": '"stale"'})
    assert status == 200 and body3 == body

    status, _h, body = api_server.request("POST", "/api/openapi.json", key=None)
    assert status == 405 and json.loads(body)["error"]


def test_etag_matching_rules():
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches("", '"a"')
    assert not etag_matches('"ab"', '"a"')


def test_stream_refusals_are_documented(api_server):
    import jsonschema

    doc = _document()
    error_schema = doc["components"]["schemas"]["Error"]
    cases = [
        ("/stream?db=db", 400),                                   # no q
        ("/stream?db=nodb&q=SELECT%20usage%20FROM%20cpu", 404),
        ("/stream?db=db&q=SELECT%20usage%20FROM%20cpu%20LIMIT%201", 400),   # not streamable
        ("/stream?db=db&q=SELECT%20usage%20FROM%20cpu&epoch=weeks", 400),
        ("/ws/stream?db=db&q=SELECT%20usage%20FROM%20cpu", 400),  # no Upgrade
    ]
    for path, expected in cases:
        status, headers, body = api_server.request("GET", path)
        op = doc["paths"][path.split("?")[0]]["get"]
        assert status == expected, (path, status, body)
        assert str(status) in op["responses"], (path, status)
        assert headers["content-type"] == "application/json"
        jsonschema.validate(json.loads(body), error_schema)
    status, _h, _b = api_server.request("GET", "/stream?db=db&q=SELECT%20usage%20FROM%20cpu", key=None)
    assert status == 401


def test_keyed_operations_refuse_requests_without_a_key(api_server):
    doc = _document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security", doc["security"]) == [] or "{" in path or "stream" in path:
                continue
            status, _h, body = api_server.request(method.upper(), path, key=None)
            assert status == 401, (method, path, status, body)
            assert "401" in op["responses"], f"{method} {path} may answer 401 but does not say so"


def _conforms_as_chunks(response) -> None:
    """``chunked=true`` answers are newline-separated JSON documents (as InfluxDB sends them),
    which no single OpenAPI schema can describe: check each document against QueryResults."""
    import jsonschema

    doc = _document()
    # QueryResults refers to its parts as #/components/...: validate with the components beside it.
    schema_with_refs = {"components": doc["components"], **doc["components"]["schemas"]["QueryResults"]}
    for line in response.content.splitlines():
        if line.strip():
            jsonschema.validate(json.loads(line), schema_with_refs)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_server_conforms_to_the_document(case, api_server):
    """Generated requests for every operation but the streams, with the admin key: no 5xx, and
    status, content type and body as documented (chunked JSON checked document by document)."""
    base_url = f"http://127.0.0.1:{api_server.port}"
    headers = {"Authorization": f"Token {api_server.admin_key}"}
    chunked = (case.query or {}).get("chunked") == "true" or (
        isinstance(case.body, dict) and case.body.get("chunked") == "true")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if not chunked:
        checks.append(response_schema_conformance)
    response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks)
    content_type = (response.headers.get("content-type") or [""])[0]  # lower-case keys, list values
    if chunked and response.status_code == 200 and content_type.startswith("application/json"):
        _conforms_as_chunks(response)


def test_head_answers_have_no_body(api_server):
    import socket

    with socket.create_connection(("127.0.0.1", api_server.port), timeout=10) as sock:
        sock.sendall(b"HEAD /ping?verbose=true HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, _sep, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 204"), f"bytes after the HEAD answer's headers: {rest[:80]!r}"


def test_chunked_answers_conform_document_by_document(api_server):
    """A chunked answer of two statements is two JSON documents, each a QueryResults."""
    import jsonschema

    status, headers, body = api_server.request(
        "GET", "/query?db=db&chunked=true&chunk_size=1&q=SELECT%20usage%20FROM%20cpu%3BSHOW%20DATABASES")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    docs = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert len(docs) >= 3  # two rows of cpu in chunks of one, then SHOW DATABASES
    doc = _document()
    schema_with_refs = {"components": doc["components"], **doc["components"]["schemas"]["QueryResults"]}
    for d in docs:
        jsonschema.validate(d, schema_with_refs)
    assert docs[0]["results"][0]["series"][0]["partial"] is True
