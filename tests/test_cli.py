"""``shoal start | status | stop`` as real subprocesses, each test with its own
session directory (SHOAL_SESSION_DIR) so that ``shoal stop`` only sees what the
test started; whatever a test started is stopped in the fixture's ``finally``."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import psutil
import pytest

import shoal
from tests.utils import REPO_ROOT, SESSION_TAG_ENV, pid_gone, subprocess_env, wait_for_condition

STORE = str(64 << 20)


@shoal.remote
def print_marker(text: str) -> int:
    print(text)
    return os.getpid()


class Cli:
    def __init__(self, session_dir: str) -> None:
        self.session_dir = session_dir
        self.env = subprocess_env(os.environ[SESSION_TAG_ENV])
        self.env["SHOAL_SESSION_DIR"] = session_dir
        self.env.pop("SHOAL_TOKEN", None)
        self.env.pop("SHOAL_ADDRESS", None)

    def run(self, *args: str, script: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [shutil.which("shoal") or "shoal"] if script else [sys.executable, "-m", "shoal"]
        return subprocess.run([*cmd, *args], env=self.env, cwd=str(REPO_ROOT),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def started(self) -> list[dict]:
        folder = os.path.join(self.session_dir, "started")
        if not os.path.isdir(folder):
            return []
        out = []
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                out.append(json.load(f))
        return out


@pytest.fixture
def cli(tmp_path, monkeypatch):
    if shoal.is_initialized():
        shoal.shutdown()
    monkeypatch.setenv("SHOAL_SESSION_DIR", str(tmp_path))
    monkeypatch.delenv("SHOAL_TOKEN", raising=False)
    c = Cli(str(tmp_path))
    try:
        yield c
    finally:
        shoal.shutdown()
        records = c.started()
        c.run("stop", "--force")
        for record in records:  # in case stop itself failed
            try:
                psutil.Process(record["pid"]).kill()
            except psutil.NoSuchProcess:
                pass
            try:
                os.unlink(record["store_path"])
            except OSError:
                pass


def _alive(pid: int) -> bool:
    return not pid_gone(pid)


def test_start_head_join_node_status_and_stop(cli):
    head = cli.run("start", "--head", "--port", "0", "--num-cpus", "1", "--resources",
                   '{"head_res": 1}', "--object-store-memory", STORE, "--node-timeout-s", "2")
    assert head.returncode == 0, head.stderr
    joined = re.search(r"shoal start --address (\S+) --token (\S+)", head.stdout)
    assert joined, head.stdout
    address, token = joined.groups()
    assert 'shoal.init(address="auto")' in head.stdout and f"SHOAL_TOKEN={token}" in head.stdout

    node = cli.run("start", "--address", address, "--token", token, "--num-cpus", "1",
                   "--resources", '{"n1": 2}', "--object-store-memory", STORE)
    assert node.returncode == 0, node.stderr
    assert f"joined the cluster at {address}" in node.stdout
    records = cli.started()
    assert sorted(r["head"] for r in records) == [False, True]

    # a driver finds the cluster through the session files, without a token
    shoal.init(address="auto")
    assert shoal.cluster_resources()["n1"] == 2

    @shoal.remote
    def one() -> int:
        return 1

    assert shoal.get(one.remote(), timeout=30) == 1
    stuck = one.options(resources={"nowhere": 1}).remote()  # demand nothing serves

    def status_shows_demand() -> str:
        out = cli.run("status")
        assert out.returncode == 0, out.stderr
        return out.stdout if "nowhere: 1" in out.stdout else ""

    text = wait_for_condition(status_shows_demand, timeout=20)
    assert "Nodes: 2 alive, 0 dead" in text
    assert f"{address} (head)" in text
    assert "n1 0/2" in text and "head_res" in text
    assert "(no node has these resources)" in text
    assert "after 2 s without a heartbeat" in text
    del stuck
    shoal.shutdown()

    procs = [psutil.Process(r["pid"]) for r in records]
    procs += [c for p in procs for c in p.children(recursive=True)]
    stop = cli.run("stop")
    assert stop.returncode == 0, stop.stderr
    assert "Stopped node" in stop.stdout and "Stopped head" in stop.stdout
    assert "Stopped 2 shoal process(es)" in stop.stdout
    assert not any(_alive(p.pid) for p in procs)
    assert not any(os.path.exists(r["store_path"]) for r in records)
    assert cli.started() == []
    after = cli.run("status")
    assert after.returncode == 1 and "no running cluster" in after.stderr


def test_start_head_serves_the_dashboard_until_stop(cli):
    import urllib.request

    head = cli.run("start", "--head", "--port", "0", "--num-cpus", "1",
                   "--object-store-memory", STORE, "--dashboard-port", "0")
    assert head.returncode == 0, head.stderr
    found = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)#token=(\w+)", head.stdout)
    assert found, head.stdout
    base, token = found.groups()
    assert f"--token {token}" in head.stdout  # the cluster's token
    request = urllib.request.Request(base + "api/overview",
                                     headers={"Authorization": f"Bearer {token}"})
    overview = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert overview["alive_nodes"] == 1
    ctx = shoal.init(address="auto")  # a driver there learns the link too
    assert ctx["dashboard_url"] == f"{base}#token={token}"
    # the state API from the command line, while the driver is connected
    listed = cli.run("list", "nodes")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["is_head_node"] is True
    jobs = cli.run("list", "jobs")
    assert json.loads(jobs.stdout.splitlines()[0])["job_id"] == ctx["job_id"], jobs.stderr
    summary = cli.run("summary", "tasks")
    assert summary.returncode == 0 and "total_tasks" in json.loads(summary.stdout)
    trace = os.path.join(cli.session_dir, "trace.json")
    written = cli.run("timeline", "-o", trace)
    assert written.returncode == 0, written.stderr
    with open(trace) as f:
        assert isinstance(json.load(f), list)
    bad = cli.run("list", "tasks", "--filter", "nonsense")
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr
    # shoal logs: every node's files, and one of them
    pid = shoal.get(print_marker.remote("cli-logs-marker"), timeout=30)
    listing = cli.run("logs")
    assert listing.returncode == 0, listing.stderr
    [name] = [line.split()[1] for line in listing.stdout.splitlines()
              if line.split()[1].endswith(f"-{pid}.out")]
    wait_for_condition(lambda: "cli-logs-marker" in cli.run("logs", name).stdout, timeout=15)
    missing = cli.run("logs", "worker-nope.out")
    assert missing.returncode == 1 and "no log file named" in missing.stderr
    shoal.shutdown()
    with open(os.path.join(cli.session_dir, "cluster.json")) as f:
        record = json.load(f)
    dashboard = psutil.Process(record["dashboard_pid"])
    stop = cli.run("stop")
    assert stop.returncode == 0, stop.stderr
    assert not _alive(dashboard.pid)


def test_stop_with_nothing_started_says_so(cli):
    out = cli.run("stop", script=shutil.which("shoal") is not None)
    assert out.returncode == 0, out.stderr
    assert "No shoal processes" in out.stdout


def test_joining_a_missing_head_fails_fast_naming_the_address(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        started = time.monotonic()
        out = cli.run("start", "--address", address, "--token", "t", "--num-cpus", "1",
                      "--object-store-memory", STORE)
    assert out.returncode == 1
    assert f"no shoal head is listening at {address}" in out.stderr
    assert time.monotonic() - started < 15
    assert cli.started() == []


def test_second_head_is_refused_and_status_of_a_missing_cluster_is_clear(cli):
    first = cli.run("start", "--head", "--port", "0", "--num-cpus", "1",
                    "--object-store-memory", STORE)
    assert first.returncode == 0, first.stderr
    second = cli.run("start", "--head", "--port", "0", "--num-cpus", "1",
                     "--object-store-memory", STORE)
    assert second.returncode == 1 and "already running" in second.stderr
    assert len(cli.started()) == 1
    missing = cli.run("status", "--address", "127.0.0.1:1", "--token", "t")
    assert missing.returncode == 1 and "127.0.0.1:1" in missing.stderr


def test_memory_lists_the_objects_of_a_started_cluster(cli):
    head = cli.run("start", "--head", "--port", "0", "--num-cpus", "1",
                   "--object-store-memory", STORE)
    assert head.returncode == 0, head.stderr
    shoal.init(address="auto")
    import numpy as np

    big = shoal.put(np.zeros(1 << 20, dtype=np.uint8))
    nested = shoal.put([big])
    out = cli.run("memory")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "--- Summary for node address: 127.0.0.1" in text
    lines = [line for line in text.splitlines() if big.hex() in line]
    assert len(lines) == 1 and "LOCAL_REFERENCE" in lines[0] and "Driver" in lines[0]
    assert str(os.getpid()) in lines[0] and "shm on" in lines[0]
    assert nested.hex() in text
    assert "Total: 2 references to 2 objects" in text
    stats = cli.run("memory", "--stats-only", "--units", "MB")
    assert stats.returncode == 0, stats.stderr
    assert big.hex() not in stats.stdout and "shared-memory store" in stats.stdout
    shoal.shutdown()
    none = cli.run("memory", "--address", "127.0.0.1:1", "--token", "x")
    assert none.returncode == 1 and "shoal: error:" in none.stderr


@pytest.mark.parametrize("flags, error", [
    (["--num-cpus", "-3"], "--num-cpus must be a finite number >= 0, got -3"),
    (["--num-gpus", "nan"], "--num-gpus must be a finite number >= 0, got nan"),
    (["--memory", "-1"], "--memory must be a finite number >= 0, got -1"),
    (["--resources", "{bad"], "--resources must be a JSON object such as '{\"gpu_box\": 1}', "
                              "got '{bad' (Expecting property name"),
    (["--resources", '{"gpu_box": -2}'], "--resources['gpu_box'] must be a finite number >= 0"),
    (["--resources", '{"CPU": 4}'], "--resources must not contain 'CPU': give it as --num-cpus"),
    (["--object-store-memory", "10"], "--object-store-memory must be at least 33554432 bytes "
                                      "(32 MiB), got 10"),
    (["--object-store-memory", "0"], "--object-store-memory must be at least"),
    (["--node-timeout-s", "-1"], "--node-timeout-s must be a finite number of seconds > 0"),
])
def test_bad_start_flag_is_refused_naming_flag_and_value(cli, flags, error):
    # '--num-cpus -3' used to start a head whose status showed 'CPU -3/-3'
    out = cli.run("start", "--head", "--port", "0", *flags)
    assert out.returncode == 1
    assert out.stderr.startswith(f"shoal: error: {error}"), out.stderr
    assert cli.started() == []


def test_a_joining_node_checks_its_flags_too(cli):
    out = cli.run("start", "--address", "127.0.0.1:1", "--token", "t", "--num-cpus", "-1")
    assert out.returncode == 1
    assert "--num-cpus must be a finite number >= 0, got -1" in out.stderr, out.stderr


def test_version_is_printed(cli):
    for script in {False, shutil.which("shoal") is not None}:
        out = cli.run("--version", script=script)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"shoal {shoal.__version__}"


def test_status_of_a_ray_client_address_says_it_is_not_supported(cli):
    out = cli.run("status", "--address", "ray://127.0.0.1:10001")
    assert out.returncode == 1
    assert "Ray Client addresses are not supported" in out.stderr, out.stderr
