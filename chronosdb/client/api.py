"""The parts of the API both clients share: argument checks, InfluxQL for the DDL helpers, and
decoding answers and stream events. No I/O here (chronosdb.client.protocol builds the requests)."""
from __future__ import annotations

from chronosdb.client.errors import ChronosDBError, StreamError
from chronosdb.client.protocol import RawEvent, json_body
from chronosdb.client.results import CreatedKey, KeyInfo, Result, Series, StreamEvent

KEY_SCOPES = ("read", "write", "readwrite")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes (backslash-escaped quotes and backslashes)."""
    if not isinstance(name, str) or not name:
        raise ValueError("a database name must be a non-empty string")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def need_database(database: str | None, default: str | None, what: str) -> str:
    db = database or default
    if not db:
        raise ValueError(f"{what} needs a database: pass database= here or to the client")
    return db


def check_key_args(database: str | None, scope: str, admin: bool) -> None:
    if admin:
        if database is not None:
            raise ValueError("an admin key covers every database: do not pass database=")
        return
    if not database:
        raise ValueError("a key needs database= (or admin=True for an admin key)")
    if scope not in KEY_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(KEY_SCOPES)}, not {scope!r}")


def decode_result(body: bytes, raise_errors: bool) -> Result:
    result = Result.from_json(json_body(body))
    return result.raise_for_error() if raise_errors else result


def decode_databases(result: Result) -> list[str]:
    return [r[0] for s in result.series for r in s.values]


def decode_keys(body: bytes) -> list[KeyInfo]:
    return [KeyInfo.from_json(k) for k in json_body(body).get("keys", [])]


def decode_created_key(body: bytes) -> CreatedKey:
    return CreatedKey.from_json(json_body(body))


def pick_key_id(keys: list[KeyInfo], id_or_name: str) -> str:
    """The id of the key named by its id or, failing that, by its description (unique)."""
    if any(k.id == id_or_name for k in keys):
        return id_or_name
    named = [k.id for k in keys if k.description == id_or_name]
    if len(named) == 1:
        return named[0]
    if named:
        raise ChronosDBError(f"{len(named)} keys have the description {id_or_name!r}: "
                             f"revoke by id ({', '.join(named)})")
    from chronosdb.client.errors import NotFound

    raise NotFound(f'key not found: no key has the id or description "{id_or_name}"', 404)


def decode_event(raw: RawEvent) -> StreamEvent | None:
    """A stream event from its SSE frame; None for events this client does not know.

    An ``error`` event raises StreamError with the server's message.
    """
    try:
        data = json_body(raw.data.encode()) if raw.data else {}
    except ChronosDBError:
        raise ChronosDBError(f"stream event {raw.event!r} carries invalid JSON: {raw.data[:200]!r}")
    if raw.event == "error":
        raise StreamError(data.get("error") if isinstance(data, dict) else str(data))
    if raw.event == "dropped":
        return StreamEvent("dropped", raw.id, [], int(data.get("missed", 0)), data)
    if raw.event in ("history", "points", "window", "partial"):
        series = [Series.from_json(s) for s in data.get("series") or []]
        return StreamEvent(raw.event, raw.id, series, None, data)
    return None
