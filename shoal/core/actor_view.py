"""The caller's view of an actor: what its calls may do now.  Pure.

Theory of operation
-------------------
The control store owns an actor's state (:mod:`shoal.control.actor_lifecycle`);
a caller only hears of it, and late: answers to its ``GET_ACTOR``, notices on
the ``actor`` channel, and its own connection to the actor's process failing.
What it last heard decides what its calls do::

               connected                    restart reported
    PENDING --------------> ALIVE <------------------------> RESTARTING
       |                      |      connected (new process)      |
       |  died                |  died                        died |
       +----------------------+---------------> DEAD <-----------+

* PENDING: created (or first called) and never connected; calls queue.
* ALIVE: connected to the process the store named.  Calls are sent, from the
  calling thread when nothing is queued.  A failed connection keeps ALIVE (the
  calls sent on it are set aside as *lost*) until the store says what became
  of the actor.
* RESTARTING: the store re-creates it; calls queue until a new process answers.
* DEAD, final: every queued, lost or later call fails with the death's cause.
  News that arrives after it (a late answer, a stale notice) changes nothing,
  which is why a DEAD view *ignores* events rather than refusing them.

The view takes the store's own states (``ActorState``, Ray's names), which
are also what its answers and notices carry (:func:`reported` reads them off a
record); only the events that move them differ.
"""

from __future__ import annotations

import enum
from typing import Any

from shoal.control.actor_lifecycle import ActorState


class ViewEvent(enum.Enum):
    CONNECTED = enum.auto()         # connected to the process the store named
    RESTART_REPORTED = enum.auto()  # the store answered RESTARTING
    DIED = enum.auto()              # the store answered (or published) DEAD


_P, _A, _R, _D = ActorState.PENDING, ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD

TRANSITIONS: dict[ActorState, dict[ViewEvent, ActorState]] = {
    # the store's DEPENDENCIES_UNREADY is, to a caller, an actor not connected yet
    # (a view starts PENDING and never takes it); listed so every state answers
    ActorState.DEPENDENCIES_UNREADY: {ViewEvent.CONNECTED: _A,
                                     ViewEvent.RESTART_REPORTED: _R, ViewEvent.DIED: _D},
    _P: {ViewEvent.CONNECTED: _A, ViewEvent.RESTART_REPORTED: _R, ViewEvent.DIED: _D},
    _A: {ViewEvent.CONNECTED: _A, ViewEvent.RESTART_REPORTED: _R, ViewEvent.DIED: _D},
    _R: {ViewEvent.CONNECTED: _A, ViewEvent.RESTART_REPORTED: _R, ViewEvent.DIED: _D},
    _D: {ViewEvent.CONNECTED: _D, ViewEvent.RESTART_REPORTED: _D, ViewEvent.DIED: _D},
}


def next_view(view: ActorState, event: ViewEvent) -> ActorState:
    return TRANSITIONS[view][event]


def reported(record: dict[str, Any]) -> ActorState:
    """The store's state of the actor, from a ``GET_ACTOR`` answer or a notice."""
    return ActorState(record["state"])


def may_send(view: ActorState) -> bool:
    """Calls go to the process now (else they queue, or fail if DEAD)."""
    return view is ActorState.ALIVE


def keeps_actor_busy(view: ActorState) -> bool:
    """An actor never connected to is not idle: its constructor may still run, and
    going out of scope must wait for it (Ray's rule)."""
    return view is ActorState.PENDING
