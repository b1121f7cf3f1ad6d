"""Per-worker log files, as Ray keeps them: what each worker process writes to
stdout and stderr also goes to ``worker-<worker id>-<pid>.out`` / ``.err`` in
its node's log folder.

The agent already reads every worker's pipes (:mod:`shoal.node.worker_pool`)
to forward the lines to the job's driver; the same lines are written here, so
the worker itself does nothing new and a worker that dies mid-line loses
nothing the driver would have seen.  Lines are buffered and appended a moment
after the first unwritten one (``FLUSH_DELAY_S``, sooner past ``FLUSH_BYTES``)
and before every read, so a reader sees a line about as soon as the driver
does; no file stays open between appends.

Size: a file that would grow past ``max_bytes`` is rotated (``NAME`` ->
``NAME.1`` -> ... -> ``NAME.<backups>``, the oldest dropped), so one worker's
stream takes at most ``(backups + 1) * max_bytes`` on disk.  Defaults: 64 MiB and
one backup (``SHOAL_LOG_ROTATION_BYTES``, ``SHOAL_LOG_ROTATION_BACKUP_COUNT``).
Progress-bar updates (``shoal.experimental.tqdm_ray``) are a display channel,
not log lines, and are not written.

Reads (NODE_LOG_READ, for the dashboard and ``shoal logs``) serve only the
names :meth:`WorkerLogs.listing` lists - this node's worker files, their
backups and the agent's own log - never a path.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shoal.experimental.progress_wire import is_progress_line

if TYPE_CHECKING:
    from shoal.node.worker_pool import Worker

ROTATE_BYTES_ENV = "SHOAL_LOG_ROTATION_BYTES"
BACKUPS_ENV = "SHOAL_LOG_ROTATION_BACKUP_COUNT"
DEFAULT_ROTATE_BYTES = 64 << 20
DEFAULT_BACKUPS = 1
FLUSH_DELAY_S = 0.05
FLUSH_BYTES = 64 * 1024  # a file's buffered lines are written at once past this
READ_LIMIT = 1 << 20  # bytes one read returns at most
EXITED_KEPT = 2000  # records of exited workers kept for the listing (their files stay)
STREAM_SUFFIX = {"stdout": "out", "stderr": "err"}


def rotation_from_env() -> tuple[int, int]:
    """(max bytes per file, backups) from the environment, checked."""
    try:
        max_bytes = int(os.environ.get(ROTATE_BYTES_ENV, DEFAULT_ROTATE_BYTES))
        backups = int(os.environ.get(BACKUPS_ENV, DEFAULT_BACKUPS))
    except ValueError as exc:
        raise ValueError(f"{ROTATE_BYTES_ENV} and {BACKUPS_ENV} must be integers: {exc}"
                         ) from None
    if max_bytes < 1024 or backups < 0:
        raise ValueError(f"{ROTATE_BYTES_ENV} must be at least 1024 and {BACKUPS_ENV} at "
                         f"least 0, got {max_bytes} and {backups}")
    return max_bytes, backups


class LogFile:
    """One worker stream's file, rotated so it never passes ``max_bytes``.

    No descriptor is held between flushes: lines are buffered here and each
    flush opens the file, appends and closes it, so a node with many workers
    does not spend two more file descriptors on each (it already holds their
    pipes and sockets)."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        with open(path, "ab") as f:  # every worker has its files, even a silent one
            self.size = f.tell()
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.pending.append(data)
            self.pending_bytes += len(data)

    def flush(self) -> None:
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        while data:
            room = self.max_bytes - self.size
            if len(data) <= room:
                cut = len(data)
            else:  # fill up to a line's end, then rotate
                cut = data.rfind(b"\n", 0, room) + 1
                if cut == 0 and self.size == 0:
                    cut = room  # one line longer than a whole file: split it
            if cut:
                with open(self.path, "ab") as f:
                    f.write(data[:cut])
                self.size += cut
                data = data[cut:]
            if data:
                self._rotate()

    def _rotate(self) -> None:
        if self.backups == 0:
            open(self.path, "wb").close()
        else:
            for i in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{i}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
            open(self.path, "ab").close()
        self.size = 0

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True


@dataclass(eq=False)
class WorkerLog:
    """The files of one worker, and what the listing says about it.  ``worker`` is
    set while it lives (its actor and job are read from it then) and copied into
    the plain fields when it exits."""

    worker_id: str
    pid: int
    started_at: float
    files: dict[str, LogFile] = field(default_factory=dict)  # stream -> file
    worker: Worker | None = None
    actor_id: str | None = None
    label: str = ""
    job_id: str | None = None
    exited_at: float | None = None

    def facts(self) -> dict:
        w = self.worker
        return {"worker_id": self.worker_id, "pid": self.pid,
                "actor_id": w.actor_id if w is not None else self.actor_id,
                "label": w.label if w is not None else self.label,
                "job_id": w.job_id if w is not None else self.job_id,
                "alive": self.exited_at is None, "started_at": self.started_at}


