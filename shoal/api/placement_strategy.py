"""Which placement a task or actor about to be submitted asks for: its own
strategy, the legacy ``placement_group=`` options turned into one, or the group
its parent captures for its children; checked against the group's bundles as
Ray does.  The API side of placement groups (it builds and reads the user's
``PlacementGroup`` and strategy objects); where bundles are and ``ready()`` are
the core worker's (:mod:`shoal.core.placement_client`).
"""

from __future__ import annotations

from typing import Any

from shoal.core.placement_client import current_placement
from shoal.util.placement_group import PlacementGroup
from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy


def resolve_strategy(options: dict, worker: Any, shape: dict, what: str) -> Any:
    """The scheduling strategy of a task or actor about to be submitted: its own,
    the legacy ``placement_group=`` options turned into one, or the group it
    inherits (``captured_strategy``).  A placement-group strategy is checked
    like Ray does: the bundle index must exist and the shape must fit it."""
    strategy = options.get("scheduling_strategy")
    group = options.get("placement_group")
    if group is not None and group != "default":
        if strategy is not None:
            raise ValueError(f"{what}: give either scheduling_strategy or the legacy "
                             "placement_group option, not both")
        strategy = PlacementGroupSchedulingStrategy(
            group, options.get("placement_group_bundle_index", -1),
            options.get("placement_group_capture_child_tasks"))
    if strategy is None:
        if worker.executor is None and worker.task_context.get() is None:
            return None  # the driver: nothing to inherit
        return captured_strategy(worker)
    if getattr(strategy, "placement_group", None) is not None:
        check_fits(strategy, shape, what)
    return strategy


def check_fits(strategy: Any, shape: dict, what: str) -> None:
    """ValueError unless the bundle index exists and ``shape`` fits that bundle
    (index -1: some bundle)."""
    group = strategy.placement_group
    index = strategy.placement_group_bundle_index
    specs = group.bundle_specs
    if not -1 <= index < len(specs):
        raise ValueError(f"placement group bundle index {index} is invalid for {what}: "
                         f"the group has bundles 0-{len(specs) - 1} (or -1 for any)")
    bundles = specs if index < 0 else [specs[index]]
    if not any(all(b.get(k, 0) >= v for k, v in shape.items() if v) for b in bundles):
        where = "any bundle" if index < 0 else f"bundle {index}"
        raise ValueError(f"Cannot schedule {what} with the placement group because the "
                         f"resource request {shape} cannot fit into {where} of the "
                         f"placement group, {specs}")


def captured_strategy(worker: Any) -> Any:
    """The strategy a task or actor submitted with none inherits: its parent's
    group, any bundle, if the parent runs with ``capture_child_tasks``."""
    placement = current_placement(worker)
    if not placement or not placement[2]:
        return None
    return PlacementGroupSchedulingStrategy(PlacementGroup(placement[0]), -1, True)
