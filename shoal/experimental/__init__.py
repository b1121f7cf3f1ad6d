"""``ray.experimental``'s names that shoal provides (``import shoal as ray``):

* :mod:`~shoal.experimental.tqdm_ray`: progress bars from tasks and actors,
  drawn in the driver's terminal.
* :mod:`~shoal.experimental.internal_kv`: a small cluster-wide key-value store.

Submodules load on first use, so ``import shoal.experimental`` costs nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = ("tqdm_ray", "internal_kv")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"shoal.experimental.{name}")
    raise AttributeError(f"module 'shoal.experimental' has no attribute {name!r}")
