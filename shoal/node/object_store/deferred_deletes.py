"""When to delete spill files nobody needs: once the disk has gone quiet.  Pure.

Why: the filesystem may discard (TRIM) a file's blocks inside ``unlink``
(ext4 mounted with ``discard``, as this machine's root is): deleting a 100 MiB
spill file takes ~20 ms of device time when the disk is idle, and 80-150 ms
while restores run beside it, which slow down as much.  A reader going through
7.8 GB of spilled 100 MiB objects, freeing each after use, had its 74 files
deleted while it read (each a second after it was freed, or at once whenever no
read happened to be in flight): the deletes took 6-16 s of thread time and the
restores ran at 0.76-1.0 GB/s, against 1.3-1.6 GB/s for the same reads alone.

So a freed file waits until no spill write or restore has run for ``idle_s``
(a gap between two reads is not enough: the delete would still be running when
the next read starts).  Files then go one at a time, on a thread of their own
(never on the I/O threads, where a restore would queue behind them), each only
if the disk is still quiet when the one before it is done: a burst of deletes
would hold up the reads that come next as much as deletes beside them.  Files
go anyway, one at a time, once they waited ``max_lag_s`` or while the waiting
bytes are over a quarter of the spill directories' free room; all go at once
when a spill finds no room (the service's ``everything``): freed disk is never
what makes a spill fail.
"""

from __future__ import annotations

from collections import deque

IDLE_S = 0.25  # the disk counts as quiet after this long without spill I/O
MAX_LAG_S = 30.0  # a freed file waits at most this long, whatever the disk does
ROOM_SHARE = 4  # waiting bytes may be at most 1/ROOM_SHARE of the free room


class DeferredDeletes:
    """Paths to delete, oldest first, with their sizes and when each was freed."""

    def __init__(self, idle_s: float = IDLE_S, max_lag_s: float = MAX_LAG_S) -> None:
        self.idle_s = idle_s
        self.max_lag_s = max_lag_s
        self._pending: deque[tuple[str, int, float]] = deque()
        self.pending_bytes = 0

    def add(self, path: str, size: int, now: float) -> None:
        self._pending.append((path, size, now))
        self.pending_bytes += size

    def next_path(self, now: float, idle_since: float | None, room: int) -> str | None:
        """The file to delete now, oldest first, or None.  ``idle_since``: when
        the last spill I/O ended (None while some runs); ``room``: free bytes
        in the spill directories."""
        if not self._pending:
            return None
        quiet = idle_since is not None and now - idle_since >= self.idle_s
        if not (quiet or now - self._pending[0][2] >= self.max_lag_s
                or self.pending_bytes * ROOM_SHARE > room):
            return None
        path, size, _ = self._pending.popleft()
        self.pending_bytes -= size
        return path

    def take_all(self) -> list[str]:
        """Everything (a spill found no room, or the store stops)."""
        paths = [path for path, _, _ in self._pending]
        self._pending.clear()
        self.pending_bytes = 0
        return paths

    def next_due(self, idle_since: float | None) -> float | None:
        """When to look again: the disk's quiet time is up, or the oldest
        waiting file's lag."""
        if not self._pending:
            return None
        due = self._pending[0][2] + self.max_lag_s
        if idle_since is not None:
            due = min(due, idle_since + self.idle_s)
        return due

    def __len__(self) -> int:
        return len(self._pending)
