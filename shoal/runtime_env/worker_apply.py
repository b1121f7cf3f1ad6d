"""In a worker process started for an env: take on its working directory and
import path (its environment variables were set when the process started)."""

from __future__ import annotations

import json
import os
import sys

from shoal.runtime_env.setup import ENV_VAR


def apply_from_environ() -> dict:
    """Apply the env the agent described in ``SHOAL_RUNTIME_ENV``; returns it
    (``{}`` for a default worker)."""
    text = os.environ.pop(ENV_VAR, "")
    if not text:
        return {}
    env = json.loads(text)
    for path in reversed(env.get("paths") or []):
        if path not in sys.path:
            sys.path.insert(0, path)
    if env.get("cwd"):
        os.chdir(env["cwd"])
    return env
