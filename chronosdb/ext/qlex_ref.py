"""Plain-Python twin of chronosdb.ext.qlex: the specification the C module is tested against.

``shape_of`` is the statement cache's literal lifting as one regex ``split``
(``cache.shape_of_regex``; the C module follows the same leftmost match in the regex's own
priority order); ``rfc3339_ns`` is ``durations.parse_time`` for the texts it accepts, None for
the rest.
"""
from __future__ import annotations

from chronosdb.query.influxql.cache import shape_of_regex
from chronosdb.query.influxql.durations import parse_time


def shape_of(text: str):
    return shape_of_regex(text)


def rfc3339_ns(text: str):
    try:
        return parse_time(text)
    except ValueError:
        return None
