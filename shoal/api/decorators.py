"""``@shoal.remote``: functions become remote functions, classes actor classes."""

from __future__ import annotations

import inspect
from typing import Any

from shoal.api.actor import ActorClass
from shoal.api.remote_function import RemoteFunction


def _make(target: Any, options: dict) -> Any:
    if inspect.isclass(target):
        return ActorClass(target, options)
    if inspect.iscoroutinefunction(target):
        # a task's result is its return value, not a coroutine; async code belongs in
        # an async actor (as Ray says)
        raise ValueError(
            f"'async def' cannot be a remote function ({target.__qualname__}): run it "
            f"inside a normal function with asyncio.run(), or make it a method of an "
            f"actor (async actors run their async methods on an event loop)")
    if inspect.isfunction(target) or inspect.isbuiltin(target) or (
        callable(target) and hasattr(target, "__name__")
    ):
        return RemoteFunction(target, options)
    raise TypeError(
        "The @shoal.remote decorator must be applied to either a function or a class, "
        f"got {type(target).__name__}: {target!r}")


def remote(*args: Any, **options: Any) -> Any:
    """``@remote`` or ``@remote(num_cpus=..., ...)``."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make(args[0], {})
    if not args and not options:
        raise TypeError("@shoal.remote() needs options, e.g. @shoal.remote(num_cpus=1); "
                        "without options write @shoal.remote (no parentheses)")
    if args:
        raise TypeError(
            "The @shoal.remote decorator must be applied to either a function or a class "
            f"(or called with keyword options only), got {args!r}")
    return lambda target: _make(target, options)
