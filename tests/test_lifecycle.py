"""Cluster lifecycle: clean shutdown, driver death, Ray compatibility, network exposure.

Every test here starts its own cluster (``shutdown_only``) or its own driver process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import textwrap
import time
import uuid

import psutil
import pytest

import shoal
from tests.utils import (
    SESSION_TAG_ENV,
    describe,
    is_alive,
    kill_processes,
    listening_sockets,
    live_descendants,
    processes_tagged,
    read_line_with_prefix,
    shm_files,
    shm_files_used_by,
    start_driver,
    stop_driver,
    wait_for_condition,
)

pytestmark = pytest.mark.timeout(60)

ORPHAN_DEADLINE = 15.0  # seconds for the processes of a dead driver to go away


@shoal.remote
def worker_pid():
    return os.getpid()


@shoal.remote
class PidActor:
    def pid(self):
        return os.getpid()


def _start_workers():
    """Run a task and an actor so the cluster has started worker processes; return pids."""
    actor = PidActor.remote()
    pids = {
        shoal.get(worker_pid.remote(), timeout=30),
        shoal.get(actor.pid.remote(), timeout=30),
    }
    return actor, pids


def _alive(procs):
    return [p for p in procs if is_alive(p)]


def _snapshot(pids):
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return procs


def _child_tag() -> str:
    """A tag for a driver subprocess; it extends the session tag so leaks are still caught."""
    return f"{os.environ[SESSION_TAG_ENV]}-{uuid.uuid4().hex[:8]}"


# A driver that starts a cluster, runs a task and an actor, prints every pid it knows of
# as "PIDS <json>", then blocks on stdin (argument "block") or simply exits ("exit")
# without calling shutdown.
DRIVER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import psutil
    import shoal

    shoal.init(num_cpus=2)

    @shoal.remote
    def pid():
        return os.getpid()

    @shoal.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pids = {shoal.get(pid.remote()), shoal.get(a.pid.remote())}
    pids |= {p.pid for p in psutil.Process().children(recursive=True)}
    print("PIDS " + json.dumps(sorted(pids)), flush=True)
    if sys.argv[-1] == "block":
        sys.stdin.read()
    """
)


def _assert_driver_processes_exit(procs, tag):
    def leftovers():
        alive = {p.pid: p for p in _alive(procs)}
        for proc in processes_tagged(tag):
            alive.setdefault(proc.pid, proc)
        return alive

    remaining = {}

    def none_left():
        remaining.clear()
        remaining.update(leftovers())
        return not remaining

    try:
        wait_for_condition(none_left, timeout=ORPHAN_DEADLINE, interval=0.1)
    except AssertionError:
        raise AssertionError(
            f"processes of the driver still alive after {ORPHAN_DEADLINE} s: "
            + "; ".join(describe(p) for p in remaining.values())
        ) from None


# --------------------------------------------------------------------------- shutdown


def test_shutdown_stops_every_process_it_started(shutdown_only):
    shoal.init(num_cpus=2)
    _actor, worker_pids = _start_workers()
    started = live_descendants()
    started_pids = {p.pid for p in started}
    assert worker_pids <= started_pids, (
        f"worker pids {worker_pids} should be descendants of the driver: {sorted(started_pids)}"
    )
    cluster_shm = shm_files_used_by(started_pids | {os.getpid()})
    shoal.shutdown()
    assert not shoal.is_initialized()
    wait_for_condition(
        lambda: not _alive(started),
        message="every process started by the cluster exits after shutdown()",
    )
    wait_for_condition(
        lambda: not (cluster_shm & shm_files()),
        message=f"shared memory of the cluster is removed by shutdown(): {sorted(cluster_shm)}",
    )


def test_init_after_shutdown_starts_a_working_cluster(shutdown_only):
    shoal.init(num_cpus=2)
    assert shoal.get(worker_pid.remote(), timeout=30) != os.getpid()
    shoal.shutdown()
    shoal.init(num_cpus=1)
    assert shoal.cluster_resources()["CPU"] == 1
    assert shoal.get(worker_pid.remote(), timeout=30) != os.getpid()


def test_shutdown_without_init_is_a_no_op(shutdown_only):
    shoal.shutdown()
    assert not shoal.is_initialized()


# --------------------------------------------------------------------------- driver death


def test_sigkilled_driver_leaves_no_processes(tmp_path):
    tag = _child_tag()
    with open(tmp_path / "driver.stderr", "wb") as stderr:
        driver = start_driver(DRIVER_SCRIPT, tag, args=["block"], stderr=stderr)
    procs = []
    try:
        pids = json.loads(read_line_with_prefix(driver, "PIDS ", timeout=45))
        procs = _snapshot(pids)
        assert procs, "the driver reported no cluster processes"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        _assert_driver_processes_exit(procs, tag)
    finally:
        stop_driver(driver)
        kill_processes(procs + processes_tagged(tag))


def test_driver_exiting_without_shutdown_leaves_no_processes(tmp_path):
    tag = _child_tag()
    stderr_path = tmp_path / "driver.stderr"
    with open(stderr_path, "wb") as stderr:
        driver = start_driver(DRIVER_SCRIPT, tag, args=["exit"], stderr=stderr)
    procs = []
    try:
        pids = json.loads(read_line_with_prefix(driver, "PIDS ", timeout=45))
        procs = _snapshot(pids)
        assert procs, "the driver reported no cluster processes"
        try:
            returncode = driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("driver did not exit within 30 s after its last statement")
        assert returncode == 0, stderr_path.read_text(errors="replace")[-3000:]
        _assert_driver_processes_exit(procs, tag)
    finally:
        stop_driver(driver)
        kill_processes(procs + processes_tagged(tag))


