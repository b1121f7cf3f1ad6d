"""Basic Ray-core API surface: remote functions, options, init, resources, runtime context."""

from __future__ import annotations

import os
import time

import pytest

import shoal
from tests.utils import open_gate, wait_for_condition, wait_for_file

pytestmark = pytest.mark.timeout(60)

# The module's shared cluster also carries a custom resource.
CLUSTER_INIT_KWARGS = {"num_cpus": 2, "resources": {"custom": 2}}


@shoal.remote
def identity(x):
    return x


@shoal.remote(num_cpus=1)
def add(a, b):
    return a + b


@shoal.remote
def echo_args(*args, **kwargs):
    return args, kwargs


@shoal.remote
def three_values():
    return 1, 2, 3


@shoal.remote
def hold_cpu_until(gate_path):
    wait_for_file(gate_path)
    return "released"


@shoal.remote(num_cpus=1)
def task_runtime_context():
    ctx = shoal.get_runtime_context()
    return {
        "job_id": ctx.get_job_id(),
        "task_id": ctx.get_task_id(),
        "actor_id": ctx.get_actor_id(),
        "node_id": ctx.get_node_id(),
        "worker_id": ctx.get_worker_id(),
        "assigned": ctx.get_assigned_resources(),
    }


@shoal.remote
class ContextActor:
    def context(self):
        ctx = shoal.get_runtime_context()
        return {"actor_id": ctx.get_actor_id(), "task_id": ctx.get_task_id()}


def _is_hex(value) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Tests with their own cluster. They must run before the shared cluster starts,
# so they come first in this module.
# ---------------------------------------------------------------------------


def test_api_use_before_init_auto_initialises(shutdown_only):
    assert not shoal.is_initialized()
    ref = shoal.put(1)
    assert shoal.is_initialized()
    assert shoal.get(ref) == 1


def test_init_to_first_task_result_within_ten_seconds(shutdown_only):
    start = time.perf_counter()
    shoal.init(num_cpus=2)
    assert shoal.get(identity.remote("first")) == "first"
    elapsed = time.perf_counter() - start
    print(f"shoal.init() to first task result: {elapsed:.3f} s")
    assert elapsed < 10, f"init + first task took {elapsed:.1f} s"


# ---------------------------------------------------------------------------
# Tests sharing one cluster (num_cpus=2, custom=2).
# ---------------------------------------------------------------------------


def test_init_returns_context_with_loopback_address(shoal_cluster):
    address = shoal_cluster.address_info["address"]
    assert shoal_cluster["address"] == address
    host, _, port = address.rpartition(":")
    assert host in ("127.0.0.1", "localhost", "[::1]", "::1")
    assert port.isdigit() and 0 < int(port) < 65536


def test_is_initialized_true_while_cluster_runs(shoal_cluster):
    assert shoal.is_initialized() is True


def test_second_init_raises_runtime_error(shoal_cluster):
    with pytest.raises(RuntimeError):
        shoal.init(num_cpus=2)
    # the existing cluster is unaffected
    assert shoal.get(identity.remote(5)) == 5


def test_second_init_with_ignore_reinit_error_is_allowed(shoal_cluster):
    shoal.init(ignore_reinit_error=True)
    assert shoal.is_initialized()
    assert shoal.get(identity.remote(6)) == 6
    assert shoal.cluster_resources()["CPU"] == 2


def test_bare_decorator_creates_remote_function(shoal_cluster):
    ref = identity.remote(41)
    assert isinstance(ref, shoal.ObjectRef)
    assert shoal.get(ref) == 41


def test_decorator_with_num_cpus_creates_remote_function(shoal_cluster):
    assert shoal.get(add.remote(2, 3)) == 5


def test_remote_passes_positional_and_keyword_arguments(shoal_cluster):
    args, kwargs = shoal.get(echo_args.remote(1, "two", [3], key="value", other=None))
    assert tuple(args) == (1, "two", [3])
    assert kwargs == {"key": "value", "other": None}


def test_calling_remote_function_directly_raises_type_error(shoal_cluster):
    with pytest.raises(TypeError):
        identity(1)


def test_num_returns_zero_returns_none(shoal_cluster):
    @shoal.remote(num_returns=0)
    def returns_nothing():
        return None

    assert returns_nothing.remote() is None
    assert identity.options(num_returns=0).remote(1) is None


def test_num_returns_one_returns_single_ref(shoal_cluster):
    ref = identity.options(num_returns=1).remote(7)
    assert isinstance(ref, shoal.ObjectRef)
    assert shoal.get(ref) == 7


def test_num_returns_three_returns_list_of_three_refs(shoal_cluster):
    refs = three_values.options(num_returns=3).remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert all(isinstance(r, shoal.ObjectRef) for r in refs)
    assert shoal.get(refs) == [1, 2, 3]


def test_num_returns_in_decorator(shoal_cluster):
    @shoal.remote(num_returns=2)
    def pair():
        return "a", "b"

    first, second = pair.remote()
    assert shoal.get(first) == "a"
    assert shoal.get(second) == "b"


def test_options_do_not_mutate_the_original_function(shoal_cluster):
    refs = three_values.options(num_returns=3).remote()
    assert len(refs) == 3
    single = three_values.remote()
    assert isinstance(single, shoal.ObjectRef)
    assert tuple(shoal.get(single)) == (1, 2, 3)


