from rayshim._common.test_utils import *  # noqa
from rayshim._common.test_utils import client_test_enabled  # noqa


def generate_system_config_map(**kwargs):
    return {"_system_config": kwargs}


def raw_metric_timeseries(info, result):
    """Ray scrapes the node's metrics agent; shoal exports cluster metrics on the
    dashboard's /metrics (docs/design.md sections 24, 25)."""
    from collections import defaultdict

    from rayshim._common.test_utils import fetch_shoal_timeseries

    fetch_shoal_timeseries(info["dashboard_url"], result)
    by_name = defaultdict(list)
    for sample in result.metric_samples.values():
        by_name[sample.name].append(sample)
    return by_name


class _GlobalStateAccessor:
    """Ray's GCS accessor, for the one question Ray's tests ask it here: the pending
    resource demand (shoal.util.get_resource_demand)."""

    def get_all_resource_usage(self):
        from shoal.util import get_resource_demand

        return get_resource_demand()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        from ray import _Missing
        return _Missing(f"GlobalStateAccessor.{attr}")


def make_global_state_accessor(ray_context):
    return _GlobalStateAccessor()


def init_error_pubsub():
    """Ray's subscription to the errors pushed to drivers: shoal's warnings channel."""
    from shoal.util import subscribe_warnings

    return subscribe_warnings()


def get_error_message(subscriber, num=1000000, error_type=None, timeout=20):
    """Up to ``num`` warnings of ``error_type`` (all if None) within ``timeout`` s, as
    Ray's error dicts."""
    import time

    deadline = time.monotonic() + timeout
    out = []
    while len(out) < num:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        item = subscriber.get(timeout=left)
        if item is None:
            break
        if error_type is None or item.type.value == error_type:
            out.append({"type": item.type.value, "error_message": item.message,
                        "job_id": item.job_id, "timestamp": item.timestamp})
    return out


def wait_for_dashboard_agent_available(cluster):
    return None


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.test_utils.{name}")
