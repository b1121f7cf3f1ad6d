"""``ray._private.gcs_utils`` as far as Ray's tests decode resource demand with it:
``ResourceUsageBatchData.FromString`` takes what the shim's global state accessor
returns (shoal's ``get_resource_demand()`` records) instead of protobuf bytes."""

import types


class ResourceUsageBatchData:
    @staticmethod
    def FromString(demands):  # noqa: N802 (protobuf's name)
        return types.SimpleNamespace(
            resource_load_by_shape=types.SimpleNamespace(resource_demands=list(demands)))


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.gcs_utils.{name}")
