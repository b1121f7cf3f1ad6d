"""The streaming executor's scheduler (shoal/data/schedule.py), driven without
processes: random task completion orders and consumer speeds; after every
step the budget holds, and the output comes out complete and in order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.data.schedule import (
    Cancel,
    Emit,
    Finish,
    Item,
    Output,
    Release,
    Schedule,
    StageKind,
    StageSpec,
    Submit,
)

BLOCK = 100  # bytes of every block a map makes


def _source(n: int, rows: int = 10, prefix: tuple = ()) -> StageSpec:
    items = tuple(Item(key=prefix + (j,), handle=1000 * len(prefix) + j, rows=rows, size=0,
                       counted=False) for j in range(n))
    return StageSpec("src", StageKind.SOURCE, items=items)


class Sim:
    """A performer in miniature: runs tasks in a random order, makes one block of
    BLOCK bytes per task (rows: the inputs' rows, or the slice), and consumes."""

    def __init__(self, specs: list[StageSpec], budget: int, seed: int,
                 consumer_lag: int = 0) -> None:
        self.s = Schedule(specs, budget, default_estimate=BLOCK)
        self.rng = random.Random(seed)
        self.running: dict[int, Submit] = {}
        self.emitted: list[Item] = []
        self.unreleased: list[Item] = []
        self.consumer_lag = consumer_lag
        self.handles = iter(range(10**6, 10**7))
        self.finished = False
        self.max_over = 0

    def perform(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Submit):
                self.running[a.task] = a
            elif isinstance(a, Emit):
                self.emitted.append(a.item)
                self.unreleased.append(a.item)
            elif isinstance(a, Cancel):
                for t in a.tasks:
                    self.running.pop(t, None)
            elif isinstance(a, Finish):
                self.finished = True
            else:
                assert isinstance(a, Release)
        self.max_over = max(self.max_over, self.s.in_flight - self.s.budget)

    def step(self) -> bool:
        choices = []
        if self.running:
            choices.append("task")
        if len(self.unreleased) > self.consumer_lag or (self.unreleased and not self.running):
            choices.append("consume")
        if not choices:
            return False
        if self.rng.choice(choices) == "task":
            task = self.rng.choice(sorted(self.running))
            sub = self.running.pop(task)
            rows = sub.slice_rows if sub.slice_rows is not None else sum(
                i.rows or 0 for i in sub.items)
            self.perform(self.s.task_done(task, [Output(next(self.handles), rows, BLOCK)]))
        else:
            item = self.unreleased.pop(0)
            self.perform(self.s.released(item.handle))
        return True

    def run(self) -> None:
        self.perform(self.s.start())
        for _ in range(100_000):
            if not self.step():
                break
        assert self.finished, "the schedule stalled"


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), budget_blocks=st.integers(1, 6), seed=st.integers(0, 10**6),
       lag=st.integers(0, 3), maps=st.integers(1, 3))
def test_every_item_comes_out_once_in_order_within_the_budget(n, budget_blocks, seed, lag,
                                                              maps):
    specs = [_source(n)] + [StageSpec(f"m{k}", StageKind.MAP, upstream=(k,), max_running=3)
                            for k in range(maps)]
    specs.append(StageSpec("out", StageKind.OUTPUT, upstream=(maps,)))
    sim = Sim(specs, budget=budget_blocks * BLOCK, seed=seed, consumer_lag=lag)
    sim.run()
    assert [i.key for i in sim.emitted] == [(j,) for j in range(n)]
    assert sum(i.rows for i in sim.emitted) == 10 * n
    # beyond the budget by at most one frontier task per stage
    assert sim.max_over <= maps * BLOCK
    assert sim.s.in_flight == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), limit=st.integers(0, 320), seed=st.integers(0, 10**6))
def test_a_limit_passes_exactly_its_rows_in_order_and_cancels_the_rest(n, limit, seed):
    specs = [_source(n), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=4),
             StageSpec("limit", StageKind.LIMIT, upstream=(1,), limit=limit, max_running=1),
             StageSpec("out", StageKind.OUTPUT, upstream=(2,))]
    sim = Sim(specs, budget=3 * BLOCK, seed=seed)
    sim.run()
    assert sum(i.rows for i in sim.emitted) == min(limit, 10 * n)
    keys = [i.key for i in sim.emitted]
    assert keys == sorted(keys)
    assert sim.s.stages[1].tasks_started <= n


