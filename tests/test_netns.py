"""The cluster as separate hosts: every node in its own network namespace, on a
bridge, with its own address in 198.18.0.0/15 (a benchmarking range that
belongs to no real network).  The head runs in one namespace, two nodes in two
others, and the driver in a fourth, so every connection between them is TCP
through veth pairs (the abstract Unix sockets shoal prefers on one machine are
per network namespace, so they cannot cross).

The driver runs tasks and actors on both nodes and moves objects between them;
then the test cuts one node's link (``ip link set DEV down``: its processes keep
running, its sockets stay open, nothing is said) and checks that the head
declares it dead within the (short) node timeout, and that the task it was
running is re-run on the other node (``max_retries``).

Skipped, with the reason, where namespaces cannot be created (not root, no
``ip``).  Names carry this process's pid; everything is torn down in a
``finally``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import pytest

from shoal.launch import sessions
from shoal.launch.node_process import NodeProcess, NodeSpec, start_node
from tests.utils import (
    REPO_ROOT,
    SESSION_TAG_ENV,
    STARTED_DRIVER_PIDS,
    read_line_with_prefix,
    stop_driver,
    subprocess_env,
    wait_for_condition,
)

NODE_TIMEOUT_S = 2.0
PID = os.getpid()
BRIDGE = f"shbr{PID}"
SUBNET = "198.18.0"


def ns_name(i: int) -> str:
    return f"shoal-{PID}-h{i}"


def veth_name(i: int) -> str:
    return f"shv{i}-{PID}"


def address(i: int) -> str:
    return f"{SUBNET}.{10 + i}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=check)


def create_hosts(count: int) -> None:
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("link", "set", BRIDGE, "up")
    for i in range(1, count + 1):
        ip("netns", "add", ns_name(i))
        ip("link", "add", veth_name(i), "type", "veth", "peer", "name", "eth0",
           "netns", ns_name(i))
        ip("link", "set", veth_name(i), "master", BRIDGE, "up")
        ip("netns", "exec", ns_name(i), "ip", "addr", "add", f"{address(i)}/24", "dev", "eth0")
        ip("netns", "exec", ns_name(i), "ip", "link", "set", "eth0", "up")
        ip("netns", "exec", ns_name(i), "ip", "link", "set", "lo", "up")


def destroy_hosts(count: int) -> None:
    for i in range(1, count + 1):
        ip("netns", "del", ns_name(i), check=False)
        ip("link", "del", veth_name(i), check=False)
    ip("link", "del", BRIDGE, check=False)


def namespaces_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"shoal-{PID}-probe"
    out = ip("netns", "add", probe, check=False)
    if out.returncode != 0:
        return f"cannot create a network namespace: {out.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


@dataclass
class NetnsSpec(NodeSpec):
    """A node started inside a network namespace (``ip netns exec`` execs, so
    the process we start is the node itself)."""

    netns: str = ""

    def command(self, session: str, log_dir: str, lifeline: bool) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command(session, log_dir, lifeline)]


@dataclass
class Hosts:
    token: str
    head: NodeProcess
    h2: NodeProcess
    h3: NodeProcess
    tmp: str


@pytest.fixture
def hosts():
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    token = os.urandom(16).hex()
    session, log_dir = sessions.new_session()
    nodes: list[NodeProcess] = []
    tmp = tempfile.mkdtemp(prefix="shoal-netns-")
    try:
        create_hosts(4)
        head = start_node(NetnsSpec(head=True, host=address(1), num_cpus=1, prestart=1,
                                    object_store_memory=128 << 20,
                                    node_timeout_s=NODE_TIMEOUT_S, netns=ns_name(1)),
                          token, session, log_dir, lifeline=True)
        nodes.append(head)
        for i in (2, 3):
            nodes.append(start_node(NetnsSpec(
                address=head.address, host=address(i), num_cpus=1, prestart=1,
                resources={f"h{i}": 1, "worker": 1}, object_store_memory=128 << 20,
                netns=ns_name(i)), token, session, log_dir, lifeline=True))
        yield Hosts(token, head, nodes[1], nodes[2], tmp)
    finally:
        for node in nodes:
            node.kill()
        destroy_hosts(4)
        shutil.rmtree(tmp, ignore_errors=True)


DRIVER = r"""
import json, os, sys, time
import numpy as np
import shoal
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy

head, token, h2, h3, tmp = sys.argv[1:6]
shoal.init(address=head, _token=token)

