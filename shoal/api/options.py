"""Validation of ``@remote(...)`` / ``.options(...)`` arguments.

One table per kind of remote thing; each entry is a checker that returns the
normalised value or raises ValueError/TypeError naming the option.  Unknown
names are rejected with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shoal.api.labels import check_fallback_strategy, check_label_selector
from shoal.launch import resource_args

# A resource quantity is kept to 1/10,000 of a unit (Ray's resource granularity).
RESOURCE_UNIT = 0.0001


def _fine_enough(name: str, amount: float) -> float:
    """A non-zero quantity below one unit would be rounded to nothing: refused, in
    Ray's words."""
    if amount and int(amount / RESOURCE_UNIT) == 0:
        raise ValueError(f"The precision of the fractional quantity of resource {name} "
                         f"cannot go beyond {RESOURCE_UNIT}")
    return amount


def _number(name: str) -> Callable[[Any], float]:
    label = resource_args.option_name(name)
    return lambda value: _fine_enough(name, resource_args.quantity(label, value))


def _type_error(name: str, types: tuple, value: Any) -> TypeError:
    """Ray's wording for an option of the wrong type (users match on it)."""
    return TypeError(f"The type of keyword '{name}' must be {types}, but received type "
                     f"{type(value)}")


def _retry_count(name: str) -> Callable[[Any], int | None]:
    """max_retries, max_restarts, max_task_retries: None (not given), 0, -1 (for
    ever) or a positive int, checked with Ray's wording."""
    def check(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, (int, type(None)), value)
        if value < -1:
            raise ValueError(f"The keyword '{name}' only accepts None, 0, -1 or a positive "
                             "integer, where -1 represents infinity.")
        return value

    return check


def _max_calls(value: Any) -> int | None:
    name = "max_calls"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(name, (int, type(None)), value)
    if value < 0:
        raise ValueError(f"The keyword '{name}' only accepts None, 0 or a positive integer")
    return value


def _int_at_least(name: str, low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"option {name!r} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"option {name!r} must be >= {low}, got {value!r}")
        return value

    return check


def _backpressure(value: Any) -> int:
    """``_generator_backpressure_num_objects``: how many yielded items a streaming
    generator may have unconsumed before it pauses; -1 or None: never pauses."""
    name = "_generator_backpressure_num_objects"
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"option {name!r} must be an int or None, got {value!r}")
    if value == 0:
        raise ValueError(f"{name}=0 is not allowed: give a positive number of "
                         "objects, or -1 (or None) for no backpressure")
    if value < -1:
        raise ValueError(f"option {name!r} must be a positive int or -1, got {value!r}")
    return value


def _optional_int(name: str, low: int) -> Callable[[Any], int | None]:
    inner = _int_at_least(name, low)
    return lambda v: None if v is None else inner(v)


def _num_returns(value: Any) -> int | str | None:
    if value is None or value in ("streaming", "dynamic"):  # None: the default
        return value
    if not isinstance(value, (int, str)):
        raise _type_error("num_returns", (int, str, type(None)), value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("The keyword 'num_returns' only accepts None, a non-negative "
                         "integer, 'streaming' (for generators), or 'dynamic'"
                         f" (got {value!r})")
    return value


def _resources(value: Any) -> dict:
    amounts = resource_args.custom_resources(value, resource_args.option_name)
    return {key: _fine_enough(key, amount) for key, amount in amounts.items()}


def _retry_exceptions(value: Any) -> bool | tuple:
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        return tuple(value)
    raise TypeError(
        f"option 'retry_exceptions' must be a bool or a list of exception types, got {value!r}")


def _strategy(value: Any) -> Any:
    from shoal.util.scheduling_strategies import (
        NodeAffinitySchedulingStrategy,
        PlacementGroupSchedulingStrategy,
    )

    if value is None or value in ("DEFAULT", "SPREAD"):
        return value
    if isinstance(value, (NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy)):
        return value
    raise ValueError(
        f"option 'scheduling_strategy' must be 'DEFAULT', 'SPREAD' or a strategy object, "
        f"got {value!r}")


def _string(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"option {name!r} must be a string, got {value!r}")
        return value

    return check


def _nonempty_string(name: str, what: str) -> Callable[[Any], str | None]:
    """An actor's name or namespace: a string, and not "" (which would name nothing)."""
    base = _string(name)

    def check(value: Any) -> str | None:
        if base(value) == "":
            raise ValueError(f"{what} cannot be an empty string (option {name!r})")
        return value

    return check


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"option {name!r} must be a bool, got {value!r}")
        return value

    return check


def _lifetime(value: Any) -> str | None:
    if value not in (None, "detached", "non_detached"):
        raise ValueError(f"option 'lifetime' must be None, 'detached' or 'non_detached', "
                         f"got {value!r}")
    return value


