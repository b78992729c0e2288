"""Query results in columnar form, as the executor hands them to the encoders.

A statement yields zero or more series; a series is one time column plus value columns, each a
numpy array (or a StringArray for strings) with an optional validity mask. Nothing here holds a
Python object per value: ``chronosdb.ext.resultenc`` turns these straight into the bytes InfluxDB
1.x sends (JSON, chunked JSON, CSV). See docs/format/query-results.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chronosdb.model.strings import StringArray

__all__ = ["Column", "Series", "StatementResult", "COLUMN_KINDS", "EPOCHS"]

# The value kinds a column may carry, and the numpy dtype each one's ``values`` must have
# (strings are a StringArray instead).
COLUMN_KINDS = {"float": np.float64, "integer": np.int64, "boolean": np.uint8, "string": None}

# The ``epoch`` query parameter: unit name -> nanoseconds per unit. None or "" means RFC3339
# strings. As in InfluxDB 1.6.7, any other non-empty value answers integer nanoseconds; unlike
# it, "µ" means microseconds (InfluxDB 1.6.7 only knows "u"). See docs/format/query-results.md.
EPOCHS = {
    "ns": 1,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


@dataclass
class Column:
    """One value column of a series.

    ``values`` is float64, int64, uint8 (booleans, 0/1) or a StringArray, or None for a column
    that is null on every row. ``valid`` is a bool mask (True = has a value); None means every
    row is valid. Invalid rows are written as JSON ``null`` (an empty CSV cell).
    """

    name: str
    values: np.ndarray | StringArray | None
    valid: np.ndarray | None = None
    kind: str = "float"  # "float" | "integer" | "boolean" | "string"


@dataclass
class Series:
    """One series of a statement's answer.

    ``name`` is the measurement (None: the key is omitted, as for SHOW RETENTION POLICIES).
    ``tags`` are the GROUP BY tags (None or empty: omitted). ``times`` is int64 ns per row, or
    None when the series has no time column (SHOW statements): then ``columns`` are all there is.
    ``partial`` marks a piece of a series whose remaining rows come in a later chunk.
    """

    name: str | None
    tags: dict[str, str] | None
    times: np.ndarray | None
    columns: list[Column] = field(default_factory=list)
    partial: bool = False
    utc_offsets: np.ndarray | None = None   # int32 seconds per row: times print in that zone (tz())

    def __len__(self) -> int:
        """Number of rows: from the time column, else the first column that has values."""
        if self.times is not None:
            return len(self.times)
        for c in self.columns:
            if c.values is not None:
                return len(c.values)
            if c.valid is not None:
                return len(c.valid)
        return 0


@dataclass
class StatementResult:
    """The answer to one statement: its series, or an error; ``messages`` are InfluxDB's
    informational notes (``[{"level": "warning", "text": "..."}]``)."""

    statement_id: int
    series: list[Series] = field(default_factory=list)
    error: str | None = None
    messages: list | None = None
    partial: bool = False
