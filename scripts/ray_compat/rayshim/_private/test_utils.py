from rayshim._common.test_utils import *  # noqa
from rayshim._common.test_utils import client_test_enabled  # noqa


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.test_utils.{name}")
