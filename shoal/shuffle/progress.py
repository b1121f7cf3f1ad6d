"""The shuffle's progress bars in the driver's terminal (tqdm): maps, merges and
reduces done.  Off when stderr is not a terminal, unless asked for."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class Progress:
    def __init__(self, label: str, maps: int, merges: int | None, reduces: int,
                 enabled: bool | None = None) -> None:
        """``enabled``: None shows the bars only on a terminal."""
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        if not enabled:
            return
        stages = [("maps", maps), ("merges", merges), ("reduces", reduces)]
        if merges == 0:
            stages.pop(1)
        for position, (name, total) in enumerate(stages):
            self.bars[name] = tqdm(total=total, desc=f"{label} {name:>7}", position=position,
                                   leave=True, unit="task", dynamic_ncols=True,
                                   file=sys.stderr)

    def set(self, name: str, done: int) -> None:
        bar = self.bars.get(name)
        if bar is not None and done != bar.n:
            bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
