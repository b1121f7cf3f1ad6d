"""Unit tests for shoal.api.options: validate() tables and resource_shape()."""

from __future__ import annotations

import math
import re

import pytest

from shoal.api import options as opts
from shoal.api.options import ACTOR_OPTIONS, METHOD_OPTIONS, TASK_OPTIONS, resource_shape, validate
from shoal.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

# ---- unknown names -----------------------------------------------------------------------


def test_unknown_option_is_rejected_naming_it_and_listing_valid_ones():
    with pytest.raises(ValueError) as info:
        validate(TASK_OPTIONS, {"num_cpus": 1, "num_cpu": 1}, "remote function f")
    text = str(info.value)
    assert "'num_cpu'" in text
    assert "remote function f" in text
    assert "num_cpus" in text and "max_retries" in text
    # private options are not advertised
    assert "_metadata" not in text
    assert "_generator_backpressure_num_objects" not in text


def test_valid_options_are_listed_sorted():
    with pytest.raises(ValueError) as info:
        validate(METHOD_OPTIONS, {"bogus": 1}, "actor method m")
    listed = str(info.value).split("valid options are: ")[1].split(", ")
    assert listed == sorted(k for k in METHOD_OPTIONS if not k.startswith("_"))


@pytest.mark.parametrize(
    "table, name",
    [
        (TASK_OPTIONS, "max_restarts"),  # actor-only
        (TASK_OPTIONS, "lifetime"),
        (ACTOR_OPTIONS, "num_returns"),  # task-only
        (ACTOR_OPTIONS, "max_retries"),
        (METHOD_OPTIONS, "num_cpus"),  # not per method
    ],
)
def test_options_of_other_kinds_are_unknown(table, name):
    with pytest.raises(ValueError, match=repr(name)):
        validate(table, {name: 1}, "thing")


def test_empty_options_validate_to_empty_dict():
    assert validate(TASK_OPTIONS, {}, "f") == {}


def test_validate_returns_normalised_values_and_does_not_mutate_input():
    given = {
        "num_cpus": 2,
        "num_gpus": 0,
        "num_returns": 3,
        "max_retries": -1,
        "retry_exceptions": [ValueError, KeyError],
        "resources": {"custom": 1},
        "name": "task",
    }
    copy = dict(given)
    out = validate(TASK_OPTIONS, given, "f")
    assert given == copy
    assert out["num_cpus"] == 2.0 and isinstance(out["num_cpus"], float)
    assert out["num_gpus"] == 0.0
    assert out["num_returns"] == 3
    assert out["max_retries"] == -1
    assert out["retry_exceptions"] == (ValueError, KeyError)
    assert out["resources"] == {"custom": 1.0}
    assert out["name"] == "task"


# ---- num_cpus and other numbers -----------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 0.5, 16])
def test_num_cpus_accepts_non_negative_numbers(value):
    assert validate(TASK_OPTIONS, {"num_cpus": value}, "f") == {"num_cpus": float(value)}


@pytest.mark.parametrize("value", ["1", None, True, False, [1], {}])
def test_num_cpus_wrong_type_is_type_error_naming_option(value):
    with pytest.raises(TypeError, match="'num_cpus'"):
        validate(TASK_OPTIONS, {"num_cpus": value}, "f")


@pytest.mark.parametrize("value", [-1, -0.5])
def test_num_cpus_negative_is_value_error_naming_option(value):
    with pytest.raises(ValueError, match="'num_cpus'"):
        validate(ACTOR_OPTIONS, {"num_cpus": value}, "actor A")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_num_cpus_nan_and_infinity_are_rejected(value):
    # NaN compares False with everything, so a bare ``value < 0`` check lets it through.
    with pytest.raises(ValueError, match="'num_cpus'"):
        validate(TASK_OPTIONS, {"num_cpus": value}, "f")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_custom_resource_nan_and_infinity_are_rejected(value):
    with pytest.raises(ValueError, match=r"resources\['x'\]"):
        validate(TASK_OPTIONS, {"resources": {"x": value}}, "f")


@pytest.mark.parametrize("name", ["num_gpus", "memory"])
def test_other_numeric_options(name):
    assert validate(TASK_OPTIONS, {name: 1}, "f") == {name: 1.0}
    with pytest.raises(TypeError, match=repr(name)):
        validate(TASK_OPTIONS, {name: "lots"}, "f")
    with pytest.raises(ValueError, match=repr(name)):
        validate(TASK_OPTIONS, {name: -2}, "f")


