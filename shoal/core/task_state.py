"""A task's life at its owner: a pure transition table.

Theory of operation
-------------------
The owner (the process that called ``.remote()``) tracks each task it submitted
as a :class:`~shoal.core.task_manager.PendingTask` until the task's outcome is
stored.  Its lifecycle is one :class:`TaskState`; events move it through
:data:`TRANSITIONS`, and an event the table does not list for the current state
is a bug, refused with :class:`InvalidTaskTransition` (never silently ignored)::

    SUBMITTED --WAIT_ARGS--> RESOLVING --READY--> QUEUED --PUSH--> PUSHED --SUCCEED--> FINISHED
    SUBMITTED --READY--> QUEUED        (every argument was ready)
    SUBMITTED --PUSH--> PUSHED         (an actor call the user thread sent at once)
    PUSHED --STOLEN--> QUEUED          (given back unstarted by work stealing)
    PUSHED --RETRY | HAND_BACK--> RETRYING --WAIT_ARGS | READY--> RESOLVING | QUEUED
    PUSHED --CANCEL--> CANCELLING --SUCCEED | FAIL | CANCELLED--> FINISHED | FAILED | CANCELLED
    any live state --FAIL--> FAILED,  --CANCELLED--> CANCELLED

* SUBMITTED: registered by the user thread; the loop has not looked at its
  arguments yet.  An actor call sent straight from the user thread
  (``ActorManager.send_direct``) goes to PUSHED at once.
* RESOLVING: waiting for ``PendingTask.unresolved`` ref arguments.  An in-order
  actor call in this state holds its place in the actor's queue, and the calls
  behind it wait (what the ``reserved`` flag used to say).
* QUEUED: every argument ready; in a lease submitter's ReadyQueue or an actor's
  queue.
* PUSHED: sent to a leased worker or to the actor and not answered; the worker
  may still have it queued behind another task (pipelining).
* CANCELLING: ``cancel`` came while a worker had it: the worker was told, and
  the reply decides (a value that was ready anyway is kept, as Ray does).
  A task in any earlier state is cancelled at once (CANCELLED).
* RETRYING: failed with retries left, handed back unstarted because an argument
  had no copy (HAND_BACK), or re-run by lineage to rebuild lost returns; its
  arguments are recovered and resolved again (WAIT_ARGS) or it is queued (READY).
* FINISHED, FAILED, CANCELLED: final; the outcome is stored in its returns.
  A lineage rebuild runs a *copy* in RETRYING; a final state never moves.

What is *not* the lifecycle, and stays a field: which worker or connection has
it (``running_on``, ``sent_on``: data the performer needs), and
``returns_stored`` (written by the user thread that read an actor call's reply;
this table is touched by the loop thread only, apart from the user thread's
first step SUBMITTED -> PUSHED before the loop ever sees the task).

This module is pure: no I/O, no clock, no threads; the task manager, the lease
submitter and the actor manager apply events and do the I/O.
"""

from __future__ import annotations

import enum


class TaskState(enum.Enum):
    SUBMITTED = enum.auto()
    RESOLVING = enum.auto()
    QUEUED = enum.auto()
    PUSHED = enum.auto()
    CANCELLING = enum.auto()
    RETRYING = enum.auto()
    FINISHED = enum.auto()
    FAILED = enum.auto()
    CANCELLED = enum.auto()

    @property
    def is_final(self) -> bool:
        return self in _FINAL


class TaskEvent(enum.Enum):
    WAIT_ARGS = enum.auto()  # some ref arguments are not ready yet
    READY = enum.auto()      # every argument is ready: a queue takes it
    PUSH = enum.auto()       # sent to a leased worker or to the actor
    STOLEN = enum.auto()     # the worker gave it back unstarted (work stealing)
    HAND_BACK = enum.auto()  # the worker gave it back: an argument had no copy
    RETRY = enum.auto()      # failed, with a retry left (or a lost actor call)
    CANCEL = enum.auto()     # cancel() while a worker has it
    SUCCEED = enum.auto()    # its returns are stored
    FAIL = enum.auto()       # an error is stored in its returns
    CANCELLED = enum.auto()  # TaskCancelledError is stored in its returns


class InvalidTaskTransition(RuntimeError):
    """An event that the task's state does not allow (a bug in the caller)."""


_S, _E = TaskState, TaskEvent
_FINAL = frozenset({_S.FINISHED, _S.FAILED, _S.CANCELLED})
# every live state may fail (a dependency's error, an unschedulable shape, a dead actor)
# and be cancelled; only a task a worker has can succeed
_ENDS = {_E.FAIL: _S.FAILED, _E.CANCELLED: _S.CANCELLED}

TRANSITIONS: dict[TaskState, dict[TaskEvent, TaskState]] = {
    _S.SUBMITTED: {_E.WAIT_ARGS: _S.RESOLVING, _E.READY: _S.QUEUED, _E.PUSH: _S.PUSHED,
                   **_ENDS},
    _S.RESOLVING: {_E.READY: _S.QUEUED, **_ENDS},
    _S.QUEUED: {_E.PUSH: _S.PUSHED, **_ENDS},
    _S.PUSHED: {_E.SUCCEED: _S.FINISHED, _E.STOLEN: _S.QUEUED, _E.HAND_BACK: _S.RETRYING,
                _E.RETRY: _S.RETRYING, _E.CANCEL: _S.CANCELLING, **_ENDS},
    # a second cancel (say, with force=True) is passed on to the worker again
    _S.CANCELLING: {_E.CANCEL: _S.CANCELLING, _E.SUCCEED: _S.FINISHED, **_ENDS},
    _S.RETRYING: {_E.WAIT_ARGS: _S.RESOLVING, _E.READY: _S.QUEUED, **_ENDS},
    _S.FINISHED: {},
    _S.FAILED: {},
    _S.CANCELLED: {},
}

# the states in which a task waits in (or holds its place in) a queue
WAITING_TO_RUN = frozenset({_S.SUBMITTED, _S.RESOLVING, _S.QUEUED})
# the states in which a worker (or a connection that failed) has it
AT_A_WORKER = frozenset({_S.PUSHED, _S.CANCELLING})


def next_state(state: TaskState, event: TaskEvent) -> TaskState:
    """The state after ``event``; InvalidTaskTransition if ``state`` does not allow it."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise InvalidTaskTransition(
            f"a task in state {state.name} cannot take event {event.name}") from None


class CancelStep(enum.Enum):
    """What ``cancel`` does to a task, by its state."""

    NOTHING = enum.auto()      # already final
    FINISH_NOW = enum.auto()   # no worker has it: store TaskCancelledError now
    TELL_WORKER = enum.auto()  # CANCEL, and ask the worker (its reply finishes it)


def cancel_step(state: TaskState) -> CancelStep:
    if state.is_final:
        return CancelStep.NOTHING
    if state in AT_A_WORKER:
        return CancelStep.TELL_WORKER
    return CancelStep.FINISH_NOW


def retry_allowed(retries_left: int) -> bool:
    """``max_retries``: -1 retries forever, 0 never."""
    return retries_left != 0


def use_retry(retries_left: int) -> int:
    """The count after one retry (-1 stays -1)."""
    return retries_left - 1 if retries_left > 0 else retries_left
