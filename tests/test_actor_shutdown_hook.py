"""``__ray_shutdown__``: run when an actor ends gracefully (``__ray_terminate__``,
or its last handle going out of scope), before the atexit handlers; not on
``kill``; an exception in it does not stop the exit; a hook that hangs is cut
short by the graceful-shutdown timeout."""

from __future__ import annotations

import atexit
import os
import time

import psutil
import pytest

import shoal
from shoal.exceptions import ActorDiedError
from shoal.util.state import list_tasks
from tests.utils import wait_for_condition


def _append(path: str, word: str) -> None:
    with open(path, "a") as f:
        f.write(word + "\n")


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


@shoal.remote
class Hooked:
    def __init__(self, log: str, fail: bool = False, hang_s: float = 0.0):
        self.log, self.fail, self.hang_s = log, fail, hang_s
        atexit.register(_append, log, "atexit")

    def __ray_shutdown__(self):
        _append(self.log, "shutdown")
        if self.hang_s:
            time.sleep(self.hang_s)
            _append(self.log, "shutdown-finished")
        if self.fail:
            raise RuntimeError("cleanup failed")

    def pid(self):
        return os.getpid()


def test_a_hanging_hook_is_cut_short_by_the_timeout(shutdown_only, tmp_path):
    shoal.init(num_cpus=1, _system_config={"actor_graceful_shutdown_timeout_ms": 500})
    log = str(tmp_path / "log")
    actor = Hooked.remote(log, hang_s=20)
    pid = shoal.get(actor.pid.remote(), timeout=30)
    del actor
    wait_for_condition(lambda: _lines(log) == ["shutdown"], timeout=30)
    wait_for_condition(lambda: not psutil.pid_exists(pid), timeout=10)
    assert _lines(log) == ["shutdown"]


def test_terminate_runs_the_hook_then_atexit_and_kill_does_not(shoal_cluster, tmp_path):
    log, killed_log = str(tmp_path / "log"), str(tmp_path / "killed")
    actor, killed = Hooked.remote(log), Hooked.remote(killed_log)
    pid = shoal.get(actor.pid.remote(), timeout=30)
    killed_pid = shoal.get(killed.pid.remote(), timeout=30)
    actor.__ray_terminate__.remote()
    shoal.kill(killed)
    wait_for_condition(lambda: _lines(log) == ["shutdown", "atexit"], timeout=30)
    wait_for_condition(lambda: not psutil.pid_exists(pid), timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(actor.pid.remote(), timeout=30)
    wait_for_condition(lambda: not psutil.pid_exists(killed_pid), timeout=30)
    assert _lines(killed_log) == []


def test_the_last_handle_going_away_runs_the_hook(shoal_cluster, tmp_path):
    log = str(tmp_path / "log")
    actor = Hooked.remote(log)
    shoal.get(actor.pid.remote(), timeout=30)
    del actor
    wait_for_condition(lambda: _lines(log) == ["shutdown", "atexit"], timeout=30)
    # the owner's terminate call is not one of the program's tasks
    assert not [t for t in list_tasks(limit=None) if t.name == "__ray_terminate__"]


def test_a_failing_hook_does_not_stop_the_exit(shoal_cluster, tmp_path):
    log = str(tmp_path / "log")
    actor = Hooked.remote(log, fail=True)
    pid = shoal.get(actor.pid.remote(), timeout=30)
    actor.__ray_terminate__.remote()
    wait_for_condition(lambda: not psutil.pid_exists(pid), timeout=30)
    assert _lines(log) == ["shutdown", "atexit"]
