"""``ray._private.ray_constants``: the names with a shoal meaning; others are Ray
internals whose use fails."""

from shoal.util.cluster_warnings import WarningType

EXCESS_QUEUEING_WARNING = WarningType.EXCESS_QUEUEING.value
WORKER_POOL_LARGE_ERROR = WarningType.WORKER_POOL_LARGE.value


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.ray_constants.{name}")
