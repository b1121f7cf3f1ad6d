"""A driver prints its job's worker output (the ``logs:<job>`` channel).

Each line comes as ``[pid, label, stream, text]`` from a node's agent (see
:mod:`shoal.node.worker_pool`) and is printed with a ``(label pid=N, node=X)``
prefix to the driver's stdout or stderr.  A progress-bar state line
(:mod:`shoal.experimental.progress_wire`, printed by ``tqdm_ray`` in a task) is
drawn as a bar instead; while bars are shown, other lines are printed through
the bar display so they scroll above the bars instead of cutting through them.
The display (and tqdm) is loaded only once a bar appears.
"""

from __future__ import annotations

import sys
from typing import Any

from shoal.experimental.progress_wire import PREFIX, decode

CLOSE_WAIT_S = 2.0  # how long shutdown waits for open bars' final states


class WorkerOutput:
    def __init__(self) -> None:
        self.display: Any = None  # progress_display.BarDisplay once a bar appeared

    def on_lines(self, message: list, here: str) -> None:
        """``[node id, lines]``; lines from nodes other than ``here`` name theirs."""
        node_id, lines = message
        remote = node_id != here
        for pid, label, stream, text in lines:
            if text.startswith(PREFIX):
                state = decode(text)
                if state is not None:
                    self._bars().apply(state)
                    continue
            prefix = f"{label} pid={pid}" if label else f"pid={pid}"
            if remote:
                prefix += f", node={node_id[:8]}"
            self._print(f"({prefix}) {text}", sys.stderr if stream == "stderr" else sys.stdout)

    def _bars(self) -> Any:
        if self.display is None:
            from shoal.experimental.progress_display import process_display

            self.display = process_display()
        return self.display

    def _print(self, line: str, out: Any) -> None:
        try:
            if self.display is not None and self.display.open_bars:
                self.display.write(line, out)
            else:
                print(line, file=out, flush=True)
        except Exception:
            pass  # the driver's streams are closed or broken: nothing to show it on

    def close(self, wait_s: float) -> None:
        """The driver is disconnecting: give open bars ``wait_s`` to get their
        last states (a task's final state trails its result by a few ms), then
        end those still open as they are."""
        if self.display is not None and self.display.open_bars:
            if wait_s > 0:
                self.display.wait_closed(wait_s)
            self.display.close_all()
