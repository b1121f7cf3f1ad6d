"""Argument validation and the exported public API surface."""

from __future__ import annotations

import pytest

import shoal

pytestmark = pytest.mark.timeout(60)

PUBLIC_NAMES = {
    "init",
    "shutdown",
    "is_initialized",
    "remote",
    "get",
    "put",
    "wait",
    "cancel",
    "kill",
    "get_actor",
    "get_runtime_context",
    "cluster_resources",
    "available_resources",
    "nodes",
    "ObjectRef",
    "exceptions",
    "util",
    "actor",
    "method",
    "timeline",
    "experimental",
}

EXCEPTION_NAMES = [
    "TaskError",
    "RayTaskError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "GetTimeoutError",
    "WorkerCrashedError",
    "TaskCancelledError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectStoreFullError",
    "RaySystemError",
    "NodeDiedError",
]


def plain_function():
    return 1


class PlainClass:
    def method(self):
        return 1


# --------------------------------------------------------------------------- public surface


def test_public_names_are_exported():
    missing = PUBLIC_NAMES - set(dir(shoal))
    assert not missing, f"shoal is missing public names: {sorted(missing)}"
    assert callable(shoal.experimental.tqdm_ray.tqdm)  # ray.experimental.tqdm_ray


@pytest.mark.parametrize("name", EXCEPTION_NAMES)
def test_exceptions_module_exports_exception_class(name):
    exc_type = getattr(shoal.exceptions, name)
    assert isinstance(exc_type, type) and issubclass(exc_type, Exception)


def test_exception_hierarchy_matches_ray():
    exc = shoal.exceptions
    assert issubclass(exc.TaskError, exc.RayTaskError) or issubclass(
        exc.RayTaskError, exc.TaskError
    )
    assert issubclass(exc.ActorDiedError, exc.RayActorError)
    assert issubclass(exc.GetTimeoutError, TimeoutError)


def test_public_classes_exist():
    from shoal.util import ActorPool
    from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    assert isinstance(shoal.ObjectRef, type)
    assert isinstance(shoal.actor.ActorHandle, type)
    assert isinstance(ActorPool, type)
    assert isinstance(NodeAffinitySchedulingStrategy, type)
    strategy = NodeAffinitySchedulingStrategy(node_id="ab" * 28, soft=True)
    assert strategy.node_id == "ab" * 28 and strategy.soft is True


# ------------------------------------------------------------------ init / add_node arguments
# Each is refused before anything starts, so these need no cluster.

MIN_STORE = 32 << 20


@pytest.mark.parametrize("kwargs, error, text", [
    ({"num_cpus": -3}, ValueError, "num_cpus must be a finite number >= 0, got -3"),
    ({"num_cpus": float("nan")}, ValueError, "num_cpus must be a finite number >= 0, got nan"),
    ({"num_gpus": -1}, ValueError, "num_gpus must be a finite number >= 0, got -1"),
    ({"num_gpus": "1"}, TypeError, "num_gpus must be a number, got '1'"),
    ({"resources": {"gpu_box": -1}}, ValueError, "resources['gpu_box'] must be a finite"),
    ({"resources": {"CPU": 2}}, ValueError, "must not contain 'CPU': give it as num_cpus"),
    ({"resources": ["a"]}, TypeError, "resources must be a dict"),
    ({"_memory": -5}, ValueError, "_memory must be a finite number >= 0, got -5"),
    ({"object_store_memory": "1GB"}, TypeError, "object_store_memory must be a whole number"),
    ({"namespace": 7}, TypeError, "namespace must be a string, got 7"),
    ({"_token": 1234}, TypeError, "_token must be a string, got 1234"),
])
def test_bad_init_argument_is_refused_naming_it_and_the_value(kwargs, error, text):
    with pytest.raises(error) as info:
        shoal.init(**kwargs)
    assert text in str(info.value)
    assert not shoal.is_initialized()


@pytest.mark.parametrize("size", [10, 0, MIN_STORE - 64])
def test_too_small_object_store_is_refused_saying_the_minimum(size):
    # 10 made a 0-byte store and 0 silently meant the default
    with pytest.raises(ValueError) as info:
        shoal.init(object_store_memory=size)
    text = str(info.value)
    assert f"object_store_memory must be at least {MIN_STORE} bytes (32 MiB), got {size}" in text
    assert not shoal.is_initialized()


def test_cluster_add_node_checks_arguments_the_same_way():
    from shoal.cluster_utils import Cluster

    cluster = Cluster()
    try:
        for args, text in [({"num_cpus": -3}, "num_cpus must be a finite number >= 0, got -3"),
                           ({"object_store_memory": 10}, "at least 33554432 bytes (32 MiB)"),
                           ({"resources": {"r": float("inf")}}, "resources['r'] must be a finite"),
                           ({"node_timeout_s": -1}, "node_timeout_s must be a finite number")]:
            with pytest.raises(ValueError) as info:
                cluster.add_node(**args)
            assert text in str(info.value)
        assert cluster.list_all_nodes() == []
    finally:
        cluster.shutdown()


