"""Asking the node's processes to run Python's garbage collector when the object
store fills up.

An ObjectRef caught in a reference cycle (a list that holds itself and a ref)
keeps its object in the store until Python's cycle collector runs, which in a
process that allocates little may be never.  Ray therefore triggers a garbage
collection in the workers when the object store is under pressure; so does the
node agent here: when a sealed object leaves the store at least
``PRESSURE_FRACTION`` full, every core worker attached to the node (drivers
included) is told to run ``gc.collect()`` (COLLECT_GARBAGE), at most once every
``MIN_INTERVAL_S`` so a store that stays full does not make every process
collect over and over.  The rate limit is pure (``GcTrigger``); the agent
sends the notifications.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from shoal.rpc.messages import Method

PRESSURE_FRACTION = 0.7  # below the store's spilling threshold (0.8): collect first
MIN_INTERVAL_S = float(os.environ.get("SHOAL_STORE_GC_MIN_INTERVAL_S", "5"))


@dataclass
class GcTrigger:
    """Pure: whether a store this full, at this time, should trigger a collection."""

    min_interval_s: float = MIN_INTERVAL_S
    fraction: float = PRESSURE_FRACTION
    last: float | None = None  # monotonic time of the last trigger

    def should_collect(self, used: int, capacity: int, now: float) -> bool:
        if capacity <= 0 or used < self.fraction * capacity:
            return False
        if self.last is not None and now - self.last < self.min_interval_s:
            return False
        self.last = now
        return True


class StorePressureGc:
    """The agent's side: told of each seal, notifies the attached core workers."""

    def __init__(self, clients: set, trigger: GcTrigger | None = None) -> None:
        self.clients = clients  # connections of the core workers attached to the node
        self.trigger = trigger or GcTrigger()

    def sealed(self, used: int, capacity: int) -> None:
        if not self.trigger.should_collect(used, capacity, time.monotonic()):
            return
        for conn in list(self.clients):
            try:
                conn.notify(Method.COLLECT_GARBAGE, None)
            except Exception:  # a client going away: nothing to collect there
                pass
