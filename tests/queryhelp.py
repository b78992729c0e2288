"""Running statements against an in-process engine, for tests that need no server."""
from __future__ import annotations

import math

import orjson

from chronosdb.ext import resultenc
from chronosdb.query.influxql import parse
from chronosdb.query.statements import QueryContext, execute


class AllowAll:
    """The statement-authorization interface with every action allowed."""

    def can_read(self, db):
        return True

    def require(self, action, db):
        pass

    def on_drop_database(self, db):
        pass


def answer(engine, q: str, db: str = "db", epoch: str | None = "ns") -> dict:
    """``q``'s answer as the HTTP API would give it, decoded."""
    ctx = QueryContext(engine, db, None, AllowAll())
    return orjson.loads(resultenc.encode_results(execute(parse(q), ctx), epoch, False))


def values_close(a, b) -> bool:
    """Two answer values equal, floats to 1e-9 (relative or absolute): sums may add in another
    order on two paths."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def assert_series_close(sa: list, sb: list) -> None:
    """Two statements' series equal: names, tags, columns, times, values (``values_close``)."""
    assert [(s["name"], s.get("tags"), s["columns"]) for s in sa] == \
           [(s["name"], s.get("tags"), s["columns"]) for s in sb]
    for x, y in zip(sa, sb):
        assert len(x["values"]) == len(y["values"])
        for row_a, row_b in zip(x["values"], y["values"]):
            assert all(values_close(p, q) for p, q in zip(row_a, row_b)), (row_a, row_b)