# ---- num_returns --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 5, "streaming", "dynamic", None])  # None: default
def test_num_returns_valid(value):
    assert validate(TASK_OPTIONS, {"num_returns": value}, "f") == {"num_returns": value}
    assert validate(METHOD_OPTIONS, {"num_returns": value}, "m") == {"num_returns": value}


@pytest.mark.parametrize("value", [-1, "3", "stream", True])
def test_num_returns_invalid_is_value_error_naming_option(value):
    with pytest.raises(ValueError, match="The keyword 'num_returns' only accepts None, a "
                       "non-negative integer, 'streaming' \\(for generators\\), or 'dynamic'"):
        validate(TASK_OPTIONS, {"num_returns": value}, "f")


@pytest.mark.parametrize("value", [1.0, 2.5, [1]])
def test_num_returns_of_a_wrong_type_is_a_type_error_in_rays_words(value):
    expected = (f"The type of keyword 'num_returns' must be {(int, str, type(None))}, but "
                f"received type {type(value)}")
    with pytest.raises(TypeError, match=re.escape(expected)):
        validate(TASK_OPTIONS, {"num_returns": value}, "f")


# ---- max_retries and friends ---------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 0, 3])
def test_max_retries_valid(value):
    assert validate(TASK_OPTIONS, {"max_retries": value}, "f") == {"max_retries": value}


@pytest.mark.parametrize("value", [1.0, "3", True])
def test_max_retries_wrong_type(value):
    expected = (f"The type of keyword 'max_retries' must be {(int, type(None))}, but "
                f"received type {type(value)}")
    with pytest.raises(TypeError, match=re.escape(expected)):
        validate(TASK_OPTIONS, {"max_retries": value}, "f")


def test_a_retry_count_of_none_is_as_if_not_given():
    assert validate(TASK_OPTIONS, {"max_retries": None, "max_calls": None}, "f") == {}
    assert validate(ACTOR_OPTIONS, {"max_restarts": None, "max_task_retries": None},
                    "A") == {}


@pytest.mark.parametrize("table, name", [(TASK_OPTIONS, "max_retries"),
                                         (ACTOR_OPTIONS, "max_restarts"),
                                         (ACTOR_OPTIONS, "max_task_retries")])
def test_a_retry_count_below_minus_one_is_refused_in_rays_words(table, name):
    with pytest.raises(ValueError, match=re.escape(
            f"The keyword '{name}' only accepts None, 0, -1 or a positive integer, "
            "where -1 represents infinity.")):
        validate(table, {name: -2}, "f")


def test_max_calls_below_zero_is_refused_in_rays_words():
    with pytest.raises(ValueError, match="The keyword 'max_calls' only accepts None, 0 or "
                       "a positive integer"):
        validate(TASK_OPTIONS, {"max_calls": -1}, "f")


@pytest.mark.parametrize("options", [{"num_gpus": 0.00001},
                                     {"resources": {"custom_resource": 0.00001}}])
def test_a_quantity_finer_than_a_ten_thousandth_is_refused(options):
    name = "num_gpus" if "num_gpus" in options else "custom_resource"
    with pytest.raises(ValueError, match=f"The precision of the fractional quantity of "
                       f"resource {name} cannot go beyond 0.0001"):
        validate(TASK_OPTIONS, options, "f")
    assert validate(TASK_OPTIONS, {"num_gpus": 0.0001}, "f") == {"num_gpus": 0.0001}


def test_actor_integer_options():
    assert validate(ACTOR_OPTIONS, {"max_restarts": -1, "max_task_retries": 0}, "A") == {
        "max_restarts": -1,
        "max_task_retries": 0,
    }
    with pytest.raises(ValueError, match="'max_restarts'"):
        validate(ACTOR_OPTIONS, {"max_restarts": -5}, "A")
    assert validate(ACTOR_OPTIONS, {"max_concurrency": None}, "A") == {"max_concurrency": None}
    assert validate(ACTOR_OPTIONS, {"max_concurrency": 4}, "A") == {"max_concurrency": 4}
    with pytest.raises(ValueError, match="'max_concurrency' must be >= 1"):
        validate(ACTOR_OPTIONS, {"max_concurrency": 0}, "A")
    with pytest.raises(TypeError, match="'max_calls'"):
        validate(TASK_OPTIONS, {"max_calls": 1.5}, "f")