@pytest.mark.parametrize(
    "options",
    [
        {"num_cpus": 1},
        {"num_cpus": 0.5},
        {"num_cpus": 0},
        {"num_gpus": 0},
        {"memory": 1024 * 1024},
        {"resources": {"custom": 1}},
        {"max_retries": 0},
        {"max_retries": 3, "retry_exceptions": True},
        {"retry_exceptions": [ValueError]},
        {"name": "my-task-name"},
        {"scheduling_strategy": "DEFAULT"},
        {"scheduling_strategy": "SPREAD"},
    ],
    ids=lambda o: ",".join(o),
)
def test_options_accept_ray_task_options(shoal_cluster, options):
    assert shoal.get(add.options(**options).remote(20, 22)) == 42


def test_cluster_resources_report_cpus_and_custom_resources(shoal_cluster):
    resources = shoal.cluster_resources()
    assert resources["CPU"] == 2
    assert resources["custom"] == 2


def test_available_resources_drop_while_task_holds_cpu(shoal_cluster, tmp_path):
    def available_cpu():
        return shoal.available_resources().get("CPU", 0)

    wait_for_condition(lambda: available_cpu() == 2, message="cluster idle (CPU=2)")
    gate = tmp_path / "gate"
    ref = hold_cpu_until.options(num_cpus=1).remote(str(gate))
    try:
        wait_for_condition(lambda: available_cpu() == 1, message="one CPU in use")
    finally:
        open_gate(gate)
    assert shoal.get(ref) == "released"
    wait_for_condition(lambda: available_cpu() == 2, message="CPU released again")


def test_available_resources_include_custom_resources(shoal_cluster):
    wait_for_condition(lambda: shoal.available_resources().get("custom", 0) == 2)


def test_nodes_returns_ray_shaped_node_dicts(shoal_cluster):
    nodes = shoal.nodes()
    assert isinstance(nodes, list) and len(nodes) == 1
    node = nodes[0]
    assert isinstance(node, dict)
    assert {"NodeID", "Alive", "Resources"} <= set(node)
    assert node["Alive"] is True
    assert node["Resources"]["CPU"] == 2
    assert node["Resources"]["custom"] == 2
    assert node["NodeID"] == shoal.get_runtime_context().get_node_id()


def test_runtime_context_in_driver(shoal_cluster):
    ctx = shoal.get_runtime_context()
    assert _is_hex(ctx.get_job_id())
    assert ctx.get_task_id() is None
    assert ctx.get_actor_id() is None
    assert _is_hex(ctx.get_node_id())
    assert _is_hex(ctx.get_worker_id())


def test_runtime_context_inside_task(shoal_cluster):
    driver = shoal.get_runtime_context()
    info = shoal.get(task_runtime_context.remote())
    assert _is_hex(info["task_id"])
    assert info["actor_id"] is None
    assert info["job_id"] == driver.get_job_id()
    assert info["node_id"] == driver.get_node_id()
    assert _is_hex(info["worker_id"]) and info["worker_id"] != driver.get_worker_id()
    assert info["assigned"] == {"CPU": 1.0}


def test_options_override_changes_the_assigned_resources(shoal_cluster):
    # the default shape is cached per options set; an override must not reuse it
    assert shoal.get(task_runtime_context.remote())["assigned"] == {"CPU": 1.0}
    wider = task_runtime_context.options(num_cpus=2)
    assert shoal.get(wider.remote())["assigned"] == {"CPU": 2.0}
    assert shoal.get(wider.options(num_cpus=0.5).remote())["assigned"] == {"CPU": 0.5}
    assert shoal.get(task_runtime_context.remote())["assigned"] == {"CPU": 1.0}


def test_runtime_context_task_ids_differ_between_tasks(shoal_cluster):
    first, second = shoal.get([task_runtime_context.remote(), task_runtime_context.remote()])
    assert first["task_id"] != second["task_id"]


def test_runtime_context_inside_actor(shoal_cluster):
    actor = ContextActor.remote()
    info = shoal.get(actor.context.remote())
    assert _is_hex(info["actor_id"])
    assert _is_hex(info["task_id"])
    shoal.kill(actor)


def test_driver_pid_is_not_a_worker_pid(shoal_cluster):
    @shoal.remote
    def pid():
        return os.getpid()

    assert shoal.get(pid.remote()) != os.getpid()


@shoal.remote(num_returns=5)
def mixed_returns(boxed):
    # plain values travel as bare pickles, the rest in the general form
    return 1, "s" * 200_000, boxed, None, {"k": 2.5}


def test_returns_mixing_plain_and_general_values_land_at_their_positions(shoal_cluster):
    inner = shoal.put("inner")
    refs = mixed_returns.remote([inner])
    small, big, boxed, none, mapping = shoal.get(refs)
    assert (small, big, none, mapping) == (1, "s" * 200_000, None, {"k": 2.5})
    assert shoal.get(boxed[0]) == "inner"
    del refs, boxed, inner  # the returns and the ref inside one are released
    assert shoal.get(mixed_returns.remote([shoal.put("again")]))[0] == 1


def test_many_returns_come_back_in_order_and_are_freed(shoal_cluster):
    @shoal.remote(num_returns=3000)
    def many(n):
        return tuple(range(n))

    for _ in range(2):
        assert shoal.get(many.remote(3000)) == list(range(3000))
