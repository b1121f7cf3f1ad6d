"""The worker's process title, as Ray shows it: ``ray::<TaskName>`` while a task runs,
``ray::<ActorClass>`` for an actor between calls, ``ray::IDLE`` for an idle worker.

``ps``, ``top`` and ``psutil.Process().cmdline()`` then tell which task a busy
process runs.  ``setproctitle`` rewrites the argv area (what ``cmdline`` shows), which
``prctl(PR_SET_NAME)`` cannot; one call costs about 0.5 us here (design.md section 22).
"""

from __future__ import annotations

try:
    from setproctitle import setproctitle as _set
except ImportError:  # a declared dependency; without it titles are simply not set
    _set = None

PREFIX = "ray::"
IDLE = PREFIX + "IDLE"


def set_title(name: str) -> None:
    """Show ``ray::<name>`` as this process's title."""
    if _set is not None:
        _set(PREFIX + name)


def set_idle(actor_class: str | None) -> None:
    """Between tasks: the actor's class name, or IDLE for a task worker."""
    if _set is not None:
        _set(PREFIX + actor_class if actor_class else IDLE)
