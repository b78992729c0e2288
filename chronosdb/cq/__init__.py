"""Continuous queries (InfluxDB 1.x): ``CREATE CONTINUOUS QUERY ... BEGIN SELECT ... INTO ...
GROUP BY time(...) END`` run on schedule and write their answers back.

Layout: ``schedule`` (pure: when a CQ runs and over which range), ``definitions`` (validation,
normalisation, the store interface and its file implementation), ``runner`` (one ranged run
through the ordinary query path), ``service`` (statements, run state, stats, metrics and the
asyncio scheduler). See docs/continuous-queries.md.
"""
from chronosdb.cq.definitions import (ContinuousQueryDef, ContinuousQueryStore, FileContinuousQueryStore,
                                      MemoryContinuousQueryStore)
from chronosdb.cq.service import ContinuousQueryService, ContinuousQueryStats

__all__ = ["ContinuousQueryDef", "ContinuousQueryService", "ContinuousQueryStats", "ContinuousQueryStore",
           "FileContinuousQueryStore", "MemoryContinuousQueryStore"]
