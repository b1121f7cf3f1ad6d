"""The simple strategy: maps with ``num_returns=R``; reduce ``r`` reads column ``r``.

No merges.  Maps run ``Limits.maps_running`` at a time; once the last one
has finished every reducer is released with one block from each map.  The
store holds every map's output until the reduces read it, so this is the
strategy with the most (and smallest) objects: ``M x R`` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.shuffle.schedule import Action, Schedule, SubmitMerge


@dataclass
class SimpleSchedule(Schedule):
    def _on_map_done(self, map_id: int, node: str | None) -> None:
        self.open_maps -= 1  # its blocks are final: nothing will merge them

    def _on_merge_done(self, merge: SubmitMerge) -> None:
        raise AssertionError("the simple strategy submits no merges")

    def _strategy_actions(self) -> list[Action]:
        if self.all_maps_done and not self.all_final:
            maps = tuple(range(self.num_maps))
            for r in range(self.num_reducers):
                self._finalize(r, maps, ())
        return []