@shoal.remote
def where():
    return shoal.get_runtime_context().get_node_id()

@shoal.remote
class Probe:
    def node(self):
        return shoal.get_runtime_context().get_node_id()
    def total(self, boxed):
        return float(shoal.get(boxed[0], timeout=30).sum())
    def make(self, n):
        return np.ones(n, dtype=np.uint8)

@shoal.remote(max_retries=2, resources={"worker": 1})
def attempt(tmp, h2):
    node = shoal.get_runtime_context().get_node_id()
    if node == h2:  # the first try: hold on until the node is cut off
        open(os.path.join(tmp, "started"), "w").write(node)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
    return node

print("TASKS " + json.dumps(shoal.get(
    [where.options(resources={"h2": 1}).remote(),
     where.options(resources={"h3": 1}).remote()], timeout=30)), flush=True)
p2 = Probe.options(resources={"h2": 1}).remote()
p3 = Probe.options(resources={"h3": 1}).remote()
print("ACTORS " + json.dumps([shoal.get(p2.node.remote(), timeout=30),
                              shoal.get(p3.node.remote(), timeout=30)]), flush=True)
made = p2.make.remote(32 << 20)  # its copy on h2; pulled to h3, then to the driver's node
put = shoal.put(np.full(16 << 20, 2, dtype=np.uint8))
print("TRANSFER " + json.dumps([shoal.get(p3.total.remote([made]), timeout=60),
                                shoal.get(p3.total.remote([put]), timeout=60),
                                float(shoal.get(made, timeout=60).sum())]), flush=True)
ref = attempt.options(
    scheduling_strategy=NodeAffinitySchedulingStrategy(h2, soft=True)).remote(tmp, h2)
cut_file = os.path.join(tmp, "cut")
deadline = time.monotonic() + 60
while not os.path.exists(cut_file) and time.monotonic() < deadline:
    time.sleep(0.01)
cut_at = float(open(cut_file).read())
while time.monotonic() < deadline:
    alive = {n["NodeID"]: n["Alive"] for n in shoal.nodes()}
    if not alive[h2]:
        break
    time.sleep(0.02)
print("DEAD " + str(time.monotonic() - cut_at), flush=True)
print("RETRIED " + shoal.get(ref, timeout=60), flush=True)
shoal.shutdown()
"""


@pytest.mark.timeout(150)
def test_separate_hosts_run_work_move_objects_and_survive_a_cut_link(hosts):
    cmd = ["ip", "netns", "exec", ns_name(4), sys.executable, "-c", DRIVER,
           hosts.head.address, hosts.token, hosts.h2.node_id, hosts.h3.node_id, hosts.tmp]
    tag = os.environ[SESSION_TAG_ENV] + "-netns"
    driver = subprocess.Popen(cmd, env=subprocess_env(tag), cwd=str(REPO_ROOT),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    STARTED_DRIVER_PIDS.add(driver.pid)
    try:
        tasks = json.loads(read_line_with_prefix(driver, "TASKS ", timeout=60))
        assert tasks == [hosts.h2.node_id, hosts.h3.node_id]
        actors = json.loads(read_line_with_prefix(driver, "ACTORS ", timeout=30))
        assert actors == [hosts.h2.node_id, hosts.h3.node_id]
        moved = json.loads(read_line_with_prefix(driver, "TRANSFER ", timeout=60))
        assert moved == [float(32 << 20), float(2 * (16 << 20)), float(32 << 20)]
        started = os.path.join(hosts.tmp, "started")
        wait_for_condition(lambda: os.path.exists(started), timeout=30,
                           message="the task started on h2")
        ip("link", "set", veth_name(2), "down")  # h2 is cut off, its processes run on
        with open(os.path.join(hosts.tmp, "cut"), "w") as f:
            f.write(repr(time.monotonic()))
        took = float(read_line_with_prefix(driver, "DEAD ", timeout=30))
        print(f"h2 declared dead {took:.2f} s after its link was cut")
        # the last heartbeat was at most timeout/5 before the cut; checks every timeout/10
        assert NODE_TIMEOUT_S * 0.7 <= took <= NODE_TIMEOUT_S + 3, took
        assert read_line_with_prefix(driver, "RETRIED ", timeout=60) == hosts.h3.node_id
        driver.wait(timeout=30)
        assert driver.returncode == 0
    finally:
        stop_driver(driver)
