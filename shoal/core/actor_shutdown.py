"""Graceful actor termination: ``__ray_shutdown__``, then the process exits.

Ray's documented rule: when an actor ends gracefully -- its last handle went out
of scope, or ``actor.__ray_terminate__.remote()`` -- its ``__ray_shutdown__()``
method (if it has one) runs after the calls already sent, then the process exits
as after ``exit_actor()`` (atexit handlers run).  ``ray.kill`` and crashes do not
run it.  Should the graceful path not end the actor within the timeout
(``_system_config["actor_graceful_shutdown_timeout_ms"]``, default 30 s), the
owner kills it.

The owner sends ``__ray_terminate__`` as an ordinary call (so it queues behind
the calls sent before it), carrying the cause to record, and arms the fallback
kill; a dead actor ignores a later kill.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shoal.core.task_spec import TaskKind, TaskSpec
from shoal.rpc.actor_messages import KillActorBody
from shoal.rpc.messages import Method

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker

log = logging.getLogger("shoal.core")

DEFAULT_TIMEOUT_S = 30.0
# the owner's own terminate call (a user's is "Class.__ray_terminate__"): it is not a
# task of the program, so the state API's task history leaves it out
OWNER_TERMINATE_NAME = "__ray_terminate__"
_timeout_s = DEFAULT_TIMEOUT_S


def configure(system_config: dict | None) -> None:
    """``init(_system_config=...)``: the graceful-shutdown timeout for this process."""
    global _timeout_s
    value = (system_config or {}).get("actor_graceful_shutdown_timeout_ms")
    if value is None:
        _timeout_s = DEFAULT_TIMEOUT_S
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"actor_graceful_shutdown_timeout_ms must be a number of "
                         f"milliseconds >= 0, got {value!r}")
    _timeout_s = value / 1000.0


def run_shutdown_hook(actor: Any) -> None:
    """The actor's ``__ray_shutdown__()``, if its class has one; an exception it
    raises is logged and does not stop the exit."""
    hook = getattr(type(actor), "__ray_shutdown__", None)
    if hook is None:
        return
    try:
        hook(actor)
    except Exception as exc:
        log.error("%s.__ray_shutdown__() raised %s: %s (the actor exits anyway)",
                  type(actor).__name__, type(exc).__name__, exc)


def terminate(worker: CoreWorker, actor_id: str, cause: str) -> None:
    """Loop thread, in the actor's owner: end it gracefully, by force after the
    timeout."""
    spec = TaskSpec(
        task_id=worker.ids.task_id(),
        kind=TaskKind.ACTOR_TASK,
        name=OWNER_TERMINATE_NAME,
        function_id=b"",
        args=[],
        kwarg_names=[],
        num_returns=0,
        owner=worker.address,
        job_id=worker.job_id,
        actor_id=actor_id,
        method="__ray_terminate__",
    )
    # the cause travels as the call's only argument
    wire, held, keepalive = worker.tasks.build_args(spec.name, [cause], {})
    spec.args = wire
    spec.kwarg_names = []
    worker.tasks.submit(spec, held, keepalive, max_retries=0, retry_exceptions=False)

    def force() -> None:
        if not worker.shutting_down:
            worker.control.notify(Method.KILL_ACTOR,
                                  KillActorBody(actor_id, no_restart=True, cause=cause).to_wire())

    worker.loop.call_later(_timeout_s, force)
