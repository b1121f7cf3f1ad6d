"""The shuffle's progress bars: maps, merges and reduces done, drawn in the
driver's terminal by ``shoal.experimental.tqdm_ray`` (so a shuffle started
inside a task shows its bars in the job's driver too).

Off unless asked for (``progress=True``); ``shoal sort`` asks.  In a terminal
the bars are redrawn in place; elsewhere each prints one line when it ends.
"""

from __future__ import annotations

from typing import Any

from shoal.experimental.tqdm_ray import tqdm


class Progress:
    def __init__(self, label: str, maps: int, merges: int | None, reduces: int,
                 enabled: bool | None = None) -> None:
        """``enabled``: True shows the bars; False or None does not."""
        self.bars: dict[str, Any] = {}
        if not enabled:
            return
        stages = [("maps", maps), ("merges", merges), ("reduces", reduces)]
        if merges == 0:
            stages.pop(1)
        for name, total in stages:
            self.bars[name] = tqdm(total=total, desc=f"{label} {name:>7}", unit="task")

    def set(self, name: str, done: int) -> None:
        bar = self.bars.get(name)
        if bar is not None and done != bar.n:
            bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
