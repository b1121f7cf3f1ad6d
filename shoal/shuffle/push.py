"""The push strategy (Exoshuffle's push*, Magnet-like): maps in rounds, merges per
node while the next round maps, reduces read their merged blocks locally.

Reducers are assigned to nodes up front (contiguous ranges, as evenly as the
counts allow); each node's reducers are split into ``merges_per_node``
groups.  Maps run in rounds of ``Limits.group``.  When every map of round
``k`` has finished, one merge per reducer group is submitted on that group's
node: it reads the round's blocks for its reducers, wherever the maps ran,
and writes one merged block per reducer on its node.  Reducer ``r`` is
released when the merges of its group have finished for every round; its
sources are then all on its node.

Back-pressure: a map of round ``k`` may start only once every merge of round
``k - 2`` has finished, so at most two rounds of map output are unmerged
(round ``k - 1`` being merged while round ``k`` maps), plus the bound on
running maps.  Time runs left to right; each row is one node's CPUs::

    maps    | round 0 | round 1 | round 2 | round 3 |
    merges            | merge 0 | merge 1 | merge 2 | merge 3 |
    reduces                                                   | reduce ... |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.shuffle.schedule import Action, Schedule, SubmitMerge

ROUNDS_UNMERGED = 2  # rounds whose map output may wait for (or be in) a merge


def node_of_reducer(reducer: int, num_reducers: int, nodes: list[str]) -> str:
    """The node whose merges hold ``reducer``'s blocks (as in ``reducer_groups``)."""
    return nodes[_node_index(reducer, num_reducers, len(nodes))]


def _node_index(reducer: int, num_reducers: int, num_nodes: int) -> int:
    """The n with n*R//N <= reducer < (n+1)*R//N."""
    n = (reducer * num_nodes) // num_reducers
    while (n + 1) * num_reducers // num_nodes <= reducer:
        n += 1
    while n * num_reducers // num_nodes > reducer:
        n -= 1
    return n


def reducer_groups(num_reducers: int, nodes: list[str | None],
                   merges_per_node: int) -> list[tuple[str | None, tuple[int, ...]]]:
    """``(node, reducers)`` per merge group: contiguous reducer ranges, one range
    per node split ``merges_per_node`` ways; no empty groups."""
    nodes = nodes or [None]
    groups: list[tuple[str | None, tuple[int, ...]]] = []
    for n, node in enumerate(nodes):
        mine = range(n * num_reducers // len(nodes), (n + 1) * num_reducers // len(nodes))
        split = min(merges_per_node, len(mine))
        for g in range(split):
            part = mine[g * len(mine) // split:(g + 1) * len(mine) // split]
            if len(part):
                groups.append((node, tuple(part)))
    return groups


@dataclass
class PushSchedule(Schedule):
    nodes: list[str | None] = field(default_factory=list)
    groups: list[tuple[str | None, tuple[int, ...]]] = field(default_factory=list)
    maps_finished_in_round: list[int] = field(default_factory=list)
    merges_left_in_round: list[int] = field(default_factory=list)
    merged_rounds: int = 0  # rounds 0 .. merged_rounds - 1 are fully merged
    merges_of_group: list[list[int]] = field(default_factory=list)  # finished merge ids
    round_of_merge: dict[int, int] = field(default_factory=dict)
    group_of_merge: dict[int, int] = field(default_factory=dict)
    pending: list[Action] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.limits.maps_open < self.limits.group:
            raise ValueError(f"push needs room for a whole round open: maps_open "
                             f"{self.limits.maps_open} < round size {self.limits.group}")
        self.groups = reducer_groups(self.num_reducers, self.nodes,
                                     self.limits.merges_per_node)
        self.maps_finished_in_round = [0] * self.num_rounds
        self.merges_left_in_round = [len(self.groups)] * self.num_rounds
        self.merges_of_group = [[] for _ in self.groups]

    @property
    def num_rounds(self) -> int:
        return -(-self.num_maps // self.limits.group)

    def round_size(self, k: int) -> int:
        return min(self.limits.group, self.num_maps - k * self.limits.group)

    def _may_submit_map(self) -> bool:
        next_round = self.counts.maps_submitted // self.limits.group
        return (super()._may_submit_map()
                and next_round < self.merged_rounds + ROUNDS_UNMERGED)

    def _on_map_done(self, map_id: int, node: str | None) -> None:
        k = map_id // self.limits.group
        self.maps_finished_in_round[k] += 1
        if self.maps_finished_in_round[k] < self.round_size(k):
            return
        maps = tuple(range(k * self.limits.group, k * self.limits.group + self.round_size(k)))
        for g, (group_node, reducers) in enumerate(self.groups):
            merge = self._merge(group_node, maps, reducers)
            self.round_of_merge[merge.merge_id] = k
            self.group_of_merge[merge.merge_id] = g
            self.pending.append(merge)

    def _on_merge_done(self, merge: SubmitMerge) -> None:
        k = self.round_of_merge.pop(merge.merge_id)
        g = self.group_of_merge.pop(merge.merge_id)
        self.merges_left_in_round[k] -= 1
        if self.merges_left_in_round[k] == 0:
            self.open_maps -= self.round_size(k)
        while (self.merged_rounds < self.num_rounds
               and self.merges_left_in_round[self.merged_rounds] == 0):
            self.merged_rounds += 1
        self.merges_of_group[g].append(merge.merge_id)
        if len(self.merges_of_group[g]) == self.num_rounds:
            node, reducers = self.groups[g]
            merges = tuple(sorted(self.merges_of_group[g]))
            for r in reducers:
                self._finalize(r, (), merges, node)

    def _strategy_actions(self) -> list[Action]:
        actions, self.pending = self.pending, []
        return actions
