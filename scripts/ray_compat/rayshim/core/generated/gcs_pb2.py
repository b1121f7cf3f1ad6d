"""``ray.core.generated.gcs_pb2`` as far as Ray's tests compare actor states with it:
``ActorTableData.ActorState.X`` is shoal's ``ActorState`` of the same name."""

import types

from shoal.control.actor_lifecycle import ActorState as _State

ActorTableData = types.SimpleNamespace(ActorState=types.SimpleNamespace(
    DEPENDENCIES_UNREADY=_State.DEPENDENCIES_UNREADY, PENDING_CREATION=_State.PENDING,
    ALIVE=_State.ALIVE, RESTARTING=_State.RESTARTING, DEAD=_State.DEAD))


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray.core.generated.gcs_pb2.{name}")
