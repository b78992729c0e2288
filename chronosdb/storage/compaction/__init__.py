"""Compaction of a shard's segment files: what to merge (planner, pure) and, beside it, how.

The planner decides from segment metadata alone; the merge itself uses the kernels of
chronosdb.ext.merge (merge_runs for last-write-wins across files, tombstone_keep for deletes).
"""
from chronosdb.storage.compaction.planner import (
    CompactionGroup,
    CompactionPolicy,
    SegmentMeta,
    plan,
)

__all__ = ["CompactionGroup", "CompactionPolicy", "SegmentMeta", "plan"]
