"""Unit tests for shoal.launch.resource_args: the one set of rules every entry
point (init, shoal start, Cluster.add_node, the node process, task options)
checks resource quantities with, and how each spells the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoal.launch.resource_args import (
    MIN_OBJECT_STORE_MEMORY,
    custom_resources,
    flag_name,
    node_args,
    option_name,
    python_name,
    quantity,
    resources_json,
    store_size,
)


def test_names_are_spelled_as_the_user_wrote_them():
    assert python_name("num_cpus") == "num_cpus"
    assert python_name("resources", "gpu_box") == "resources['gpu_box']"
    assert flag_name("object_store_memory") == "--object-store-memory"
    assert flag_name("resources", "my_res") == "--resources['my_res']"
    assert option_name("num_cpus") == "option 'num_cpus'"


@pytest.mark.parametrize("value", [0, 1, 2.5, np.float64(3), np.int64(4)])
def test_quantity_accepts_finite_non_negative_numbers(value):
    assert quantity("num_cpus", value) == float(value)
    assert isinstance(quantity("num_cpus", value), float)


@pytest.mark.parametrize("value", [-3, -0.1, math.nan, math.inf, -math.inf])
def test_quantity_refuses_negative_nan_and_infinity_naming_label_and_value(value):
    with pytest.raises(ValueError) as info:
        quantity("--num-cpus", value)
    assert "--num-cpus" in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("value", ["2", None, True, [1]])
def test_quantity_refuses_non_numbers(value):
    with pytest.raises(TypeError, match="num_gpus must be a number"):
        quantity("num_gpus", value)


def test_custom_resources_are_copied_as_floats():
    given = {"a": 1, "b": 0.5}
    assert custom_resources(given) == {"a": 1.0, "b": 0.5}
    assert custom_resources(None) == {}


@pytest.mark.parametrize("spell, expected", [
    (python_name, "resources['a'] must be a finite number >= 0, got -1"),
    (flag_name, "--resources['a'] must be a finite number >= 0, got -1"),
])
def test_a_bad_custom_resource_is_named_by_its_key(spell, expected):
    with pytest.raises(ValueError) as info:
        custom_resources({"ok": 1, "a": -1}, spell)
    assert str(info.value) == expected


@pytest.mark.parametrize("key, own", [("CPU", "num_cpus"), ("GPU", "num_gpus"),
                                      ("memory", "memory")])
def test_resources_with_an_argument_of_their_own_are_refused(key, own):
    with pytest.raises(ValueError, match=f"must not contain '{key}': give it as {own}"):
        custom_resources({key: 1})


@pytest.mark.parametrize("value, pattern", [
    ([("a", 1)], "must be a dict"),
    ({1: 1}, "non-empty strings, got 1"),
    ({"": 1}, "non-empty strings, got ''"),
])
def test_custom_resources_of_the_wrong_shape(value, pattern):
    with pytest.raises(TypeError, match=pattern):
        custom_resources(value)


@pytest.mark.parametrize("value", [10, 0, MIN_OBJECT_STORE_MEMORY - 1])
def test_store_below_the_minimum_is_refused_saying_the_minimum(value):
    with pytest.raises(ValueError) as info:
        store_size("object_store_memory", value)
    text = str(info.value)
    assert str(MIN_OBJECT_STORE_MEMORY) in text and "32 MiB" in text and repr(value) in text


def test_store_size_takes_whole_numbers_of_bytes_only():
    assert store_size("s", MIN_OBJECT_STORE_MEMORY) == MIN_OBJECT_STORE_MEMORY
    assert store_size("s", 2e9) == 2_000_000_000  # Ray users write sizes as floats
    for bad in (1.5e8 + 0.5, "64MB", True, None):
        with pytest.raises(TypeError, match="whole number of bytes"):
            store_size("s", bad)


def test_node_args_normalises_what_is_given_and_leaves_out_defaults():
    out = node_args(num_cpus=2, num_gpus=None, resources={"a": 1},
                    object_store_memory=MIN_OBJECT_STORE_MEMORY * 2, memory=None)
    assert out == {"num_cpus": 2.0, "resources": {"a": 1.0},
                   "object_store_memory": MIN_OBJECT_STORE_MEMORY * 2}


@pytest.mark.parametrize("given, pattern", [
    ({"num_cpus": -3}, "^--num-cpus must be a finite number >= 0, got -3$"),
    ({"num_gpus": math.nan}, "^--num-gpus must be"),
    ({"memory": -1.0}, "^--memory must be"),
    ({"object_store_memory": 10}, "^--object-store-memory must be at least"),
    ({"resources": {"object_store_memory": 1}},
     "give it as --object-store-memory"),  # a node's store has its own flag
    ({"port": 70000}, "^--port must be a port number"),
    ({"node_timeout_s": 0}, "^--node-timeout-s must be a finite number of seconds > 0"),
])
def test_node_args_name_the_flag_and_the_value(given, pattern):
    with pytest.raises(ValueError, match=pattern):
        node_args(flag_name, **given)


@pytest.mark.parametrize("text", ["{bad", "[1]", "1", ""])
def test_resources_json_that_is_not_an_object_names_the_flag(text):
    with pytest.raises(ValueError) as info:
        resources_json(text)
    assert str(info.value).startswith("--resources must be a JSON object")
    assert repr(text) in str(info.value)


def test_resources_json_values_are_checked_like_any_resources():
    assert resources_json('{"gpu_box": 2}') == {"gpu_box": 2.0}
    with pytest.raises(ValueError, match=r"--resources\['x'\] must be a finite number"):
        resources_json('{"x": -1}')
    with pytest.raises(ValueError, match="give it as --num-cpus"):
        resources_json('{"CPU": 4}')
