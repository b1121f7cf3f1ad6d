"""The arena file, and where an object's bytes are.

The arena is a single file in ``/dev/shm`` of ``capacity`` bytes, created
sparse by the node agent and mapped by the agent and by every driver and
worker on the node.  It is named after the agent's pid, so a later agent can
tell a leaked arena (its agent was SIGKILLed) from a live one.

Where an object is, as the agent tells a client (STORE_CREATE, STORE_GET,
STORE_PULL replies), is a *location*:

* ``[offset, size]`` - ``size`` bytes at ``offset`` in the arena;
* ``[path, size, file_offset]`` - ``size`` bytes at ``file_offset`` in the file
  ``path``: disk-backed memory for an object larger than the whole store
  (Ray's fallback allocation), mapped by the client like the arena.

:func:`is_file_location` tells them apart (an arena offset is an int).
"""

from __future__ import annotations

import mmap
import os
import threading

# madvise(MADV_POPULATE_WRITE) (Linux 5.14): map every page writable, allocating
# the ones nothing has touched, without changing any byte.
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
PREFAULT_CHUNK = 64 << 20  # bytes per madvise call: short holds of the mm lock

SHM_DIR = "/dev/shm"
SHM_PREFIX = "shoal-"


def arena_path(session: str, node_id: str) -> str:
    return os.path.join(SHM_DIR, f"{SHM_PREFIX}{os.getpid()}-{node_id[:12]}")


def is_file_location(location: list) -> bool:
    return isinstance(location[0], str)


def pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_arenas() -> list[str]:
    """Unlink arenas whose agent process no longer exists."""
    removed = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(SHM_PREFIX):
            continue
        pid_text = name[len(SHM_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or not pid_is_gone(int(pid_text)):
            continue
        try:
            os.unlink(os.path.join(SHM_DIR, name))
            removed.append(name)
        except OSError:
            pass
    return removed


class Arena:
    """A mapped file: the arena (agent: create/unlink; clients: map), or a
    disk-backed object's file."""

    def __init__(self, path: str, capacity: int, create: bool) -> None:
        self.path = path
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, capacity)
            else:
                capacity = os.fstat(fd).st_size
            self.capacity = capacity
            self.map = mmap.mmap(fd, capacity, mmap.MAP_SHARED) if capacity else None
        finally:
            os.close(fd)
        self.view = memoryview(self.map) if self.map is not None else memoryview(b"")

    def prefault(self, stop: threading.Event) -> int:
        """Map every page of the arena into this process, allocating those never
        touched, until ``stop`` is set; returns the bytes covered.

        Why: an O_DIRECT read into a page this process has not mapped first
        allocates and zeroes it (or looks it up and maps it) page by page, which
        took a restore into fresh pages from ~1.5 to ~1.0 GB/s here.  The agent
        calls this once spilling starts, when the arena is ~80% used anyway, so
        the restores and read-ahead that follow land on mapped pages.  Best
        effort: a kernel without MADV_POPULATE_WRITE leaves it undone."""
        done = 0
        while done < self.capacity and not stop.is_set() and self.map is not None:
            length = min(PREFAULT_CHUNK, self.capacity - done)
            try:
                self.map.madvise(MADV_POPULATE_WRITE, done, length)
            except (OSError, ValueError):
                break
            done += length
        return done

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
