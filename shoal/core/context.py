"""The one piece of process-global state: which core worker this process runs.

It has an explicit lifecycle (set by ``init`` or by the worker entry point,
cleared by ``shutdown``) instead of attributes probed with ``hasattr``.
Task-local facts (current task id, actor) live on the worker's thread-local
``task_context``.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_worker: Any = None


def set_current_worker(worker: Any) -> None:
    global _worker
    with _lock:
        _worker = worker


def clear_current_worker(worker: Any) -> None:
    global _worker
    with _lock:
        if _worker is worker:
            _worker = None


def current_worker_or_none() -> Any:
    return _worker


def new_event_loop() -> Any:
    """An event loop for a worker thread (the io loop, an async actor's loop): uvloop,
    a dependency, whose thread hand-offs cost less (async-actor sync calls: ~1.5k ->
    ~1.8k/s), else asyncio's own."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()