def test_a_limit_stops_reading_early():
    specs = [_source(1000), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=2),
             StageSpec("limit", StageKind.LIMIT, upstream=(1,), limit=15, max_running=1),
             StageSpec("out", StageKind.OUTPUT, upstream=(2,))]
    sim = Sim(specs, budget=4 * BLOCK, seed=1)
    sim.run()
    assert sum(i.rows for i in sim.emitted) == 15
    assert sim.s.stages[1].tasks_started < 10


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), min_size=1, max_size=4), seed=st.integers(0, 10**6))
def test_a_union_keeps_the_order_of_its_inputs(sizes, seed):
    specs = []
    feeds = []
    for c, n in enumerate(sizes):
        specs.append(_source(n, prefix=(c,)))
        specs.append(StageSpec(f"m{c}", StageKind.MAP, upstream=(len(specs) - 1,),
                               max_running=2))
        feeds.append(len(specs) - 1)
    specs.append(StageSpec("union", StageKind.UNION, upstream=tuple(feeds)))
    specs.append(StageSpec("out", StageKind.OUTPUT, upstream=(len(specs) - 1,)))
    sim = Sim(specs, budget=2 * BLOCK, seed=seed)
    sim.run()
    assert [i.key for i in sim.emitted] == [(c, j) for c, n in enumerate(sizes)
                                            for j in range(n)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), want=st.integers(1, 60), seed=st.integers(0, 10**6),
       tight=st.booleans())
def test_bundles_reach_the_batch_size_and_keep_the_order(n, want, seed, tight):
    """With room for a batch's blocks, bundles are full; with less (tight), the
    budget wins: short bundles, but no stall."""
    specs = [_source(n), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=2),
             StageSpec("batches", StageKind.MAP, upstream=(1,), max_running=2,
                       min_rows_per_bundle=want),
             StageSpec("out", StageKind.OUTPUT, upstream=(2,))]
    room = 2 if tight else want // 10 + 3
    sim = Sim(specs, budget=room * BLOCK, seed=seed)
    bundles: list[int] = []
    original = sim.perform

    def perform(actions):
        bundles.extend(sum(i.rows for i in a.items) for a in actions
                       if isinstance(a, Submit) and a.stage == 2)
        original(actions)

    sim.perform = perform
    sim.run()
    assert sum(bundles) == 10 * n
    if not tight:  # every bundle but the last reaches the batch size
        assert all(b >= min(want, 10 * n) for b in bundles[:-1])
    keys = [i.key for i in sim.emitted]
    assert keys == sorted(keys)


def test_blocks_that_existed_before_the_run_are_not_counted():
    specs = [_source(5), StageSpec("out", StageKind.OUTPUT, upstream=(0,))]
    s = Schedule(specs, budget=1)
    actions = s.start()
    assert [a.item.key for a in actions if isinstance(a, Emit)] == [(j,) for j in range(5)]
    assert s.in_flight == 0


def test_the_last_stage_must_be_the_output():
    with pytest.raises(ValueError, match="OUTPUT"):
        Schedule([_source(1)], budget=10)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), made=st.integers(0, 30), seed=st.integers(0, 10**6),
       lag=st.integers(0, 2))
def test_an_exchange_streams_its_outputs_in_order_as_they_are_made(n, made, seed, lag):
    """A shuffle's outputs (an EXCHANGE stage) are its tasks from the start; each
    goes on as soon as it is made, in key order, and none counts in the budget."""
    made = min(made, n)  # the first ``made`` exist already (rows known)
    items = tuple(Item(key=(j,), handle=j, rows=10 if j < made else None,
                       size=BLOCK if j < made else 0, counted=False) for j in range(n))
    specs = [StageSpec("shuffle", StageKind.EXCHANGE, items=items),
             StageSpec("map", StageKind.MAP, upstream=(0,), max_running=2),
             StageSpec("out", StageKind.OUTPUT, upstream=(1,))]
    sim = Sim(specs, budget=2 * BLOCK, seed=seed, consumer_lag=lag)
    maps_while_making: list[int] = []
    original = sim.perform

    def perform(actions):
        original(actions)
        if any(isinstance(a, Submit) and a.stage == 1 for a in actions):
            maps_while_making.append(len(sim.s.stages[0].running))

    sim.perform = perform
    sim.perform(sim.s.start())
    assert len(sim.s.stages[0].running) == n - made  # all adopted at once
    for _ in range(100_000):
        if not sim.step():
            break
    assert sim.finished
    assert [i.key for i in sim.emitted] == [(j,) for j in range(n)]
    # outputs arrive out of order: later ones may run first and wait for the
    # frontier, which may start beyond the budget (one task: its output)
    assert sim.max_over <= BLOCK
    if n - made > 1:  # the first map did not wait for the last output
        assert maps_while_making[0] > 0 or made > 0
    assert sim.s.in_flight == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), limit=st.integers(0, 200), seed=st.integers(0, 10**6),
       running=st.integers(1, 6))