def test_ray_client_address_is_refused_as_such(monkeypatch):
    monkeypatch.delenv("SHOAL_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match="Ray Client addresses are not supported") as info:
        shoal.init("ray://127.0.0.1:10001")
    assert "address='ray://127.0.0.1:10001'" in str(info.value)
    for variable in ("SHOAL_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.setenv(variable, "ray://head:10001")
        with pytest.raises(ValueError, match="Ray Client addresses are not supported") as info:
            shoal.init()
        assert f"{variable}='ray://head:10001'" in str(info.value)
        monkeypatch.delenv(variable)
    assert not shoal.is_initialized()


# --------------------------------------------------------------------------- decorator validation


@pytest.mark.parametrize("bad", [5, "text", None, 3.5])
def test_remote_with_non_callable_argument_raises_type_error(bad):
    with pytest.raises(TypeError):
        shoal.remote(bad)


def test_remote_with_unknown_keyword_raises_value_error():
    with pytest.raises(ValueError, match="not_an_option"):
        shoal.remote(not_an_option=1)(plain_function)


def test_negative_num_cpus_in_decorator_raises_value_error():
    with pytest.raises(ValueError):
        shoal.remote(num_cpus=-1)(plain_function)


def test_negative_num_gpus_in_decorator_raises_value_error():
    with pytest.raises(ValueError):
        shoal.remote(num_gpus=-1)(plain_function)


# Validation that may legitimately happen only at submission time gets a cluster, so a
# lazily validating implementation does not auto-start an unmanaged cluster.


def test_unknown_option_raises_value_error_naming_it(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises(ValueError, match="foo"):
        f.options(foo=1).remote()


def test_unknown_actor_option_raises_value_error_naming_it(shoal_cluster):
    cls = shoal.remote(PlainClass)
    with pytest.raises(ValueError, match="bogus_option"):
        cls.options(bogus_option=1).remote()


def test_invalid_num_returns_raises(shoal_cluster):
    with pytest.raises((ValueError, TypeError)):
        f = shoal.remote(num_returns="x")(plain_function)
        f.remote()


def test_negative_num_returns_raises(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises((ValueError, TypeError)):
        f.options(num_returns=-1).remote()


def test_negative_num_cpus_in_options_raises_value_error(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises(ValueError):
        f.options(num_cpus=-1).remote()


def test_negative_custom_resource_raises_value_error(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises(ValueError):
        f.options(resources={"custom": -1}).remote()


def test_cpu_in_resources_dict_raises_value_error(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises(ValueError):
        f.options(resources={"CPU": 1}).remote()


def test_invalid_scheduling_strategy_raises(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises((ValueError, TypeError)):
        f.options(scheduling_strategy="NOT_A_STRATEGY").remote()


def test_valid_options_still_work_after_validation_errors(shoal_cluster):
    f = shoal.remote(plain_function)
    assert shoal.get(f.options(num_cpus=1, max_retries=0).remote()) == 1


def test_runtime_env_with_an_unsupported_field_names_it(shoal_cluster):
    f = shoal.remote(plain_function)
    with pytest.raises(ValueError, match="'conda' is not supported"):
        f.options(runtime_env={"conda": "myenv"}).remote()
    with pytest.raises(TypeError, match="env_vars must be a dict of strings"):
        f.options(runtime_env={"env_vars": {"A": 1}}).remote()


# ------------------------------------------------------------------ arguments bound at .remote()


def two_args(a, b=2, *, c=3):
    return a + b + c


class WithInit:
    def __init__(self, start):
        self.value = start

    def add(self, n):
        self.value += n
        return self.value


@pytest.mark.parametrize("args, kwargs, error", [
    ((), {}, "missing a required argument: 'a'"),
    ((1, 2, 3), {}, "too many positional arguments"),
    ((1,), {"d": 4}, "got an unexpected keyword argument 'd'"),
])
def test_remote_function_arguments_are_bound_at_remote(shoal_cluster, args, kwargs, error):
    f = shoal.remote(two_args)
    with pytest.raises(TypeError) as info:
        f.remote(*args, **kwargs)
    assert str(info.value).startswith(f"two_args.remote(): {error}")
    with pytest.raises(TypeError, match=error):
        f.options(num_cpus=0.5).remote(*args, **kwargs)
    assert shoal.get(f.remote(1, c=0), timeout=30) == 3  # a good call still runs


def test_actor_constructor_and_method_arguments_are_bound_at_remote(shoal_cluster):
    cls = shoal.remote(WithInit)
    with pytest.raises(TypeError, match=r"^WithInit.remote\(\): missing a required argument: "
                                        r"'start'"):
        cls.remote()
    with pytest.raises(TypeError, match="too many positional arguments"):
        cls.options(name=None).remote(1, 2)
    actor = cls.remote(10)
    with pytest.raises(TypeError, match=r"^WithInit.add.remote\(\): missing a required "
                                        r"argument: 'n' \(the signature is WithInit.add\(n\)\)"):
        actor.add.remote()
    with pytest.raises(TypeError, match="unexpected keyword argument 'm'"):
        actor.add.remote(1, m=1)
    assert shoal.get(actor.add.remote(5), timeout=30) == 15


# --------------------------------------------------------------------------- num_returns not met


def returns(value):
    return value


@pytest.mark.parametrize("value, message", [
    (7, "task returns declared num_returns=2 but returned int; it must return an iterable "
        "of 2 values"),
    ([1, 2, 3], "task returns declared num_returns=2 but returned a list of 3 values; it "
                "must return an iterable of 2 values"),
    ("ab", "task returns declared num_returns=2 but returned str"),
])
def test_wrong_number_of_returns_is_named_on_every_ref(shoal_cluster, value, message):
    refs = shoal.remote(num_returns=2)(returns).remote(value)
    assert len(refs) == 2
    for ref in refs:
        with pytest.raises(shoal.exceptions.TaskError) as info:
            shoal.get(ref, timeout=30)
        assert message in str(info.value)
        assert "is not iterable" not in str(info.value)


def test_actor_method_with_wrong_number_of_returns_is_named(shoal_cluster):
    @shoal.remote
    class Pair:
        @shoal.method(num_returns=2)
        def pair(self):
            return 5

    refs = Pair.remote().pair.remote()
    for ref in refs:
        with pytest.raises(shoal.exceptions.TaskError, match="task Pair.pair declared "
                                                              "num_returns=2 but returned int"):
            shoal.get(ref, timeout=30)
