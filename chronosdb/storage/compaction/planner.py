"""Compaction planner: which segment files of one shard to merge next, and into what level.

A pure function of the shard's segment list and a few facts the caller supplies (which files a
running compaction already holds, whether tombstones are pending, whether the shard has gone
cold). No files, no clocks: the shard asks, runs the groups it gets, swaps the outputs in, and
asks again. docs/compaction.md explains the policy; in short:

- **Leveled.** A cache snapshot writes a level-1 file. ``fan_in`` generation-adjacent files of
  the same level N (N < max_level) become one level N+1 file. Each merge touches few, similar-sized
  files, so write amplification stays about one rewrite per level, while the file count (and so
  the number of files a read must open) stays at most fan_in - 1 per level below the top plus
  one top-level file per fan_in ** (max_level - 1) snapshots.
- **Full.** A cold shard (the caller decides: no writes for a while) with more than one file is
  merged into a single top-level file: nothing new will arrive to amortise leaving it split, and
  one file is the cheapest to read. Pending tombstones also force a full compaction, even of a
  single file: deleted points only leave the disk when every file that holds them is rewritten,
  after which the caller may drop the tombstones.

Invariants (checked by tests/test_compaction_planner.py):

- groups are disjoint, and never contain a generation listed in ``in_progress``;
- each group is a run of files *adjacent in generation order* among all the shard's files. The
  output takes the highest input generation, and last-write-wins between files is decided by
  generation, so a group that skipped over a file would re-date older points past that file's
  newer ones;
- output level >= every input level; repeated planning (apply, plan again) terminates, because
  every leveled group removes ``fan_in - 1 >= 1`` files and a full plan leaves one file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Iterable

REASON_LEVEL = "level"          # fan_in files of one level -> the next level
REASON_COLD = "cold"            # cold shard: everything into one top-level file
REASON_TOMBSTONES = "tombstones"  # pending deletes: rewrite everything without them


@dataclass(frozen=True)
class SegmentMeta:
    """What the planner knows of one immutable segment file of a shard."""

    generation: int   # grows with every file written; higher = newer data wins on equal times
    level: int        # 1 = written by a cache snapshot; +1 per leveled compaction
    size_bytes: int
    min_time: int     # ns, inclusive
    max_time: int     # ns, inclusive
    n_values: int

    def __post_init__(self):
        if self.generation < 0:
            raise ValueError(f"segment generation must be >= 0, got {self.generation}")
        if self.level < 1:
            raise ValueError(f"segment {self.generation}: level must be >= 1, got {self.level}")
        if self.size_bytes < 0 or self.n_values < 0:
            raise ValueError(f"segment {self.generation}: negative size or value count")
        if self.n_values and self.min_time > self.max_time:
            raise ValueError(
                f"segment {self.generation}: min_time {self.min_time} > max_time {self.max_time}"
            )


@dataclass(frozen=True)
class CompactionGroup:
    """Merge the files ``inputs`` (generations, ascending) into one file of ``output_level``.

    The output file takes generation ``max(inputs)``.
    """

    inputs: tuple[int, ...]
    output_level: int
    reason: str


@dataclass(frozen=True)
class CompactionPolicy:
    # 4 is the fan-in TSM-style engines settle on: each level holds files ~4x the size of the one
    # below, so a shard of N snapshots keeps O(log4 N) files while each point is rewritten about
    # once per level. Larger fan-in = fewer rewrites but more files open per read until it fires.
    fan_in: int = 4
    # Level 4 files are only merged by a full (cold or tombstone) compaction. With fan_in 4 a
    # level-4 file already holds 64 snapshots; going higher would make a single compaction
    # rewrite most of a live shard.
    max_level: int = 4

    def __post_init__(self):
        if self.fan_in < 2:
            raise ValueError(f"compaction fan_in must be >= 2 (a group must shrink the file count), got {self.fan_in}")
        if self.max_level < 1:
            raise ValueError(f"compaction max_level must be >= 1, got {self.max_level}")


def plan(
    segments: Iterable[SegmentMeta],
    *,
    in_progress: AbstractSet[int] = frozenset(),
    has_tombstones: bool = False,
    cold: bool = False,
    policy: CompactionPolicy = CompactionPolicy(),
) -> list[CompactionGroup]:
    """The compactions to start now for one shard; empty when there is nothing to do.

    ``in_progress`` holds generations a running compaction is merging; they are never planned
    again and, being unavailable, split the runs around them. Generations in ``in_progress`` that
    are not in ``segments`` are ignored (that compaction may just have swapped its output in).
    """
    ordered = sorted(segments, key=lambda s: s.generation)
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.generation == cur.generation:
            raise ValueError(f"two segment files share generation {cur.generation}")
    if not ordered:
        return []

    if has_tombstones or (cold and len(ordered) > 1):
        return _plan_full(ordered, in_progress, has_tombstones, policy)
    return _plan_leveled(ordered, in_progress, policy)


def _plan_full(
    ordered: list[SegmentMeta],
    in_progress: AbstractSet[int],
    has_tombstones: bool,
    policy: CompactionPolicy,
) -> list[CompactionGroup]:
    # A full compaction must see every file: tombstones can only be dropped once no file holds a
    # deleted point, and a cold shard should end as one file. If a compaction is still running we
    # wait for it rather than plan a partial "full" one; the caller asks again when it finishes.
    if any(s.generation in in_progress for s in ordered):
        return []
    # Never lower a file's level, even if the policy's max_level was lowered since it was written.
    top = max(policy.max_level, max(s.level for s in ordered))
    reason = REASON_TOMBSTONES if has_tombstones else REASON_COLD
    return [CompactionGroup(tuple(s.generation for s in ordered), top, reason)]


def _plan_leveled(
    ordered: list[SegmentMeta],
    in_progress: AbstractSet[int],
    policy: CompactionPolicy,
) -> list[CompactionGroup]:
    groups: list[CompactionGroup] = []
    # Walk maximal stretches of generation-adjacent files of one level that are all available;
    # any file of another level, or one held by a running compaction, ends a stretch. Each stretch
    # is cut into groups of fan_in from its oldest end; a remainder waits for more files.
    i = 0
    n = len(ordered)
    while i < n:
        level = ordered[i].level
        j = i
        while (
            j < n
            and ordered[j].level == level
            and ordered[j].generation not in in_progress
        ):
            j += 1
        if j == i:  # ordered[i] is in progress
            i += 1
            continue
        if level < policy.max_level:
            for g in range(i, j - policy.fan_in + 1, policy.fan_in):
                chunk = ordered[g:g + policy.fan_in]
                groups.append(
                    CompactionGroup(tuple(s.generation for s in chunk), level + 1, REASON_LEVEL)
                )
        i = j
    # Lower levels first: they are the cheapest merges and the ones that cut the file count of
    # the hot, recently written end of the shard. Ties in generation order.
    groups.sort(key=lambda grp: (grp.output_level, grp.inputs[0]))
    return groups
