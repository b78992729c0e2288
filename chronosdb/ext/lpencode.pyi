"""Type stubs for chronosdb.ext.lpencode (spelling of every piece: chronosdb/ext/lpencode_ref.py)."""
from collections.abc import Mapping, Sequence

import numpy as np

from chronosdb.model.batch import WriteBatch
from chronosdb.model.strings import StringArray

def encode_batch(batch: WriteBatch, precision: str = "ns") -> bytes:
    """The batch as line protocol: one line per (series, time) holding every field the batch has
    for it, lines ordered by series index then time, fields in first-seen order of their names.
    A series+field+time held twice: the later entry wins (later column for a type change).

    Times are divided by the precision's unit; a time that is not a whole number of units, a
    NaN/inf float, a name line protocol cannot carry or a bad precision raise ValueError naming
    the problem. Parsing the output with chronosdb.ext.lineproto.parse(body, precision) gives
    back the same points.
    """

def encode_columns(
    measurement: str | bytes,
    tags: Mapping[str | bytes, str | bytes | Sequence | np.ndarray] | None,
    times: np.ndarray | Sequence[int],
    fields: Mapping[str | bytes, np.ndarray | StringArray | Sequence],
    precision: str = "ns",
    skip_nan: bool = False,
) -> bytes:
    """Row i -> line i: ``measurement`` plus the row's tags, every field's value at row i, and
    ``times[i]`` written verbatim (integers already in ``precision`` units).

    A tag maps to one value (every row) or to a sequence of len(times) values (a tag column; an
    empty value leaves the tag off that row). Field types come from the dtype: float -> float,
    signed/unsigned int -> integer (unsigned above 2**63-1 refused), bool -> boolean,
    str/bytes/object or StringArray -> string. ``skip_nan``: a NaN float is a missing value and
    left off its line (a row with no value left gives no line); otherwise NaN raises, and +-inf
    always raises ValueError.
    """
