"""The shuffle schedules (shoal/shuffle/schedule.py, simple.py, premerge.py,
push.py) driven by a simulated cluster: tasks finish in random orders and
nodes, and every run must respect the limits, never stall, and give each
reducer every map's block exactly once."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.shuffle.placement import Spreader
from shoal.shuffle.premerge import PremergeSchedule
from shoal.shuffle.push import PushSchedule, node_of_reducer, reducer_groups
from shoal.shuffle.schedule import (
    Limits,
    ReleaseReducer,
    Strategy,
    SubmitMap,
    SubmitMerge,
)
from shoal.shuffle.simple import SimpleSchedule

NODES = ["a", "b", "c"]


def make(strategy: Strategy, maps: int, reducers: int, limits: Limits, nodes=NODES):
    if strategy is Strategy.SIMPLE:
        return SimpleSchedule(maps, reducers, limits)
    if strategy is Strategy.PREMERGE:
        return PremergeSchedule(maps, reducers, limits)
    return PushSchedule(maps, reducers, limits, nodes=list(nodes))


def simulate(schedule, rng: random.Random) -> dict[int, ReleaseReducer]:
    """Run ``schedule`` to the end, finishing a random running task each step;
    checks the limits after every step."""
    limits = schedule.limits
    running_maps: set[int] = set()
    running_merges: dict[int, SubmitMerge] = {}
    reducing: set[int] = set()
    released: dict[int, ReleaseReducer] = {}
    merges: dict[int, SubmitMerge] = {}
    submitted_maps: list[int] = []

    def perform(actions):
        for a in actions:
            if isinstance(a, SubmitMap):
                submitted_maps.append(a.map_id)
                running_maps.add(a.map_id)
            elif isinstance(a, SubmitMerge):
                assert set(a.maps) <= set(submitted_maps) - running_maps, "merge of unfinished map"
                running_merges[a.merge_id] = merges[a.merge_id] = a
            else:
                assert a.reducer not in released
                released[a.reducer] = a
                reducing.add(a.reducer)
        assert len(running_maps) <= limits.maps_running
        assert len(reducing) <= limits.reduces_running
        assert schedule.open_maps <= limits.maps_open

    perform(schedule.start())
    steps = 0
    while not schedule.finished or reducing:
        steps += 1
        assert steps < 100_000
        choices = ([("map", m) for m in running_maps] + [("merge", j) for j in running_merges]
                   + [("reduce", r) for r in reducing])
        assert choices, "stalled: nothing running and not finished"
        kind, ident = rng.choice(sorted(choices))
        if kind == "map":
            running_maps.discard(ident)
            perform(schedule.map_done(ident, rng.choice(NODES)))
        elif kind == "merge":
            del running_merges[ident]
            perform(schedule.merge_done(ident))
        else:
            reducing.discard(ident)
            perform(schedule.reduce_done(ident))
    assert not running_maps and not running_merges
    assert schedule.counts.reduces_done == schedule.num_reducers
    assert sorted(submitted_maps) == list(range(schedule.num_maps))
    for r, release in released.items():  # every map's block for r, exactly once
        sources = list(release.maps)
        for j in release.merges:
            assert r in merges[j].reducers
            sources.extend(merges[j].maps)
        assert sorted(sources) == list(range(schedule.num_maps)), (r, release)
    assert sorted(released) == list(range(schedule.num_reducers))
    return released


@settings(max_examples=150, deadline=None)
@given(strategy=st.sampled_from(list(Strategy)), maps=st.integers(1, 40),
       reducers=st.integers(1, 12), running=st.integers(1, 6), group=st.integers(1, 6),
       extra_open=st.integers(0, 8), merges_per_node=st.integers(1, 3),
       reduces=st.integers(1, 5), seed=st.integers(0, 1 << 30))
def test_every_schedule_completes_within_its_limits(strategy, maps, reducers, running, group,
                                                    extra_open, merges_per_node, reduces, seed):
    limits = Limits(maps_running=running, maps_open=group + extra_open, merges_running=2,
                    group=group, merges_per_node=merges_per_node, reduces_running=reduces)
    simulate(make(strategy, maps, reducers, limits), random.Random(seed))


def test_simple_releases_every_column_once_all_maps_are_done():
    s = SimpleSchedule(5, 3, Limits(2, 2, 1, 1))
    actions = s.start()
    assert actions == [SubmitMap(0), SubmitMap(1)]
    assert s.map_done(1, "a") == [SubmitMap(2)]
    s.map_done(0, "a"), s.map_done(2, "a"), s.map_done(3, "a")
    last = s.map_done(4, "b")
    assert [a.reducer for a in last] == [0, 1, 2]
    assert all(a.maps == (0, 1, 2, 3, 4) and a.merges == () for a in last)
    assert s.finished


def test_premerge_merges_groups_of_maps_per_node_and_hands_a_lone_map_over_unmerged():
    s = PremergeSchedule(5, 2, Limits(maps_running=5, maps_open=5, merges_running=4, group=2))
    assert len(s.start()) == 5
    assert s.map_done(0, "a") == []
    assert s.map_done(1, "b") == []
    merge = s.map_done(2, "a")
    assert merge == [SubmitMerge(0, "a", (0, 2), (0, 1))]
    assert s.map_done(3, "b") == [SubmitMerge(1, "b", (1, 3), (0, 1))]
    assert s.map_done(4, "c") == []  # c has one map: it goes to the reducers as is
    assert s.merge_done(0) == []
    released = s.merge_done(1)
    assert [(a.reducer, a.maps, a.merges) for a in released] == [(0, (4,), (0, 1)),
                                                                  (1, (4,), (0, 1))]


def test_premerge_stalled_window_merges_a_smaller_group():
    # two open maps allowed, groups of 3: without the stall rule nothing could move
    s = PremergeSchedule(4, 1, Limits(maps_running=2, maps_open=2, merges_running=1, group=3))
    assert s.start() == [SubmitMap(0), SubmitMap(1)]
    assert s.map_done(0, "a") == []
    actions = s.map_done(1, "b")
    assert actions == [SubmitMerge(0, "a", (0,), (0,))]
    assert s.merge_done(0) == [SubmitMap(2)]


def test_push_runs_rounds_and_holds_round_k_until_round_k_minus_2_is_merged():
    limits = Limits(maps_running=8, maps_open=8, merges_running=8, group=2)
    s = PushSchedule(8, 4, limits, nodes=["a", "b"])
    assert s.start() == [SubmitMap(0), SubmitMap(1), SubmitMap(2), SubmitMap(3)]
    s.map_done(0, "x")
    merges = s.map_done(1, "x")  # round 0 complete: one merge per node's reducers
    assert merges == [SubmitMerge(0, "a", (0, 1), (0, 1)), SubmitMerge(1, "b", (0, 1), (2, 3))]
    s.map_done(2, "x")
    assert s.map_done(3, "x") == [SubmitMerge(2, "a", (2, 3), (0, 1)),
                                  SubmitMerge(3, "b", (2, 3), (2, 3))]
    assert s.merge_done(0) == []  # round 0 not fully merged: round 2 waits
    assert s.merge_done(1) == [SubmitMap(4), SubmitMap(5)]


def test_push_releases_a_node_group_once_all_its_rounds_are_merged():
    limits = Limits(maps_running=4, maps_open=4, merges_running=4, group=2)
    s = PushSchedule(4, 2, limits, nodes=["a", "b"])
    s.start()
    for m in range(4):
        s.map_done(m, "x")
    assert s.merge_done(0) == []
    assert s.merge_done(2) == [ReleaseReducer(0, "a", (), (0, 2))]
    assert s.merge_done(1) == []
    assert s.merge_done(3) == [ReleaseReducer(1, "b", (), (1, 3))]
    assert s.finished


def test_reducer_groups_split_reducers_evenly_over_nodes_and_merges():
    assert reducer_groups(5, ["a", "b"], 1) == [("a", (0, 1)), ("b", (2, 3, 4))]
    assert reducer_groups(4, ["a"], 2) == [("a", (0, 1)), ("a", (2, 3))]
    assert reducer_groups(1, ["a", "b"], 3) == [("b", (0,))]


def test_bad_limits_and_strategy_names_are_refused_by_name():
    with pytest.raises(ValueError, match="maps_running"):
        Limits(0, 1, 1, 1)
    with pytest.raises(ValueError, match="'simple', 'premerge', 'push'"):
        Strategy.parse("pull")
    with pytest.raises(ValueError, match="room for a whole round"):
        PushSchedule(4, 2, Limits(4, 1, 1, 2), nodes=["a"])
    with pytest.raises(ValueError, match="was not running"):
        SimpleSchedule(2, 1, Limits(1, 1, 1, 1)).map_done(1, "a")


@given(reducers=st.integers(1, 50), nodes=st.integers(1, 7), split=st.integers(1, 4))
def test_node_of_reducer_agrees_with_the_merge_groups(reducers, nodes, split):
    names = [f"n{i}" for i in range(nodes)]
    for node, group in reducer_groups(reducers, names, split):
        assert all(node_of_reducer(r, reducers, names) == node for r in group)


def test_spreader_fills_nodes_in_proportion_to_their_cpus():
    s = Spreader({"a": 2, "b": 1, "c": 1})
    picks = [s.take() for _ in range(8)]
    assert picks.count("a") == 4 and picks.count("b") == 2 and picks.count("c") == 2
    s.give_back("b")
    assert s.take() == "b"


def test_reducers_go_out_through_a_window_spread_over_nodes():
    s = SimpleSchedule(1, 4, Limits(1, 1, 1, 1, reduces_running=2),
                       reducer_nodes=["a", "a", "b", "b"])
    s.start()
    first = s.map_done(0, "a")
    assert [(a.reducer, a.node) for a in first] == [(0, "a"), (2, "b")]
    assert [a.reducer for a in s.reduce_done(0)] == [1]  # a is free again
    assert [a.reducer for a in s.reduce_done(1)] == [3]
    assert s.finished and s.reduce_done(2) == [] and s.reduce_done(3) == []
    assert s.counts.reduces_done == 4
    with pytest.raises(ValueError, match="was not released"):
        s.reduce_done(3)