class WorkerLogs:
    """The worker log files of one node (its agent's event loop only)."""

    def __init__(self, log_dir: str, node_id: str, max_bytes: int = DEFAULT_ROTATE_BYTES,
                 backups: int = DEFAULT_BACKUPS) -> None:
        self.log_dir, self.node_id = log_dir, node_id
        self.max_bytes, self.backups = max_bytes, backups
        self.logs: dict[str, WorkerLog] = {}  # worker id -> its files (live and exited)
        self._exited: list[str] = []  # worker ids in exit order (the oldest dropped first)
        self._dirty: set[LogFile] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self.own_log = f"node-{os.getpid()}.log"  # the agent's own (shoal.node.main)

    @staticmethod
    def file_name(worker_id: str, pid: int, stream: str) -> str:
        return f"worker-{worker_id}-{pid}.{STREAM_SUFFIX[stream]}"

    # ---- the worker pool's hooks ---------------------------------------------------------
    def opened(self, worker: Worker) -> None:
        """The worker was spawned (its pid is known): create its files."""
        log = WorkerLog(worker.worker_id, worker.pid, time.time(), worker=worker)
        try:
            for stream in STREAM_SUFFIX:
                path = os.path.join(self.log_dir, self.file_name(worker.worker_id, worker.pid,
                                                                 stream))
                log.files[stream] = LogFile(path, self.max_bytes, self.backups)
        except OSError:
            for f in log.files.values():  # a full or read-only disk: no files, still works
                f.close()
            log.files.clear()
        self.logs[worker.worker_id] = log

    def write(self, worker: Worker, stream: str, line: bytes) -> None:
        log = self.logs.get(worker.worker_id)
        f = log.files.get(stream) if log is not None else None
        if f is None or is_progress_line(line):
            return
        f.write(line)
        if f.pending_bytes >= FLUSH_BYTES:  # a chatty worker: do not wait for the timer
            self._flush_one(f)
            return
        self._dirty.add(f)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY_S,
                                                                       self.flush)

    def _flush_one(self, f: LogFile) -> None:
        self._dirty.discard(f)
        try:
            f.flush()
        except OSError:  # a full or vanished disk: drop this file's lines, keep serving
            f.pending.clear()
            f.pending_bytes = 0

    def closed(self, worker: Worker) -> None:
        """The worker exited and its pipes are drained: close its files."""
        log = self.logs.get(worker.worker_id)
        if log is None or log.exited_at is not None:
            return
        log.actor_id, log.label, log.job_id = worker.actor_id, worker.label, worker.job_id
        log.worker, log.exited_at = None, time.time()
        for f in log.files.values():
            self._flush_one(f)
            f.closed = True
        self._exited.append(worker.worker_id)
        while len(self._exited) > EXITED_KEPT:
            self.logs.pop(self._exited.pop(0), None)

    def flush(self) -> None:
        self._flush_handle = None
        for f in list(self._dirty):
            self._flush_one(f)

    def close_all(self) -> None:
        self.flush()
        for log in self.logs.values():
            for f in log.files.values():
                f.closed = True

    # ---- the listing and reads (NODE_STATE "logs", NODE_LOG_READ) -------------------------
    def listing(self) -> list[dict]:
        """Every file this node can serve: one entry per worker stream and backup,
        then the agent's own log."""
        out = []
        for log in self.logs.values():
            facts = log.facts()
            for stream, f in log.files.items():
                base = os.path.basename(f.path)
                for suffix in ["", *(f".{i}" for i in range(1, self.backups + 1))]:
                    size = _size(f.path + suffix)
                    if size is None:
                        continue
                    out.append({**facts, "name": base + suffix, "stream": stream,
                                "size": size, "rotated": bool(suffix)})
        size = _size(os.path.join(self.log_dir, self.own_log))
        if size is not None:
            out.append({"name": self.own_log, "stream": "node", "size": size,
                        "rotated": False, "worker_id": None, "pid": os.getpid(),
                        "actor_id": None, "label": "node agent", "job_id": None,
                        "alive": True, "started_at": None})
        return out

    def servable(self, name: str) -> bool:
        if name == self.own_log:
            return True
        if not name.startswith("worker-"):
            return False
        worker_id = name[len("worker-"):].split("-", 1)[0]
        log = self.logs.get(worker_id)
        if log is None:
            return False
        names = {os.path.basename(f.path) for f in log.files.values()}
        return name in names or any(name == f"{n}.{i}" for n in names
                                    for i in range(1, self.backups + 1))

    def read(self, name: str, offset: int, max_bytes: int) -> dict:
        """``max_bytes`` (at most READ_LIMIT) of the file from ``offset``; a negative
        offset reads its last ``max_bytes``.  Whole lines only, unless one line is
        longer than the read or the file ends mid-line.  ``next`` is where to read
        on; an offset past the end (the file was rotated meanwhile) reads from its
        start (``reset``)."""
        if not self.servable(name):
            raise LookupError(f"node {self.node_id[:12]} has no log file named {name!r}")
        self.flush()
        return read_chunk(os.path.join(self.log_dir, name), offset, max_bytes)


def read_chunk(path: str, offset: int, max_bytes: int) -> dict:
    """The read of :meth:`WorkerLogs.read` on any file (the dashboard reads its own
    folder with it too)."""
    max_bytes = max(1, min(int(max_bytes), READ_LIMIT))
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        reset = offset > size
        tail = offset < 0
        if tail:
            offset = max(0, size - max_bytes)
        elif reset:
            offset = 0
        f.seek(offset)
        data = f.read(max_bytes)
    if tail and offset > 0 and b"\n" in data[:-1]:  # start at a line's start
        skip = data.index(b"\n") + 1
        data, offset = data[skip:], offset + skip
    if offset + len(data) < size:  # more to come: stop at a line's end
        cut = data.rfind(b"\n")
        if cut >= 0:
            data = data[:cut + 1]
    return {"data": data, "offset": offset, "next": offset + len(data), "size": size,
            "reset": reset}


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None
