"""The streaming executor's scheduler: a pure state machine (no shoal, no
threads, no clock).  executor.py performs its actions.

Theory of operation
-------------------
A plan is a list of stages in topological order; each stage names the
stages that feed it.  Units of data are ``Item``s: a block (or, at a read
source, a read task) with a *key*, its rows and its bytes.

* SOURCE stages know their items at the start and hand them all downstream.
* EXCHANGE stages are sources whose items are being made elsewhere (a
  shuffle's reduces, started before the run): each item whose rows are not
  known yet is a task of the stage from the start (the performer adopts the
  running reduce), so it reaches the stages after it as soon as it is made,
  and the key order holds as for any task.  Their blocks are data, not
  counted, like a source's.
* MAP stages run one task per *bundle* of items (the smallest keys first;
  with ``min_rows_per_bundle``, items until that many rows) and get one or
  more items back.
* LIMIT stages forward items in key order until ``limit`` rows have passed;
  the item that crosses the limit is cut by a slice task; then everything
  upstream is cancelled.  Before that, a stage feeding a limit starts no task
  for a key once the rows known to come from smaller keys reach the limit
  (rows waiting at the limit, and the rows of items and running tasks in
  stages that keep the row count: read tasks' counts, row maps): that task's
  output would be dropped.  If the counts were estimates that fell short and
  nothing is left running, the next task starts after all.
* UNION stages forward what they get.
* The OUTPUT stage (last) emits items to the consumer in key order.

Keys give the order of the output: a source's ``j``-th item has key
``prefix + (j,)`` (the prefix orders the branches of a union), a task's
output takes its bundle's first key (``+ (s,)`` if it made several).  An
item may leave LIMIT or OUTPUT only when no *live* item (pending, running
or held) upstream has a smaller key, so rows come out in order although tasks
finish in any order.

The memory budget
-----------------
``in_flight`` counts the bytes of every block this run made and still
holds (queued for a stage, input of a running task, held for order, or
emitted and not yet released by the consumer) plus an estimate of the
output of every running task.  A task may start only if the estimate fits
under ``budget``; stages are tried downstream first, so work that frees
memory goes before work that makes more.  Two exceptions keep it from
stalling, each allowing one task beyond the budget: the bundle holding
the *frontier* (the smallest live key: the next thing the consumer
waits for) may always start, and a short bundle (fewer rows than
``min_rows_per_bundle``) starts when its stage holds the frontier and
nothing upstream is running to add to it.  Blocks that existed before the
run (``from_items``, ``materialize``) are not counted: they are data, not
work in flight.

The budget is a ceiling, not a target: when the consumer is slower than the
stages, what it has not taken yet would grow to the budget (a whole 125 MB
dataset read ahead of an ``iter_batches`` loop, with a 512 MB budget).  So
no task starts while ``max_backlog`` emitted items wait for the consumer;
the consumer taking one lets the next start.  It cannot stall the run: what
the consumer waits for is already emitted.

::

    consumer <- OUTPUT <- MAP(map_batches) <- LIMIT? <- MAP(read+map) <- SOURCE
                 emit      submit/done                  submit/done      items
    events in: start(), task_done(task, outputs), released(handle),
               resize(stage, max_running) (an actor pool grew or shrank)
    actions out: Submit, Release, Cancel, Emit, Finish
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

Key = tuple[int, ...]
HIGHEST: Key = (1 << 62,)


class StageKind(enum.Enum):
    SOURCE = "source"
    EXCHANGE = "exchange"  # a source whose items arrive as their makers finish
    MAP = "map"
    LIMIT = "limit"
    UNION = "union"
    OUTPUT = "output"


class StageState(enum.Enum):
    OPEN = "open"          # may still get inputs or run tasks
    FINISHED = "finished"  # every input processed, nothing running
    CANCELLED = "cancelled"  # a limit downstream needs nothing more from it


@dataclass(frozen=True, order=True)
class Item:
    key: Key
    handle: int
    rows: int | None = field(compare=False)
    size: int = field(compare=False)
    counted: bool = field(compare=False)  # made by this run: in the budget


@dataclass(frozen=True)
class Output:
    """What a finished task made (reported by the performer)."""

    handle: int
    rows: int
    size: int


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: StageKind
    upstream: tuple[int, ...] = ()
    max_running: int = 1
    min_rows_per_bundle: int | None = None
    limit: int | None = None
    items: tuple[Item, ...] = ()  # SOURCE, EXCHANGE (rows None: not made yet)
    preserves_rows: bool = False  # MAP: a task's output has its inputs' rows


@dataclass(frozen=True)
class Submit:
    task: int
    stage: int
    items: tuple[Item, ...]
    slice_rows: int | None = None  # LIMIT: keep the first n rows of items[0]


@dataclass(frozen=True)
class Release:
    handles: tuple[int, ...]


@dataclass(frozen=True)
class Cancel:
    tasks: tuple[int, ...]


@dataclass(frozen=True)
class Emit:
    item: Item


@dataclass(frozen=True)
class Finish:
    pass


Action = Submit | Release | Cancel | Emit | Finish


@dataclass(frozen=True)
class StageLoad:
    waiting: int  # items queued for the stage
    running: int  # its tasks running
    inputs_done: bool  # no more items can come


@dataclass
class _Running:
    stage: int
    items: tuple[Item, ...]
    estimate: int

    @property
    def key(self) -> Key:
        return self.items[0].key


@dataclass
class _Stage:
    spec: StageSpec
    state: StageState = StageState.OPEN
    pending: list[Item] = field(default_factory=list)  # a heap by key
    running: set[int] = field(default_factory=set)
    rows_passed: int = 0  # LIMIT
    tasks_done: int = 0
    tasks_started: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rows_out: int = 0

    def live_min(self, tasks: dict[int, _Running]) -> Key:
        keys = [self.pending[0].key] if self.pending else []
        keys += [tasks[t].key for t in self.running]
        return min(keys, default=HIGHEST)


class Schedule:
    """Stages in topological order; the last is the OUTPUT stage."""

    def __init__(self, specs: Sequence[StageSpec], budget: int,
                 default_estimate: int = 1 << 20, max_backlog: int | None = None) -> None:
        """``max_backlog``: no task starts while this many emitted items wait for
        the consumer (None: only the budget bounds them)."""
        if not specs or specs[-1].kind is not StageKind.OUTPUT:
            raise ValueError("the last stage must be the OUTPUT stage")
        self.stages = [_Stage(s) for s in specs]
        self.budget = max(1, budget)
        self.max_backlog = max_backlog
        self.default_estimate = default_estimate
        self.in_flight = 0
        self.peak_in_flight = 0
        self.tasks: dict[int, _Running] = {}
        self.emitted: dict[int, int] = {}  # handle -> counted bytes, until released
        self.emitted_waiting = 0  # emitted items the consumer has not released yet
        self._task_ids = itertools.count()
        self._downstream: dict[int, int] = {}
        for i, s in enumerate(specs):
            for u in s.upstream:
                if u in self._downstream:
                    raise ValueError(f"stage {u} feeds two stages")
                self._downstream[u] = i
        self._upstream_all = [self._closure(i) for i in range(len(specs))]
        self._limit_of = {i: lim for i in range(len(specs))
                          if (lim := self._limit_below(i)) is not None}
        self.finished = False

    def _limit_below(self, i: int) -> int | None:
        """The LIMIT stage stage i's output reaches through maps and unions."""
        d = self._downstream.get(i)
        while d is not None and self.stages[d].spec.kind in (StageKind.MAP, StageKind.UNION):
            d = self._downstream.get(d)
        return d if d is not None and self.stages[d].spec.kind is StageKind.LIMIT else None

    def _keeps_rows_to(self, i: int, lim: int) -> bool:
        """Every row in stage i (an item or a task's input) reaches ``lim``."""
        while i != lim:
            spec = self.stages[i].spec
            if spec.kind is StageKind.MAP and not spec.preserves_rows:
                return False
            i = self._downstream[i]
        return True

    def _closure(self, i: int) -> list[int]:
        out: list[int] = []
        todo = list(self.stages[i].spec.upstream)
        while todo:
            u = todo.pop()
            if u not in out:
                out.append(u)
                todo.extend(self.stages[u].spec.upstream)
        return out

    # ---- events -------------------------------------------------------------

    def start(self) -> list[Action]:
        actions: list[Action] = []
        for i, st in enumerate(self.stages):
            if st.spec.kind is StageKind.SOURCE:
                for item in st.spec.items:
                    self._arrive(self._downstream[i], item, actions)
                st.state = StageState.FINISHED
            elif st.spec.kind is StageKind.EXCHANGE:
                for item in st.spec.items:
                    if item.rows is None:  # being made: its maker is this stage's task
                        self._start(i, (item,), 0, actions)
                    else:
                        self._arrive(self._downstream[i], item, actions)
        self._advance(actions)
        return actions

    def task_done(self, task: int, outputs: Sequence[Output]) -> list[Action]:
        actions: list[Action] = []
        run = self.tasks.pop(task, None)
        if run is None:  # cancelled earlier: its outputs are not wanted
            actions.append(Release(tuple(o.handle for o in outputs)))
            return actions
        st = self.stages[run.stage]
        st.running.discard(task)
        st.tasks_done += 1
        self.in_flight -= run.estimate + sum(i.size for i in run.items if i.counted)
        actions.append(Release(tuple(i.handle for i in run.items)))
        st.bytes_in += sum(i.size for i in run.items)
        counted = st.spec.kind is not StageKind.EXCHANGE  # an exchange's outputs are data
        made = [Item(key=run.key if len(outputs) == 1 else run.key + (s,), handle=o.handle,
                     rows=o.rows, size=o.size, counted=counted) for s, o in enumerate(outputs)]
        st.bytes_out += sum(o.size for o in outputs)
        st.rows_out += sum(o.rows for o in outputs)
        if st.state is StageState.CANCELLED:
            actions.append(Release(tuple(i.handle for i in made)))
        else:
            for item in made:
                if item.counted:
                    self._add_flight(item.size)
                if st.spec.kind is StageKind.LIMIT:
                    st.rows_passed += item.rows or 0
                self._arrive(self._downstream[run.stage], item, actions)
        self._advance(actions)
        return actions

    def released(self, handle: int) -> list[Action]:
        """The consumer took an emitted item and fetched it: its block is the
        consumer's now (bounded by the consumer's own prefetch)."""
        self.emitted_waiting -= 1
        self.in_flight -= self.emitted.pop(handle, 0)
        actions: list[Action] = []
        self._advance(actions)
        return actions

    def resize(self, i: int, max_running: int) -> list[Action]:
        """Stage i may run ``max_running`` tasks from now on (its actor pool grew or
        shrank); tasks beyond it finish as they are."""
        st = self.stages[i]
        st.spec = dataclasses.replace(st.spec, max_running=max(0, max_running))
        actions: list[Action] = []
        self._advance(actions)
        return actions

    def load(self, i: int) -> StageLoad:
        """What an actor pool scales by."""
        st = self.stages[i]
        return StageLoad(waiting=len(st.pending), running=len(st.running),
                         inputs_done=self._inputs_done(i))

    # ---- the rules ------------------------------------------------------------

    def _add_flight(self, size: int) -> None:
        self.in_flight += size
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _arrive(self, i: int, item: Item, actions: list[Action]) -> None:
        st = self.stages[i]
        if st.state is StageState.CANCELLED:
            self._drop([item], actions)
            return
        if st.spec.kind is StageKind.UNION:
            self._arrive(self._downstream[i], item, actions)
            return
        heapq.heappush(st.pending, item)

    def _drop(self, items: Sequence[Item], actions: list[Action]) -> None:
        if items:
            self.in_flight -= sum(i.size for i in items if i.counted)
            actions.append(Release(tuple(i.handle for i in items)))

    def _upstream_min(self, i: int) -> Key:
        return min((self.stages[u].live_min(self.tasks) for u in self._upstream_all[i]),
                   default=HIGHEST)

    def _frontier(self) -> Key:
        """The smallest live key before the output: what the consumer waits for."""
        return min((st.live_min(self.tasks) for st in self.stages[:-1]), default=HIGHEST)

    def _advance(self, actions: list[Action]) -> None:
        """Move everything that can move; downstream first (it frees memory)."""
        progress = True
        while progress:
            progress = False
            for i in reversed(range(len(self.stages))):
                st = self.stages[i]
                if st.state is not StageState.OPEN:
                    continue
                kind = st.spec.kind
                if kind is StageKind.OUTPUT:
                    progress |= self._emit(i, actions)
                elif kind is StageKind.LIMIT:
                    progress |= self._limit(i, actions)
                elif kind is StageKind.MAP:
                    progress |= self._submit_maps(i, actions)
                progress |= self._maybe_finish(i)
        if self.stages[-1].state is StageState.FINISHED and not self.finished:
            self.finished = True
            actions.append(Finish())

    def _inputs_done(self, i: int) -> bool:
        return all(self.stages[u].state is not StageState.OPEN for u in self._upstream_all[i])

    def _maybe_finish(self, i: int) -> bool:
        st = self.stages[i]
        if st.state is StageState.OPEN and not st.pending and not st.running \
                and self._inputs_done(i):
            st.state = StageState.FINISHED
            return True
        return False

    def _emit(self, i: int, actions: list[Action]) -> bool:
        st = self.stages[i]
        bound = self._upstream_min(i)
        moved = False
        while st.pending and st.pending[0].key < bound:
            item = heapq.heappop(st.pending)
            if item.counted:
                self.emitted[item.handle] = item.size
            self.emitted_waiting += 1
            actions.append(Emit(item))
            moved = True
        return moved

    def _limit(self, i: int, actions: list[Action]) -> bool:
        st = self.stages[i]
        limit = st.spec.limit or 0
        bound = self._upstream_min(i)
        moved = False
        while st.pending and st.pending[0].key < bound and not st.running:
            if st.rows_passed >= limit:
                break
            item = heapq.heappop(st.pending)
            rows = item.rows or 0
            moved = True
            if st.rows_passed + rows <= limit:
                st.rows_passed += rows
                self._arrive(self._downstream[i], item, actions)
            else:  # cut it; the slice task's output is forwarded in task_done
                self._start(i, (item,), 0, actions, slice_rows=limit - st.rows_passed)
        if st.rows_passed >= limit and not st.running:
            self._cancel_upstream(i, actions)
            self._drop(st.pending, actions)
            st.pending.clear()
            st.state = StageState.FINISHED
            moved = True
        return moved

    def _cancel_upstream(self, i: int, actions: list[Action]) -> None:
        cancelled = []
        for u in self._upstream_all[i]:
            st = self.stages[u]
            if st.state is StageState.OPEN:
                self._drop(st.pending, actions)
                st.pending.clear()
                for t in st.running:
                    run = self.tasks.pop(t)
                    self.in_flight -= run.estimate
                    self._drop(run.items, actions)
                    cancelled.append(t)
                st.running.clear()
            st.state = StageState.CANCELLED
        if cancelled:
            actions.append(Cancel(tuple(cancelled)))

    def _estimate(self, st: _Stage, items: Sequence[Item]) -> int:
        size_in = sum(i.size for i in items)
        if st.tasks_done and st.bytes_in:
            return int(st.bytes_out / st.bytes_in * size_in) if size_in else \
                st.bytes_out // st.tasks_done
        if st.tasks_done:
            return st.bytes_out // st.tasks_done
        return size_in or self.default_estimate

    def _submit_maps(self, i: int, actions: list[Action]) -> bool:
        st = self.stages[i]
        moved = False
        while st.pending and len(st.running) < st.spec.max_running:
            if self.max_backlog is not None and self.emitted_waiting >= self.max_backlog:
                break  # the consumer is behind: what it has not taken is enough
            bundle = self._bundle(i)
            if bundle is None or not self._wanted(i, bundle[0].key):
                break
            estimate = self._estimate(st, bundle)
            if self.in_flight + estimate > self.budget and not self._may_exceed(bundle[0]):
                break
            for _ in bundle:
                heapq.heappop(st.pending)
            self._start(i, bundle, estimate, actions)
            moved = True
        return moved

    def _wanted(self, i: int, key: Key) -> bool:
        """False if the limit below stage i gets its rows from keys before ``key``."""
        lim = self._limit_of.get(i)
        if lim is None:
            return True
        st = self.stages[lim]
        if st.running:  # its slice task is cutting the last rows
            return False
        rows = st.rows_passed + sum(item.rows or 0 for item in st.pending if item.key < key)
        busy = False
        for u in self._upstream_all[lim]:
            up = self.stages[u]
            busy |= bool(up.running)
            if up.spec.kind in (StageKind.SOURCE, StageKind.EXCHANGE) \
                    or not self._keeps_rows_to(u, lim):
                continue
            rows += sum(item.rows or 0 for item in up.pending if item.key < key)
            rows += sum(sum(item.rows or 0 for item in self.tasks[t].items)
                        for t in up.running if self.tasks[t].key < key)
        # counts may be estimates: if they fell short and nothing runs, go on
        return rows < (st.spec.limit or 0) or not busy

    def _bundle(self, i: int) -> tuple[Item, ...] | None:
        """The next bundle (smallest keys) or None if it should wait for more rows."""
        st = self.stages[i]
        want = st.spec.min_rows_per_bundle
        first = st.pending[0]
        if not want or first.rows is None:
            return (first,)
        bound = self._upstream_min(i)
        taken: list[Item] = []
        rows = 0
        for item in sorted(st.pending):
            if item.rows is None or (taken and item.key > bound):
                break
            taken.append(item)
            rows += item.rows
            if rows >= want:
                return tuple(taken)
        if self._inputs_done(i) or bound == HIGHEST:
            return tuple(taken)
        starved = not any(self.stages[u].running for u in self._upstream_all[i])
        if starved and self._may_exceed(first):
            return tuple(taken)
        return None

    def _may_exceed(self, first: Item) -> bool:
        """The frontier may run beyond the budget, unless the consumer has not yet
        taken what was emitted (then taking it is what frees memory)."""
        return not self.emitted_waiting and first.key <= self._frontier()

    def _start(self, i: int, items: tuple[Item, ...], estimate: int, actions: list[Action],
               slice_rows: int | None = None) -> None:
        task = next(self._task_ids)
        self.tasks[task] = _Running(stage=i, items=items, estimate=estimate)
        st = self.stages[i]
        st.running.add(task)
        st.tasks_started += 1
        self._add_flight(estimate)
        actions.append(Submit(task=task, stage=i, items=items, slice_rows=slice_rows))