# ---- retry_exceptions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ([ValueError], (ValueError,)),
        ((KeyError, OSError), (KeyError, OSError)),
        ([KeyboardInterrupt], (KeyboardInterrupt,)),
        ([], ()),
    ],
)
def test_retry_exceptions_valid(value, expected):
    assert validate(TASK_OPTIONS, {"retry_exceptions": value}, "f") == {
        "retry_exceptions": expected
    }


@pytest.mark.parametrize(
    "value",
    [
        1,
        "ValueError",
        None,
        [ValueError, "KeyError"],
        [ValueError()],
        [int],
        ValueError,
        {ValueError},
    ],
)
def test_retry_exceptions_invalid_is_type_error_naming_option(value):
    with pytest.raises(TypeError, match="'retry_exceptions'"):
        validate(TASK_OPTIONS, {"retry_exceptions": value}, "f")


# ---- resources ----------------------------------------------------------------------------


@pytest.mark.parametrize("key, own", [("CPU", "num_cpus"), ("GPU", "num_gpus"),
                                      ("memory", "memory")])
def test_resources_with_their_own_option_are_rejected_naming_it(key, own):
    with pytest.raises(ValueError, match=f"give it as option '{own}'") as info:
        validate(TASK_OPTIONS, {"resources": {key: 1}}, "f")
    assert repr(key) in str(info.value)


def test_resources_valid_and_none():
    assert validate(ACTOR_OPTIONS, {"resources": {"a": 1, "b": 0.5}}, "A") == {
        "resources": {"a": 1.0, "b": 0.5}
    }
    assert validate(TASK_OPTIONS, {"resources": None}, "f") == {"resources": {}}


@pytest.mark.parametrize(
    "value, error, pattern",
    [
        ([("a", 1)], TypeError, "'resources' must be a dict"),
        ("a", TypeError, "'resources' must be a dict"),
        ({1: 1}, TypeError, "resource names must be non-empty strings"),
        ({"a": "1"}, TypeError, r"resources\['a'\]"),
        ({"a": -1}, ValueError, r"resources\['a'\]"),
    ],
)
def test_resources_invalid(value, error, pattern):
    with pytest.raises(error, match=pattern):
        validate(TASK_OPTIONS, {"resources": value}, "f")


# ---- scheduling_strategy ------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "DEFAULT", "SPREAD"])
def test_scheduling_strategy_strings(value):
    assert validate(TASK_OPTIONS, {"scheduling_strategy": value}, "f") == {
        "scheduling_strategy": value
    }


def test_scheduling_strategy_objects_pass_through():
    node = NodeAffinitySchedulingStrategy(node_id="abc", soft=True)
    pg = PlacementGroupSchedulingStrategy(placement_group=object())
    assert validate(TASK_OPTIONS, {"scheduling_strategy": node}, "f")["scheduling_strategy"] is node
    assert validate(ACTOR_OPTIONS, {"scheduling_strategy": pg}, "A")["scheduling_strategy"] is pg


@pytest.mark.parametrize("value", ["spread", "RANDOM", 1, {"node_id": "x"}, object()])
def test_scheduling_strategy_invalid(value):
    with pytest.raises(ValueError, match="'scheduling_strategy'"):
        validate(TASK_OPTIONS, {"scheduling_strategy": value}, "f")


# ---- misc checkers ------------------------------------------------------------------------


def test_string_bool_and_lifetime_options():
    assert validate(ACTOR_OPTIONS, {"name": None, "namespace": "ns"}, "A") == {
        "name": None,
        "namespace": "ns",
    }
    with pytest.raises(TypeError, match="'name'"):
        validate(ACTOR_OPTIONS, {"name": 5}, "A")
    with pytest.raises(TypeError, match="'get_if_exists'"):
        validate(ACTOR_OPTIONS, {"get_if_exists": 1}, "A")
    assert validate(ACTOR_OPTIONS, {"lifetime": "detached"}, "A") == {"lifetime": "detached"}
    with pytest.raises(ValueError, match="'lifetime'"):
        validate(ACTOR_OPTIONS, {"lifetime": "forever"}, "A")


