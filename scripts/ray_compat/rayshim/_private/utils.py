"""``ray._private.utils`` as far as Ray's tests use it with a shoal meaning:
``DeferSigint`` is shoal's public ``shoal.util.DeferSigint``."""

from shoal.util import DeferSigint  # noqa: F401


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.utils.{name}")
