"""The object and task calls of the driver-facing API: get, put, wait, cancel,
kill, named actors, the cluster's resources and nodes (``init`` and
``shutdown`` are :mod:`shoal.api.session`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shoal.api.actor import ActorHandle
from shoal.api.object_ref import ObjectRef
from shoal.api.session import call_on_cluster, control_call, ensure_worker
from shoal.rpc.actor_messages import KillActorBody
from shoal.rpc.messages import Method


def _check_refs(refs: Any, what: str) -> None:
    if set(map(type, refs)) <= _JUST_REFS:  # C-speed check for long lists
        return
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(
                f"{what} expects ObjectRefs, got {type(r).__name__}: {r!r}")


_JUST_REFS = {ObjectRef}


def get(object_refs: Any, *, timeout: float | None = None,
        _read_in_place: bool = False) -> Any:
    """Values of one ref or a list of refs; raises the task's error if it failed.

    ``_read_in_place`` (shoal's extension; Ray has none): a value spilled on this
    node is not restored; the reader maps its spill file, so only the pages it
    touches are read (for a reader that looks at a small part of a large value,
    such as sort's key sample)."""
    worker = ensure_worker()
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not isinstance(_read_in_place, bool):
        raise TypeError(f"_read_in_place must be a bool, got {_read_in_place!r}")
    if isinstance(object_refs, ObjectRef):
        return call_on_cluster(worker, worker.get, [object_refs], timeout, _read_in_place)[0]
    from shoal.api.generators import DynamicObjectRefGenerator, ObjectRefGenerator

    if isinstance(object_refs, ObjectRefGenerator):
        return object_refs  # as Ray: its refs are read by iterating it
    if isinstance(object_refs, DynamicObjectRefGenerator):
        object_refs = object_refs.peek()  # read, not taken
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(
            f"shoal.get expects an ObjectRef or a list of ObjectRefs, got "
            f"{type(object_refs).__name__}: {object_refs!r}")
    _check_refs(object_refs, "shoal.get")
    return call_on_cluster(worker, worker.get, list(object_refs), timeout, _read_in_place)


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store a value in the cluster; returns its ref (owned by this process, or
    by the actor ``_owner``)."""
    worker = ensure_worker()
    if _owner is not None and not isinstance(_owner, ActorHandle):
        raise TypeError(f"put(_owner=...) takes an actor handle, got {type(_owner).__name__}")
    owner = _owner.actor_id if _owner is not None else None
    return call_on_cluster(worker, worker.put, value, owner)


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split ``object_refs`` into (ready, not ready) once ``num_returns`` are ready
    or ``timeout`` seconds pass; both lists keep the input order."""
    worker = ensure_worker()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, (list, tuple)):
        raise TypeError(
            f"wait() expected a list of ObjectRefs, got {type(object_refs).__name__}")
    # the ids, with the type check folded in (one pass: wait on 1k ready refs is ~50 us;
    # a second pass looking for generators cost as much again)
    ids = {r.object_id for r in object_refs if type(r) is ObjectRef}
    if len(ids) != len(object_refs):  # a duplicate, a generator, or not a ref at all
        from shoal.api.generators import ObjectRefGenerator, wait_with_generators

        if any(type(r) is ObjectRefGenerator for r in object_refs):
            # a streaming generator is ready when its next item is (or it has ended)
            return wait_with_generators(
                list(object_refs), num_returns, timeout,
                lambda refs, t: wait(refs, num_returns=len(refs), timeout=t,
                                     fetch_local=fetch_local))
        _check_refs(object_refs, "shoal.wait")
        ids = {r.object_id for r in object_refs}
        if len(ids) != len(object_refs):
            raise ValueError("wait() does not accept duplicate ObjectRefs")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be an int >= 0, got {num_returns!r}")
    if num_returns > len(object_refs):
        raise ValueError(
            f"num_returns ({num_returns}) cannot be greater than the number of refs "
            f"({len(object_refs)})")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not isinstance(fetch_local, bool):
        raise TypeError("fetch_local must be a bool")
    if not object_refs or num_returns == 0:
        return [], list(object_refs)
    refs = object_refs if type(object_refs) is list else list(object_refs)  # slices copy
    return call_on_cluster(worker, worker.wait, refs, num_returns, timeout, ids)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that makes ``object_ref``; its ``get`` raises TaskCancelledError."""
    worker = ensure_worker()
    from shoal.api.generators import ObjectRefGenerator

    if isinstance(object_ref, ObjectRefGenerator):
        from shoal.core import ids

        oid = ids.object_id(object_ref.task_id().binary(), 1)
        worker.post(worker.tasks.cancel, oid, force, recursive)
        return
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"shoal.cancel expects an ObjectRef, got {type(object_ref).__name__}")
    _refuse_force_for_actor_task(worker, object_ref, force)
    if object_ref.owner_address != worker.address:  # a borrowed ref: its owner cancels the task
        worker.post(worker.tasks.cancel_at_owner, object_ref.owner_address,
                    object_ref.object_id, force, recursive)
        return
    worker.post(worker.tasks.cancel, object_ref.object_id, force, recursive)


def _refuse_force_for_actor_task(worker: Any, object_ref: ObjectRef, force: bool) -> None:
    """Ray's rule: ``force=True`` would kill the actor's process, not just the call, so
    it is refused for an actor call (known here when this process owns the call)."""
    if not force or object_ref.owner_address != worker.address:
        return
    from shoal.core import ids
    from shoal.core.task_spec import TaskKind

    async def kind() -> TaskKind | None:  # on the loop: the tables are the loop's
        return worker.tasks.kind_of(ids.task_of(object_ref.object_id))

    if worker.call(kind, timeout=30) is TaskKind.ACTOR_TASK:
        raise ValueError("force=True is not supported for actor tasks.")


def kill(actor: Any, *, no_restart: bool = True) -> None:
    """Terminate an actor at once; its pending and future calls fail."""
    if not isinstance(actor, ActorHandle):
        raise NotAnActorHandle(f"shoal.kill expects an actor handle, got {type(actor).__name__}")
    control_call(Method.KILL_ACTOR, KillActorBody(actor.actor_id, no_restart).to_wire())


class NotAnActorHandle(TypeError, ValueError):
    """``kill`` of something else (Ray raises ValueError; a TypeError too, as it is one)."""


def get_actor(name: str, namespace: str | None = None) -> Any:
    """The handle of the named actor; ValueError if there is none."""
    import cloudpickle

    if not isinstance(name, str) or not name:
        raise ValueError("get_actor needs a non-empty actor name")
    worker = ensure_worker()
    ns = namespace or worker.namespace
    reply = control_call(Method.GET_NAMED_ACTOR, [name, ns])
    if reply is None:
        raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{ns}'")
    return ActorHandle(reply["actor_id"], cloudpickle.loads(reply["handle_meta"]), worker)


def cluster_resources() -> dict[str, float]:
    return control_call(Method.CLUSTER_RESOURCES)["total"]


def available_resources() -> dict[str, float]:
    reply = control_call(Method.CLUSTER_RESOURCES)["available"]
    return {k: v for k, v in reply.items() if v > 0}


def nodes() -> list[dict]:
    """One dict per node, with Ray's keys."""
    out = []
    for n in control_call(Method.GET_NODES):
        host = n["address"].rsplit(":", 1)[0]
        out.append({
            "NodeID": n["node_id"],
            "Alive": n["alive"],
            "NodeManagerAddress": host,
            "NodeManagerHostname": n.get("hostname", ""),
            "NodeManagerPort": int(n["address"].rsplit(":", 1)[1]),
            "ObjectStoreSocketName": n.get("store_path", ""),
            "Resources": n["resources_total"] if n["alive"] else {},
            "alive": n["alive"],
        })
    return out
