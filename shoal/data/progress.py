"""Progress bars per map stage in the driver's terminal (tqdm), as Ray Data
shows them: rows out of each stage.  Off when stderr is not a terminal, unless
asked for (``DataContext.enable_progress_bars``)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class Progress:
    def __init__(self, stages: list[str], enabled: bool | None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bars: dict[str, Any] = {}
        if not enabled:
            return
        for position, name in enumerate(stages):
            self.bars[name] = tqdm(desc=f"- {name}", position=position, unit=" rows",
                                   leave=False, dynamic_ncols=True, file=sys.stderr)

    def update(self, stage: str, rows: int) -> None:
        bar = self.bars.get(stage)
        if bar is not None:
            bar.update(rows)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
