"""When a non-detached actor goes out of scope: the owner's pure bookkeeping.

Theory of operation
-------------------
Ray terminates a non-detached actor (named or not) once every *strong* handle
to it, in every process, is gone.  Shoal does not count handles itself: it
lends the job to reference counting (:mod:`shoal.core.reference_table`).  At
creation the owner puts a small *scope token* object; every strong handle holds
the token's ``ObjectRef``.  A pickled strong handle carries the ref, so the
borrow protocol tracks it in every process it reaches (task arguments, return
values, objects that contain it), and a call in flight pins it until its reply
(``PendingTask.actor_pin``): pending calls finish first.  When the token leaves
scope everywhere, the owner's table frees it and this table decides to kill.

Weak handles carry no token and keep nothing alive: those from ``get_actor``
(and ``get_if_exists``), ``get_runtime_context().current_actor``, a handle an
actor receives to itself, and every handle of a detached actor.

Per actor, in the owner::

    IN_SCOPE --token freed, calls pending--> DRAINING --idle--> RELEASED
        |                                                          ^
        +-----------------token freed, idle------------------------+

RELEASED means "KILL_ACTOR sent"; an actor that dies meanwhile is forgotten.
Pure: the actor manager performs the kill.  Loop thread only.
"""

from __future__ import annotations

import enum


class Scope(enum.Enum):
    IN_SCOPE = enum.auto()  # some strong handle (or a call in flight) still exists
    DRAINING = enum.auto()  # no handle left; the owner's own queued calls still run
    RELEASED = enum.auto()  # terminated for being out of scope (kill sent)


class ActorScopeTable:
    def __init__(self) -> None:
        self.by_token: dict[bytes, str] = {}  # scope token object id -> actor id
        self.scope: dict[str, Scope] = {}  # actor id -> its state (owned, non-detached)
        self.token_of: dict[str, bytes] = {}  # actor id -> its scope token object id
        # tokens of actors that died while handles existed: when one is freed the
        # owner tells the control store, which frees the dead actor's held name
        self.dead_tokens: dict[bytes, str] = {}

    def track(self, actor_id: str, token: bytes) -> None:
        """A non-detached actor this process created; ``token`` is its scope token."""
        self.by_token[token] = actor_id
        self.token_of[actor_id] = token
        self.scope[actor_id] = Scope.IN_SCOPE

    def token_freed(self, token: bytes, busy: bool) -> str | None:
        """The token left scope everywhere.  Returns the actor id to kill now, or None
        (not a token; or ``busy``: calls still queued, so wait for :meth:`idle`)."""
        actor_id = self.by_token.pop(token, None)
        self.token_of.pop(actor_id or "", None)
        if actor_id is None or self.scope.get(actor_id) is not Scope.IN_SCOPE:
            return None
        if busy:
            self.scope[actor_id] = Scope.DRAINING
            return None
        self.scope[actor_id] = Scope.RELEASED
        return actor_id

    def idle(self, actor_id: str) -> bool:
        """The owner has no call queued or in flight to it: True if it is to be killed."""
        if self.scope.get(actor_id) is not Scope.DRAINING:
            return False
        self.scope[actor_id] = Scope.RELEASED
        return True

    def died(self, actor_id: str) -> None:
        """The actor is dead (for any reason): nothing left to decide."""
        self.scope.pop(actor_id, None)
        token = self.token_of.pop(actor_id, b"")
        if self.by_token.pop(token, None) is not None:
            self.dead_tokens[token] = actor_id
