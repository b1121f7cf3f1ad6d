"""One sample's outcome and the protocol between a sample's subprocess and the runner.

The subprocess (``bench.shuffle.child``) writes lines starting with ``@@shuffle``
and a JSON object: ``{"event": "sort_start"|"sort_end", "t": time.time()}`` when
the timed phase begins and ends (the runner's memory monitor keeps the peak
inside that window apart), and last ``{"event": "result", ...}`` with a
:class:`Sample`.  Anything else on stdout or stderr is the systems' own output.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field

PREFIX = "@@shuffle "


def emit(event: str, **fields) -> None:
    sys.stdout.write(PREFIX + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


@dataclass
class Sample:
    system: str  # a key of bench.shuffle.variants.VARIANTS
    total_bytes: int
    partitions: int
    store_bytes: int | None = None
    records: int = 0
    generate_s: float = 0.0  # inputs made in tasks and materialized (not timed)
    sort_s: float = 0.0  # the timed phase: from the sort call to every output stored
    validate_s: float = 0.0
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    error: str = ""  # the run failed: exception type and message
    spilled_bytes: int | None = None  # during the sort phase; None: not reported
    spilled_total: int | None = None  # over the whole sample (inputs included)
    detail: dict = field(default_factory=dict)  # per-system extras (stage spans, ...)

    @property
    def gb_per_s(self) -> float:
        return self.total_bytes / 1e9 / self.sort_s if self.sort_s else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "gb_per_s": self.gb_per_s}


class Clock:
    """Times the phases of a sample and tells the runner where the sort phase is."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed

    def sort_started(self) -> None:
        emit("sort_start", t=time.time())
        self.lap()

    def sort_ended(self) -> float:
        elapsed = self.lap()
        emit("sort_end", t=time.time())
        return elapsed
