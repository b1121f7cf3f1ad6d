"""ray._common.constants: the names shoal has; any other is a Ray internal."""
from shoal.node.startup import HEAD_NODE_RESOURCE as HEAD_NODE_RESOURCE_NAME  # noqa: F401


def __getattr__(attr):
    if attr.startswith("__"):
        raise AttributeError(attr)
    from ray import _Missing

    return _Missing(f"ray._common.constants.{attr}")
