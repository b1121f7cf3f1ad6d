from rayshim._common.test_utils import *  # noqa
from rayshim._common.test_utils import client_test_enabled  # noqa


def generate_system_config_map(**kwargs):
    return {"_system_config": kwargs}


def wait_for_dashboard_agent_available(cluster):
    return None


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.test_utils.{name}")
