"""The per-database series index: keys <-> ids, tag postings, field types (see series_index.py)."""
from chronosdb.storage.index.series_index import SeriesIndex

__all__ = ["SeriesIndex"]
