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
