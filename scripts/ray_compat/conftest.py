"""Fixtures with Ray's names, built on the public `ray` API (Ray itself or the shoal alias)."""
import contextlib

import pytest
import ray

DEFAULTS = {"num_cpus": 1, "object_store_memory": 150 * 1024 * 1024,
            "namespace": "default_test_namespace", "include_dashboard": False}


@contextlib.contextmanager
def _start(**kwargs):
    args = dict(DEFAULTS)
    args.update(kwargs)
    info = ray.init(**args)
    try:
        yield info
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _cluster(**kwargs):
    from ray.cluster_utils import Cluster
    kwargs = dict(kwargs)
    kwargs.pop("skip_cluster", None)
    num_nodes = kwargs.pop("num_nodes", 0)
    do_init = kwargs.pop("do_init", num_nodes > 0)
    args = dict(DEFAULTS)
    args.update(kwargs)
    namespace = args.pop("namespace")
    args.pop("include_dashboard")
    cluster = Cluster()
    try:
        for i in range(num_nodes):
            if i > 0:
                args.pop("_system_config", None)
            cluster.add_node(**args)
            if i == 0 and do_init:
                ray.init(address=cluster.address, namespace=namespace)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _param(request):
    return dict(getattr(request, "param", {}) or {})


@pytest.fixture
def shutdown_only():
    yield None
    ray.shutdown()


@pytest.fixture
def ray_start_regular(request):
    with _start(**_param(request)) as info:
        yield info


@pytest.fixture(scope="module")
def ray_start_regular_shared(request):
    with _start(**_param(request)) as info:
        yield info


@pytest.fixture(scope="module")
def ray_start_regular_shared_2_cpus(request):
    p = _param(request)
    p.setdefault("num_cpus", 2)
    with _start(**p) as info:
        yield info


@pytest.fixture
def ray_start_10_cpus(request):
    p = _param(request)
    p["num_cpus"] = 10
    with _start(**p) as info:
        yield info


@pytest.fixture
def ray_start_2_cpus(request):
    p = _param(request)
    p["num_cpus"] = 2
    with _start(**p) as info:
        yield info


@pytest.fixture
def ray_start_no_cpu(request):
    p = _param(request)
    p["num_cpus"] = 0
    with _start(**p) as info:
        yield info


@pytest.fixture
def ray_start_object_store_memory(request):
    with _start(num_cpus=1, object_store_memory=request.param) as info:
        yield info


@pytest.fixture
def ray_init_with_task_retry_delay():
    info = ray.init()
    yield info
    ray.shutdown()


@pytest.fixture
def ray_start_cluster(request):
    with _cluster(**_param(request)) as c:
        yield c


@pytest.fixture
def ray_start_cluster_enabled(request):
    with _cluster(**_param(request)) as c:
        yield c


@pytest.fixture
def ray_start_cluster_init(request):
    with _cluster(do_init=True, **_param(request)) as c:
        yield c


@pytest.fixture
def ray_start_cluster_head(request):
    with _cluster(do_init=True, num_nodes=1, **_param(request)) as c:
        yield c


@pytest.fixture
def propagate_logs():
    yield


@pytest.fixture
def error_pubsub():
    pytest.skip("error pubsub is a Ray internal")


@pytest.fixture(autouse=True)
def _shutdown_after_test(request):
    """A test that called init itself and failed before its shutdown must not fail the
    next ones ("already running"); module-shared clusters are left alone."""
    yield
    if not any(name.endswith("_shared") or "shared_" in name for name in request.fixturenames):
        if ray.is_initialized():
            ray.shutdown()
