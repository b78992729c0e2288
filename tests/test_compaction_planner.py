"""The compaction planner (chronosdb.storage.compaction.planner): invariants as properties, the
policy as scenarios.

The simulation helpers replay a plan the way the shard does: each group becomes one file with the
output level and the highest input generation. Files carry a tiny model of their points
(time -> id of the write) so the tests can check that compacting never changes what a read sees
under last-write-wins by generation.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronosdb.storage.compaction import CompactionGroup, CompactionPolicy, SegmentMeta, plan


def seg(generation, level, points=None):
    points = points or {}
    times = list(points) or [0]
    return SegmentMeta(generation, level, 100 * max(1, len(points)), min(times), max(times), len(points))


def apply_groups(files, groups):
    """files: {generation: (level, {time: write_id})}. Returns the files after the groups ran."""
    files = dict(files)
    for g in groups:
        merged = {}
        for gen in sorted(g.inputs):  # oldest first: a newer file's point replaces an older one
            merged.update(files.pop(gen)[1])
        files[max(g.inputs)] = (g.output_level, merged)
    return files


def read_view(files):
    """What a read sees: every file overlaid in generation order, newest wins."""
    view = {}
    for gen in sorted(files):
        view.update(files[gen][1])
    return view


def metas(files):
    return [seg(gen, level, pts) for gen, (level, pts) in files.items()]


@st.composite
def shards(draw):
    policy = CompactionPolicy(
        fan_in=draw(st.integers(2, 5)), max_level=draw(st.integers(1, 5))
    )
    gens = sorted(draw(st.sets(st.integers(0, 10_000), max_size=24)))
    files = {}
    write_id = 0
    for gen in gens:
        level = draw(st.integers(1, policy.max_level + 1))
        times = draw(st.sets(st.integers(0, 12), max_size=4))
        pts = {}
        for t in sorted(times):
            write_id += 1
            pts[t] = write_id
        files[gen] = (level, pts)
    in_progress = set(draw(st.sets(st.sampled_from(gens), max_size=3))) if gens else set()
    in_progress |= draw(st.sets(st.integers(20_000, 20_010), max_size=2))  # unknown: ignored
    return files, in_progress, policy, draw(st.booleans()), draw(st.booleans())


def check_invariants(files, groups, in_progress):
    order = sorted(files)
    position = {gen: i for i, gen in enumerate(order)}
    seen = set()
    for g in groups:
        assert isinstance(g, CompactionGroup)
        assert len(g.inputs) >= 1
        assert list(g.inputs) == sorted(g.inputs)
        assert not seen & set(g.inputs), "groups overlap"
        seen |= set(g.inputs)
        assert not set(g.inputs) & in_progress, "planned a file a running compaction holds"
        idx = [position[gen] for gen in g.inputs]
        assert idx == list(range(idx[0], idx[0] + len(idx))), "group skips a file in generation order"
        assert all(g.output_level >= files[gen][0] for gen in g.inputs)
        if len(g.inputs) == 1:
            assert g.reason == "tombstones", "a one-file group only makes sense to drop deletes"


@given(shards())
@settings(max_examples=300, deadline=None)
def test_plan_invariants(shard):
    files, in_progress, policy, has_tombstones, cold = shard
    groups = plan(
        metas(files), in_progress=in_progress, has_tombstones=has_tombstones, cold=cold, policy=policy
    )
    check_invariants(files, groups, in_progress)


@given(shards(), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_plan_is_deterministic(shard, rnd):
    files, in_progress, policy, has_tombstones, cold = shard
    kwargs = dict(in_progress=in_progress, has_tombstones=has_tombstones, cold=cold, policy=policy)
    first = plan(metas(files), **kwargs)
    shuffled = metas(files)
    rnd.shuffle(shuffled)
    assert plan(shuffled, **kwargs) == first
    assert plan(metas(files), **kwargs) == first


@given(shards())
@settings(max_examples=200, deadline=None)
def test_full_plan_covers_every_file(shard):
    files, in_progress, policy, _, cold = shard
    for tombstones in (True, False):
        if not tombstones and not (cold and len(files) > 1):
            continue
        groups = plan(metas(files), in_progress=in_progress, has_tombstones=tombstones, cold=cold, policy=policy)
        if not files:
            assert groups == []
        elif in_progress & set(files):
            assert groups == [], "a full compaction waits for the running one instead of skipping files"
        else:
            assert len(groups) == 1
            assert groups[0].inputs == tuple(sorted(files))
            assert groups[0].output_level >= policy.max_level
            assert groups[0].reason == ("tombstones" if tombstones else "cold")


@given(shards())
@settings(max_examples=200, deadline=None)
def test_leveled_plan_leaves_nothing_plannable(shard):
    """Nothing is left behind: with the planned files busy, planning again finds no more work."""
    files, in_progress, policy, _, _ = shard
    groups = plan(metas(files), in_progress=in_progress, policy=policy)
    busy = set(in_progress).union(*(set(g.inputs) for g in groups))
    assert plan(metas(files), in_progress=busy, policy=policy) == []


@given(shards())
@settings(max_examples=200, deadline=None)
def test_repeated_compaction_terminates_and_keeps_last_write_wins(shard):
    files, in_progress, policy, has_tombstones, cold = shard
    before = read_view(files)
    rounds = 0
    while True:
        groups = plan(
            metas(files), in_progress=in_progress, has_tombstones=has_tombstones, cold=cold, policy=policy
        )
        if not groups:
            if in_progress & set(files):
                in_progress = set()  # the running compaction finishes; plan again
                continue
            break
        n_before = len(files)
        files = apply_groups(files, groups)
        assert len(files) < n_before or has_tombstones
        assert read_view(files) == before
        # The shard drops its tombstones once a full compaction rewrote every file; the
        # running compaction of round one has finished by the next round.
        has_tombstones = False
        in_progress = set()
        rounds += 1
        assert rounds <= 30, "planning did not converge"
    if cold:
        assert len(files) <= 1


# --- the policy, as scenarios -------------------------------------------------------------------

def test_four_level1_files_become_one_level2():
    groups = plan([seg(g, 1) for g in range(1, 8)])
    assert groups == [CompactionGroup((1, 2, 3, 4), 2, "level")]


def test_levels_are_planned_independently_lowest_first():
    segs = [seg(1, 3), seg(2, 3), seg(3, 3), seg(4, 3)] + [seg(g, 2) for g in range(5, 9)] + [
        seg(g, 1) for g in range(9, 13)
    ]
    assert plan(segs) == [
        CompactionGroup((9, 10, 11, 12), 2, "level"),
        CompactionGroup((5, 6, 7, 8), 3, "level"),
        CompactionGroup((1, 2, 3, 4), 4, "level"),
    ]


def test_top_level_files_are_left_to_full_compaction():
    segs = [seg(g, 4) for g in range(1, 9)]
    assert plan(segs) == []
    assert plan(segs, cold=True) == [CompactionGroup(tuple(range(1, 9)), 4, "cold")]


def test_group_never_skips_a_file_of_another_level():
    # gen 1 is level 1 but gen 2 (level 2) sits between it and the newer level-1 files: merging
    # 1 with 3..5 would give gen 1's points generation 5 and let them shadow gen 2's newer ones.
    segs = [seg(1, 1), seg(2, 2)] + [seg(g, 1) for g in range(3, 7)]
    assert plan(segs) == [CompactionGroup((3, 4, 5, 6), 2, "level")]


def test_in_progress_file_splits_a_run():
    segs = [seg(g, 1) for g in range(1, 10)]
    assert plan(segs, in_progress={3}) == [CompactionGroup((4, 5, 6, 7), 2, "level")]
    assert plan(segs, in_progress={5}) == [CompactionGroup((1, 2, 3, 4), 2, "level"),
                                           CompactionGroup((6, 7, 8, 9), 2, "level")]
    assert plan(segs, in_progress={4, 8}) == []  # stretches of 3, 3 and 1: all wait
    assert plan(segs, in_progress={9}) == [CompactionGroup((1, 2, 3, 4), 2, "level"),
                                           CompactionGroup((5, 6, 7, 8), 2, "level")]


def test_tombstones_force_rewrite_even_of_one_file():
    assert plan([seg(7, 2)], has_tombstones=True) == [CompactionGroup((7,), 4, "tombstones")]
    assert plan([seg(7, 2)], cold=True) == []  # one file and nothing to delete: already optimal
    assert plan([seg(1, 1), seg(2, 1)], has_tombstones=True, in_progress={2}) == []


def test_full_compaction_never_lowers_a_level():
    segs = [seg(1, 6), seg(2, 1)]
    assert plan(segs, cold=True) == [CompactionGroup((1, 2), 6, "cold")]


def test_steady_snapshots_keep_few_files_and_levels_ordered_by_age():
    """64 cache snapshots compacted as they come: the shard stays at O(log N) files and older
    files are never at a lower level than newer ones (what keeps stretches mergeable)."""
    files = {}
    for gen in range(1, 65):
        files[gen] = (1, {gen: gen})
        while groups := plan(metas(files)):  # each finished compaction may enable the next
            files = apply_groups(files, groups)
        levels = [files[g][0] for g in sorted(files)]
        assert levels == sorted(levels, reverse=True)
        assert len(files) <= 3 * 3 + 1  # at most fan_in - 1 files per level below the top, +1
    assert sorted(lvl for lvl, _ in files.values()) == [4]
    assert read_view(files) == {g: g for g in range(1, 65)}


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="share generation 3"):
        plan([seg(3, 1), seg(3, 2)])
    with pytest.raises(ValueError, match="level must be >= 1"):
        SegmentMeta(1, 0, 10, 0, 1, 1)
    with pytest.raises(ValueError, match="min_time"):
        SegmentMeta(1, 1, 10, 5, 1, 1)
    with pytest.raises(ValueError, match="fan_in must be >= 2"):
        CompactionPolicy(fan_in=1)
    with pytest.raises(ValueError, match="max_level must be >= 1"):
        CompactionPolicy(max_level=0)


def test_empty_shard_plans_nothing():
    assert plan([], has_tombstones=True, cold=True) == []
