"""``CUDA_VISIBLE_DEVICES`` of a worker process, set per task or actor.

Workers are reused across tasks, so the variable is set before each task that
was given GPUs (to the ids its lease got: ``{"GPU": ["0", "1"]}`` becomes
"0,1") and put back to what the worker started with before a task that got
none, as Ray does.  An actor sets it once, for its whole life.
"""

from __future__ import annotations

import os

VARIABLE = "CUDA_VISIBLE_DEVICES"
_ORIGINAL = os.environ.get(VARIABLE)
_current: list[str | None] = [_ORIGINAL]  # what this process set last


def apply(accelerators: dict | None) -> None:
    """Set the variable for a task or actor given ``accelerators`` (None: no GPUs)."""
    ids = accelerators.get("GPU") if accelerators else None
    wanted = ",".join(ids) if ids else _ORIGINAL
    if wanted == _current[0]:
        return
    if wanted is None:
        os.environ.pop(VARIABLE, None)
    else:
        os.environ[VARIABLE] = wanted
    _current[0] = wanted
