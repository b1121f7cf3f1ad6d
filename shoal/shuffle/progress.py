"""The shuffle's progress bars: maps, merges and reduces done, drawn in the
driver's terminal by ``shoal.experimental.tqdm_ray`` (so a shuffle started
inside a task shows its bars in the job's driver too).

``progress=True`` shows them (``shoal sort`` asks), ``False`` never; the default
shows them for a long shuffle (``LONG_SHUFFLE_TASKS`` maps and reduces or more)
whose caller writes to a terminal, as Ray Data's bars appear.  In a terminal the
bars are redrawn in place; elsewhere each prints one line when it ends.
"""

from __future__ import annotations

import sys
from typing import Any

from shoal.experimental.tqdm_ray import tqdm

LONG_SHUFFLE_TASKS = 64


def default_enabled(maps: int, reduces: int) -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return maps + reduces >= LONG_SHUFFLE_TASKS and bool(isatty and isatty())


class Progress:
    def __init__(self, label: str, maps: int, merges: int | None, reduces: int,
                 enabled: bool | None = None) -> None:
        """``enabled``: True shows the bars, False does not, None: a long shuffle's
        in a terminal (``default_enabled``)."""
        self.bars: dict[str, Any] = {}
        if enabled is None:
            enabled = default_enabled(maps, reduces)
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
