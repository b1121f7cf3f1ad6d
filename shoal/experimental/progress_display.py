"""The driver's side of ``tqdm_ray``: bars from tasks and actors drawn with tqdm.

States arrive as lines of worker output (:mod:`shoal.experimental.progress_wire`),
on the thread that prints worker output, or straight from a ``tqdm_ray`` bar in
the driver itself.  Each bar is one line, updated in place:

* On a terminal the open bars are tqdm bars stacked at the bottom, one per
  line (positions 0, 1, ...).  A closing bar, and any other output the driver
  prints for its workers, first hides every bar (cursor back to the first bar
  line), writes its line(s) - the closed bar's last state, or the worker's
  line - and draws the bars again, compacted; so printed lines scroll above
  the bars and never cut through them.
* Elsewhere (a pipe, a file, CI logs) nothing is redrawn: each bar prints one
  line when it closes, its final count, so logs get no carriage returns or
  cursor movements.

One display per process: there is one terminal.  All of it runs under one
lock; tqdm is used as the renderer (``format_meter``, its instances' ``clear``
and ``refresh``), with ``leave=False`` so the bars never leave their own
remnants - the final line is written here.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from shoal.experimental.progress_wire import BarState

FINISHED_KEPT = 1000  # closed bars remembered (``finished``), newest last


class _Bar:
    """An open bar: its last state, when the driver first saw it, and its tqdm
    instance when drawn on a terminal."""

    def __init__(self, state: BarState) -> None:
        self.state = state
        self.seen_at = time.monotonic()
        self.tqdm: Any = None

    def line(self) -> str:
        from tqdm import tqdm as real_tqdm

        s = self.state
        elapsed = time.monotonic() - self.seen_at
        return real_tqdm.format_meter(s.n, s.total, elapsed, prefix=s.desc, unit=s.unit,
                                      ncols=_columns())


def _columns() -> int | None:
    try:
        import shutil

        return shutil.get_terminal_size().columns
    except (OSError, ValueError):
        return None


class BarDisplay:
    def __init__(self, file: TextIO | None = None) -> None:
        self._file = file  # None: whatever sys.stderr is when drawing
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # a bar closed
        self._bars: dict[str, _Bar] = {}  # bar id -> open bar, in creation order
        self.finished: deque[BarState] = deque(maxlen=FINISHED_KEPT)

    @property
    def file(self) -> TextIO:
        return self._file if self._file is not None else sys.stderr

    def _live(self) -> bool:
        try:
            return self.file.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def open_bars(self) -> int:
        return len(self._bars)

    # ---- states --------------------------------------------------------------------------
    def apply(self, state: BarState) -> None:
        """A bar's new state: draw it, or end it."""
        with self._lock:
            bar = self._bars.get(state.id)
            if state.closed:
                self._close(bar or _Bar(state), state)
            elif bar is None:
                bar = self._bars[state.id] = _Bar(state)
                if self._live():
                    self._draw(bar, position=len(self._bars) - 1)
            else:
                bar.state = state
                if bar.tqdm is not None:
                    self._redraw(bar)

    def _draw(self, bar: _Bar, position: int) -> None:
        from tqdm import tqdm as real_tqdm

        s = bar.state
        bar.tqdm = real_tqdm(total=s.total, desc=s.desc, unit=s.unit, initial=s.n,
                             position=position, leave=False, dynamic_ncols=True,
                             file=self.file)

    @staticmethod
    def _redraw(bar: _Bar) -> None:
        t, s = bar.tqdm, bar.state
        t.total, t.n = s.total, s.n  # the rate shown is then the average since it began
        if s.desc != t.desc:
            t.set_description_str(s.desc, refresh=False)
        t.refresh()

    def _close(self, bar: _Bar, state: BarState) -> None:
        bar.state = state
        self._bars.pop(state.id, None)
        self.finished.append(state)
        self._changed.notify_all()
        line = bar.line()
        if bar.tqdm is None:
            self._write_plain(line, self.file)
            return
        self._hide()
        bar.tqdm.close()  # leave=False: its line is cleared; ours is written instead
        self._print(line, self.file)
        self._show()

    # ---- other output --------------------------------------------------------------------
    def write(self, text: str, file: TextIO) -> None:
        """Print a line of other output without cutting through the bars."""
        with self._lock:
            drawn = any(b.tqdm is not None for b in self._bars.values())
            if not drawn:
                self._write_plain(text, file)
                return
            self._hide()
            self._print(text, file)
            self._show()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until no bar is open (their tasks' last states are on their way
        when the results are already back); False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._bars, timeout)

    def close_all(self) -> None:
        """The driver is leaving: end the bars nobody closed (their task died or
        never finished), each with its last state."""
        with self._lock:
            for bar in list(self._bars.values()):
                self._close(bar, bar.state)

    # ---- drawing (under the lock) --------------------------------------------------------
    def _hide(self) -> None:
        for bar in self._bars.values():
            if bar.tqdm is not None:
                bar.tqdm.clear()

    def _show(self) -> None:
        for position, bar in enumerate(self._bars.values()):
            if bar.tqdm is not None:
                bar.tqdm.pos = -position  # tqdm marks fixed positions as negative
                bar.tqdm.refresh()

    def _print(self, text: str, file: TextIO) -> None:
        """Write a line where the first bar was (hidden): from the line's start,
        whichever of stdout/stderr it goes to (one terminal)."""
        try:
            self.file.write("\r")
            self.file.flush()
        except (OSError, ValueError):
            pass
        self._write_plain(text, file)

    @staticmethod
    def _write_plain(text: str, file: TextIO) -> None:
        try:
            file.write(text + "\n")
            file.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: nothing to show it on


_display: BarDisplay | None = None
_display_lock = threading.Lock()


def process_display() -> BarDisplay:
    """This process's display (created on first use: the terminal is one per
    process, whichever thread or cluster connection draws on it)."""
    global _display
    with _display_lock:
        if _display is None:
            _display = BarDisplay()
        return _display


def existing_display() -> BarDisplay | None:
    return _display
