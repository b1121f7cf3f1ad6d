"""Resource arithmetic for one node, and the rule for whether a request fits.

Quantities are floats (fractional CPUs are allowed); we keep them as integer
multiples of 1/10000 internally so that ``0.1 * 10`` releases exactly what it
took.
"""

from __future__ import annotations

from collections.abc import Mapping

UNIT = 10_000


def to_units(resources: Mapping[str, float]) -> dict[str, int]:
    return {k: round(float(v) * UNIT) for k, v in resources.items() if v}


def from_units(resources: Mapping[str, int]) -> dict[str, float]:
    return {k: v / UNIT for k, v in resources.items()}


class NodeResources:
    """Total and available resources of a node.  Mutates; loop thread only."""

    def __init__(self, total: Mapping[str, float]) -> None:
        self.total = to_units(total)
        self.available = dict(self.total)

    def feasible(self, request: Mapping[str, int]) -> bool:
        """Could this request ever fit on this node (ignoring current use)?"""
        return all(self.total.get(k, 0) >= v for k, v in request.items())

    def fits(self, request: Mapping[str, int]) -> bool:
        return all(self.available.get(k, 0) >= v for k, v in request.items())

    def acquire(self, request: Mapping[str, int], force: bool = False) -> None:
        if not force and not self.fits(request):
            raise ValueError(f"request {from_units(request)} does not fit")
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) - v

    def release(self, request: Mapping[str, int]) -> None:
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) + v

    def total_floats(self) -> dict[str, float]:
        return from_units(self.total)

    def available_floats(self) -> dict[str, float]:
        return {k: max(v, 0) / UNIT for k, v in self.available.items()}