def test_a_limit_stops_launching_reads_once_their_rows_are_known(n, limit, seed, running):
    """Reads whose row counts are known (and maps that keep them) launch only the
    tasks the limit needs, whatever order they finish in."""
    specs = [_source(n), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=running,
                                   preserves_rows=True),
             StageSpec("limit", StageKind.LIMIT, upstream=(1,), limit=limit, max_running=1),
             StageSpec("out", StageKind.OUTPUT, upstream=(2,))]
    sim = Sim(specs, budget=10 * BLOCK, seed=seed)
    sim.run()
    assert sum(i.rows for i in sim.emitted) == min(limit, 10 * n)
    assert sim.s.stages[1].tasks_started == min(n, -(-limit // 10))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), limit=st.integers(1, 100), seed=st.integers(0, 10**6))
def test_a_limit_still_finishes_when_row_counts_were_too_high(n, limit, seed):
    """Counts are estimates: tasks that make fewer rows than promised leave the
    limit short; once nothing runs, the next task starts after all."""
    specs = [_source(n), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=3,
                                   preserves_rows=True),
             StageSpec("limit", StageKind.LIMIT, upstream=(1,), limit=limit, max_running=1),
             StageSpec("out", StageKind.OUTPUT, upstream=(2,))]
    sim = Sim(specs, budget=10 * BLOCK, seed=seed)
    original = sim.s.task_done

    def fewer(task, outputs):  # every read makes 3 rows, not the 10 it promised
        if sim.s.tasks.get(task) is not None and sim.s.tasks[task].stage == 1:
            outputs = [Output(o.handle, 3, o.size) for o in outputs]
        return original(task, outputs)

    sim.s.task_done = fewer
    sim.run()
    assert sum(i.rows for i in sim.emitted) == min(limit, 3 * n)


def test_an_actor_pool_grows_when_saturated_and_shrinks_when_no_input_can_come():
    from shoal.data.actor_pool import ActorPool, PoolActor, pool_bounds

    assert pool_bounds(None, 3) == (3, 3, 3)
    assert pool_bounds(2, 3) == (2, 2, 2)
    assert pool_bounds((1, 4), 3) == (1, 4, 1)
    assert pool_bounds((1, 4, 2), 3) == (1, 4, 2)
    assert pool_bounds((2, None), 3) == (2, 3, 2)  # ActorPoolStrategy(min_size=2)
    pool = ActorPool(1, 3, per_actor=2, actors=[PoolActor("a")])
    assert pool.capacity == 2 and pool.autoscaling
    assert not pool.should_grow(waiting=True, running=1)  # a free slot
    assert not pool.should_grow(waiting=False, running=2)  # nothing waits
    assert pool.should_grow(waiting=True, running=2)
    pool.actors += [PoolActor("b", in_flight=1), PoolActor("c")]
    assert not pool.should_grow(waiting=True, running=6)  # at max
    assert [a.handle for a in pool.idle_beyond_min()] == ["a", "c"]
    pool.actors[0].in_flight = 1
    assert [a.handle for a in pool.idle_beyond_min()] == ["c"]


def test_resizing_a_stage_starts_the_tasks_it_now_has_room_for():
    specs = [_source(6), StageSpec("actors", StageKind.MAP, upstream=(0,), max_running=2),
             StageSpec("out", StageKind.OUTPUT, upstream=(1,))]
    s = Schedule(specs, budget=100 * BLOCK, default_estimate=BLOCK)
    started = [a for a in s.start() if isinstance(a, Submit)]
    assert len(started) == 2 and s.load(1).waiting == 4 and s.load(1).running == 2
    more = [a for a in s.resize(1, 4) if isinstance(a, Submit)]
    assert len(more) == 2 and s.load(1).running == 4 and s.load(1).inputs_done


def test_a_slow_consumer_holds_back_the_stages_below_the_budget():
    """The budget would hold the whole dataset; the consumer, not taking what
    was emitted, holds the stages back at ``max_backlog`` items, and taking them
    lets the rest through in order."""
    specs = [_source(40), StageSpec("read", StageKind.MAP, upstream=(0,), max_running=2),
             StageSpec("out", StageKind.OUTPUT, upstream=(1,))]
    s = Schedule(specs, budget=1000 * BLOCK, default_estimate=BLOCK, max_backlog=3)
    running: list[Submit] = []
    emitted: list[Item] = []

    def perform(actions: list) -> None:
        running.extend(a for a in actions if isinstance(a, Submit))
        emitted.extend(a.item for a in actions if isinstance(a, Emit))

    perform(s.start())
    handles = iter(range(10**6, 10**7))
    while running:  # the consumer takes nothing
        sub = running.pop(0)
        perform(s.task_done(sub.task, [Output(next(handles), 10, BLOCK)]))
    # the backlog, plus what tasks already running when it filled made
    assert len(emitted) == 4 and s.in_flight == 4 * BLOCK
    taken = 0
    while taken < len(emitted):
        perform(s.released(emitted[taken].handle))
        taken += 1
        while running:
            sub = running.pop(0)
            perform(s.task_done(sub.task, [Output(next(handles), 10, BLOCK)]))
        assert len(emitted) - taken <= 4
    assert [i.key for i in emitted] == [(j,) for j in range(40)]
