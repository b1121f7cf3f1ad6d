"""Shared fixtures for the shoal test suite.

* ``shoal_cluster`` (module scope): one local cluster shared by a whole test module.
  ``shoal.init(num_cpus=2)`` by default; a module may set ``CLUSTER_INIT_KWARGS`` to
  start its shared cluster with other arguments (e.g. custom resources).
* ``shutdown_only`` (function scope): for tests that call ``shoal.init`` themselves
  with special arguments, or that kill processes. Such tests must come *before* the
  tests using ``shoal_cluster`` in a module, because the shared cluster stays up
  until the end of the module.
* a session-wide autouse check that no process and no ``/dev/shm/shoal-*`` file
  outlives the test session.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import psutil
import pytest

from tests.utils import (
    SESSION_TAG_ENV,
    STARTED_DRIVER_PIDS,
    describe,
    is_shoal_process,
    kill_processes,
    live_descendants,
    processes_tagged,
    shm_files,
    shm_files_in_use,
    shm_files_used_by,
)

DEFAULT_TEST_TIMEOUT = 60
LEAK_GRACE_SECONDS = 10.0

# Set at import time so that every process started by this session (cluster
# processes, driver subprocesses and their children) inherits it.
SESSION_TAG = f"shoal-tests-{os.getpid()}-{uuid.uuid4().hex[:8]}"
os.environ[SESSION_TAG_ENV] = SESSION_TAG


def pytest_collection_modifyitems(config, items):
    """Every test gets a pytest-timeout unless it sets its own."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


@pytest.fixture(scope="module")
def shoal_cluster(request):
    """One local cluster for a whole module; yields the value returned by init()."""
    import shoal

    kwargs = getattr(request.module, "CLUSTER_INIT_KWARGS", {"num_cpus": 2})
    if shoal.is_initialized():
        # A previous test leaked a cluster; do not let it change this module's setup.
        shoal.shutdown()
    ctx = shoal.init(**kwargs)
    try:
        yield ctx
    finally:
        shoal.shutdown()


@pytest.fixture
def shutdown_only():
    """The test inits shoal itself; shoal is shut down afterwards, whatever happens."""
    import shoal

    if shoal.is_initialized():
        pytest.fail(
            "shutdown_only requires shoal to be uninitialised, but a cluster is running "
            "(most likely the module-scoped shoal_cluster): order tests using "
            "shutdown_only before the tests using shoal_cluster in the module"
        )
    try:
        yield
    finally:
        shoal.shutdown()


def _leftover_processes() -> dict[int, psutil.Process]:
    found = {p.pid: p for p in live_descendants()}
    for proc in processes_tagged(SESSION_TAG):
        found.setdefault(proc.pid, proc)
    return found


# Shared memory is attributed to this session before it is flagged or deleted, so a
# concurrent session on the same machine (another developer's run) is never touched:
# a file is ours if one of our processes was seen mapping / holding it at the end of
# a test, or if its name carries the pid of one of our processes (pytest itself, its
# descendants, driver subprocesses). In CI nothing else runs, so every new file counts.
_OUR_PIDS: set[int] = {os.getpid()}
_OUR_SHM: set[str] = set()


def _observe_our_processes() -> None:
    procs = live_descendants() + processes_tagged(SESSION_TAG)
    pids = {p.pid for p in procs}
    _OUR_PIDS.update(pids)
    _OUR_SHM.update(shm_files_used_by(pids | {os.getpid()}))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    _observe_our_processes()


def _is_ours(path: str) -> bool:
    if os.environ.get("CI") == "true" or path in _OUR_SHM:
        return True
    pids = {str(pid) for pid in _OUR_PIDS | STARTED_DRIVER_PIDS}
    return any(token in pids for token in os.path.basename(path).split("-"))


@pytest.fixture(scope="session", autouse=True)
def no_leftover_processes_or_shared_memory():
    """At the end of the session no process and no shared memory may be left behind.

    Processes: live descendants of the pytest process, plus every live process that
    carries this session's environment tag, i.e. was started (possibly indirectly) by
    this session and then orphaned - such as shoal node and worker processes
    (``shoal.node.main``, ``shoal.core.worker_main``, ...) of a driver that died.
    Processes of other sessions on the machine are never touched.

    Shared memory: ``/dev/shm/shoal-*`` files created during the session, attributed
    to it (see ``_is_ours``), and no longer mapped or held open by any live process.

    Leftovers are killed / unlinked so the machine stays clean, then the session fails.
    """
    shm_at_start = shm_files()
    yield

    problems: list[str] = []
    try:
        import shoal

        if shoal.is_initialized():
            problems.append("shoal was still initialised at the end of the test session")
            shoal.shutdown()
    except ImportError:
        pass

    def leaked_shm() -> set[str]:
        new = {path for path in shm_files() - shm_at_start if _is_ours(path)}
        return new - shm_files_in_use(new)

    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        procs = _leftover_processes()
        shm = leaked_shm()
        if (not procs and not shm) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)

    if procs:
        problems.append(
            "leftover processes:\n  "
            + "\n  ".join(
                describe(p) + (" [shoal]" if is_shoal_process(p) else "") for p in procs.values()
            )
        )
        kill_processes(procs.values())
        shm = leaked_shm()  # files the killed processes held are now unused
    if shm:
        problems.append("leftover shared memory:\n  " + "\n  ".join(sorted(shm)))
        for path in shm:
            try:
                os.unlink(path)
            except OSError:
                pass
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 24 MiB tmpfs mounted for the test (we are root here), unmounted after."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {out.stderr.strip() or out.returncode}")
    try:
        yield str(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
