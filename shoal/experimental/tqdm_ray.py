"""Progress bars from inside tasks and actors, drawn in the driver's terminal
(Ray's ``ray.experimental.tqdm_ray``; ``import shoal as ray`` gives it as
``ray.experimental.tqdm_ray``).

    from shoal.experimental.tqdm_ray import tqdm

    @shoal.remote
    def work(items):
        for item in tqdm(items, desc="work"):
            ...

tqdm's common API: an iterable and/or ``total``, ``desc``, ``unit``,
``update(n)``, ``set_description``, ``refresh``, ``reset``, ``close``, ``n``,
and use as a context manager.  Other tqdm arguments (``leave``, ``ncols``...)
are accepted and ignored: the driver decides how bars look.

How: in a worker, the bar prints its state as one line on stdout (at most every
``flush_interval_s``, and always when created, described or closed); the line
travels like any other worker output to the job's driver, which draws the bar
instead of printing the line (:mod:`shoal.experimental.progress_display`).  In
the driver itself (or with no cluster) the state goes to the display directly.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from shoal.experimental import progress_wire
from shoal.experimental.progress_wire import BarState

DEFAULT_FLUSH_INTERVAL_S = 0.1


def _in_worker() -> bool:
    from shoal.core import context

    worker = context.current_worker_or_none()
    return worker is not None and getattr(worker.mode, "value", "") == "worker"


class tqdm:  # noqa: N801 (tqdm's own name, as Ray spells it)
    """A progress bar whose state is drawn by the driver (see the module)."""

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None,
                 total: int | None = None, unit: str = "it", position: int | None = None,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S, disable: bool = False,
                 **_tqdm_options: Any) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        if total is not None and (not isinstance(total, (int, float)) or total < 0):
            raise ValueError(f"tqdm: total must be a number >= 0 or None, got {total!r}")
        self.iterable = iterable
        self.desc = desc or ""
        self.total = None if total is None else int(total)
        self.unit = unit
        self.n = 0
        self.disable = disable
        self.flush_interval_s = flush_interval_s
        self._id = uuid.uuid4().hex
        self._closed = False
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self._to_worker_output = _in_worker()
        self._emit(force=True)

    # ---- tqdm's API --------------------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("tqdm: this bar has no iterable (pass one, or call update())")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)  # type: ignore

    def __enter__(self) -> tqdm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int | float = 1) -> None:
        self.n += int(n)
        self._emit()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""
        self._emit(force=refresh)

    set_description_str = set_description

    def refresh(self) -> None:
        self._emit(force=True)

    def reset(self, total: int | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = int(total)
        self._emit(force=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._emit(force=True)

    @staticmethod
    def write(text: str, file: Any = None) -> None:
        """Print a line without cutting through the bars (tqdm.write)."""
        if _in_worker():
            print(text, file=file or sys.stdout, flush=True)
            return
        from shoal.experimental.progress_display import process_display

        process_display().write(text, file or sys.stdout)

    # ---- the state's way out -----------------------------------------------------------------
    def _state(self) -> BarState:
        return BarState(id=self._id, desc=self.desc, n=self.n, total=self.total,
                        unit=self.unit, closed=self._closed)

    def _emit(self, force: bool = False) -> None:
        if self.disable:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < self.flush_interval_s:
            return
        with self._lock:  # one state line at a time per bar, in order
            self._last_emit = now
            state = self._state()
            if self._to_worker_output:
                line = (progress_wire.encode(state) + "\n").encode()
                try:
                    os.write(1, line)  # one write: never split by other threads' prints
                except OSError:
                    pass
            else:
                from shoal.experimental.progress_display import process_display

                process_display().apply(state)


def safe_print(*values: Any, **kwargs: Any) -> None:
    """``print`` that does not cut through the bars (Ray's helper of this name)."""
    sep, end = kwargs.get("sep", " "), kwargs.get("end", "\n")
    text = sep.join(str(v) for v in values) + ("" if end == "\n" else end)
    tqdm.write(text, kwargs.get("file"))
