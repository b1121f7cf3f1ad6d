"""An actor's life as the control store sees it: a pure transition table.

Theory of operation
-------------------
The control store owns every actor's state.  An actor whose constructor takes
refs that are not ready yet starts in DEPENDENCIES_UNREADY: it is not placed
(it holds no resources) until its owner reports them ready
(DEPENDENCIES_READY -> PENDING).  Events come from the node
agents (a worker process exited, a constructor finished or raised), from
membership (a node died), from callers (``shoal.kill``) and from owners
(the process that created a non-detached actor died)::

                 CREATED                 PROCESS_DIED / KILLED_TO_RESTART
    PENDING ----------------> ALIVE ---------------------------+
       |                       ^                               |
       |                       |  CREATED                      v  restarts left
       |                       +---------------------- RESTARTING
       |                                                 |   ^  PROCESS_DIED
       |                                                 |   +--(restarts left)
       |  CREATION_FAILED / KILLED / OWNER_DIED          |
       +-------------------------------------------------+---> DEAD (final)
                        (and any failure with no restarts left)

* A *failure* (``PROCESS_DIED``: the worker process or its node died, also
  while the constructor ran; ``KILLED_TO_RESTART``: ``shoal.kill(actor,
  no_restart=False)``) leads to RESTARTING while restarts remain, else to DEAD.
  Each entry into RESTARTING uses one restart: ``num_restarts`` counts them,
  ``max_restarts`` bounds them (-1 = no bound).
* ``CREATION_FAILED`` (the constructor raised, or the actor can never be
  scheduled), ``KILLED`` (``shoal.kill`` with the default ``no_restart=True``)
  and ``OWNER_DIED`` (a non-detached actor fate-shares with its owner) end the
  actor for good, whatever restarts remain: re-running a constructor that
  raised would raise again, and nobody is left to call an orphan.
* DEAD is absorbing.  A kill-to-restart uses a restart whatever the state, as in
  Ray: of a PENDING or RESTARTING actor the creation under way becomes the
  restart, so with none left the actor is DEAD (it used to leave a RESTARTING
  actor as it was while the store still counted a restart past the bound).

The store applies :func:`next_state` and does the I/O (placing the actor,
killing workers, publishing on the ``actor`` channel).
"""

from __future__ import annotations

import enum


class ActorState(enum.Enum):
    """Ray's names, as ``list_actors`` shows them."""

    DEPENDENCIES_UNREADY = "DEPENDENCIES_UNREADY"  # waits for its constructor's refs
    PENDING = "PENDING_CREATION"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"


class ActorEvent(enum.Enum):
    DEPENDENCIES_READY = enum.auto()  # the owner: the constructor's refs are ready
    CREATED = enum.auto()            # the constructor returned on a worker
    CREATION_FAILED = enum.auto()    # the constructor raised / cannot be scheduled
    PROCESS_DIED = enum.auto()       # its worker process or its node died
    KILLED_TO_RESTART = enum.auto()  # shoal.kill(actor, no_restart=False)
    KILLED = enum.auto()             # shoal.kill(actor)
    OWNER_DIED = enum.auto()         # non-detached: its owner process is gone


class _Restart:
    """Table marker: RESTARTING if a restart remains, else DEAD."""


RESTART_OR_DEAD = _Restart()

_P, _A, _R, _D = ActorState.PENDING, ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD
_U = ActorState.DEPENDENCIES_UNREADY

TRANSITIONS: dict[ActorState, dict[ActorEvent, ActorState | _Restart]] = {
    _U: {
        ActorEvent.DEPENDENCIES_READY: _P,
        ActorEvent.PROCESS_DIED: _U,  # it has no process yet: news of an old one
        ActorEvent.CREATION_FAILED: _D,
        # a restart places it now; its worker waits for the refs itself
        ActorEvent.KILLED_TO_RESTART: RESTART_OR_DEAD,
        ActorEvent.KILLED: _D,
        ActorEvent.OWNER_DIED: _D,
    },
    _P: {
        ActorEvent.CREATED: _A,
        ActorEvent.CREATION_FAILED: _D,
        ActorEvent.PROCESS_DIED: RESTART_OR_DEAD,
        ActorEvent.KILLED_TO_RESTART: RESTART_OR_DEAD,
        ActorEvent.KILLED: _D,
        ActorEvent.OWNER_DIED: _D,
    },
    _A: {
        ActorEvent.PROCESS_DIED: RESTART_OR_DEAD,
        ActorEvent.KILLED_TO_RESTART: RESTART_OR_DEAD,
        ActorEvent.KILLED: _D,
        ActorEvent.OWNER_DIED: _D,
    },
    _R: {
        ActorEvent.CREATED: _A,
        ActorEvent.CREATION_FAILED: _D,
        ActorEvent.PROCESS_DIED: RESTART_OR_DEAD,
        ActorEvent.KILLED_TO_RESTART: RESTART_OR_DEAD,
        ActorEvent.KILLED: _D,
        ActorEvent.OWNER_DIED: _D,
    },
    _D: {event: _D for event in ActorEvent},
}


def can_restart(max_restarts: int, num_restarts: int) -> bool:
    """True while another restart is allowed (-1: always)."""
    return max_restarts < 0 or num_restarts < max_restarts


def next_state(state: ActorState, event: ActorEvent, max_restarts: int,
               num_restarts: int) -> ActorState:
    """The state after ``event``; ValueError for an event the state cannot see
    (e.g. CREATED while ALIVE: a bug in the caller)."""
    target = TRANSITIONS[state].get(event)
    if target is None:
        raise ValueError(f"actor event {event.name} is impossible in state {state.name}")
    if isinstance(target, _Restart):
        return _R if can_restart(max_restarts, num_restarts) else _D
    return target
