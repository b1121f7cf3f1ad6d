"""``exit_actor()``: an actor ends itself, cleanly and for good.

The actor first tells the control store it is dead (cause: it called
``exit_actor``; no restart, whatever ``max_restarts`` says), so every caller,
including those whose calls are still queued, gets an ``ActorDiedError`` that
names the exit.  Then the method raises :class:`ActorExitRequest`; the executor
ends the process from its main thread, so ``atexit`` handlers run.
"""

from __future__ import annotations

from shoal import exceptions
from shoal.rpc.actor_messages import KillActorBody
from shoal.rpc.messages import Method

EXIT_CAUSE = "the actor exited intentionally: it called exit_actor()"


class ActorExitRequest(SystemExit):
    """Raised by ``exit_actor()`` in a sync actor (a SystemExit, as in Ray, so a
    bare ``except Exception`` in user code does not stop the exit)."""


class AsyncActorExitRequest(exceptions.AsyncioActorExit):
    """Raised by ``exit_actor()`` in an async actor."""


def exit_actor() -> None:
    """End the current actor: its pending calls fail with ``ActorDiedError``, it is
    not restarted, and its process exits after this call (atexit handlers run)."""
    exit_with_cause(None)


def exit_with_cause(cause: str | None) -> None:
    """``exit_actor()``, recording ``cause`` (default: the exit) as the death cause."""
    from shoal.api.session import ensure_worker

    worker = ensure_worker()
    executor = getattr(worker, "executor", None)
    if executor is None or not executor.actor_id:
        raise TypeError("exit_actor API is called on a non-actor worker: exit_actor() "
                        "can only be called inside an actor's method")
    worker.control_call(Method.KILL_ACTOR, KillActorBody(
        executor.actor_id, no_restart=True, cause=cause or EXIT_CAUSE, exiting=True).to_wire())
    # the process ends whatever the caller does with the exception below: the
    # current call (or constructor) sends no reply, and an async actor's exit from
    # a task the actor spawned itself (no call ends with it) exits too
    executor.exit_requested = True
    if executor.actor_loop is not None:
        executor.exit_process()
        raise AsyncActorExitRequest("exit_actor() was called")
    raise ActorExitRequest(0)


EXIT_REQUESTS = (ActorExitRequest, AsyncActorExitRequest)
