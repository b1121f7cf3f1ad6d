"""Exoshuffle: shuffle as a library over distributed futures.

``shuffle``, ``sort`` and ``random_shuffle`` run a shuffle with ordinary
tasks, ``wait`` and node affinity, and nothing else: this package imports
only the public ``shoal`` API (a test checks it).  Three strategies
(``"simple"``, ``"premerge"``, ``"push"``) share one pure round scheduler
(schedule.py) and one thin performer (driver.py); docs/design.md,
"Exoshuffle", explains them, the back-pressure rule and the measurements.

Modules, one job each: records (gensort keys, sort kernel, checksum),
partitioning (sampled key ranges, random assignment), gensort (making
records), validation (valsort's checks), schedule / simple / premerge / push
(the state machines), budget (limits from the store's size), tasks (the
remote functions and the ref placeholder), driver (the performer), progress
(the bars), kernels (sort's and random_shuffle's functions), api (the calls).
"""

from shoal.shuffle.api import random_shuffle as random_shuffle
from shoal.shuffle.api import shuffle as shuffle
from shoal.shuffle.api import sort as sort
from shoal.shuffle.driver import ShuffleStats as ShuffleStats
from shoal.shuffle.schedule import Strategy as Strategy

__all__ = ["ShuffleStats", "Strategy", "random_shuffle", "shuffle", "sort"]