def check_runtime_env(value: Any, label: str = "option 'runtime_env'") -> Any:
    from shoal.runtime_env.spec import check

    check(value, label)
    return value


def _concurrency_groups(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"option 'concurrency_groups' must be a dict of group names to "
                        f"max concurrency, got {value!r}")
    for group, limit in value.items():
        if not isinstance(group, str):
            raise TypeError(f"option 'concurrency_groups': group names must be strings, "
                            f"got {group!r}")
        _int_at_least(f"concurrency_groups[{group!r}]", 1)(limit)
    return value


def _accept(value: Any) -> Any:
    return value


def _placement_group(value: Any) -> Any:
    from shoal.util.placement_group import PlacementGroup

    if value is None or value == "default" or isinstance(value, PlacementGroup):
        return value
    raise TypeError(f"option 'placement_group' must be a PlacementGroup, 'default' or None, "
                    f"got {value!r}")


def _optional_bool(name: str) -> Callable[[Any], bool | None]:
    inner = _bool(name)
    return lambda v: None if v is None else inner(v)


_COMMON = {
    "num_cpus": _number("num_cpus"),
    "num_gpus": _number("num_gpus"),
    "memory": _number("memory"),
    "resources": _resources,
    "scheduling_strategy": _strategy,
    "runtime_env": check_runtime_env,
    "name": _string("name"),
    "accelerator_type": _string("accelerator_type"),
    "label_selector": check_label_selector,
    "fallback_strategy": check_fallback_strategy,
    "placement_group": _placement_group,
    "placement_group_bundle_index": _int_at_least("placement_group_bundle_index", -1),
    "placement_group_capture_child_tasks": _optional_bool(
        "placement_group_capture_child_tasks"),
    "_metadata": _accept,
}

TASK_OPTIONS = dict(
    _COMMON,
    num_returns=_num_returns,
    max_retries=_retry_count("max_retries"),
    retry_exceptions=_retry_exceptions,
    max_calls=_max_calls,
    enable_task_events=_bool("enable_task_events"),
    _generator_backpressure_num_objects=_backpressure,
    # shoal's extension (Ray has none): this task's returns are not read soon, so
    # the node's store spills them before other objects (docs/design.md section 13)
    _cold_returns=_bool("_cold_returns"),
    # shoal's extension: arguments spilled on the task's node are read from their
    # spill files (only the pages touched), not restored (sort's key sample)
    _read_args_in_place=_bool("_read_args_in_place"),
)

ACTOR_OPTIONS = dict(
    _COMMON,
    name=_nonempty_string("name", "Actor name"),
    namespace=_nonempty_string("namespace", "Namespace"),
    get_if_exists=_bool("get_if_exists"),
    lifetime=_lifetime,
    max_concurrency=_optional_int("max_concurrency", 1),
    max_restarts=_retry_count("max_restarts"),
    max_task_retries=_retry_count("max_task_retries"),
    max_pending_calls=_int_at_least("max_pending_calls", -1),
    concurrency_groups=_concurrency_groups,
    allow_out_of_order_execution=_bool("allow_out_of_order_execution"),
    enable_task_events=_bool("enable_task_events"),
)

METHOD_OPTIONS = {
    "num_returns": _num_returns,
    "concurrency_group": _string("concurrency_group"),
    "max_task_retries": _retry_count("max_task_retries"),
    "retry_exceptions": _retry_exceptions,
    "name": _string("name"),
    "enable_task_events": _bool("enable_task_events"),
    "_generator_backpressure_num_objects": _backpressure,
}


def validate(table: dict, options: dict, what: str) -> dict:
    out = {}
    for key, value in options.items():
        check = table.get(key)
        if check is None:
            raise ValueError(
                f"invalid option {key!r} for {what}; valid options are: "
                + ", ".join(sorted(k for k in table if not k.startswith("_")))
            )
        checked = check(value)
        if checked is None and key in _NONE_IS_UNSET:
            continue  # None: as if the option was not given
        out[key] = checked
    return out


# Options whose None means "not given" (Ray accepts None for each).
_NONE_IS_UNSET = frozenset({"max_retries", "max_calls", "max_restarts", "max_task_retries"})


def resource_shape(options: dict, default_cpus: float) -> dict:
    shape = {}
    cpus = options.get("num_cpus", default_cpus)
    if cpus:
        shape["CPU"] = cpus
    if options.get("num_gpus"):
        shape["GPU"] = options["num_gpus"]
    if options.get("memory"):
        shape["memory"] = options["memory"]
    shape.update({k: v for k, v in (options.get("resources") or {}).items() if v})
    return shape
