"""``POST /write``: line protocol (and the seed's JSON format) into the engine, as InfluxDB 1.x.

Answers: 204 when everything was written (and fsynced in the WAL); 400 ``unable to parse
'<line>': <reason>`` when no line parsed; 400 ``partial write: <reason> dropped=N`` when some
lines or values were rejected and the rest written; 404 for an unknown database or retention
policy; 400 ``database is required``; 413 for bodies over the limit.

Parsing and the engine write run in the server's worker threads (the Cython parser and the
engine release the GIL in their kernels), so a large body never stalls the event loop.
"""
from __future__ import annotations

import time

import orjson

from chronosdb.ext import lineproto
from chronosdb.model.batch import WriteBatch
from chronosdb.model.errors import BadRequest
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.serieskey import make_key
from chronosdb.server.handlers.body import decoded_body
from chronosdb.server.http.messages import HttpError, Response

PRECISIONS = {"": 1, "n": 1, "ns": 1, "u": 10**3, "us": 10**3, "µ": 10**3, "ms": 10**6,
              "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _line_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def write_lines(server, db: str, rp: str | None, body: bytes, precision: str) -> tuple[int, str | None]:
    """Parse and write; returns (values written, partial-write message or None). Runs in a
    worker thread."""
    result = lineproto.parse(body, precision, time.time_ns())
    errors = result.errors
    metrics = server.metrics
    if errors:
        metrics.inc("write_errors_total", len(errors), kind="parse")
    if result.n_lines == 0:
        if errors:
            line_no, line, reason = errors[0]
            raise BadRequest(f"unable to parse '{_line_text(line)}': {reason}")
        return 0, None
    return _write_batch(server, db, rp, result.batch, errors)


def _write_batch(server, db, rp, batch: WriteBatch, parse_errors) -> tuple[int, str | None]:
    out = server.engine.write(db, batch, rp)
    server.metrics.inc("points_written_total", out.written)
    reasons = []
    dropped = out.dropped
    if parse_errors:
        _n, line, reason = parse_errors[0]
        reasons.append(f"unable to parse '{_line_text(line)}': {reason}")
        dropped += len(parse_errors)
    for e in out.errors:
        kind = "field_type_conflict" if "conflict" in e.message else "retention"
        server.metrics.inc("write_errors_total", kind=kind)
        reasons.append(e.message)
    if reasons:
        return out.written, f"partial write: {'; '.join(reasons)} dropped={dropped}"
    return out.written, None


def json_batch(body: bytes, precision: str) -> WriteBatch:
    """The seed-era JSON write format: ``[{"name", "columns", "points"}]``.

    Every column but ``time`` (and ``sequence_number``) is a field; numbers are floats, as JSON
    has one number type. ``time`` is in ``precision`` units (default ms, as that format had).
    This is a compatibility path: it builds per-point Python values, unlike line protocol.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"unable to parse JSON body: {e}") from None
    if not isinstance(doc, list):
        raise BadRequest("JSON write body must be a list of series objects")
    mult = PRECISIONS[precision or "ms"]
    now = time.time_ns()
    points = []
    for s in doc:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"]:
            raise BadRequest('each JSON series needs a non-empty "name"')
        cols, rows = s.get("columns"), s.get("points")
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise BadRequest(f'series "{s["name"]}": "columns" must be a list of names')
        if not isinstance(rows, list):
            raise BadRequest(f'series "{s["name"]}": "points" must be a list of rows')
        key = make_key(s["name"])
        ti = cols.index("time") if "time" in cols else -1
        for r in rows:
            if not isinstance(r, list) or len(r) != len(cols):
                raise BadRequest(f'series "{s["name"]}": every point needs {len(cols)} values')
            if ti >= 0 and r[ti] is not None:
                if not isinstance(r[ti], (int, float)) or isinstance(r[ti], bool):
                    raise BadRequest(f'series "{s["name"]}": time must be a number')
                t = int(r[ti] * mult)
            else:
                t = now
            for c, v in zip(cols, r):
                if c in ("time", "sequence_number") or v is None:
                    continue
                if isinstance(v, bool):
                    points.append((key, c, FieldType.BOOLEAN, t, int(v)))
                elif isinstance(v, (int, float)):
                    points.append((key, c, FieldType.FLOAT, t, float(v)))
                elif isinstance(v, str):
                    points.append((key, c, FieldType.STRING, t, v))
                else:
                    raise BadRequest(f'series "{s["name"]}": column "{c}" has an unsupported value')
    return WriteBatch.from_points(points)


async def handle_write(server, req) -> Response:
    if req.method != "POST":
        raise HttpError(405, "write requires POST")
    params = req.params
    principal = server.authenticate(req)
    db = params.get("db", "")
    if not db:
        raise BadRequest("database is required")
    server.authorizer.require(principal, "write", db)
    rp = params.get("rp") or None
    precision = params.get("precision", "")
    if precision not in PRECISIONS:
        raise BadRequest(f'invalid precision "{precision}" (use n, ns, u, ms, s, m or h)')
    server.engine.catalog.policy(db, rp)  # 404 for an unknown database / retention policy
    body = decoded_body(req, server.config.max_body_bytes)
    ctype = req.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        def work():
            return _write_batch(server, db, rp, json_batch(body, params.get("precision", "ms")), [])
    else:
        def work():
            return write_lines(server, db, rp, body, precision or "ns")
    _n, partial = await server.run_blocking(work)
    if partial:
        return Response.error(400, partial)
    return Response.empty(204)
