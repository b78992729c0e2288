"""Type stubs for chronosdb.ext.lineproto (grammar and errors: docs/format/line-protocol.md)."""
from chronosdb.model.batch import WriteBatch

class ParseResult:
    batch: WriteBatch
    """Distinct canonical series keys in first-seen order; one FieldColumn per distinct
    (field key, field type) in first-seen order; per point its series index, time (ns), value."""
    n_lines: int
    """Lines parsed into points."""
    errors: list[tuple[int, bytes, str]]
    """Per rejected line: (1-based line number where it starts, its trimmed bytes capped at
    1 KiB, the InfluxDB-style reason). The server answers ``unable to parse '<line>': <reason>``."""

def parse(
    body: bytes | bytearray | memoryview,
    precision: str = "ns",
    default_time: int = 0,
) -> ParseResult:
    """Parse an InfluxDB 1.x line-protocol body.

    precision: "ns" ("" / "n"), "u" ("us" / "µ" / "µs"), "ms", "s", "m", "h"; anything else
    raises ValueError("invalid precision ..."). Timestamps are integers in that unit, scaled to
    ns with overflow checking. A line without a timestamp gets ``default_time`` (ns, unscaled).
    Bad lines never stop the parse: they are reported in ``errors`` and skipped.
    Raises TypeError for other body types, ValueError for a bad precision or a default_time
    outside int64, MemoryError when buffers cannot grow.
    """
