"""Spill and restore I/O: the spill directories and the files in them.

Everything here blocks, and runs on the store's I/O threads (never on the
agent's event loop); :class:`SpillDirs` only does bookkeeping and ``statvfs``.

Layout: each spill directory root gets one folder per node,
``ROOT/shoal-spill-PID-NODE``, removed when the node stops (and by a later
node once PID is gone, if the node was killed).  A spill batch is one file
``spill-N``; its objects start at 4 KiB boundaries (a whole batch is written
with one ``pwritev``: large sequential writes).  An object larger than the
whole store lives in ``backed-N``, a file of its own that readers map.

Why O_DIRECT: buffered writes first fill the page cache at memory speed,
but once the dirty limit is reached the kernel throttles writers, and on this
machine's disk buffered write-back ran at ~0.4 GB/s where O_DIRECT writes ran
at the disk's 1.1-1.5 GB/s.  Direct I/O also keeps spilled bytes out of the
page cache (memory the store just gave back stays given back) and a restore
reads the disk, not a cached copy.  The arena's blocks are page-aligned and
page-sized (:mod:`.allocator`), so the store hands its blocks to the kernel as
they are; where O_DIRECT is refused (tmpfs), buffered I/O is used.  No
``fsync``: a spilled object only has to outlive the node's processes, not the
machine (a node that dies loses its spilled objects; lineage rebuilds them).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import shutil
import time

from shoal.objects.arena import pid_is_gone
from shoal.objects.spill_folders import MADE_BY_SHOAL, remove_node_folders

log = logging.getLogger("shoal.store")

SPILL_DIR_PREFIX = "shoal-spill-"
FILE_ALIGN = 4096
IOV_MAX = 1024
DIRECT = getattr(os, "O_DIRECT", 0)
_ZEROS = memoryview(bytes(FILE_ALIGN))


def _pad(n: int) -> int:
    return -n % FILE_ALIGN


class DiskFullError(OSError):
    """A spill or a disk-backed object found no room in any spill directory."""


class SpillDirs:
    """This node's folders under the spill directory roots, used round-robin."""

    def __init__(self, roots: list[str], node_id: str) -> None:
        if not roots:
            raise ValueError("at least one object spilling directory is needed")
        self.roots = [os.path.abspath(r) for r in roots]
        self.dirs = [os.path.join(r, f"{SPILL_DIR_PREFIX}{os.getpid()}-{node_id[:12]}")
                     for r in self.roots]
        self.reserved = dict.fromkeys(self.dirs, 0)  # bytes of writes in flight
        self._next = 0
        self._names = itertools.count(1)

    def create(self) -> None:
        for root, folder in zip(self.roots, self.dirs, strict=True):
            if not os.path.isdir(root):
                os.makedirs(root, exist_ok=True)
                open(os.path.join(root, MADE_BY_SHOAL), "wb").close()
            remove_stale_spill_dirs(root)
            os.makedirs(folder, exist_ok=True)

    def free_bytes(self, folder: str) -> int:
        try:
            st = os.statvfs(folder)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    def room(self) -> int:
        """Bytes the roomiest directory can take now (writes in flight deducted)."""
        return max(self.free_bytes(d) - self.reserved[d] for d in self.dirs)

    def place(self, size: int, prefix: str) -> str | None:
        """A new file path for ``size`` bytes in the next directory (round-robin)
        with room for them, reserved until :meth:`written`; None if none has."""
        for i in range(len(self.dirs)):
            folder = self.dirs[(self._next + i) % len(self.dirs)]
            if self.free_bytes(folder) - self.reserved[folder] >= size:
                self._next = (self._next + i + 1) % len(self.dirs)
                self.reserved[folder] += size
                return os.path.join(folder, f"{prefix}-{next(self._names)}")
        return None

    def written(self, path: str, size: int) -> None:
        folder = os.path.dirname(path)
        self.reserved[folder] = max(0, self.reserved[folder] - size)

    def describe(self) -> str:
        return ", ".join(self.dirs)

    def remove_all(self) -> None:
        remove_node_folders(self.dirs)


