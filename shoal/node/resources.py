"""Resource arithmetic for one node, and the rule for whether a request fits.

Quantities are floats (fractional CPUs are allowed); we keep them as integer
multiples of 1/10000 internally so that ``0.1 * 10`` releases exactly what it
took.
"""

from __future__ import annotations

from collections.abc import Mapping

from shoal.node.accelerators import GpuInstances

UNIT = 10_000


def to_units(resources: Mapping[str, float]) -> dict[str, int]:
    return {k: round(float(v) * UNIT) for k, v in resources.items() if v}


def from_units(resources: Mapping[str, int]) -> dict[str, float]:
    return {k: v / UNIT for k, v in resources.items()}


class NodeResources:
    """Total and available resources of a node, or of one placement-group bundle
    reserved on it.  GPUs are also counted per id (``gpus``: which ids a
    request gets; see :mod:`shoal.node.accelerators`).  Mutates; loop thread only."""

    def __init__(self, total: Mapping[str, float], gpu_ids: list[str] | None = None,
                 gpus: GpuInstances | None = None) -> None:
        self.total = to_units(total)
        self.available = dict(self.total)
        if gpus is None and self.total.get("GPU"):
            gpus = GpuInstances.whole(gpu_ids or [str(i) for i in
                                                  range(-(-self.total["GPU"] // UNIT))], UNIT)
        self.gpus = gpus

    @classmethod
    def from_units(cls, total: Mapping[str, int], gpus: list | None = None) -> NodeResources:
        """A bundle's own pool: ``total`` units, and the GPU shares ``[[id, units]]``
        it was given."""
        pool = cls(from_units(total), gpus=GpuInstances(dict(gpus), UNIT) if gpus else None)
        pool.total = dict(total)
        pool.available = dict(total)
        return pool

    def feasible(self, request: Mapping[str, int]) -> bool:
        """Could this request ever fit on this node (ignoring current use)?"""
        return all(self.total.get(k, 0) >= v for k, v in request.items())

    def fits(self, request: Mapping[str, int]) -> bool:
        if not all(self.available.get(k, 0) >= v for k, v in request.items()):
            return False
        gpu = request.get("GPU")
        return not gpu or self.gpus is None or self.gpus.fits(gpu)

    def acquire(self, request: Mapping[str, int], force: bool = False) -> list:
        """Take ``request``; returns the GPU shares ``[[id, units], ...]`` it got."""
        if not force and not self.fits(request):
            raise ValueError(f"request {from_units(request)} does not fit")
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) - v
        gpu = request.get("GPU")
        if gpu and self.gpus is not None and not force:
            return self.gpus.take(gpu)
        return []

    def release(self, request: Mapping[str, int], gpus: list = ()) -> None:
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) + v
        if gpus and self.gpus is not None:
            self.gpus.give(gpus)

    def total_floats(self) -> dict[str, float]:
        return from_units(self.total)

    def available_floats(self) -> dict[str, float]:
        return {k: max(v, 0) / UNIT for k, v in self.available.items()}
