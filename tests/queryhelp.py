"""Running statements against an in-process engine, for tests that need no server."""
from __future__ import annotations

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
