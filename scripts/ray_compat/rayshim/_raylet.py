from shoal import ObjectRef, ObjectRefGenerator  # noqa
try:
    from shoal.api.generators import ObjectRefStreamEndOfStreamError  # noqa
except ImportError:
    class ObjectRefStreamEndOfStreamError(StopIteration):
        pass
