"""InfluxQL functions: partial aggregates (partials), transformations, fill and math.

Per-point work runs in chronosdb.ext.aggregates; these modules only handle nwin-sized arrays.
See docs/functions.md for every function's semantics and the deviations from InfluxDB 1.x.
"""
from chronosdb.query.functions.fill import apply_fill
from chronosdb.query.functions.partials import (
    AGGREGATES,
    EXACT_VALUE_CAP,
    MULTI_ROW,
    SELECTORS,
    Finalized,
    FinalizedMulti,
    Partial,
    make_partial,
)
from chronosdb.query.functions.transforms import TRANSFORMS

__all__ = ["AGGREGATES", "EXACT_VALUE_CAP", "MULTI_ROW", "SELECTORS", "TRANSFORMS", "Finalized",
           "FinalizedMulti", "Partial", "apply_fill", "make_partial"]
