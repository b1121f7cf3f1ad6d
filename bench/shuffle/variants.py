"""The systems a sample can run (a *variant*: a system and how it sorts), the
interpreter each needs and the module that runs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    python: str  # "shoal", "ray" or "dask": whose interpreter runs it (bench.adapters)
    module: str  # bench.shuffle.<module>.run(sample, timeout)
    what: str
    peer: bool  # a system shoal is compared with (ratios shoal/peer)


VARIANTS = {v.name: v for v in (
    Variant("shoal-simple", "shoal", "run_shoal", "shoal.shuffle.sort, strategy simple", False),
    Variant("shoal-premerge", "shoal", "run_shoal", "shoal.shuffle.sort, strategy premerge",
            False),
    Variant("shoal-push", "shoal", "run_shoal", "shoal.shuffle.sort, strategy push", False),
    Variant("shoal-core", "shoal", "run_shoal", "raysort-style program (sort_core) on shoal",
            False),
    Variant("ray-core", "ray", "run_ray", "raysort-style program (sort_core) on Ray", True),
    Variant("raydata-v2", "ray", "run_ray", "Ray Data sort, shuffle_v2 (the default)", True),
    Variant("raydata-pull", "ray", "run_ray", "Ray Data sort, sort_shuffle_pull_based", True),
    Variant("raydata-push", "ray", "run_ray", "Ray Data sort, sort_shuffle_push_based", True),
    Variant("dask-p2p", "dask", "run_dask", "Dask sort_values, shuffle_method=p2p", True),
    Variant("numpy-raysort", "shoal", "run_numpy", "one process, sort_core's kernels", True),
    Variant("numpy-shoal", "shoal", "run_numpy", "one process, shoal.shuffle's kernels", True),
)}
SHOAL = [name for name, v in VARIANTS.items() if v.python == "shoal" and not v.peer]
LIBRARY = ["shoal-simple", "shoal-premerge", "shoal-push"]
GROUPS = {"shoal": SHOAL, "ray": ["ray-core", "raydata-v2", "raydata-pull", "raydata-push"],
          "dask": ["dask-p2p"], "numpy": ["numpy-raysort", "numpy-shoal"]}


def expand(names: str) -> list[str]:
    """``"shoal,ray-core"`` -> variant names (a group stands for its members), in
    the order of ``VARIANTS``."""
    wanted: set[str] = set()
    for item in filter(None, (x.strip() for x in names.split(","))):
        if item in GROUPS:
            wanted.update(GROUPS[item])
        elif item in VARIANTS:
            wanted.add(item)
        else:
            raise ValueError(f"unknown system {item!r}: one of {', '.join(VARIANTS)} "
                             f"or a group ({', '.join(GROUPS)})")
    return [name for name in VARIANTS if name in wanted]