# --------------------------------------------------------------------------- Ray drop-in


RAY_PROGRAM = textwrap.dedent(
    """
    import shoal as ray

    ray.init(num_cpus=2)

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self, k=1):
            self.n += k
            return self.n

    futures = [square.remote(i) for i in range(4)]
    print("squares", ray.get(futures))

    counter = Counter.remote()
    for _ in range(3):
        counter.incr.remote()
    print("counter", ray.get(counter.incr.remote(10)))

    ref = ray.put({"answer": 42})
    ready, not_ready = ray.wait([ref, square.remote(5)], num_returns=2, timeout=30)
    print("wait", len(ready), len(not_ready))
    print("put", ray.get(ref)["answer"])
    print("resolved", ray.get(square.remote(ray.put(7))))

    ray.shutdown()
    print("done")
    """
)


def test_import_shoal_as_ray_runs_ordinary_ray_program():
    tag = _child_tag()
    driver = start_driver(RAY_PROGRAM, tag, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        out, err = driver.communicate(timeout=50)
    except subprocess.TimeoutExpired:
        pytest.fail("the Ray program did not finish within 50 s")
    finally:
        stop_driver(driver)
        kill_processes(processes_tagged(tag))
    stdout = out.decode(errors="replace")
    assert driver.returncode == 0, err.decode(errors="replace")[-3000:]
    lines = stdout.splitlines()
    for expected in (
        "squares [0, 1, 4, 9]",
        "counter 13",
        "wait 2 0",
        "put 42",
        "resolved 49",
        "done",
    ):
        assert expected in lines, f"{expected!r} missing from output:\n{stdout}"


# --------------------------------------------------------------------------- network exposure


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _cluster_address(ctx):
    address = ctx.address_info["address"]
    assert ctx["address"] == address
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def test_cluster_listens_on_loopback_only(shutdown_only):
    ctx = shoal.init(num_cpus=2)
    _actor, _pids = _start_workers()
    _, port = _cluster_address(ctx)
    procs = [psutil.Process()] + live_descendants()
    listening = []
    for proc in procs:
        try:
            listening += [(proc.pid, conn) for conn in listening_sockets(proc)]
        except psutil.NoSuchProcess:
            continue
    exposed = [(pid, conn.laddr) for pid, conn in listening if not _is_loopback(conn.laddr.ip)]
    assert not exposed, f"sockets bound to non-loopback addresses: {exposed}"
    assert port in {conn.laddr.port for _, conn in listening}, (
        f"the cluster address port {port} is not listened on by the cluster processes"
    )


def _send_and_expect_close(host, port, payload, timeout=20.0):
    """Send ``payload``; the server must close the connection within ``timeout`` s."""
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return  # closed while we were still sending
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if sock.recv(65536) == b"":
                    return
            except TimeoutError:
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                return
        raise AssertionError(
            f"server kept an unauthenticated connection open for {timeout} s "
            f"after receiving {payload[:40]!r}..."
        )


def _padded(data: bytes, size: int = 4096) -> bytes:
    return data + b"\x00" * max(0, size - len(data))


def test_unauthenticated_connections_are_closed_and_cluster_survives(shutdown_only):
    ctx = shoal.init(num_cpus=2)
    _actor, _pids = _start_workers()
    host, port = _cluster_address(ctx)
    servers = [
        proc
        for proc in [psutil.Process()] + live_descendants()
        if any(conn.laddr.port == port for conn in listening_sockets(proc))
    ]
    assert servers, f"no cluster process listens on port {port}"

    wrong_token = json.dumps({"type": "hello", "token": "wrong-token", "auth": "0" * 64}).encode()
    payloads = [
        os.urandom(4096),
        _padded(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        _padded(b"\xff" * 16),  # absurd length prefix in any byte order
        _padded(struct.pack("!I", len(wrong_token)) + wrong_token),
        _padded(struct.pack("<I", len(wrong_token)) + wrong_token),
    ]
    for payload in payloads:
        _send_and_expect_close(host, port, payload)

    assert all(is_alive(p) for p in servers), "the process serving the cluster port died"
    assert shoal.get(worker_pid.remote(), timeout=30) != os.getpid()
    _actor2, _ = _start_workers()


def test_a_partial_handshake_is_closed_after_the_deadline(shutdown_only, monkeypatch):
    """A peer that sends the start of a handshake and never the rest (a msgpack
    bin header announcing 32 KiB, under the handshake limit) must not hold a socket
    for ever (1 in ~25 runs of random bytes began so: the test above was flaky)."""
    monkeypatch.setenv("SHOAL_HANDSHAKE_TIMEOUT_S", "1")
    ctx = shoal.init(num_cpus=1)
    host, port = _cluster_address(ctx)
    started = time.monotonic()
    _send_and_expect_close(host, port, b"\xc6\x00\x00\x80\x00" + b"\x00" * 64, timeout=15.0)
    assert time.monotonic() - started < 10  # the deadline closed it, not something else
    assert shoal.get(worker_pid.remote(), timeout=30) != os.getpid()