def test_runtime_env_fields_are_checked():
    env = {"pip": ["x"], "env_vars": {"A": "1"}}
    assert validate(TASK_OPTIONS, {"runtime_env": env}, "f") == {"runtime_env": env}
    with pytest.raises(ValueError, match="unknown field 'pipx'"):
        validate(ACTOR_OPTIONS, {"runtime_env": {"pipx": ["x"]}}, "actor Counter")


@pytest.mark.parametrize("selector, ok", [
    ({"ray.io/accelerator-type": "in(H100, B200)"}, True),
    ({"market": "!spot"}, True),
    ({"r!a!y.io/market_type": "spot"}, False),
    ({"gpu": "matches(TPU)"}, False),
    ({"gpu": "in(H100,, B200)"}, False),
    ({"gpu": "in(TPU, H100"}, False),
])
def test_label_selector_syntax(selector, ok):
    if ok:
        assert validate(TASK_OPTIONS, {"label_selector": selector}, "f")
    else:
        with pytest.raises(ValueError, match="label_selector"):
            validate(TASK_OPTIONS, {"label_selector": selector}, "f")


def test_fallback_strategy_entries_are_label_selectors():
    good = [{"label_selector": {"zone": "in(a, b)"}}]
    assert validate(ACTOR_OPTIONS, {"fallback_strategy": good}, "A")
    with pytest.raises(TypeError):
        validate(ACTOR_OPTIONS, {"fallback_strategy": {"label_selector": {}}}, "A")
    with pytest.raises(ValueError, match="unsupported key"):
        validate(ACTOR_OPTIONS, {"fallback_strategy": [{"memory": "1Gi"}]}, "A")


def test_runtime_env_must_be_a_dict():
    with pytest.raises(TypeError, match="option 'runtime_env' must be a dict"):
        validate(TASK_OPTIONS, {"runtime_env": "pip install x"}, "f")


@pytest.mark.parametrize("table, name, good, bad", [
    (TASK_OPTIONS, "label_selector", {"zone": "a"}, {"zone": 1}),
    (ACTOR_OPTIONS, "concurrency_groups", {"io": 2}, {"io": 0}),
    (ACTOR_OPTIONS, "concurrency_groups", {"io": 2}, ["io"]),
    (METHOD_OPTIONS, "concurrency_group", "io", 3),
    (TASK_OPTIONS, "accelerator_type", "A100", 100),
])
def test_structured_options_are_checked_naming_them(table, name, good, bad):
    assert validate(table, {name: good}, "x") == {name: good}
    with pytest.raises((TypeError, ValueError), match=name):
        validate(table, {name: bad}, "x")


def test_private_options_are_accepted_verbatim():
    marker = object()
    assert validate(TASK_OPTIONS, {"_metadata": marker}, "f") == {"_metadata": marker}


# ---- resource_shape ------------------------------------------------------------------------


def test_resource_shape_defaults():
    assert resource_shape({}, 1.0) == {"CPU": 1.0}  # tasks: one CPU by default
    assert resource_shape({}, 0.0) == {}  # actors: none by default


def test_resource_shape_explicit_zero_cpus_overrides_default():
    assert resource_shape({"num_cpus": 0.0}, 1.0) == {}


def test_resource_shape_full():
    options = {
        "num_cpus": 2.0,
        "num_gpus": 0.5,
        "memory": 1e9,
        "resources": {"custom": 3.0, "unused": 0.0},
    }
    assert resource_shape(options, 1.0) == {"CPU": 2.0, "GPU": 0.5, "memory": 1e9, "custom": 3.0}


def test_resource_shape_zero_gpus_and_memory_are_omitted():
    assert resource_shape({"num_gpus": 0.0, "memory": 0.0, "resources": None}, 1.0) == {"CPU": 1.0}


def test_resource_shape_of_validated_options():
    validated = validate(TASK_OPTIONS, {"num_cpus": 0.5, "resources": {"x": 2}}, "f")
    assert resource_shape(validated, 1.0) == {"CPU": 0.5, "x": 2.0}


def test_tables_share_common_checkers():
    for name in ("num_cpus", "resources", "scheduling_strategy"):
        assert TASK_OPTIONS[name] is ACTOR_OPTIONS[name] is opts._COMMON[name]
    # a task's name is any string; an actor's may not be empty (Ray)
    assert TASK_OPTIONS["name"] is opts._COMMON["name"]
