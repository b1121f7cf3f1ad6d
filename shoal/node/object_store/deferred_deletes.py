"""When to delete spill files nobody needs: between the store's disk I/O.  Pure.

Why: the filesystem may discard (TRIM) a file's blocks inside ``unlink``
(ext4 mounted with ``discard``, as this machine's root is): deleting a 100 MiB
spill file took ~20 ms, all of it device time.  A probe read twenty-two
100 MiB spill files back with O_DIRECT at 1.51-1.67 GB/s when nothing was
deleted, 1.30-1.31 GB/s when each file was deleted on another thread as soon
as it was read (the store's pattern when a reader frees what it restored), and
1.47-1.59 GB/s when each delete ran between two reads.  So a freed object's
file waits until no spill write or restore is in flight, for at most
``max_lag_s`` (the directory still empties promptly when refs go), and goes at
once when the disk is short of room.
"""

from __future__ import annotations

from collections import deque

MAX_LAG_S = 1.0


class DeferredDeletes:
    """Paths to delete, oldest first, with when each was freed."""

    def __init__(self, max_lag_s: float = MAX_LAG_S) -> None:
        self.max_lag_s = max_lag_s
        self._pending: deque[tuple[str, float]] = deque()

    def add(self, path: str, now: float) -> None:
        self._pending.append((path, now))

    def take(self, now: float, io_in_flight: bool) -> list[str]:
        """What to delete now: all if the disk is idle, else those that waited
        ``max_lag_s``."""
        if not io_in_flight:
            return self.take_all()
        due = []
        while self._pending and now - self._pending[0][1] >= self.max_lag_s:
            due.append(self._pending.popleft()[0])
        return due

    def take_all(self) -> list[str]:
        """Everything (the disk is short of room, or the store stops)."""
        paths = [path for path, _ in self._pending]
        self._pending.clear()
        return paths

    def next_due(self) -> float | None:
        """When the oldest waiting delete is due, whatever the disk does."""
        return self._pending[0][1] + self.max_lag_s if self._pending else None

    def __len__(self) -> int:
        return len(self._pending)
