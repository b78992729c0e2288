"""InfluxQL: text -> our AST (``ast``), through one pyparsing grammar (``grammar``) behind a
parsed-statement cache (``cache``).

    from chronosdb.query.influxql import parse, parse_statement, ParseError
    statements = parse("SELECT mean(value) FROM cpu WHERE time > now() - 1h GROUP BY time(1m)")

``parse`` goes through the shared cache, so repeated query shapes skip pyparsing.
"""
from __future__ import annotations

from . import ast
from .ast import *  # noqa: F401,F403  (the node classes are part of this package's API)
from .cache import StatementCache, default_cache
from .grammar import ParseError, parse_uncached


def parse(text: str) -> list:
    """Parse one or more ``;``-separated statements. Raises ``ParseError``."""
    return default_cache.parse(text)


def parse_keyed(text: str) -> tuple[list, object]:
    """``parse`` that also returns the text's shape (literals lifted out; None when the text
    bypassed the cache): queries of one shape cost about the same to run."""
    return default_cache.parse_keyed(text)


def parse_statement(text: str):
    """Parse exactly one statement (a trailing ``;`` is allowed). Raises ``ParseError``."""
    statements = default_cache.parse(text)
    if len(statements) != 1:
        raise ParseError(f"expected exactly one statement, found {len(statements)}", 1, 1)
    return statements[0]


__all__ = ["parse", "parse_keyed", "parse_statement", "parse_uncached", "ParseError", "StatementCache",
           "default_cache", "ast", *ast.__all__]
