"""``put(value, _owner=actor)``: give a new object to a long-lived actor to own.

An object's owner is whoever created it, and the object cannot outlive its
owner.  A short-lived process (a task, a driver about to exit) that puts
something meant to last hands ownership to an actor instead.  The value is
written where the caller is (its node's store, or kept inline); the actor's
core worker then adopts it: it becomes the owner, with the caller counted as
one borrower, so the object lives while anyone holds a ref and survives the
caller::

    caller                                   actor's core worker
      | write value (store / inline)           |
      | ADOPT_OBJECT(oid, value, caller) ----> | owns oid; borrowers {caller: 1}
      | <-------------------------------- True |
      | ObjectRef(oid, owner = the actor)      |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal import exceptions
from shoal.api.object_ref import ObjectRef
from shoal.control.actor_lifecycle import ActorState
from shoal.core import ids
from shoal.core.serialization import serialize
from shoal.core.value_table import StoredValue
from shoal.core.value_wire import INLINE_THRESHOLD, detach, value_from_wire, value_to_wire
from shoal.rpc.actor_messages import GetActorBody
from shoal.rpc.messages import Method

ADOPT_TIMEOUT_S = 30.0  # each of put(_owner=)'s two requests (actor look-up, hand-over)

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker


def put_owned_by(worker: CoreWorker, value: Any, actor_id: str) -> ObjectRef:
    """User thread: store ``value`` and make the actor ``actor_id`` its owner."""
    data = serialize(value, "the value passed to put")
    if data.contained:
        raise TypeError("put(_owner=actor) of a value that contains ObjectRefs is not "
                        "supported; put the inner objects with the same _owner instead")
    oid = ids.object_id(worker.ids.task_id(), 0)
    address = worker.call(_actor_address, worker, actor_id, timeout=ADOPT_TIMEOUT_S)
    if data.data_size() <= INLINE_THRESHOLD or worker.shm is None:
        stored = StoredValue(inline=detach(data))
    else:  # the agent frees this copy if the actor dies first
        size = worker.write_plasma(oid, data, address)
        stored = StoredValue(node_id=worker.node_id, size=size, locations={worker.node_id})
    worker.call(_adopt, worker, actor_id, address, oid, value_to_wire(stored),
                timeout=ADOPT_TIMEOUT_S)
    worker.value_table.put(oid, stored)  # our cached copy of the value, as a borrower
    return ObjectRef(oid, address, worker)


async def _actor_address(worker: CoreWorker, actor_id: str) -> str:
    record = await worker.control.call(Method.GET_ACTOR, GetActorBody(actor_id).to_wire())
    if ActorState(record["state"]) is not ActorState.ALIVE:
        raise exceptions.ActorDiedError(
            f"put(_owner=...) names actor {actor_id}, which is dead: "
            f"{record.get('death_cause') or 'unknown cause'}", actor_id)
    return record["address"]


async def _adopt(worker: CoreWorker, actor_id: str, address: str, oid: bytes,
                 wire: list) -> None:
    conn = await worker.peer(address)
    if not await conn.call(Method.ADOPT_OBJECT, [oid, wire, worker.address]):
        raise exceptions.RaySystemError(f"actor {actor_id} refused to own object {oid.hex()}")
    # the owner counts one registration for us: releasing our last ref tells it so
    worker.references.add_registered_borrow(oid, address)


def handle_adopt_object(worker: CoreWorker, conn, body) -> bool:
    """Owner (the actor) side of ADOPT_OBJECT."""

    oid, wire, borrower = body
    worker.references.add_owned(oid)
    worker.references.add_borrower(oid, borrower)
    worker.value_table.put(oid, value_from_wire(wire))
    return True
