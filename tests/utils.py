"""Helpers shared by the shoal test suite.

Nothing in here imports shoal, so the helpers can also be used by the session-level
leak checker in conftest.py even when shoal itself fails to import.
"""

from __future__ import annotations

import glob
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent

# Every process started from this test session inherits this variable (it is set in
# conftest.py at import time), which lets the leak checker recognise processes that
# were orphaned (re-parented to init) without touching processes of other sessions.
SESSION_TAG_ENV = "SHOAL_TEST_SESSION_TAG"

# Command-line markers of the processes a shoal cluster starts (node, worker, and any
# other ``python -m shoal.node.*`` / ``shoal.core.*`` helper such as a fork server).
SHOAL_CMDLINE_MARKERS = ("shoal.node.main", "shoal.core.worker_main", "shoal.node.", "shoal.core.",
                         "shoal.dashboard")

# Processes that the Python standard library starts on its own and that exit with
# their parent; they are not shoal's responsibility.
_STDLIB_HELPER_MARKERS = ("multiprocessing.resource_tracker",)

SHM_GLOB = "/dev/shm/shoal-*"


# --------------------------------------------------------------------------- polling


def wait_for_condition(
    predicate: Callable[[], object],
    timeout: float = 10,
    interval: float = 0.05,
    message: str | None = None,
):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Exceptions raised by the predicate are treated as "not yet" and the last one is
    reported if the deadline passes. Raises AssertionError on timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: object = None
    while True:
        try:
            last_value = predicate()
            if last_value:
                return last_value
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - re-reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            detail = (
                f"last exception: {last_exc!r}"
                if last_exc is not None
                else f"last value: {last_value!r}"
            )
            raise AssertionError(f"condition not met within {timeout} s: {what} ({detail})")
        time.sleep(interval)


def wait_for_file(path: str | os.PathLike, timeout: float = 30.0, interval: float = 0.02):
    """Block until ``path`` exists (used *inside* tasks as a gate the test opens).

    Raises TimeoutError after ``timeout`` seconds so that a forgotten gate can never
    hang a worker forever.
    """
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gate file {path} did not appear within {timeout} s")
        time.sleep(interval)


def open_gate(path: str | os.PathLike) -> None:
    Path(path).write_text("open")


# --------------------------------------------------------------------------- processes


def is_alive(proc: psutil.Process) -> bool:
    """True if ``proc`` (the very same process, not a recycled pid) still runs."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def pid_gone(pid: int) -> bool:
    """True once process ``pid`` has exited (a zombie not yet reaped counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def describe(proc: psutil.Process) -> str:
    return f"pid={proc.pid} cmdline={_cmdline(proc)[:200]!r}"


def live_descendants(pid: int | None = None) -> list[psutil.Process]:
    """Live (non-zombie) descendants of ``pid`` (default: this process).

    Standard-library helper processes (the multiprocessing resource tracker) are
    left out: they exit together with their parent.
    """
    try:
        root = psutil.Process(pid if pid is not None else os.getpid())
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    result = []
    for child in children:
        if not is_alive(child):
            continue
        if any(marker in _cmdline(child) for marker in _STDLIB_HELPER_MARKERS):
            continue
        result.append(child)
    return result


def is_shoal_process(proc: psutil.Process) -> bool:
    cmd = _cmdline(proc)
    return any(marker in cmd for marker in SHOAL_CMDLINE_MARKERS)


def processes_tagged(tag_prefix: str, shoal_only: bool = False) -> list[psutil.Process]:
    """Live processes whose environment carries a session tag starting with ``tag_prefix``."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env_tag = proc.environ().get(SESSION_TAG_ENV, "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if not env_tag.startswith(tag_prefix):
            continue
        if shoal_only and not is_shoal_process(proc):
            continue
        if is_alive(proc):
            found.append(proc)
    return found


def kill_processes(procs: Iterable[psutil.Process], timeout: float = 5.0) -> None:
    procs = [p for p in procs if is_alive(p)]
    for proc in procs:
        try:
            proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(procs, timeout=timeout)


def listening_sockets(proc: psutil.Process) -> list:
    """Inet sockets of ``proc`` that accept traffic: TCP LISTEN and unconnected UDP."""
    getter = getattr(proc, "net_connections", None) or proc.connections
    result = []
    for conn in getter(kind="inet"):
        if conn.status == psutil.CONN_LISTEN:
            result.append(conn)
        elif conn.status == psutil.CONN_NONE and conn.laddr and not conn.raddr:
            result.append(conn)  # bound UDP socket
    return result


# --------------------------------------------------------------------------- shared memory


def shm_files() -> set[str]:
    return set(glob.glob(SHM_GLOB))


def shm_files_in_use(candidates: set[str]) -> set[str]:
    """Subset of ``candidates`` mapped or opened by any live process."""
    if not candidates:
        return set()
    in_use: set[str] = set()
    for pid_dir in glob.glob("/proc/[0-9]*"):
        try:
            with open(os.path.join(pid_dir, "maps"), encoding="utf-8", errors="replace") as fh:
                maps = fh.read()
        except OSError:
            maps = ""
        for path in candidates:
            if path in maps:
                in_use.add(path)
        try:
            fds = os.listdir(os.path.join(pid_dir, "fd"))
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(os.path.join(pid_dir, "fd", fd))
            except OSError:
                continue
            if target in candidates:
                in_use.add(target)
    return in_use


def shm_files_used_by(pids: Iterable[int]) -> set[str]:
    """``/dev/shm/shoal-*`` paths that the given processes map or hold open."""
    prefix = SHM_GLOB[:-1]
    found: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    idx = line.find(prefix)
                    if idx != -1:
                        found.add(line[idx:].rstrip("\n").removesuffix(" (deleted)"))
        except OSError:
            pass
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(prefix):
                found.add(target.removesuffix(" (deleted)"))
    return found


# --------------------------------------------------------------------------- subprocesses

# pids of every driver subprocess started through start_driver(); the session leak
# check uses them to attribute shared-memory files to this test session.
STARTED_DRIVER_PIDS: set[int] = set()


def subprocess_env(tag: str) -> dict[str, str]:
    """Environment for a driver subprocess: shoal importable, tagged with ``tag``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env[SESSION_TAG_ENV] = tag
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_driver(script: str, tag: str, args: Iterable[str] = (), **kwargs) -> subprocess.Popen:
    """Start ``python -c script *args`` as a separate driver process (binary pipes)."""
    kwargs.setdefault("stdin", subprocess.PIPE)
    kwargs.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=subprocess_env(tag),
        cwd=str(REPO_ROOT),
        **kwargs,
    )
    STARTED_DRIVER_PIDS.add(proc.pid)
    return proc


_UNREAD: dict[int, bytes] = {}  # pid -> output read past the last line returned


def read_line_with_prefix(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    """Read ``proc.stdout`` until a line starting with ``prefix``; return the rest of it.

    Raises AssertionError (with everything read so far) on EOF or timeout.  What
    was read past that line is kept for the next call on the same process (two
    lines can arrive in one read).
    """
    fd = proc.stdout.fileno()
    buf = _UNREAD.pop(proc.pid, b"")
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(prefix):
                _UNREAD[proc.pid] = buf
                return text[len(prefix) :]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"no line starting with {prefix!r} within {timeout} s; read {buf!r}"
            )
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(
                    f"driver exited (rc={proc.poll()}) before printing {prefix!r}; read {buf!r}"
                )
            buf += chunk


def stop_driver(proc: subprocess.Popen) -> None:
    """Best-effort cleanup of a driver subprocess (used in finally blocks)."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
