"""Type stubs for chronosdb.ext.resultenc (docs/format/query-results.md has the byte layouts)."""
from collections.abc import Iterator, Sequence

from chronosdb.query.results import StatementResult

def encode_results(
    results: Sequence[StatementResult], epoch: str | None = None, pretty: bool = False
) -> bytes:
    """The whole {"results":[...]} document plus "\\n", as InfluxDB 1.6.7 answers /query.

    epoch None or "" writes RFC3339 times; "u"/"µ", "ms", "s", "m", "h" integers in that unit
    (truncated toward zero); any other string integer nanoseconds. pretty indents 4 spaces.
    """

def encode_chunks(
    results: Sequence[StatementResult],
    epoch: str | None = None,
    chunk_size: int = 10000,
    pretty: bool = False,
) -> Iterator[bytes]:
    """chunked=true: one "\\n"-terminated document per chunk of at most chunk_size rows of one
    series (chunk_size <= 0: 10000, InfluxDB's default), with InfluxDB's "partial" flags."""

def encode_csv(results: Sequence[StatementResult], epoch: str | None = None) -> bytes:
    """Accept: application/csv: name,tags,time,<columns> headers and one line per row; times
    are integers (ns unless epoch says otherwise). No results with series: b""."""

def encode_error(message: str, pretty: bool = False) -> bytes:
    """A request-level failure: {"error":"..."} plus "\\n"."""

def encode_csv_error(message: str) -> bytes:
    """A request-level failure as CSV: "error\\n" then the message as one (quoted) cell."""

def format_json_float(x: float) -> bytes:
    """One float64 as Go's encoding/json writes it; NaN and infinities as null."""

def format_csv_float(x: float) -> bytes:
    """One float64 as strconv.FormatFloat(x, 'f', -1, 64): NaN, +Inf, -Inf spelt out."""

def format_rfc3339(ns: int) -> bytes:
    """int64 nanoseconds since the Unix epoch as Go's time.RFC3339Nano in UTC."""

def shortest(x: float) -> tuple[int, int]:
    """(digits, exp10), x == digits * 10**exp10, the shortest round-trip digits (Ryu)."""
