"""Scheduling strategies, with Ray's names and fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id``; with ``soft=True`` fall back to others."""

    node_id: str
    soft: bool
    _spill_on_unavailable: bool = False
    _fail_on_unavailable: bool = False


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in bundle ``placement_group_bundle_index`` of the group (-1: any bundle that
    fits); with ``placement_group_capture_child_tasks``, what the task or actor
    submits without a strategy runs in the group too."""

    placement_group: Any
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None


DEFAULT = "DEFAULT"
SPREAD = "SPREAD"

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
