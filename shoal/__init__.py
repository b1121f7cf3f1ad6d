"""shoal: distributed futures with ownership; a drop-in for Ray core's API.

    import shoal
    shoal.init()

    @shoal.remote
    def square(x):
        return x * x

    print(shoal.get([square.remote(i) for i in range(4)]))
"""

from shoal import actor as actor  # noqa: E402
from shoal import exceptions as exceptions
from shoal import util as util
from shoal._version import __version__ as __version__
from shoal.api.actor import method as method
from shoal.api.decorators import remote as remote
from shoal.api.generators import DynamicObjectRefGenerator as DynamicObjectRefGenerator
from shoal.api.generators import ObjectRefGenerator as ObjectRefGenerator
from shoal.api.object_ref import ObjectRef as ObjectRef
from shoal.api.runtime import available_resources as available_resources
from shoal.api.runtime import cancel as cancel
from shoal.api.runtime import cluster_resources as cluster_resources
from shoal.api.runtime import get as get
from shoal.api.runtime import get_actor as get_actor
from shoal.api.runtime import init as init
from shoal.api.runtime import is_initialized as is_initialized
from shoal.api.runtime import kill as kill
from shoal.api.runtime import nodes as nodes
from shoal.api.runtime import put as put
from shoal.api.runtime import shutdown as shutdown
from shoal.api.runtime import wait as wait
from shoal.api.runtime_context import get_runtime_context as get_runtime_context

__all__ = [
    "__version__",
    "actor",
    "available_resources",
    "cancel",
    "cluster_resources",
    "DynamicObjectRefGenerator",
    "exceptions",
    "get",
    "get_actor",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "ObjectRef",
    "ObjectRefGenerator",
    "put",
    "remote",
    "shutdown",
    "util",
    "wait",
]
