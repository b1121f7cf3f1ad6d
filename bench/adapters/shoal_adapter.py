"""shoal, through its Ray-compatible API."""

from __future__ import annotations

import shoal
from bench.adapters.raylike import RayLike


class Adapter(RayLike):
    name = "shoal"

    def __init__(self):
        super().__init__(shoal)
