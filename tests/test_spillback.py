"""Scheduling across nodes: spillback of requests the local node cannot serve,
SPREAD, node affinity (hard and soft) for tasks and actors, and locality
(shoal/node/cluster_view.py, shoal/core/lease_submitter.py, the control store's
actor placement).

One cluster for the module: the driver's head (1 CPU) and nodes n1, n2 (2 CPUs
each, a custom resource each).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

import shoal
from shoal.cluster_utils import Cluster
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.clusters import labelled_cluster
from tests.utils import wait_for_condition

MiB = 1 << 20


@pytest.fixture(scope="module")
def cluster():
    with labelled_cluster(128 * MiB, n1=2, n2=2) as c:
        yield c


@shoal.remote
def where(*args) -> str:
    return shoal.get_runtime_context().get_node_id()


@shoal.remote
class Barrier:
    """``arrive`` answers once ``n`` callers have arrived: the tasks that call it
    hold their leases at the same time."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.all_here = asyncio.Event()

    async def ready(self) -> bool:
        return True

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.n:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), 30)


@shoal.remote
def where_after(barrier) -> str:
    shoal.get(barrier.arrive.remote(), timeout=30)
    return shoal.get_runtime_context().get_node_id()


@shoal.remote
class Probe:
    def node(self) -> str:
        return shoal.get_runtime_context().get_node_id()

    def make(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.uint8)


def all_nodes(cluster: Cluster) -> set[str]:
    return {cluster.head_node.node_id, cluster.n1.node_id, cluster.n2.node_id}


def test_a_task_infeasible_here_spills_to_the_node_that_can_run_it(cluster):
    assert shoal.get(where.options(resources={"n2": 1}).remote(), timeout=30) == \
        cluster.n2.node_id
    # more CPUs than the head has
    assert shoal.get(where.options(num_cpus=2).remote(), timeout=30) in \
        {cluster.n1.node_id, cluster.n2.node_id}


def cpus_all_free() -> bool:
    return shoal.available_resources().get("CPU") == shoal.cluster_resources().get("CPU")


@shoal.remote
def hold(seconds: float) -> None:
    time.sleep(seconds)


def test_spread_uses_every_node(cluster):
    # n1 busy for longer than a heartbeat: the head's periodic copy of the node
    # table then shows n1 full, and stays so for up to a heartbeat after n1 is free
    shoal.get(hold.options(resources={"n1": 1}, num_cpus=2).remote(1.2), timeout=30)
    barrier = Barrier.options(resources={"head": 1}).remote(6)
    shoal.get(barrier.ready.remote(), timeout=30)
    # SPREAD prefers nodes with room now: start once every lease is back (a node
    # still busy, e.g. the head creating the barrier, is rightly passed over)
    wait_for_condition(cpus_all_free, timeout=10)
    refs = [where_after.options(scheduling_strategy="SPREAD", num_cpus=0.5).remote(barrier)
            for _ in range(6)]
    assert set(shoal.get(refs, timeout=45)) == all_nodes(cluster)


def test_spread_actors_land_on_distinct_nodes(cluster):
    actors = [Probe.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
    assert {shoal.get(a.node.remote(), timeout=30) for a in actors} == all_nodes(cluster)


def test_hard_node_affinity_pins_tasks_and_actors(cluster):
    pin = NodeAffinitySchedulingStrategy(cluster.n2.node_id, soft=False)
    assert set(shoal.get([where.options(scheduling_strategy=pin).remote()
                          for _ in range(4)], timeout=30)) == {cluster.n2.node_id}
    actor = Probe.options(scheduling_strategy=pin).remote()
    assert shoal.get(actor.node.remote(), timeout=30) == cluster.n2.node_id


def test_hard_node_affinity_to_a_missing_node_fails_clearly(cluster):
    gone = NodeAffinitySchedulingStrategy("0" * 28, soft=False)
    with pytest.raises(shoal.exceptions.TaskUnschedulableError, match="not alive"):
        shoal.get(where.options(scheduling_strategy=gone).remote(), timeout=30)
    actor = Probe.options(scheduling_strategy=gone).remote()
    with pytest.raises(shoal.exceptions.ActorDiedError, match="not alive"):
        shoal.get(actor.node.remote(), timeout=30)


def test_soft_node_affinity_falls_back_to_a_node_that_can_run_it(cluster):
    missing = NodeAffinitySchedulingStrategy("0" * 28, soft=True)
    assert shoal.get(where.options(scheduling_strategy=missing).remote(), timeout=30) in \
        all_nodes(cluster)
    # n1 lacks "n2": soft affinity to n1 gives way to feasibility
    wrong = NodeAffinitySchedulingStrategy(cluster.n1.node_id, soft=True)
    assert shoal.get(where.options(scheduling_strategy=wrong, resources={"n2": 1}).remote(),
                     timeout=30) == cluster.n2.node_id
    actor = Probe.options(scheduling_strategy=missing).remote()
    assert shoal.get(actor.node.remote(), timeout=30) in all_nodes(cluster)


def test_a_task_runs_where_most_of_its_argument_bytes_are(cluster):
    maker = Probe.options(resources={"n2": 1}).remote()
    big = maker.make.remote(16 * MiB)  # its copy is on n2; the driver owns it
    small = shoal.put(np.zeros(MiB, dtype=np.uint8))  # on the head
    shoal.wait([big], timeout=30)
    assert shoal.get(where.remote(big, small), timeout=30) == cluster.n2.node_id
    assert shoal.get(where.remote(small), timeout=30) == cluster.head_node.node_id
