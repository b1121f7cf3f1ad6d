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


def wait_for_dashboard_agent_available(cluster):
    return None


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._private.test_utils.{name}")
