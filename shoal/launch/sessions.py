"""What this machine remembers about the shoal processes started on it.

::

    $SHOAL_SESSION_DIR  (default: /tmp/shoal-sessions)
      cluster.json              the head last started here by ``shoal start --head``
                                (or by ``cluster_utils.Cluster`` when no other head
                                was live): address, token, pid;
                                ``shoal.init(address="auto")``
      clusters/HOST_PORT.json   address and token of every head started on this
                                machine (``shoal start`` or ``cluster_utils.Cluster``),
                                so ``shoal.init(address="HOST:PORT")`` needs no token
      started/PID.json          one per process ``shoal start`` left running: what
                                ``shoal stop`` stops
      SESSION/logs/             the logs of one session's processes; SESSION is
                                DATE-TIME-PID-RANDOM, PID the process that made it

Session folders are pruned while a local cluster shuts down (its processes stop
meanwhile; pruning at start-up would delay the first result): all but the newest
KEEP_SESSIONS whose maker has exited and that no running ``shoal start`` process
uses, at most PRUNE_PER_SESSION at a time (~1 ms each).

Files holding a token are written atomically with mode 0600.  A record whose
process no longer exists (same pid, same start time) is stale and ignored.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time

# The line a starting node prints on stdout once it serves (then a JSON object).
READY_PREFIX = "SHOAL_READY "
KEEP_SESSIONS = 20
PRUNE_PER_SESSION = 50


def session_root() -> str:
    return os.environ.get("SHOAL_SESSION_DIR") or os.path.join(
        tempfile.gettempdir(), "shoal-sessions")


def cluster_file() -> str:
    return os.path.join(session_root(), "cluster.json")


def _cluster_path(address: str) -> str:
    name = address.replace(":", "_").replace("/", "_")
    return os.path.join(session_root(), "clusters", f"{name}.json")


def _started_dir() -> str:
    return os.path.join(session_root(), "started")


def read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_private_json(path: str, data: dict) -> None:
    """Atomically write ``data`` readable by this user only."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def process_matches(pid: int, create_time: float | None) -> bool:
    """Is ``pid`` still the very process we recorded (not a recycled pid)?"""
    import psutil  # ~20 ms: not on a driver's start-up path

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# ---- heads ----------------------------------------------------------------------------
def remember_cluster(record: dict, default: bool) -> None:
    """``record``: address, token, pid, create_time, session.  ``default``: also
    make it what ``address="auto"`` finds."""
    write_private_json(_cluster_path(record["address"]), record)
    if default:
        write_private_json(cluster_file(), record)


def forget_cluster(address: str) -> dict | None:
    """Remove the head's record; returns what it said (e.g. its dashboard's pid)."""
    record = read_json(_cluster_path(address))
    _remove(_cluster_path(address))
    current = read_json(cluster_file())
    if current is not None and current.get("address") == address:
        _remove(cluster_file())
    return record


def live_cluster(record: dict | None) -> dict | None:
    """``record`` if its head process is still running, else None."""
    if record is None or "pid" not in record:
        return record
    return record if process_matches(record["pid"], record.get("create_time")) else None


def default_cluster() -> dict | None:
    return read_json(cluster_file())


def known_cluster(address: str) -> dict | None:
    """The record of the live cluster at ``address`` this machine started, if any."""
    return live_cluster(read_json(_cluster_path(address)))


def known_token(address: str) -> str | None:
    record = live_cluster(read_json(_cluster_path(address)))
    return record.get("token") if record else None


# ---- processes started by `shoal start` ------------------------------------------------
def record_started(record: dict) -> None:
    write_private_json(os.path.join(_started_dir(), f"{record['pid']}.json"), record)


def started_records() -> list[dict]:
    try:
        names = sorted(os.listdir(_started_dir()))
    except OSError:
        return []
    out = []
    for name in names:
        if name.endswith(".json"):
            record = read_json(os.path.join(_started_dir(), name))
            if record is not None and "pid" in record:
                out.append(record)
    return out


def forget_started(pid: int) -> None:
    _remove(os.path.join(_started_dir(), f"{pid}.json"))


# ---- session folders -------------------------------------------------------------------
def new_session() -> tuple[str, str]:
    """A new session's name and its (created) log folder."""
    session = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{secrets.token_hex(3)}"
    log_dir = os.path.join(session_root(), session, "logs")
    os.makedirs(log_dir, exist_ok=True)
    return session, log_dir


def _session_maker(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) != 4 or not (parts[0].isdigit() and parts[2].isdigit()):
        return None  # not a session folder (clusters/, started/, ...)
    return int(parts[2])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_sessions(keep: int = KEEP_SESSIONS, limit: int = PRUNE_PER_SESSION) -> list[str]:
    """Remove old session folders (see the module docstring); returns their names."""
    root = session_root()
    try:
        names = sorted((n for n in os.listdir(root) if _session_maker(n) is not None),
                       reverse=True)  # newest first: the name starts with the time
    except OSError:
        return []
    old = names[keep:]
    if not old:
        return []
    in_use = {r.get("session") for r in started_records() if _pid_alive(int(r["pid"]))}
    removed = []
    for name in reversed(old):  # oldest first
        if len(removed) >= limit:
            break
        if name in in_use or _pid_alive(_session_maker(name)):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)  # a clean-up only
        removed.append(name)
    return removed
