"""A worker whose node agent dies exits and takes its child processes with it
(nobody else is left to stop them); the worker finds the agent's pid in
``SHOAL_NODE_PID`` (also Ray's ``RAY_RAYLET_PID``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import shoal
from shoal.cluster_utils import Cluster
from tests.utils import pid_gone, wait_for_condition


@shoal.remote(resources={"doomed": 1}, num_cpus=0)
class Parent:
    def start_child(self) -> int:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return child.pid

    def pids(self) -> tuple[int, int, str]:
        return os.getpid(), int(os.environ["SHOAL_NODE_PID"]), os.environ["RAY_RAYLET_PID"]


def test_a_worker_and_its_children_end_when_its_agent_is_killed():
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    child_pid = worker_pid = None
    try:
        node = cluster.add_node(num_cpus=1, resources={"doomed": 1})
        shoal.init(address=cluster.address)
        actor = Parent.remote()
        worker_pid, agent_pid, rays_name = shoal.get(actor.pids.remote(), timeout=60)
        assert agent_pid == node.pid and rays_name == str(agent_pid)
        child_pid = shoal.get(actor.start_child.remote(), timeout=60)
        os.kill(agent_pid, signal.SIGKILL)
        wait_for_condition(lambda: pid_gone(worker_pid), timeout=30,
                           message="the worker outlived its node agent")
        wait_for_condition(lambda: pid_gone(child_pid), timeout=30,
                           message="the worker's child outlived the worker's node agent")
    finally:
        for pid in (child_pid, worker_pid):
            if pid is not None and not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)
        shoal.shutdown()
        cluster.shutdown()