def remove_stale_spill_dirs(root: str) -> list[str]:
    """Remove this root's node folders whose node process no longer exists."""
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(SPILL_DIR_PREFIX):].split("-", 1)[0]
        if name.startswith(SPILL_DIR_PREFIX) and pid_text.isdigit() \
                and pid_is_gone(int(pid_text)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    return removed


def layout(sizes: list[int]) -> tuple[list[int], int]:
    """Offsets of objects of ``sizes`` in one file, each at a 4 KiB boundary,
    and the file's length."""
    offsets, pos = [], 0
    for size in sizes:
        offsets.append(pos)
        pos += size + _pad(size)
    return offsets, pos


def write_file(path: str, parts: list[memoryview]) -> tuple[list[int], float]:
    """Write ``parts`` into a new file at ``path`` (see :func:`layout`);
    returns the offsets and the seconds spent.  On failure the file is gone
    and the error raised (:class:`DiskFullError` when the disk is full).
    Page-aligned parts whose lengths are page multiples are written with
    O_DIRECT."""
    start = time.perf_counter()
    offsets, _ = layout([len(p) for p in parts])
    iov: list[memoryview] = []
    for part in parts:
        iov.append(part)
        if _pad(len(part)):
            iov.append(_ZEROS[:_pad(len(part))])
    direct = all(_aligned(part) for part in parts)
    while True:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | (DIRECT if direct else 0), 0o600)
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:  # the filesystem refuses O_DIRECT
                direct = False
                continue
            raise
        try:
            _pwritev_all(fd, list(iov), 0)
        except OSError as exc:
            os.close(fd)
            _unlink(path)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(exc.errno,
                                    f"no space left in {os.path.dirname(path)}") from None
            if direct and exc.errno == errno.EINVAL:
                direct = False
                continue
            raise
        os.close(fd)
        return offsets, time.perf_counter() - start


def _pwritev_all(fd: int, iov: list[memoryview], offset: int) -> None:
    while iov:
        group = iov[:IOV_MAX]
        n = os.pwritev(fd, group, offset)
        offset += n
        # drop what was written; a partial write leaves the rest of one buffer
        while n and iov:
            if n >= len(iov[0]):
                n -= len(iov[0])
                iov.pop(0)
            else:
                iov[0] = iov[0][n:]
                n = 0


def read_into(path: str, file_offset: int, views: list[memoryview]) -> float:
    """Fill ``views`` in turn from ``path`` at ``file_offset`` (one read);
    returns the seconds spent.  Page-aligned views of whole pages are read
    with O_DIRECT."""
    start = time.perf_counter()
    direct = all(_aligned(v) for v in views) and file_offset % FILE_ALIGN == 0
    try:
        _read_into(path, file_offset, views, direct)
    except OSError as exc:
        if not (direct and exc.errno == errno.EINVAL):
            raise
        _read_into(path, file_offset, views, False)
    return time.perf_counter() - start


def _read_into(path: str, offset: int, views: list[memoryview], direct: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (DIRECT if direct else 0))
    try:
        views = list(views)
        while views:
            n = os.preadv(fd, views[:IOV_MAX], offset)
            if n == 0:
                raise EOFError(f"{path} ends {sum(len(v) for v in views)} bytes short")
            offset += n
            while n and views:
                if n >= len(views[0]):
                    n -= len(views.pop(0))
                else:
                    views[0] = views[0][n:]
                    n = 0
    finally:
        os.close(fd)


def _aligned(view: memoryview) -> bool:
    if not DIRECT or len(view) % FILE_ALIGN or not len(view):
        return False
    import numpy as np

    return np.frombuffer(view, dtype=np.uint8).ctypes.data % FILE_ALIGN == 0


def read_chunk(path: str, offset: int, length: int) -> bytearray:
    buf = bytearray(length)
    read_into(path, offset, [memoryview(buf)])
    return buf


def create_backing_file(path: str, size: int) -> None:
    """A file of ``size`` bytes, its blocks reserved now (so a full disk fails
    here, not later as SIGBUS in a reader)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(size, 1))
    except OSError as exc:
        os.close(fd)
        _unlink(path)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(exc.errno, f"no space left in {os.path.dirname(path)}") from None
        raise
    os.close(fd)


def delete(path: str) -> None:
    _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not delete spill file %s: %s", path, exc)
