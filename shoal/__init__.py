"""shoal: distributed futures with ownership; a drop-in for Ray core's API.

    import shoal
    shoal.init()

    @shoal.remote
    def square(x):
        return x * x

    print(shoal.get([square.remote(i) for i in range(4)]))
"""

from typing import TYPE_CHECKING

from shoal._version import __version__ as __version__

# The public names load on first use (PEP 562), so processes that never touch the
# API (node agents, the fork server) do not pay ~100 ms of imports at start-up, and
# a driver's ``import shoal`` overlaps less with its head's boot.
_LAZY = {
    "actor": ("shoal.actor", None),
    "data": ("shoal.data", None),  # imports pyarrow: only when a program uses it
    "exceptions": ("shoal.exceptions", None),
    "experimental": ("shoal.experimental", None),  # tqdm_ray
    "util": ("shoal.util", None),
    "method": ("shoal.api.actor", "method"),
    "remote": ("shoal.api.decorators", "remote"),
    "DynamicObjectRefGenerator": ("shoal.api.generators", "DynamicObjectRefGenerator"),
    "ObjectRefGenerator": ("shoal.api.generators", "ObjectRefGenerator"),
    "ObjectRef": ("shoal.api.object_ref", "ObjectRef"),
    "job_config": ("shoal.job_config", None),
    "runtime_env": ("shoal.runtime_env", None),
    "ObjectID": ("shoal.api.object_ref", "ObjectRef"),  # Ray's old name for ObjectRef
    **{name: ("shoal.api.id_types", name) for name in (
        "ActorID", "JobID", "NodeID", "TaskID", "WorkerID")},
    "get_runtime_context": ("shoal.api.runtime_context", "get_runtime_context"),
    "get_gpu_ids": ("shoal.api.runtime_context", "get_gpu_ids"),
    "timeline": ("shoal.util.state", "timeline"),
    **{name: ("shoal.api.runtime", name) for name in (
        "available_resources", "cancel", "cluster_resources", "get", "get_actor", "kill",
        "nodes", "put", "wait")},
    **{name: ("shoal.api.session", name) for name in ("init", "is_initialized", "shutdown")},
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from shoal import actor as actor
    from shoal import data as data
    from shoal import exceptions as exceptions
    from shoal import experimental as experimental
    from shoal import job_config as job_config
    from shoal import runtime_env as runtime_env
    from shoal import util as util
    from shoal.api.actor import method as method
    from shoal.api.decorators import remote as remote
    from shoal.api.generators import DynamicObjectRefGenerator as DynamicObjectRefGenerator
    from shoal.api.generators import ObjectRefGenerator as ObjectRefGenerator
    from shoal.api.id_types import ActorID as ActorID
    from shoal.api.id_types import JobID as JobID
    from shoal.api.id_types import NodeID as NodeID
    from shoal.api.id_types import TaskID as TaskID
    from shoal.api.id_types import WorkerID as WorkerID
    from shoal.api.object_ref import ObjectRef as ObjectID  # noqa: F401
    from shoal.api.object_ref import ObjectRef as ObjectRef
    from shoal.api.runtime import available_resources as available_resources
    from shoal.api.runtime import cancel as cancel
    from shoal.api.runtime import cluster_resources as cluster_resources
    from shoal.api.runtime import get as get
    from shoal.api.runtime import get_actor as get_actor
    from shoal.api.runtime import kill as kill
    from shoal.api.runtime import nodes as nodes
    from shoal.api.runtime import put as put
    from shoal.api.runtime import wait as wait
    from shoal.api.runtime_context import get_gpu_ids as get_gpu_ids
    from shoal.api.runtime_context import get_runtime_context as get_runtime_context
    from shoal.api.session import init as init
    from shoal.api.session import is_initialized as is_initialized
    from shoal.api.session import shutdown as shutdown
    from shoal.util.state import timeline as timeline
