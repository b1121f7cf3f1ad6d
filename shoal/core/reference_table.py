"""Reference counting for one process, in both roles: owner and borrower.

Theory of operation
-------------------
Every process keeps one :class:`Reference` per object id it knows.  The
process that created the ref (``.remote()`` or ``put``) is its **owner**;
any other process holding it is a **borrower**.  A reference is *in scope*
while any of these is non-zero (one clause each, see :meth:`Reference.in_scope`):

* ``local``        - live ObjectRef instances in this process;
* ``submitted``    - pending tasks submitted by this process that use it as an
                     argument (top-level or nested);
* ``contained_in`` - live objects in this process whose value contains it;
* ``borrowers``    - (owner only) processes registered as holding it;
* ``holds``        - release is deferred until borrow registrations of refs
                     found inside this object are acknowledged (see below).

When a reference leaves scope: an owner frees the value (inline and every
shared-memory copy); a borrower tells the owner ``REMOVE_BORROWER(n)`` with the
number of registrations made for it.  Either way the refs it contains lose one
``contained_in``.

Lineage (lineage.py) keeps rows past their scope.  An owned ref that a kept
lineage entry lists as an argument (``lineage`` > 0) keeps its row when it
leaves scope but loses its value (``FREE_VALUE``; the row is remembered in
``values_freed`` until a value is stored again, so that a reader asking for it
makes the owner rebuild it).  A row that also *contains* refs (a task's argument
whose value is a list of refs, e.g. an actor call's answer) instead keeps its
value, which a rebuild of the task must read, and turns its containment into
lineage: each contained owned ref trades its ``contained_in`` for a ``lineage``
(its row stays, its value goes), each borrowed one just loses ``contained_in``.
The container remembers them (``lineage_contains``) and releases that lineage
when its own row goes (``FREE``)::

    container C (owned, lineage > 0) leaves scope
      C.contains = [A (owned), B (borrowed)]
      -> A.contained_in -= 1, A.lineage += 1   (A: FREE_VALUE, row kept)
      -> B.contained_in -= 1                   (B: REMOVE_BORROWER if out of scope)
      -> C keeps its value; C.lineage_contains = [A]
    C's lineage drops to 0 (out of scope): FREE C, then A.lineage -= 1

Borrowing, the rule that prevents early frees: *whoever hands a ref to another
process keeps it alive until the owner has acknowledged the new borrower.*

    caller C          executing worker W                owner O
      | PUSH_TASK(args with X) |                           |
      | (C holds X: submitted) | deserializes X,           |
      |                        | ADD_BORROWER(X, W) -----> |
      |                        | <------------------ ack   |
      | <--------------- reply |  (only after the acks)    |
      | submitted(X) -= 1      |                           |
      |                        | ...drops X later...       |
      |                        | REMOVE_BORROWER(X, W, n)->|

Refs inside a task's *return value* are registered by W on the caller's
behalf (``ADD_BORROWER(X, C)``) before W replies; C then counts the
registration (``registrations``) and holds X while the returned object lives.
Refs found while deserializing the value of ``get(R)`` keep R alive
(``holds``) until their registrations are acknowledged.

Owners count registrations per borrower, so a borrower may be registered
several times (by itself and on its behalf) and releases them all at once.

This module is pure: it mutates tables and appends :class:`Action` s to
``self.actions``; the core worker performs them.  Loop thread only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

_PUT_INDEX = bytes(4)  # ids.index_of(oid) == 0: a put, or a large argument stored by value


class ActionKind(enum.Enum):
    FREE = "free"  # owner: out of scope everywhere; free its copies, forget its lineage
    FREE_VALUE = "free_value"  # owner: free its copies; lineage still needs the row
    REMOVE_BORROWER = "remove_borrower"  # borrower: done; tell the owner if count > 0
    REGISTER_BORROW = "register_borrow"  # borrower: tell the owner we hold it


@dataclass(slots=True)
class Action:
    kind: ActionKind
    object_id: bytes
    owner: str = ""
    count: int = 0


@dataclass(slots=True)
class Reference:
    owner: str  # address of the owner ("" if this process owns it)
    local: int = 0
    submitted: int = 0
    contained_in: int = 0
    borrowers: dict[str, int] = field(default_factory=dict)  # (an empty dict is not
    #                                                          tracked by the cyclic GC)
    holds: int = 0
    lineage: int = 0  # owner: lineage entries that list it as an argument (keep the row)
    registrations: int = 0  # borrower: registrations the owner counts for us
    registering: bool = False  # borrower: a registration is in flight
    waiting_containers: list[bytes] | tuple = ()
    contains: list[bytes] | tuple = ()
    # owner: contained refs turned into lineage when this row left scope with
    # lineage > 0 (it keeps its value then); released when the row goes
    lineage_contains: list[bytes] | tuple = ()
    # The empty defaults are shared and immutable (a list is made on first use):
    # a task's 3000 returns made 9000 containers that the cyclic GC kept traversing.

    @property
    def owned(self) -> bool:
        return self.owner == ""

    def in_scope(self) -> bool:
        return bool(
            self.local  # Python refs in this process
            or self.submitted  # pending tasks we submitted use it
            or self.contained_in  # a live object here contains it
            or self.borrowers  # (owner) someone else holds it
            or self.holds  # registrations of refs inside it are in flight
        )


class ReferenceTable:
    def __init__(self) -> None:
        self.refs: dict[bytes, Reference] = {}
        self.actions: list[Action] = []
        # owned rows whose value was freed (FREE_VALUE) and not stored again: a
        # reader asking for one must have it rebuilt (recovery.rebuild_freed)
        self.values_freed: set[bytes] = set()

    def owns_in_scope(self) -> bool:
        """Does this process own an object that is still in scope (here or at a
        borrower)?  A retiring worker (max_calls) may exit only once it does not."""
        return any(ref.owner == "" and ref.in_scope() for ref in self.refs.values())

    def take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    # ---- owner side ----------------------------------------------------------------
    def add_owned(self, oid: bytes, contains: list[bytes] = ()) -> None:
        """A new object we own.  Refs in ``contains`` must already be known."""
        ref = self.refs.get(oid)
        if ref is None:
            ref = self.refs[oid] = Reference(owner="")
        self._set_contains(ref, contains)

    def add_returns(self, oids: list[bytes]) -> None:
        """Rows for a task's returns, each counting the one ObjectRef that ``submit``
        hands out for it (made uncounted: one pass here instead of a command per ref)."""
        table = self.refs
        for oid in oids:
            entry = table.get(oid)
            if entry is None:
                table[oid] = Reference("", 1)
            else:
                entry.local += 1

    def _set_contains(self, ref: Reference, contains) -> None:
        found = []
        for inner in contains:
            entry = self.refs.get(inner)
            if entry is not None:
                entry.contained_in += 1
                found.append(inner)
        if found:
            ref.contains = [*ref.contains, *found]

    def add_borrower(self, oid: bytes, borrower: str, count: int = 1) -> bool:
        ref = self.refs.get(oid)
        if ref is None or not ref.owned:
            return False
        ref.borrowers[borrower] = ref.borrowers.get(borrower, 0) + count
        return True

    def remove_borrower(self, oid: bytes, borrower: str, count: int) -> None:
        ref = self.refs.get(oid)
        if ref is None or borrower not in ref.borrowers:
            return
        left = ref.borrowers[borrower] - count
        if left > 0:
            ref.borrowers[borrower] = left
        else:
            del ref.borrowers[borrower]
        self._maybe_release(oid, ref)

    def borrower_died(self, borrower: str) -> None:
        for oid, ref in list(self.refs.items()):
            if borrower in ref.borrowers:
                del ref.borrowers[borrower]
                self._maybe_release(oid, ref)

    # ---- both sides --------------------------------------------------------------
    def inc_local(self, oid: bytes, owner: str) -> bool:
        """Count a new ObjectRef instance; returns True if this created an
        unregistered borrowed reference (the caller should register it)."""
        ref = self.refs.get(oid)
        if ref is None:
            ref = self.refs[oid] = Reference(owner=owner)
            ref.local = 1
            return not ref.owned
        ref.local += 1
        return False

    def count_rebuilt(self, refs: list, me: str) -> list[bytes]:
        """``inc_local`` for each of ``refs`` (ObjectRefs just unpickled, ``me`` is our
        address); returns the borrowed ones not yet registered at their owner."""
        table = self.refs
        unregistered = []
        for r in refs:
            oid, owner = r.object_id, r.owner_address
            entry = table.get(oid)
            if entry is None:
                owned = owner == me
                table[oid] = Reference(owner="" if owned else owner, local=1)
                if not owned:
                    unregistered.append(oid)
            else:
                entry.local += 1
                if entry.owner and entry.registrations == 0:
                    unregistered.append(oid)
        return unregistered

    def dec_local(self, oid: bytes) -> None:
        ref = self.refs.get(oid)
        if ref is None:
            return
        ref.local -= 1
        self._maybe_release(oid, ref)

    def dec_local_many(self, oids: list[bytes]) -> None:
        """``dec_local`` for each of ``oids`` (refs dropped in a row)."""
        table, actions, free = self.refs, self.actions, ActionKind.FREE
        freed = self.values_freed
        for oid in oids:
            ref = table.get(oid)
            if ref is not None:
                ref.local -= 1
                if not ref.local:  # (in scope while local > 0)
                    if (ref.owner or ref.submitted or ref.contained_in or ref.borrowers
                            or ref.holds or ref.lineage or ref.contains
                            or ref.lineage_contains):
                        self._maybe_release(oid, ref)
                    else:  # the common case, inlined (3000 returns dropped at once)
                        actions.append(Action(free, oid))
                        del table[oid]
                        if freed:
                            freed.discard(oid)

    def inc_submitted(self, oids) -> None:
        for oid in oids:
            ref = self.refs.get(oid)
            if ref is not None:
                ref.submitted += 1

    def dec_submitted(self, oids) -> None:
        for oid in oids:
            ref = self.refs.get(oid)
            if ref is not None:
                ref.submitted -= 1
                self._maybe_release(oid, ref)

    def add_contained(self, container: bytes, inner: list[tuple[bytes, str]]) -> None:
        """``container`` (which we own or borrow) holds ``inner`` refs that were
        registered for us at their owners (or that we own)."""
        ref = self.refs.get(container)
        if ref is None:
            return
        for oid, owner in inner:
            entry = self.refs.get(oid)
            if entry is None:
                entry = self.refs[oid] = Reference(owner=owner)
            entry.contained_in += 1
            if not entry.owned:
                entry.registrations += 1
        ref.contains = [*ref.contains, *(oid for oid, _ in inner)]

    def add_registered_borrow(self, oid: bytes, owner: str) -> None:
        """A borrowed ref whose owner already counts us once (put with ``_owner``)."""
        ref = self.refs.get(oid)
        if ref is None:
            ref = self.refs[oid] = Reference(owner=owner)
        ref.registrations += 1

    # ---- borrower registration -----------------------------------------------------
    def needs_registration(self, oid: bytes) -> bool:
        ref = self.refs.get(oid)
        return (
            ref is not None
            and not ref.owned
            and ref.registrations == 0
            and ref.in_scope()
        )

    def hold_until_registered(self, container: bytes | None, inner: list[bytes]) -> list[Action]:
        """Start registering each unregistered borrowed ref in ``inner``; keep
        ``container`` (if given) in scope until all are acknowledged."""
        started = []
        holder = self.refs.get(container) if container is not None else None
        for oid in inner:
            ref = self.refs.get(oid)
            if ref is None or ref.owned or ref.registrations > 0 or not ref.in_scope():
                continue
            if holder is not None:
                holder.holds += 1
                if not ref.waiting_containers:
                    ref.waiting_containers = []
                ref.waiting_containers.append(container)
            if not ref.registering:
                ref.registering = True
                action = Action(ActionKind.REGISTER_BORROW, oid, ref.owner)
                started.append(action)
        return started

    def registration_done(self, oid: bytes, ok: bool = True) -> None:
        ref = self.refs.get(oid)
        if ref is None:
            return
        ref.registering = False
        if ok:
            ref.registrations += 1
        containers, ref.waiting_containers = ref.waiting_containers, ()
        for container in containers:
            holder = self.refs.get(container)
            if holder is not None:
                holder.holds -= 1
                self._maybe_release(container, holder)
        self._maybe_release(oid, ref)

    # ---- release -------------------------------------------------------------------
    def _maybe_release(self, oid: bytes, ref: Reference) -> None:
        if ref.in_scope() or ref.registering:
            return
        if ref.owned:
            if ref.lineage > 0:  # the row stays so lineage can rebuild it
                if oid[-4:] == _PUT_INDEX:  # a put cannot be rebuilt: a rerun of the
                    return  # task it was an argument of reads this value (Ray's)
                if ref.contains:  # a rebuild reads these refs: keep them and the value
                    self._contained_to_lineage(oid, ref)
                elif not ref.lineage_contains:  # the value goes
                    self.actions.append(Action(ActionKind.FREE_VALUE, oid))  # repeats harmless
                    self.values_freed.add(oid)
                return
            self.actions.append(Action(ActionKind.FREE, oid))
            self.values_freed.discard(oid)
        else:  # count 0: nothing to tell the owner, but a cached value to drop
            self.actions.append(
                Action(ActionKind.REMOVE_BORROWER, oid, ref.owner, ref.registrations)
            )
        del self.refs[oid]
        self._release_contained(ref)
        if ref.lineage_contains:
            kept, ref.lineage_contains = ref.lineage_contains, ()
            self.dec_lineage(kept)

    def _contained_to_lineage(self, oid: bytes, ref: Reference) -> None:
        """``ref`` (owned, lineage > 0) left scope: its contained owned refs are
        kept by lineage instead (rows, not values); borrowed ones are released."""
        contains, ref.contains = ref.contains, ()
        kept = []
        for inner in contains:
            entry = self.refs.get(inner)
            if entry is None:
                continue
            entry.contained_in -= 1
            if entry.owned:
                entry.lineage += 1
                kept.append(inner)
            self._maybe_release(inner, entry)
        if kept:
            ref.lineage_contains = [*ref.lineage_contains, *kept]
        elif not ref.lineage_contains:  # nothing of ours to keep: the value goes
            self.actions.append(Action(ActionKind.FREE_VALUE, oid))
            self.values_freed.add(oid)

    def _release_contained(self, ref: Reference) -> None:
        contains, ref.contains = ref.contains, ()
        for inner in contains:
            entry = self.refs.get(inner)
            if entry is not None:
                entry.contained_in -= 1
                self._maybe_release(inner, entry)

    # ---- lineage (see lineage.py) ----------------------------------------------------
    def inc_lineage(self, oids) -> None:
        """Arguments of a task whose lineage is kept: keep their rows (owned ones)."""
        for oid in oids:
            ref = self.refs.get(oid)
            if ref is not None and ref.owned:
                ref.lineage += 1

    def dec_lineage(self, oids) -> None:
        for oid in oids:
            ref = self.refs.get(oid)
            if ref is not None and ref.owned and ref.lineage > 0:
                ref.lineage -= 1
                self._maybe_release(oid, ref)

    def value_stored(self, oids) -> None:
        """Values of ``oids`` were stored (again): none of them is freed now."""
        freed = self.values_freed
        if freed:
            freed.difference_update(oids)

    def value_was_freed(self, oid: bytes) -> bool:
        """An owned row whose value lineage freed: a reader needs it rebuilt."""
        return oid in self.values_freed

    def release_if_unused(self, oid: bytes) -> None:
        ref = self.refs.get(oid)
        if ref is not None:
            self._maybe_release(oid, ref)

    def is_owned(self, oid: bytes) -> bool:
        ref = self.refs.get(oid)
        return ref is not None and ref.owned

    def summary(self) -> dict[str, int]:
        owned = sum(1 for r in self.refs.values() if r.owned)
        return {"owned": owned, "borrowed": len(self.refs) - owned}
