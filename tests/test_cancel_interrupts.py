"""Cancelling a running task must leave its worker process sound.

A cancel interrupts the thread running the task.  Landed inside an import, the
interrupt used to break the worker for good: just after importlib's
``_imp.acquire_lock()`` it stranded the global import lock (every later import on
another thread of that worker hung: a streaming_split consumer's prefetch
thread), and inside a module's code it left the module
half made.  A cancel now waits for the import under way.  The lock tests make the
lock step likely (a second thread keeps the import lock busy, so the task's
imports wait in ``acquire_lock``), cancel many times, and check the same worker
afterwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

import shoal
from tests.utils import wait_for_file

pytestmark = pytest.mark.timeout(120)

ROUNDS = 12


def _import_under_contention(started_path: str) -> None:
    """Import (missing modules) for ever while another thread keeps taking the
    import lock, so an interrupt that lands in an import mostly lands right after
    an acquire."""
    import _imp
    import importlib

    stop = threading.Event()

    def contend() -> None:
        while not stop.is_set():
            _imp.acquire_lock()
            time.sleep(0.0005)
            _imp.release_lock()
            time.sleep(0.0005)  # the task's imports get their turn

    contender = threading.Thread(target=contend, daemon=True)
    contender.start()
    with open(started_path, "w") as f:
        f.write(str(os.getpid()))
    try:
        i = 0
        while True:
            i += 1
            try:
                importlib.import_module(f"shoal_test_no_such_module_{i}")
            except ModuleNotFoundError:
                pass
            time.sleep(0.002)  # not importing: where a cancel may land
    finally:
        stop.set()
        contender.join()


def _process_can_import() -> tuple[int, bool, bool]:
    """(pid, import lock still held by someone, another thread could import)."""
    import _imp
    import importlib

    done = threading.Event()

    def other_thread() -> None:
        importlib.import_module("json.tool")
        done.set()

    threading.Thread(target=other_thread, daemon=True).start()
    imported = done.wait(5)
    return os.getpid(), _imp.lock_held(), imported


@shoal.remote(max_retries=0)
def importer(started_path: str) -> None:
    _import_under_contention(started_path)


@shoal.remote
def probe() -> tuple[int, bool, bool]:
    return _process_can_import()


def _cancel_when_started(ref, started, get_timeout: float = 20) -> int:
    wait_for_file(str(started), timeout=20)
    pid = int(started.read_text())
    started.unlink()
    shoal.cancel(ref)
    with pytest.raises(shoal.exceptions.TaskCancelledError):
        shoal.get(ref, timeout=get_timeout)
    return pid


def test_cancelled_task_leaves_its_worker_able_to_import(shutdown_only, tmp_path):
    shoal.init(num_cpus=1)
    started = tmp_path / "started"
    same_worker = 0
    for _ in range(ROUNDS):
        pid = _cancel_when_started(importer.remote(str(started)), started)
        probe_pid, lock_held, imported = shoal.get(probe.remote(), timeout=30)
        assert imported, "a thread of the worker that ran the cancelled task cannot import"
        assert not lock_held, "the import lock is still held after the task was cancelled"
        same_worker += probe_pid == pid
    assert same_worker > 0  # the probes did run where the cancelled tasks ran


SLOW_MODULE = """
import os, time
with open(os.environ["SHOAL_TEST_RUNS_FILE"], "a") as f:
    f.write("run\\n")
start = time.monotonic()
while time.monotonic() - start < 0.4:  # Python code, so an interrupt has somewhere to land
    pass
DONE = True
"""


@shoal.remote(max_retries=0)
def import_then_wait(directory: str, name: str, started_path: str) -> None:
    import importlib
    import sys

    sys.path.insert(0, directory)
    with open(started_path, "w") as f:
        f.write(str(os.getpid()))
    importlib.import_module(name)
    time.sleep(60)


@shoal.remote
def module_done(directory: str, name: str) -> tuple[int, bool]:
    import importlib
    import sys

    if directory not in sys.path:
        sys.path.insert(0, directory)
    return os.getpid(), importlib.import_module(name).DONE


def test_cancel_waits_for_the_import_under_way(shutdown_only, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("SHOAL_TEST_RUNS_FILE", str(runs))
    shoal.init(num_cpus=1)
    name = f"shoal_test_slow_module_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE)
    started = tmp_path / "started"
    ref = import_then_wait.remote(str(tmp_path), name, str(started))
    pid = _cancel_when_started(ref, started)
    probe_pid, done = shoal.get(module_done.remote(str(tmp_path), name), timeout=30)
    assert done
    assert probe_pid == pid  # one CPU: the worker that ran the cancelled task
    assert runs.read_text().count("run") == 1  # the first import finished and was kept
