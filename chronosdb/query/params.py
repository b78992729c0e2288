"""Bound parameters: ``$name`` in a statement takes its value from the request's ``params``.

InfluxDB 1.x clients send ``params={"host": "a", "limit": 10}`` (JSON) beside ``q``; each
``$name`` becomes a literal of the value's JSON type — a string, an integer, a float or a boolean
— so a value is never re-parsed as InfluxQL (no injection through a parameter). A string compared
with ``time`` is read as a time, as a quoted time literal would be. A ``$name`` without a value
is an error naming it, never a silent empty answer.

The parsed statements are immutable (and shared with the statement cache): binding rebuilds only
the nodes on the path to each parameter.
"""
from __future__ import annotations

import dataclasses

import orjson

from chronosdb.model.errors import BadRequest
from chronosdb.query.influxql import ast
from chronosdb.query.influxql.durations import parse_time


def parse_params(text: str | None) -> dict:
    """The ``params`` request parameter: a JSON object, or nothing."""
    if not text:
        return {}
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"error parsing query parameters: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest("error parsing query parameters: params must be a JSON object")
    return doc


def _literal(name: str, value, as_time: bool):
    if isinstance(value, bool):
        return ast.BooleanLiteral(value)
    if isinstance(value, int):
        return ast.IntegerLiteral(value)
    if isinstance(value, float):
        return ast.NumberLiteral(value)
    if isinstance(value, str):
        if as_time:
            try:
                return ast.TimeLiteral(parse_time(value), value)
            except ValueError as e:
                raise BadRequest(f"bound parameter ${name}: {e}") from None
        return ast.StringLiteral(value)
    raise BadRequest(f"bound parameter ${name}: unsupported value type {type(value).__name__}")


def _is_time(e) -> bool:
    return isinstance(e, ast.VarRef) and e.name == "time"


def bind(statements: list, params: dict) -> list:
    """The statements with every ``$name`` replaced by its value. Raises BadRequest for a
    parameter without a value."""

    def walk(node, as_time=False):
        if isinstance(node, ast.BoundParameter):
            if node.name not in params:
                raise BadRequest(f"missing parameter: {node.name} (pass params={{\"{node.name}\": ...}})")
            return _literal(node.name, params[node.name], as_time)
        if isinstance(node, ast.BinaryExpr):
            lhs = walk(node.lhs, _is_time(node.rhs))
            rhs = walk(node.rhs, _is_time(node.lhs))
            if lhs is node.lhs and rhs is node.rhs:
                return node
            return dataclasses.replace(node, lhs=lhs, rhs=rhs)
        if isinstance(node, (list, tuple)):
            items = [walk(x) for x in node]
            if all(a is b for a, b in zip(items, node)):
                return node
            return items if isinstance(node, list) else tuple(items)
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            changes = {}
            for f in dataclasses.fields(node):
                old = getattr(node, f.name)
                new = walk(old)
                if new is not old:
                    changes[f.name] = new
            return dataclasses.replace(node, **changes) if changes else node
        return node

    return [walk(s) for s in statements]
