"""Unit tests for shoal.node.resources: exact fractional arithmetic, feasible vs fits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.node.resources import UNIT, NodeResources, from_units, to_units


def test_to_units_scales_rounds_and_drops_zeros():
    assert to_units({"CPU": 1, "GPU": 0.5, "memory": 0, "x": 0.0, "y": 0.1}) == {
        "CPU": UNIT,
        "GPU": UNIT // 2,
        "y": UNIT // 10,
    }
    # Float noise is rounded away, not truncated.
    assert to_units({"CPU": 0.1 + 0.2}) == {"CPU": 3 * UNIT // 10}
    assert to_units({"CPU": 0.29999999999999}) == {"CPU": 3000}
    assert all(isinstance(v, int) for v in to_units({"a": 0.7, "b": 3}).values())


def test_from_units_inverts_to_units():
    shape = {"CPU": 2.5, "GPU": 0.25, "custom": 7.0}
    assert from_units(to_units(shape)) == shape


def test_ten_tenths_acquire_and_release_exactly():
    node = NodeResources({"CPU": 1})
    tenth = to_units({"CPU": 0.1})
    for _ in range(10):
        assert node.fits(tenth)
        node.acquire(tenth)
    assert node.available == {"CPU": 0}
    assert not node.fits(tenth)
    with pytest.raises(ValueError, match="does not fit"):
        node.acquire(tenth)
    for _ in range(10):
        node.release(tenth)
    assert node.available == node.total == {"CPU": UNIT}
    assert node.available_floats() == {"CPU": 1.0}
    # The naive float sum would not have come back exactly.
    assert sum([0.1] * 10) != 1.0


def test_mixed_fractions_return_exactly_to_total():
    node = NodeResources({"CPU": 3, "GPU": 1})
    requests = [
        to_units({"CPU": c, "GPU": g}) for c, g in [(0.3, 0.1), (0.7, 0.2), (1.1, 0.3), (0.9, 0.4)]
    ]
    for r in requests:
        node.acquire(r)
    assert node.available == {"CPU": 0, "GPU": 0}
    for r in reversed(requests):
        node.release(r)
    assert node.available == node.total


def test_feasible_ignores_current_use_fits_does_not():
    node = NodeResources({"CPU": 4, "GPU": 1})
    all_cpus = to_units({"CPU": 4})
    node.acquire(all_cpus)
    one_cpu = to_units({"CPU": 1})
    assert node.feasible(one_cpu)
    assert not node.fits(one_cpu)
    assert node.fits(to_units({"GPU": 1}))
    assert node.feasible(to_units({"CPU": 4, "GPU": 1}))
    assert not node.feasible(to_units({"CPU": 4.0001}))
    assert not node.feasible(to_units({"GPU": 2}))


def test_unknown_resource_is_neither_feasible_nor_fitting():
    node = NodeResources({"CPU": 4})
    request = to_units({"TPU": 1})
    assert not node.feasible(request)
    assert not node.fits(request)


def test_empty_request_always_fits():
    node = NodeResources({})
    assert node.feasible({}) and node.fits({})
    node.acquire({})
    assert node.available == {}


def test_zero_total_entries_are_dropped():
    node = NodeResources({"CPU": 2, "GPU": 0})
    assert node.total == {"CPU": 2 * UNIT}
    assert node.total_floats() == {"CPU": 2.0}


def test_failed_acquire_changes_nothing():
    node = NodeResources({"CPU": 1, "GPU": 1})
    before = dict(node.available)
    with pytest.raises(ValueError):
        node.acquire(to_units({"CPU": 0.5, "GPU": 2}))  # GPU part does not fit
    assert node.available == before


def test_acquire_with_force_oversubscribes():
    node = NodeResources({"CPU": 1})
    two = to_units({"CPU": 2})
    node.acquire(two, force=True)
    assert node.available["CPU"] == -UNIT
    assert node.available_floats() == {"CPU": 0.0}  # reported clamped at zero
    assert not node.fits(to_units({"CPU": 0.1}))
    assert node.feasible(to_units({"CPU": 1}))
    node.release(two)
    assert node.available == {"CPU": UNIT}
    assert node.fits(to_units({"CPU": 1}))


def test_force_acquire_of_resource_the_node_lacks():
    node = NodeResources({"CPU": 1})
    node.acquire(to_units({"GPU": 1}), force=True)
    assert node.available["GPU"] == -UNIT
    node.release(to_units({"GPU": 1}))
    assert node.available == {"CPU": UNIT, "GPU": 0}


def test_total_is_not_changed_by_acquire_and_release():
    node = NodeResources({"CPU": 2, "mem": 1.5})
    node.acquire(to_units({"CPU": 1.5, "mem": 1}))
    assert node.total_floats() == {"CPU": 2.0, "mem": 1.5}
    assert node.available_floats() == {"CPU": 0.5, "mem": 0.5}


_amount = st.integers(1, 40).map(lambda n: n / 20)  # multiples of 0.05


@settings(max_examples=100, deadline=None, database=None)
@given(
    requests=st.lists(
        st.dictionaries(st.sampled_from(["CPU", "GPU", "x"]), _amount, min_size=1), max_size=20
    ),
    order=st.randoms(use_true_random=False),
)
def test_any_acquire_release_sequence_returns_exactly_to_total(requests, order):
    node = NodeResources({"CPU": 8, "GPU": 2, "x": 1.5})
    held = []
    for req in requests:
        units = to_units(req)
        if node.fits(units):
            node.acquire(units)
            held.append(units)
            assert all(v >= 0 for v in node.available.values())
        else:
            with pytest.raises(ValueError):
                node.acquire(units)
    order.shuffle(held)
    for units in held:
        node.release(units)
    assert node.available == node.total
