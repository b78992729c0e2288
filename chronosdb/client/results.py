"""What queries, streams and key listings give back: plain values built from the server's JSON.

A ``/query`` answer is ``{"results": [{"statement_id", "series": [{"name", "tags", "columns",
"values"}], "messages", "error"}]}``; ``Result`` keeps it as ``statements`` (one
``StatementResult`` each) and offers the series three ways: ``rows()`` (dicts), ``columns()``
(numpy arrays) and ``to_dataframe()`` (pandas, imported only when called).

Times are what the server sent: RFC3339 strings, or integers when the query asked for an
``epoch``. ``columns()`` turns RFC3339 times into ``datetime64[ns]`` so they can be computed with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from chronosdb.client.errors import ChronosDBError, QueryError


@dataclass
class Series:
    name: str | None
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    @classmethod
    def from_json(cls, doc: dict) -> "Series":
        return cls(doc.get("name"), dict(doc.get("tags") or {}), list(doc.get("columns") or []),
                   [list(r) for r in doc.get("values") or []])

    def rows(self) -> Iterator[dict[str, Any]]:
        """One dict per row: column -> value, plus the series' tags (a column wins a clash)."""
        for r in self.values:
            d = dict(self.tags)
            d.update(zip(self.columns, r))
            yield d


@dataclass
class StatementResult:
    statement_id: int
    series: list[Series] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    error: str | None = None


def _column_array(name: str, values: list) -> np.ndarray:
    """A numpy array for one column: all-integer columns as int64, other numbers (or numbers
    with gaps) as float64 with NaN for the gaps, all-bool as bool, RFC3339 times as
    datetime64[ns], anything else (strings, gaps in them, mixed types) as object."""
    if name == "time" and values and all(isinstance(v, str) for v in values):
        # numpy refuses a timezone designator; the server always sends UTC ("Z").
        return np.array([v[:-1] if v.endswith("Z") else v for v in values], dtype="datetime64[ns]")
    if values and all(type(v) is bool for v in values):
        return np.array(values, dtype=bool)
    if values and all(type(v) is int for v in values):
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return np.array(values, dtype=object)
    if any(v is not None for v in values) and all(v is None or type(v) in (int, float)
                                                  for v in values):
        # Numbers with gaps, or mixed: float64 with NaN for the gaps. (The JSON cannot tell a
        # float 1.0 from an integer 1 -- InfluxDB writes both as 1 -- so only the gaps decide.)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass
class Result:
    """The answer to one ``query()`` call (one or more statements)."""

    statements: list[StatementResult]

    @classmethod
    def from_json(cls, doc: dict) -> "Result":
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise ChronosDBError(f"unexpected /query answer: {str(doc)[:200]}")
        stmts = []
        for i, r in enumerate(doc["results"]):
            stmts.append(StatementResult(
                int(r.get("statement_id", i)),
                [Series.from_json(s) for s in r.get("series") or []],
                list(r.get("messages") or []),
                r.get("error"),
            ))
        return cls(stmts)

    def raise_for_error(self) -> "Result":
        """Raise QueryError for the first statement that failed; return self otherwise."""
        for s in self.statements:
            if s.error is not None:
                raise QueryError(s.error, s.statement_id, self)
        return self

    @property
    def series(self) -> list[Series]:
        """Every series of every statement, in order."""
        return [s for st in self.statements for s in st.series]

    def rows(self) -> list[dict[str, Any]]:
        """Every row of every series as a dict (column -> value, plus the series' tags)."""
        return [r for s in self.series for r in s.rows()]

    def columns(self) -> dict[str, np.ndarray]:
        """All series' rows as one numpy array per column; each tag becomes a column too.

        Series with different column lists are merged by name; a row without a column gets
        None (NaN in a float column).
        """
        names: list[str] = []
        for s in self.series:
            for c in list(s.tags) + s.columns:
                if c not in names:
                    names.append(c)
        cells: dict[str, list] = {c: [] for c in names}
        for s in self.series:
            pos = {c: i for i, c in enumerate(s.columns)}
            for c in names:
                if c in pos:
                    i = pos[c]
                    cells[c].extend(r[i] for r in s.values)
                else:
                    cells[c].extend([s.tags.get(c)] * len(s.values))
        return {c: _column_array(c, v) for c, v in cells.items()}

    def to_dataframe(self):
        """A pandas DataFrame of ``columns()``, indexed by time (UTC) when there is a time column.

        Needs pandas (``pip install pandas``): it is imported here, not at import time.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Result.to_dataframe() needs pandas: pip install pandas") from None
        cols = self.columns()
        df = pd.DataFrame(cols)
        if "time" in cols:
            t = cols["time"]
            if t.dtype.kind == "M":
                df["time"] = pd.to_datetime(t, utc=True)
            df = df.set_index("time")
        return df


@dataclass
class StreamEvent:
    """One event of a stream: ``event`` is history | points | window | partial | dropped.

    ``id`` is the resume cursor (None for partial and dropped events); ``series`` the data's
    series; ``missed`` the number of points the server could not deliver (dropped events).
    """

    event: str
    id: str | None
    series: list[Series]
    missed: int | None = None
    data: dict = field(default_factory=dict)


@dataclass
class KeyInfo:
    id: str
    database: str | None
    scope: str
    created: int           # ns since the epoch
    description: str

    @classmethod
    def from_json(cls, d: dict) -> "KeyInfo":
        return cls(d["id"], d.get("database"), d["scope"], int(d.get("created") or 0),
                   d.get("description") or "")


@dataclass
class CreatedKey(KeyInfo):
    key: str = ""          # the secret: shown by the server this once only

    @classmethod
    def from_json(cls, d: dict) -> "CreatedKey":
        info = KeyInfo.from_json(d)
        return cls(info.id, info.database, info.scope, info.created, info.description, d["key"])
