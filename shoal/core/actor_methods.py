"""How an actor's calls find what they run: the class's methods, and the methods
every actor has (Ray's names).  Also how ``exit_actor`` ends the process."""

from __future__ import annotations

import concurrent.futures
import inspect
import os
import sys
from typing import Any


def method_of(actor: Any, name: str) -> Any:
    """The class's method ``name`` bound to ``actor`` (as Ray does: an instance
    attribute of the same name, e.g. ``self.done = False`` beside ``def done``,
    does not hide the method)."""
    try:
        descriptor = inspect.getattr_static(type(actor), name)
    except AttributeError:
        return getattr(actor, name)  # e.g. served by __getattr__
    getter = getattr(descriptor, "__get__", None)
    return getter(actor, type(actor)) if getter is not None else getattr(actor, name)


def construct(actor: Any, loop: Any, args: Any, kwargs: Any) -> None:
    """Run ``__init__``; an async actor's on its event loop's thread, with the loop
    running, so the constructor can start tasks on it (``asyncio.create_task``)."""
    if loop is None:
        actor.__init__(*args, **kwargs)
        return
    done: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            actor.__init__(*args, **kwargs)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)

    loop.call_soon_threadsafe(run)
    done.result()


def exit_now() -> None:
    import atexit

    try:
        atexit._run_exitfuncs()  # noqa: SLF001 (no public spelling)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)


def _terminate(actor: Any, cause: str | None = None) -> None:
    """Graceful termination: ``__ray_shutdown__()`` first, then as ``exit_actor()``
    (``cause``: what the owner records, when it ends an actor out of scope)."""
    from shoal.api.actor_exit import exit_with_cause
    from shoal.core.actor_shutdown import run_shutdown_hook

    run_shutdown_hook(actor)
    exit_with_cause(cause if isinstance(cause, str) and cause else None)


# Methods every actor has (Ray's names): a no-op to wait for the actor to be up,
# and a graceful exit that runs after the calls sent before it.
BUILTIN_METHODS = {
    "__ray_ready__": lambda actor: True,
    "__ray_terminate__": _terminate,
    # run any function on the actor instance: fn(actor, *args, **kwargs)
    "__ray_call__": lambda actor, fn, *args, **kwargs: fn(actor, *args, **kwargs),
}


