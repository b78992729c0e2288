"""Immutable segment files: one shard's columns for many series+fields (docs/format/segment.md).

``SegmentWriter`` writes a file once (temp name, fsync, rename); ``SegmentReader`` maps it and
serves block statistics, single blocks and time ranges.
"""
from chronosdb.storage.segment.layout import MAX_BLOCK_POINTS
from chronosdb.storage.segment.reader import BlockTable, SegmentReader
from chronosdb.storage.segment.writer import SegmentInfo, SegmentWriter

__all__ = ["MAX_BLOCK_POINTS", "BlockTable", "SegmentInfo", "SegmentReader", "SegmentWriter"]
