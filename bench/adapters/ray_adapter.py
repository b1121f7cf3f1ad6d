"""Ray core (``ray.init(address="local", num_cpus=2, include_dashboard=False)``)."""

from __future__ import annotations

import ray

from bench.adapters.raylike import RayLike


class Adapter(RayLike):
    name = "ray"
    init_options = {"include_dashboard": False, "address": "local"}  # never another's

    def __init__(self):
        super().__init__(ray)
