"""The shuffle's round scheduler: what to submit next, given what has finished.

Theory of operation
-------------------
A shuffle of ``M`` input partitions into ``R`` outputs is a set of tasks:

* **map** ``m`` turns input ``m`` into ``R`` blocks (block ``r`` for reducer ``r``);
* **merge** ``j`` (premerge and push only) combines, on one node, the blocks of
  some reducers from a group of finished maps into one block per reducer;
* **reduce** ``r`` builds output ``r`` from its *sources*: blocks of maps that
  were never merged, and its blocks of merges.

A schedule is a pure state machine (no processes, no clock): the performer
(:mod:`shoal.shuffle.driver`) calls ``start()`` and then ``map_done`` /
``merge_done`` as tasks finish, and carries out the actions returned:
:class:`SubmitMap`, :class:`SubmitMerge` and :class:`ReleaseReducer` (all of
a reducer's sources are final: its reduce may run).  Each strategy is one
subclass, in its own module (simple.py, premerge.py, push.py).

Back-pressure lives here, as counts: a map is *open* from its submission
until its output is no longer needed in its unmerged form (simple: when it
finishes, since its blocks are the reducers' inputs, the data itself;
premerge and push: once the last merge that reads it has finished).
``Limits.maps_running`` bounds maps submitted and not finished;
``Limits.maps_open`` bounds open maps, so the bytes of unmerged map output
stay under ``maps_open`` input partitions; merged blocks are the data
itself and accumulate (the store spills them when it must).

::

    performer                          schedule
       | start() -------------------------> |
       | <------ [SubmitMap 0, SubmitMap 1] |
       | (wait: map 0 finished on node A)   |
       | map_done(0, A) ------------------> |
       | <------- [SubmitMap 2, SubmitMerge]|
       | merge_done(0) -------------------> |
       | <-- [ReleaseReducer r, ...]  ...   |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Strategy(enum.Enum):
    SIMPLE = "simple"
    PREMERGE = "premerge"
    PUSH = "push"

    @classmethod
    def parse(cls, value: object) -> Strategy:
        if isinstance(value, Strategy):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(s.value) for s in cls)
            raise ValueError(f"strategy must be one of {names}, got {value!r}") from None


@dataclass(frozen=True)
class Limits:
    """Back-pressure bounds (see the module docstring) and the grouping of maps."""

    maps_running: int  # maps submitted and not finished
    maps_open: int  # maps whose output is not yet merged (premerge, push)
    merges_running: int  # merges submitted and not finished
    group: int  # premerge: maps merged together; push: maps per round
    merges_per_node: int = 1  # push: a round's merges on one node (parallel tails)
    reduces_running: int = 1 << 30  # reducers released and not done

    def __post_init__(self) -> None:
        for name in ("maps_running", "maps_open", "merges_running", "group",
                     "merges_per_node", "reduces_running"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be >= 1, got {getattr(self, name)}")


# ---- actions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SubmitMap:
    map_id: int


@dataclass(frozen=True)
class SubmitMerge:
    merge_id: int
    node: str | None  # where to run it (None: anywhere)
    maps: tuple[int, ...]  # whose blocks it merges
    reducers: tuple[int, ...]  # which reducers' blocks, one merged block each


@dataclass(frozen=True)
class ReleaseReducer:
    reducer: int
    node: str | None  # where its merged blocks are (None: anywhere)
    maps: tuple[int, ...]  # maps whose block for this reducer is a source
    merges: tuple[int, ...]  # merges whose block for this reducer is a source


Action = SubmitMap | SubmitMerge | ReleaseReducer


@dataclass
class Counts:
    """Progress, for the bar and for tests."""

    maps_submitted: int = 0
    maps_done: int = 0
    merges_submitted: int = 0
    merges_done: int = 0
    reducers_released: int = 0
    reduces_done: int = 0


@dataclass
class Schedule:
    """What all strategies share: the map window, the bookkeeping of merges and the
    reduce window.  Subclasses decide when maps may start, what to merge and
    when a reducer's sources are final (``_finalize``); releases then go out
    ``Limits.reduces_running`` at a time, to the node with the fewest running."""

    num_maps: int
    num_reducers: int
    limits: Limits
    counts: Counts = field(default_factory=Counts)
    reducer_nodes: list[str | None] = field(default_factory=list)  # where each reduce runs
    running: set[int] = field(default_factory=set)  # maps submitted, not finished
    open_maps: int = 0
    merges: dict[int, SubmitMerge] = field(default_factory=dict)  # submitted, not done
    final: set[int] = field(default_factory=set)  # reducers whose sources are final
    ready: list[ReleaseReducer] = field(default_factory=list)  # final, not yet released
    reducing: dict[int, str | None] = field(default_factory=dict)  # released, not done

    def __post_init__(self) -> None:
        if self.num_maps < 1 or self.num_reducers < 1:
            raise ValueError(f"a shuffle needs at least one map and one reducer, got "
                             f"{self.num_maps} and {self.num_reducers}")
        if not self.reducer_nodes:
            self.reducer_nodes = [None] * self.num_reducers

    @property
    def finished(self) -> bool:
        """Every reducer released (its reduce may still run)."""
        return self.counts.reducers_released == self.num_reducers

    @property
    def all_final(self) -> bool:
        return len(self.final) == self.num_reducers

    def start(self) -> list[Action]:
        return self._more()

    def map_done(self, map_id: int, node: str | None) -> list[Action]:
        if map_id not in self.running:
            raise ValueError(f"map {map_id} finished but was not running")
        self.running.discard(map_id)
        self.counts.maps_done += 1
        self._on_map_done(map_id, node)
        return self._more()

    def reduce_done(self, reducer: int) -> list[Action]:
        if reducer not in self.reducing:
            raise ValueError(f"reduce {reducer} finished but was not released")
        del self.reducing[reducer]
        self.counts.reduces_done += 1
        return self._more()

    def merge_done(self, merge_id: int) -> list[Action]:
        merge = self.merges.pop(merge_id, None)
        if merge is None:
            raise ValueError(f"merge {merge_id} finished but was not running")
        self.counts.merges_done += 1
        self._on_merge_done(merge)
        return self._more()

    # ---- for subclasses --------------------------------------------------------------
    def _more(self) -> list[Action]:
        """Every action now allowed: maps while the window has room, then whatever
        the strategy adds, until neither has more (an action may open the window)."""
        actions: list[Action] = []
        while True:
            before = len(actions)
            while self._may_submit_map():
                map_id = self.counts.maps_submitted
                self.counts.maps_submitted += 1
                self.running.add(map_id)
                self.open_maps += 1
                actions.append(SubmitMap(map_id))
            actions.extend(self._strategy_actions())
            actions.extend(self._releases())
            if len(actions) == before:
                return actions

    def _releases(self) -> list[ReleaseReducer]:
        """Final reducers, while the reduce window has room, each time the one whose
        node runs the fewest reduces (ties: the lowest reducer)."""
        out = []
        while self.ready and len(self.reducing) < self.limits.reduces_running:
            load: dict[str | None, int] = {}
            for node in self.reducing.values():
                load[node] = load.get(node, 0) + 1
            pick = min(range(len(self.ready)),
                       key=lambda i: (load.get(self.ready[i].node, 0), self.ready[i].reducer))
            release = self.ready.pop(pick)
            self.reducing[release.reducer] = release.node
            self.counts.reducers_released += 1
            out.append(release)
        return out

    def _may_submit_map(self) -> bool:
        return (self.counts.maps_submitted < self.num_maps
                and len(self.running) < self.limits.maps_running
                and self.open_maps < self.limits.maps_open)

    @property
    def all_maps_done(self) -> bool:
        return self.counts.maps_done == self.num_maps

    def _merge(self, node: str | None, maps: tuple[int, ...],
               reducers: tuple[int, ...]) -> SubmitMerge:
        merge = SubmitMerge(self.counts.merges_submitted, node, maps, reducers)
        self.counts.merges_submitted += 1
        self.merges[merge.merge_id] = merge
        return merge

    def _finalize(self, reducer: int, maps: tuple[int, ...], merges: tuple[int, ...],
                  node: str | None = None) -> None:
        """Reducer ``reducer``'s sources are final; it is released when the window
        has room."""
        if reducer in self.final:
            raise AssertionError(f"reducer {reducer} finalized twice")
        self.final.add(reducer)
        node = self.reducer_nodes[reducer] if node is None else node
        self.ready.append(ReleaseReducer(reducer, node, maps, merges))

    def _on_map_done(self, map_id: int, node: str | None) -> None:
        raise NotImplementedError

    def _on_merge_done(self, merge: SubmitMerge) -> None:
        raise NotImplementedError

    def _strategy_actions(self) -> list[Action]:
        raise NotImplementedError
