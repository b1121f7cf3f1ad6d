"""The premerge strategy (Riffle): each node merges its finished maps' blocks.

As maps finish, they are grouped by the node they ran on; every
``Limits.group`` of them on one node become one merge task there, which
combines, for every reducer, the group's blocks into one.  Reducer ``r``
then reads one (larger) block per merge instead of one per map.  Merges run
``Limits.merges_running`` at a time, alongside the maps still running.

When the maps are all done, each node's remainder is merged too (a single
map is handed to the reducers as is), and once every merge has finished all
reducers are released.  If the window of open maps is full while no map is
running and no merge could free it, the largest waiting group is merged
early (a smaller group), so the schedule never stalls.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shoal.shuffle.schedule import Action, Schedule, SubmitMerge


@dataclass
class PremergeSchedule(Schedule):
    waiting: dict[str | None, list[int]] = field(default_factory=dict)  # finished, unmerged
    groups: deque[tuple[str | None, tuple[int, ...]]] = field(default_factory=deque)
    merged: list[int] = field(default_factory=list)  # merges finished
    direct: list[int] = field(default_factory=list)  # maps the reducers read unmerged

    def _on_map_done(self, map_id: int, node: str | None) -> None:
        bucket = self.waiting.setdefault(node, [])
        bucket.append(map_id)
        if len(bucket) >= self.limits.group:
            self.groups.append((node, tuple(bucket)))
            bucket.clear()

    def _on_merge_done(self, merge: SubmitMerge) -> None:
        self.open_maps -= len(merge.maps)
        self.merged.append(merge.merge_id)

    def _strategy_actions(self) -> list[Action]:
        if self.all_maps_done:
            self._flush_remainders()
        elif self._stalled():
            node = max(self.waiting, key=lambda n: len(self.waiting[n]))
            self.groups.append((node, tuple(self.waiting[node])))
            self.waiting[node].clear()
        actions: list[Action] = []
        reducers = tuple(range(self.num_reducers))
        while self.groups and len(self.merges) < self.limits.merges_running:
            node, maps = self.groups.popleft()
            actions.append(self._merge(node, maps, reducers))
        if self.all_maps_done and not self.groups and not self.merges and not self.all_final:
            maps, merges = tuple(sorted(self.direct)), tuple(sorted(self.merged))
            for r in reducers:
                self._finalize(r, maps, merges)
        return actions

    def _flush_remainders(self) -> None:
        for node, bucket in self.waiting.items():
            if len(bucket) == 1:
                self.direct.append(bucket[0])
                self.open_maps -= 1
            elif bucket:
                self.groups.append((node, tuple(bucket)))
            bucket.clear()

    def _stalled(self) -> bool:
        """No map may start, none is running and no merge will free the window."""
        return (self.open_maps >= self.limits.maps_open and not self.running
                and not self.merges and not self.groups
                and any(self.waiting.values()))
