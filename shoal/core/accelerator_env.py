"""``CUDA_VISIBLE_DEVICES`` of a worker process, set per task or actor.

Workers are reused across tasks, so the variable is set before each task that
was given GPUs (to the ids its lease got: ``{"GPU": ["0", "1"]}`` becomes
"0,1") and put back to what the worker started with before a task that got
none, as Ray does.  An actor sets it once, for its whole life.

With Ray's ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1`` (or
``SHOAL_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO``) in the cluster's environment, a task
or actor given no GPUs gets it set to "" instead, so it sees none.
"""

from __future__ import annotations

import os

VARIABLE = "CUDA_VISIBLE_DEVICES"
_ORIGINAL = os.environ.get(VARIABLE)
_current: list[str | None] = [_ORIGINAL]  # what this process set last
OVERRIDE_ON_ZERO_VARIABLES = ("SHOAL_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO",
                              "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO")


def _override_on_zero() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true")
               for name in OVERRIDE_ON_ZERO_VARIABLES)


def apply(accelerators: dict | None) -> None:
    """Set the variable for a task or actor given ``accelerators`` (None: no GPUs)."""
    ids = accelerators.get("GPU") if accelerators else None
    wanted = ",".join(ids) if ids else ("" if _override_on_zero() else _ORIGINAL)
    if wanted == _current[0]:
        return
    if wanted is None:
        os.environ.pop(VARIABLE, None)
    else:
        os.environ[VARIABLE] = wanted
    _current[0] = wanted
